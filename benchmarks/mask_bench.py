"""What segmentation masks cost (issue 22): on synthetic shape photos with their label maps
(``pipelines.demo_shapes``, JPEG images, PNG masks, converted by ``pureffcv convert``),

- ``pipeline`` against ``image_only``: a 512 px segmentation spec (crop, rotate, flip,
  normalize) with its mask target, and the same image pipeline without it, epochs
  interleaved in one process (``pipelines.bench``); the ratio is what the masks cost;
- the mask field's size against raw storage (H x W bytes per uint8 mask), on these masks and
  on the segmentation demo's.

    .venv/bin/python benchmarks/mask_bench.py --images 256 --size 600 --workers 2
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from pipelines.bench import bench
from pipelines.convert import convert
from pipelines.demo_shapes import build_shapes_dataset

SPEC = """\
version: 1
seed: 0
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 512, scale: [0.25, 1.0]}}
      cpu: [rotate: {degrees: 10, p: 0.3}]
      device: {dtype: float16, ops: [horizontal_flip, normalize]}
    targets: {mask: {num_classes: 4}}
    loader: {batch_size: 16}
"""


def mask_storage(beton: Path) -> dict:
    """Bytes of the mask field (compressed) against raw uint8 storage of the same masks."""
    from ffcv.reader import Reader

    import operations.cpu.mask_field  # noqa: F401  (registers the field type)

    reader = Reader(str(beton))
    masks = reader.metadata[f"f{reader.field_names.index('mask')}"]
    raw = int((masks["height"].astype(np.int64) * masks["width"]).sum())
    stored = int(masks["nbytes"].sum())
    return {"masks": len(masks), "raw_bytes": raw, "stored_bytes": stored,
            "smaller_by": raw / stored}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=600, help="side of the square photos")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = build_shapes_dataset(tmp / "shapes", {"train": args.images}, args.size)["train"]
        beton = tmp / "shapes.beton"
        convert(folder, beton, write_mode="jpg", jpeg_quality=90)
        demo_folder = build_shapes_dataset(tmp / "demo", {"train": 256})["train"]
        demo_beton = tmp / "demo.beton"
        convert(demo_folder, demo_beton)
        spec = tmp / "seg512.yaml"
        spec.write_text(SPEC)
        report = bench(str(spec), str(beton), device="cpu", epochs=args.epochs,
                       num_workers=args.workers)
        v = report.variants
        results = {
            "pipeline_images_per_s": v["pipeline"].images_per_s,
            "image_only_images_per_s": v["image_only"].images_per_s,
            "masks_cost_ratio": v["image_only"].images_per_s / v["pipeline"].images_per_s,
            "storage": mask_storage(beton), "demo_storage": mask_storage(demo_beton),
        }
        print(report.table())
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
