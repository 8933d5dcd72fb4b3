"""Run the whole pureffcv path on embedded demo data: build crops of scikit-image's bundled
photos, convert them to .beton, preview specs/demo.yaml, train a small ResNet for a few epochs
and print validation accuracy, images/s and where the run was written.

--task segmentation does the same for semantic segmentation: synthetic images of circles,
rectangles and triangles with their masks (no scikit-image needed), specs/segmentation_demo.yaml,
a ResNet with a light decoder, and validation mIoU.

Data and runs go to $PUREFFCV_DATA (default ~/.cache/pureffcv); a second run reuses the data.

--data-only builds and converts the data, prints the two .beton files and trains nothing: for
runs of one's own on the demo data, such as SimCLR's
(``pureffcv demo --data-only --cache demo-data`` then ``pureffcv fit --config
specs/runs/simclr_demo.yaml``).
"""
HELP = "train a small model on embedded demo data (a few minutes on 2 CPU cores)"


def configure(parser):
    parser.add_argument("--task", choices=("classification", "segmentation"),
                        default="classification",
                        help="classification (photo crops, default) or segmentation (shapes "
                             "and their masks)")
    parser.add_argument("--quick", action="store_true",
                        help="less data and fewer epochs (about a minute; the test suite uses it)")
    parser.add_argument("--epochs", type=int, default=None, help="override the epoch count")
    parser.add_argument("--workers", type=int, default=None, help="loader threads (all cores)")
    parser.add_argument("--data-only", action="store_true",
                        help="build and convert the data, print the .beton paths, train nothing "
                             "(specs/runs/simclr_demo.yaml reads them from --cache demo-data)")
    parser.add_argument("--cache", default=None, help="data folder (default $PUREFFCV_DATA "
                                                      "or ~/.cache/pureffcv)")


def run(args) -> int:
    import sys

    if args.task == "segmentation":
        from pipelines.demo_segmentation import run_segmentation_demo as run_demo
    else:
        import skimage.data  # noqa: F401  (missing: one line from pipelines.cli, before any work)

        from pipelines.demo import run_demo
    from pipelines.notices import quiet_library_notices

    quiet_library_notices()

    try:
        if args.data_only:
            return print_data(args)
        result = run_demo(quick=args.quick, cache=args.cache, epochs=args.epochs,
                          workers=args.workers)
    except OSError as error:  # an unwritable cache folder, a full disk...
        where = f"{error.filename}: " if error.filename is not None else ""
        print(f"pureffcv demo: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def print_data(args) -> int:
    """Build and convert the demo data of ``args.task`` (``--quick``: the small set) and print
    ``train: PATH`` and ``val: PATH``."""
    from pathlib import Path

    if args.task == "segmentation":
        from pipelines import demo_segmentation as demo
    else:
        from pipelines import demo
    from pipelines.demo_data import cache_dir

    cache = Path(args.cache) if args.cache is not None else cache_dir()
    betons = demo.prepare_data(demo.QUICK if args.quick else demo.FULL, cache, args.workers)
    for split, path in betons.items():
        print(f"{split}: {path}")
    return 0
