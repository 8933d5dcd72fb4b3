"""The CPU-ops performance benchmark (issue 4): on one .beton of natural photos (JPEG,
200-400 px, the demo photo crops), with the same worker count, images/s of

- ``decode``: random-resized crop to 160 px only (the physical floor: JPEG decoding);
- ``pipeline``: the full pure policy of benchmarks/policy_160.yaml (crop, TrivialAugmentWide,
  random erasing, fused flip + normalize);
- ``torch_hybrid``: that policy done the hybrid way, per image in torch after the same decoder
  (pipelines/hybrid_baseline.py);

for each ``--workers`` value, plus the first-epoch (compile) time. Ratios, not absolutes, are
the result: all variants run in this one process on the same data, their epochs interleaved.

    .venv/bin/python benchmarks/cpu_policy_bench.py --workers 1 2 --images-per-class 128
"""
import argparse
import json
import tempfile
from pathlib import Path

from pipelines.bench import bench
from pipelines.convert import convert
from pipelines.demo_data import build_demo_images

SPEC = str(Path(__file__).with_name("policy_160.yaml"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images-per-class", type=int, default=128, help="8 classes")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_demo_images(Path(tmp), {"train": args.images_per_class})["train"]
        beton = Path(tmp) / "photos.beton"
        convert(folder, beton, write_mode="jpg", jpeg_quality=90)
        results = {}
        for workers in args.workers:
            report = bench(SPEC, str(beton), device="cpu", epochs=args.epochs,
                           num_workers=workers, compare=["torch_hybrid"])
            v = report.variants
            results[workers] = {
                "decode_only": v["decode"].images_per_s,
                "pure_policy": v["pipeline"].images_per_s,
                "torch_hybrid": v["torch_hybrid"].images_per_s,
                "policy_vs_decode": v["pipeline"].images_per_s / v["decode"].images_per_s,
                "policy_vs_hybrid": v["pipeline"].images_per_s / v["torch_hybrid"].images_per_s,
                "first_epoch_s": v["pipeline"].first_epoch_s,
            }
            if not args.json:
                print(report.table(), "\n")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'workers':>7}{'decode':>9}{'policy':>9}{'hybrid':>9}{'pol/dec':>9}"
              f"{'pol/hyb':>9}{'compile':>9}")
        for workers, r in results.items():
            print(f"{workers:>7}{r['decode_only']:>9.0f}{r['pure_policy']:>9.0f}"
                  f"{r['torch_hybrid']:>9.0f}{r['policy_vs_decode']:>9.2f}"
                  f"{r['policy_vs_hybrid']:>9.2f}{r['first_epoch_s']:>8.1f}s")


if __name__ == "__main__":
    main()
