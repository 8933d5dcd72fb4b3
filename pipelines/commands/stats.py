"""Compute a .beton's per-channel mean and standard deviation in 0-255 pixel units, and print
the spec line that normalizes with them.

  pureffcv stats DATA.beton
  pureffcv stats DATA.beton --limit 10000      # 10,000 images evenly spaced over the file

Images are decoded at their stored size as FFCV decodes them (no crop, no resize); the
standard deviation is the population one, over all pixels of all images used.
"""

HELP = "per-channel mean and std of a .beton's images (the normalize line to paste)"


def configure(parser) -> None:
    parser.add_argument("beton", metavar="DATA.beton", help="the data set")
    parser.add_argument("--field", default=None,
                        help="the RGB image field (default: 'image', or the only one)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="use N images evenly spaced over the file (default: all)")


def run(args) -> int:
    from pipelines.stats import channel_stats

    stats = channel_stats(args.beton, field=args.field, limit=args.limit)
    print(f"{args.beton}: {stats.images} images, {stats.pixels} pixels per channel")
    print("mean (R, G, B): " + " ".join(f"{v:.4f}" for v in stats.mean))
    print("std  (R, G, B): " + " ".join(f"{v:.4f}" for v in stats.std))
    print("in the spec's image.device.ops:")
    print(f"  {stats.yaml()}")
    return 0
