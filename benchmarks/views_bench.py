"""Views from one decode (issue 24) against one view and against plain FFCV decoding once per
view, on ~500x375 photos (JPEG q90, as ``crop_decode_bench``), epochs interleaved in one
process, CPU device:

- ``one_view``: one 224 px random-resized crop + flip + normalize (the first view alone);
- ``two_views``: SimCLR's shape, two such copies from one decode;
- ``dino``: DINO's multi-crop shape, 2 x 224 px (scale [0.4, 1]) + 6 x 96 px (scale
  [0.05, 0.4]) from one decode;
- ``ffcv_two_views``: FFCV's RandomResizedCropRGBImageDecoder in two pipelines on the same
  field (+ ToTensor + ToTorchImage, no flip or normalize): FFCV decodes each image twice.

The views carry only crop, flip and normalize, so the ratios show what the shared decode
saves; a recipe's colour ops and blur cost per copy on top.

    .venv/bin/python benchmarks/views_bench.py --workers 2 --images 512 --epochs 3
"""
import argparse
import json
import tempfile
from pathlib import Path

from compiler import compile_spec
from crop_decode_bench import build_photos
from pipelines.bench import Variant, _ffcv_views_batches, _loader_batches, time_variants
from pipelines import loading
from pipelines.convert import convert

VIEW = """\
          decode: {random_resized_crop: {size: SIZE, scale: SCALE}}
          device: {dtype: float32, ops: [{horizontal_flip: {p: 0.5}}, {normalize: {mean: imagenet, std: imagenet}}]}
"""
SPEC = """\
version: 1
splits:
  train:
    image:
      views:
VIEWS    loader: {batch_size: 64, num_workers: WORKERS, order: random, drop_last: false}
"""


def views_spec(views, workers: int) -> str:
    """A spec with ``views``: (name, count, size, scale) each."""
    text = "".join(f"        {name}:\n          count: {count}\n" +
                   VIEW.replace("SIZE", str(size)).replace("SCALE", str(list(scale)))
                   for name, count, size, scale in views)
    return SPEC.replace("VIEWS", text).replace("WORKERS", str(workers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = build_photos(Path(tmp) / "photos", args.images)
        beton = str(Path(tmp) / "photos.beton")
        convert(str(root), beton, write_mode="jpg", jpeg_quality=90)
        two = views_spec([("view", 2, 224, (0.08, 1.0))], args.workers)
        dino = views_spec([("global", 2, 224, (0.4, 1.0)), ("local", 6, 96, (0.05, 0.4))],
                          args.workers)
        options = {"order": "random", "drop_last": False}

        def whole(text):
            compiled = compile_spec(text, device="cpu")
            loader = compiled.loader(beton, **options)
            return lambda epoch: (compiled.set_epoch(epoch), loading.epoch(loader))[1]

        variants = [
            Variant("one_view", _loader_batches(compile_spec(two, device="cpu"), beton, None,
                                                options)),
            Variant("two_views", whole(two)),
            Variant("dino", whole(dino)),
            Variant("ffcv_two_views", _ffcv_views_batches(compile_spec(two, device="cpu"),
                                                          beton, options)),
        ]
        results = time_variants(variants, args.epochs)
    rate = {name: t.images_per_s for name, t in results.items()}
    ratios = {"two_views_cost_vs_one": rate["one_view"] / rate["two_views"],
              "dino_cost_vs_one": rate["one_view"] / rate["dino"],
              "two_views_speed_vs_ffcv_two": rate["two_views"] / rate["ffcv_two_views"]}
    for name, value in rate.items():
        print(f"{name:<16}{value:>8.0f} samples/s  first epoch {results[name].first_epoch_s:.1f} s")
    for name, value in ratios.items():
        print(f"{name:<30}{value:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"samples_per_s": rate, "ratios": ratios},
                                              indent=2))


if __name__ == "__main__":
    main()
