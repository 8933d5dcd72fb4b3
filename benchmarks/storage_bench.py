"""Storage choices of ``pureffcv convert`` (issue 14): size on disk against images/s of the
train decoder of specs/hybrid_policy.yaml (random-resized crop, crop-aware decoding) at
``--size`` px, on the ~500x375 photos of crop_decode_bench.py, epochs interleaved:

- ``jpg``: every image JPEG q90; ``raw``: every image raw pixels;
- ``proportion P``: a share P JPEG (``--write-mode proportion --compress-probability P``);
- each also with ``--max-resolution R`` (longer side shrunk to R px, ffcv-imagenet's 256-512).

    .venv/bin/python benchmarks/storage_bench.py --images 256 --workers 2 --size 160
"""
import argparse
import json
import tempfile
from pathlib import Path

from compiler import compile_spec
from pipelines.bench import Variant, _loader_batches, time_variants
from pipelines.convert import convert

from crop_decode_bench import SPEC, build_photos

LAYOUTS = [("jpg", {"write_mode": "jpg"}),
           ("proportion 0.5", {"write_mode": "proportion", "compress_probability": 0.5}),
           ("proportion 0.25", {"write_mode": "proportion", "compress_probability": 0.25}),
           ("raw", {"write_mode": "raw"})]


def stored_mib(beton: Path) -> float:
    """MiB of sample data in ``beton`` (FFCV's allocation table; the file itself rounds up
    to whole pages, coarse for small data sets)."""
    from ffcv.reader import Reader

    return float(Reader(str(beton)).alloc_table["size"].sum()) / 2 ** 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--max-resolution", type=int, nargs="+", default=[256])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    spec = SPEC.read_text().replace("size: 224", f"size: {args.size}")
    options = {"order": "random", "drop_last": False, "num_workers": args.workers,
               "batch_size": 64}
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_photos(Path(tmp) / "photos", args.images)
        sizes, variants = {}, []
        for resolution in [None] + args.max_resolution:
            for name, layout in LAYOUTS:
                label = name if resolution is None else f"{name}, max {resolution}"
                beton = Path(tmp) / f"{len(sizes)}.beton"
                convert(folder, beton, jpeg_quality=90, max_resolution=resolution, **layout)
                sizes[label] = stored_mib(beton)
                compiled = compile_spec(spec, split="train", device="cpu")
                variants.append(Variant(label, _loader_batches(compiled, str(beton), 1, options)))
        results = time_variants(variants, args.epochs, progress=not args.json)
    rows = {name: {"MiB": sizes[name], "images_per_s": t.images_per_s}
            for name, t in results.items()}
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    base = rows["jpg"]
    print(f"{args.images} photos of 500x375, random-resized crop to {args.size} px, "
          f"{args.workers} workers")
    print(f"{'storage':<26}{'MiB':>8}{'vs jpg':>8}{'images/s':>10}{'vs jpg':>8}")
    for name, row in rows.items():
        print(f"{name:<26}{row['MiB']:>8.1f}{row['MiB'] / base['MiB']:>7.2f}x"
              f"{row['images_per_s']:>10.0f}{row['images_per_s'] / base['images_per_s']:>7.2f}x")


if __name__ == "__main__":
    main()
