"""Measure images/s of a compiled split on a .beton: one warm-up epoch (Numba compiles there;
reported as first_epoch_s, and as compile_s: the first epoch minus a steady one), then timed
epochs. Also times cumulative prefixes of the pipeline (decode; + CPU ops; + transfer) so the
per-stage cost shows where the time goes, and optional baselines (--compare torch_hybrid
ffcv_decode dataloader; ffcv_decode is FFCV's own RandomResizedCrop or CenterCrop decoder with
ToTensor and ToTorchImage). A split with views is timed whole and as its first view alone
(one_view); --compare ffcv_views adds FFCV's decoder in one pipeline per view copy.

JSON keys (--json): spec, split, device, num_workers, batch_size, epochs, images_per_s,
first_epoch_s, compile_s, stages_us_per_image {decode, cpu_ops, transfer, device_ops} (empty
for a split with views), variants {name: {name, first_epoch_s, images, seconds, epochs,
images_per_s, compile_s}}.
"""
import json
import sys

HELP = "measure a compiled pipeline's throughput and per-stage cost"


def configure(parser):
    parser.add_argument("spec", metavar="SPEC", help="spec file (YAML) or a shipped spec's name")
    parser.add_argument("data", metavar="DATA.beton", help="data set to read")
    parser.add_argument("--split", default="train", help="split of the spec (default: train)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after warm-up (3)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (spec's)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (spec's)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="BASELINE",
                        help="baselines to measure in the same run: torch_hybrid, "
                             "ffcv_decode, ffcv_views (a split with views: FFCV decoding "
                             "once per view copy), dataloader, dali (checked by "
                             "pipelines.bench)")
    parser.add_argument("--images", help="source image folder (for --compare dataloader)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", metavar="PNG", help="write a bar chart of the variants "
                                                      "(needs matplotlib: pureffcv[demo])")


def run(args) -> int:
    from pathlib import Path

    from pipelines.bench import bench, plot_report

    if args.plot:
        import matplotlib  # noqa: F401  (missing: one line from pipelines.cli, before timing)
    try:
        report = bench(Path(args.spec), args.data, split=args.split, device=args.device,
                       epochs=args.epochs, num_workers=args.workers, batch_size=args.batch_size,
                       compare=args.compare, images_dir=args.images, progress=not args.json)
    except (FileNotFoundError, ValueError) as error:  # a missing --images folder, a bad option
        print(f"pureffcv bench: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_json(), indent=2) if args.json else report.table())
    if args.plot:
        try:
            plot_report(report, args.plot)
        except OSError as error:
            print(f"pureffcv bench: cannot write {args.plot}: {error.strerror or error}",
                  file=sys.stderr)
            return 1
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0
