"""Crop-aware decoding against FFCV's own decoders (issue 14), on ~500x375 photos (JPEG q90,
random crops of the demo photographs resized to 500x375 or 375x500, the size ffcv-imagenet
stores ImageNet at), same workers, epochs interleaved in one process:

- ``val S``: ``center_crop`` to S px (ratio 0.875) — pureffcv crop-aware, pureffcv with the
  full decode (today's path, ``crop_aware = False``), and FFCV's CenterCropRGBImageDecoder
  (+ ToTensor + ToTorchImage);
- ``train S``: specs/hybrid_policy.yaml at S px — decode only (crop-aware and full), decode +
  CPU ops (TrivialAugmentWide: what a GPU run pays on the CPU; planned for a CUDA device, so
  none of the device ops a CPU device lowers into the JIT stage), and FFCV's
  RandomResizedCropRGBImageDecoder alone (no augmentation at all).

    .venv/bin/python benchmarks/crop_decode_bench.py --workers 2 --images 512 --sizes 160 224
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from compiler import compile_spec
from pipelines.bench import Variant, _ffcv_decode_batches, _loader_batches, time_variants
from pipelines.convert import convert
from pipelines.demo_data import PHOTOS, load_photo

SPEC = Path(__file__).resolve().parents[1] / "specs" / "hybrid_policy.yaml"
VAL = """\
version: 1
splits:
  val:
    image:
      decode: {center_crop: {size: SIZE, ratio: 0.875}}
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    loader: {batch_size: 64, num_workers: 2, order: random, drop_last: false}
"""


def build_photos(root: Path, count: int, seed: int = 0) -> Path:
    """``count`` JPEGs (q90) of 500x375 or 375x500: random crops (25-100% of the area) of the
    demo photographs, resized; class = photograph."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(PHOTOS):
        photo = load_photo(name)
        height, width = photo.shape[:2]
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count // len(PHOTOS)):
            landscape = rng.random() < 0.75
            out_w, out_h = (500, 375) if landscape else (375, 500)
            scale = min(height / out_h, width / out_w) * np.sqrt(rng.uniform(0.25, 1.0))
            h, w = int(out_h * scale), int(out_w * scale)
            y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
            crop = Image.fromarray(photo[y:y + h, x:x + w]).resize((out_w, out_h),
                                                                   Image.BILINEAR)
            crop.save(root / name / f"{i:04d}.jpg", quality=90)
    return root


def decoder_variants(spec, split: str, beton: str, options: dict, prefix: str):
    """Decode-only crop-aware / full-decode / FFCV, and (train) decode + CPU ops."""
    variants = []
    for name, aware in (("aware", True), ("full", False)):
        compiled = compile_spec(spec, split=split, device="cpu")
        compiled.decoder.op.crop_aware = aware
        variants.append(Variant(f"{prefix} {name}", _loader_batches(compiled, beton, 1, options)))
    if split == "train":  # the CPU stage of a GPU run: the steps a cuda plan runs on the CPU
        steps = 1 + len(compile_spec(spec, split=split, device="cuda").cpu_steps)
        compiled = compile_spec(spec, split=split, device="cpu")
        variants.append(Variant(f"{prefix} aware+cpu", _loader_batches(compiled, beton, steps,
                                                                       options)))
    compiled = compile_spec(spec, split=split, device="cpu")
    variants.append(Variant(f"{prefix} ffcv", _ffcv_decode_batches(compiled, beton, options)))
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_photos(Path(tmp) / "photos", args.images)
        beton = str(Path(tmp) / "photos.beton")
        convert(folder, beton, write_mode="jpg", jpeg_quality=90)
        options = {"order": "random", "drop_last": False, "num_workers": args.workers,
                   "batch_size": 64}
        variants = []
        for size in args.sizes:
            val = VAL.replace("SIZE", str(size))
            variants += decoder_variants(val, "val", beton, options, f"val {size}")
            train = SPEC.read_text().replace("size: 224", f"size: {size}")
            variants += decoder_variants(train, "train", beton, options, f"train {size}")
        results = time_variants(variants, args.epochs, progress=not args.json)
    rates = {name: t.images_per_s for name, t in results.items()}
    if args.json:
        print(json.dumps({"rates": rates,
                          "compile_s": {n: t.compile_s for n, t in results.items()}}, indent=2))
        return
    print(f"{args.images} photos of 500x375, {args.workers} workers, batch 64, "
          f"{args.epochs} timed epochs")
    print(f"{'variant':<22}{'images/s':>10}{'vs ffcv':>9}{'compile':>9}")
    for name, t in results.items():
        ffcv = rates[name.rsplit(" ", 1)[0] + " ffcv"]
        print(f"{name:<22}{t.images_per_s:>10.0f}{t.images_per_s / ffcv:>8.2f}x"
              f"{t.compile_s:>8.1f}s")


if __name__ == "__main__":
    main()
