"""``pureffcv demo --task segmentation``: the segmentation path on embedded data, no network,
no GPU needed.

1. Draw the shapes data set (``pipelines.demo_shapes``: circles, rectangles and triangles on
   textured backgrounds, with their masks) in the segmentation folder layout and convert each
   split to .beton with ``pureffcv convert``'s function — both cached, so a second run reuses
   them.
2. Compile ``specs/segmentation_demo.yaml`` (random resized crop and flip, which move the masks
   with the images) and write a preview grid of its train split.
3. Train ``ImageClassifier(task="segmentation")`` (a ResNet-18 of width 16 with the light
   U-Net/FPN decoder) for a few epochs on the CPU (or the GPU, if there is one) and report the
   validation mIoU, pixel accuracy, images/s and where the run is.

Data layout (``$PUREFFCV_DATA``, default ``~/.cache/pureffcv``)::

    demo_segmentation/<size>/images/{train,val}/{images,masks}/*   .../<size>/{train,val}.beton
    runs/demo-segmentation-<size>-<time>/   (logs, checkpoints, preview.png)
"""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from compiler.shipped import shipped_spec

from .demo_data import cache_dir
from .demo_shapes import IGNORE_INDEX, SHAPE_CLASSES, build_shapes_dataset

SEGMENTATION_DEMO_SPEC = shipped_spec("segmentation_demo")
#: the images' side in pixels (the spec's crop size)
IMAGE_SIZE = 64


@dataclass(frozen=True)
class ShapesSize:
    name: str
    train: int
    val: int
    epochs: int


FULL = ShapesSize("full", train=3000, val=300, epochs=8)
#: the variant the test suite runs: same path, less data and fewer epochs
QUICK = ShapesSize("quick", train=1000, val=100, epochs=5)


@dataclass
class SegmentationDemoResult:
    val_miou: float
    #: the mIoU of predicting background everywhere, on the same validation masks
    background_miou: float
    val_pixel_accuracy: float
    images_per_s: float
    run_dir: Path
    preview: Path
    seconds: float

    def summary(self) -> str:
        return (f"validation mIoU {self.val_miou:.1%} (all background: "
                f"{self.background_miou:.1%}), pixel accuracy {self.val_pixel_accuracy:.1%}, "
                f"training {self.images_per_s:.0f} images/s, {self.seconds:.0f} s in all\n"
                f"run: {self.run_dir}\npreview: {self.preview}")


def prepare_data(size: ShapesSize, cache: Path, workers: Optional[int] = None) -> dict:
    """split -> .beton path, drawing and converting what the cache lacks."""
    from .convert import convert

    root = cache / "demo_segmentation" / size.name
    folders = build_shapes_dataset(root / "images", {"train": size.train, "val": size.val},
                                   size=IMAGE_SIZE)
    betons = {}
    for split, folder in folders.items():
        beton = root / f"{split}.beton"
        if not beton.exists() or beton.stat().st_mtime < (folder / ".complete").stat().st_mtime:
            convert(folder, beton, workers=workers, force=True,
                    num_classes=len(SHAPE_CLASSES), ignore_index=IGNORE_INDEX)
        betons[split] = beton
    return betons


def background_miou(masks_folder: Path) -> float:
    """The mIoU a model predicting background (0) everywhere would score on the masks."""
    import numpy as np
    import torch
    from PIL import Image

    from .segmentation_metrics import confusion_matrix, mean_iou

    matrix = torch.zeros(len(SHAPE_CLASSES), len(SHAPE_CLASSES), dtype=torch.int64)
    for path in sorted(Path(masks_folder).glob("*.png")):
        with Image.open(path) as png:
            truth = torch.from_numpy(np.asarray(png).astype(np.int64))
        matrix += confusion_matrix(torch.zeros_like(truth), truth, len(SHAPE_CLASSES),
                                   IGNORE_INDEX)
    return float(mean_iou(matrix))


def run_segmentation_demo(quick: bool = False, cache: Optional[Path] = None,
                          epochs: Optional[int] = None, workers: Optional[int] = None,
                          progress: bool = True, seed: int = 0) -> SegmentationDemoResult:
    """Build/reuse the shapes data, preview the spec, train, validate; return the numbers."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from .classifier import ImageClassifier
    from .datamodule import FFCVDataModule
    from .preview import preview

    start = time.perf_counter()
    size = QUICK if quick else FULL
    cache = Path(cache) if cache is not None else cache_dir()
    betons = prepare_data(size, cache, workers)
    run_dir = cache / "runs" / f"demo-segmentation-{size.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    grid = preview(SEGMENTATION_DEMO_SPEC, betons["train"], run_dir / "preview.png", n=16)

    pl.seed_everything(seed, verbose=False)
    model = ImageClassifier(arch="resnet18", num_classes=len(SHAPE_CLASSES), width=16,
                            task="segmentation", optimizer="adamw", lr=5e-3,
                            weight_decay=5e-4, schedule="cosine", warmup_epochs=0.5,
                            label_smoothing=0.0, flip_tta=True)
    data = FFCVDataModule(str(SEGMENTATION_DEMO_SPEC), str(betons["train"]), str(betons["val"]),
                          num_workers=workers)
    data.check(model.num_classes)
    trainer = pl.Trainer(max_epochs=epochs or size.epochs, accelerator="auto", devices=1,
                         default_root_dir=run_dir, logger=CSVLogger(run_dir, name="logs"),
                         use_distributed_sampler=False, enable_progress_bar=progress,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         log_every_n_steps=10)
    trainer.fit(model, datamodule=data)
    metrics = trainer.callback_metrics
    val_masks = betons["val"].parent / "images" / "val" / "masks"
    return SegmentationDemoResult(
        val_miou=float(metrics["val/miou"]), background_miou=background_miou(val_masks),
        val_pixel_accuracy=float(metrics["val/pixel_accuracy"]),
        images_per_s=float(metrics["train/images_per_sec"]), run_dir=run_dir, preview=grid,
        seconds=time.perf_counter() - start)
