"""What boxes cost (issue 23): on synthetic shape photos (``pipelines.demo_shapes``, JPEGs)
whose shapes' bounding boxes are written as COCO annotations and converted by
``pureffcv convert --coco``,

- ``pipeline`` against ``image_only``: a detection spec (random resized crop, rotate, flip,
  normalize) with its boxes target, and the same image pipeline without it, epochs
  interleaved in one process (``pipelines.bench``); the ratio is what the boxes cost;
- the padded batch (``BoxBatch``): its bytes against the list of per-image tensors it holds,
  and the time ``box_batch`` and ``detection_targets`` take per batch.

    .venv/bin/python benchmarks/boxes_bench.py --images 256 --width 500 --height 375
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from operations import Target
from operations.cpu.instances import boxes_array
from operations.device.instance_batch import box_batch, detection_targets
from pipelines.bench import bench
from pipelines.convert.coco import convert_coco
from pipelines.demo_shapes import draw_sample

SPEC = """\
version: 1
seed: 0
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 224, scale: [0.25, 1.0]}}
      cpu: [rotate: {degrees: 10, p: 0.3}]
      device: {dtype: float16, ops: [horizontal_flip, normalize]}
    targets: {boxes: {kind: boxes, min_visibility: 0.2}}
    loader: {batch_size: 64}
"""


def shapes_as_coco(folder: Path, count: int, width: int, height: int) -> Path:
    """``count`` shape photos cut to width x height under ``folder/images`` and a COCO file
    with one box per shape class present (its pixels' bounding box)."""
    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(count):
        image, mask, _ = draw_sample(np.random.default_rng([7, i]), max(width, height))
        image, mask = image[:height, :width], mask[:height, :width]
        Image.fromarray(image).save(folder / "images" / f"{i:05d}.jpg", quality=90)
        images.append({"id": i, "file_name": f"{i:05d}.jpg", "width": width, "height": height})
        for cls in np.unique(mask[(mask > 0) & (mask < 255)]):
            ys, xs = np.nonzero(mask == cls)
            annotations.append({"id": len(annotations), "image_id": i, "category_id": int(cls),
                                "iscrowd": 0, "bbox": [int(xs.min()), int(ys.min()),
                                                       int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1],
                                "area": float(len(xs))})
    categories = [{"id": c, "name": f"shape{c}"} for c in range(1, 4)]
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))
    return path


def padded_form(batch_size: int, rows: int, repeats: int = 200) -> dict:
    """A batch's BoxBatch bytes against the per-image lists, and the per-batch time of
    ``box_batch`` (instance arrays -> BoxBatch) and of ``detection_targets``."""
    rng = np.random.default_rng(0)
    arrays = []
    for _ in range(batch_size):
        n = int(rng.integers(0, rows + 1))
        corners = rng.uniform(0, 200, (n, 2))
        arrays.append(boxes_array(np.hstack([corners, corners + 20]), rng.integers(0, 80, n),
                                  224, 224, rows=rows))
    instances = torch.from_numpy(np.stack(arrays))
    target = Target("boxes", "boxes", "boxes")
    started = time.perf_counter()
    for _ in range(repeats):
        batch = box_batch(instances, target)
    batched = (time.perf_counter() - started) / repeats
    started = time.perf_counter()
    for _ in range(repeats):
        listed = detection_targets(batch)
    to_list = (time.perf_counter() - started) / repeats
    padded = sum(t.numel() * t.element_size() for t in batch)
    lists = sum(t.numel() * t.element_size() for d in listed for t in d.values())
    return {"batch_size": batch_size, "rows": int(batch.boxes.shape[1]),
            "padded_bytes": padded, "list_bytes": lists, "padded_over_list": padded / lists,
            "box_batch_ms": batched * 1e3, "detection_targets_ms": to_list * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        annotations = shapes_as_coco(tmp / "shapes", args.images, args.width, args.height)
        beton = tmp / "shapes.beton"
        convert_coco(annotations, tmp / "shapes" / "images", beton, write_mode="jpg",
                     jpeg_quality=90)
        spec = tmp / "det.yaml"
        spec.write_text(SPEC)
        report = bench(str(spec), str(beton), device="cpu", epochs=args.epochs,
                       num_workers=args.workers)
        v = report.variants
        results = {
            "pipeline_images_per_s": v["pipeline"].images_per_s,
            "image_only_images_per_s": v["image_only"].images_per_s,
            "boxes_cost_ratio": v["image_only"].images_per_s / v["pipeline"].images_per_s,
            "padded_form": [padded_form(64, 3), padded_form(64, 50),
                            padded_form(256, 50)],
        }
        print(report.table())
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
