"""``pureffcv demo``: the whole path on embedded data, no network, no GPU needed.

1. Build the demo images (crops of scikit-image's bundled photos; ``pipelines.demo_data``)
   and convert them to .beton — both cached, so a second run reuses them.
2. Compile ``specs/demo.yaml`` and write a preview grid of its train split.
3. Train a small ResNet-18 (width 16) on the CPU (or the GPU, if there is one) for a few
   epochs and report validation accuracy, images/s and where the run is.

Data layout (``$PUREFFCV_DATA``, default ``~/.cache/pureffcv``)::

    demo/<size>/images/{train,val}/<class>/*.jpg   demo/<size>/{train,val}.beton
    runs/demo-<size>-<time>/   (logs, checkpoints, preview.png)
"""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from compiler.shipped import shipped_spec

from .demo_data import PHOTOS, build_demo_images, cache_dir

DEMO_SPEC = shipped_spec("demo")  # package data: found wherever pureffcv is installed


@dataclass(frozen=True)
class DemoSize:
    name: str
    train_per_class: int
    val_per_class: int
    epochs: int


FULL = DemoSize("full", train_per_class=120, val_per_class=30, epochs=8)
#: the variant the test suite runs: same path, less data and fewer epochs
QUICK = DemoSize("quick", train_per_class=40, val_per_class=12, epochs=4)


@dataclass
class DemoResult:
    val_top1: float
    chance: float
    images_per_s: float
    run_dir: Path
    preview: Path
    seconds: float

    def summary(self) -> str:
        return (f"validation top-1 {self.val_top1:.1%} (chance {self.chance:.1%}), "
                f"training {self.images_per_s:.0f} images/s, {self.seconds:.0f} s in all\n"
                f"run: {self.run_dir}\npreview: {self.preview}")


def prepare_data(size: DemoSize, cache: Path, workers: Optional[int] = None) -> dict:
    """split -> .beton path, building and converting what the cache lacks."""
    from .convert import convert

    root = cache / "demo" / size.name
    folders = build_demo_images(root / "images", {"train": size.train_per_class,
                                                  "val": size.val_per_class})
    betons = {}
    for split, folder in folders.items():
        beton = root / f"{split}.beton"
        if not beton.exists() or beton.stat().st_mtime < (folder / ".complete").stat().st_mtime:
            convert(folder, beton, write_mode="jpg", workers=workers, force=True)
        betons[split] = beton
    return betons


def run_demo(quick: bool = False, cache: Optional[Path] = None, epochs: Optional[int] = None,
             workers: Optional[int] = None, progress: bool = True, seed: int = 0) -> DemoResult:
    """Build/reuse the demo data, preview the spec, train, validate; return the numbers."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from .classifier import ImageClassifier
    from .datamodule import FFCVDataModule
    from .preview import preview

    start = time.perf_counter()
    size = QUICK if quick else FULL
    cache = Path(cache) if cache is not None else cache_dir()
    betons = prepare_data(size, cache, workers)
    run_dir = cache / "runs" / f"demo-{size.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    grid = preview(DEMO_SPEC, betons["train"], run_dir / "preview.png", n=16)

    pl.seed_everything(seed, verbose=False)
    model = ImageClassifier(arch="resnet18", num_classes=len(PHOTOS), width=16,
                            optimizer="adamw", lr=3e-3, weight_decay=5e-4, schedule="cosine",
                            warmup_epochs=0.5, label_smoothing=0.1, flip_tta=True)
    data = FFCVDataModule(str(DEMO_SPEC), str(betons["train"]), str(betons["val"]),
                          num_workers=workers)
    data.check(model.num_classes)
    trainer = pl.Trainer(max_epochs=epochs or size.epochs, accelerator="auto", devices=1,
                         default_root_dir=run_dir, logger=CSVLogger(run_dir, name="logs"),
                         use_distributed_sampler=False, enable_progress_bar=progress,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         log_every_n_steps=5)
    trainer.fit(model, datamodule=data)
    metrics = trainer.callback_metrics
    return DemoResult(val_top1=float(metrics["val/top1"]), chance=1 / len(PHOTOS),
                      images_per_s=float(metrics["train/images_per_sec"]), run_dir=run_dir,
                      preview=grid, seconds=time.perf_counter() - start)
