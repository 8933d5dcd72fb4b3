"""Data, specs and callbacks shared by the Lightning tests (importable by class path from a
LightningCLI config, which the DDP test's subprocesses need)."""
import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np

from tests.conftest import structured_image, write_beton

#: one tint per class: "which tint is this?" is learnable in a few tiny epochs
TINTS = np.array([(230, 30, 30), (30, 210, 30), (30, 60, 230), (210, 210, 30)], np.float64)

SPEC = """\
version: 1
seed: 0
splits:
  train:
    image:
      decode: {{random_resized_crop: {{size: {size}, scale: [0.35, 1.0]}}}}
      cpu: [{{horizontal_flip: {{p: 0.5}}}}]
      device: {{dtype: float32, ops: [{{normalize: {{mean: imagenet, std: imagenet}}}}]}}
    label: int
    loader: {{batch_size: {batch}, order: {order}, drop_last: true, num_workers: 1}}
  val:
    image:
      decode: {{center_crop: {{size: 32, ratio: 1.0}}}}
      device: {{dtype: float32, ops: [{{normalize: {{mean: imagenet, std: imagenet}}}}]}}
    label: int
    loader: {{batch_size: {batch}, num_workers: 1}}
"""


def write_spec(path: Path, size: int = 32, batch: int = 8, order: str = "random") -> Path:
    path.write_text(SPEC.format(size=size, batch=batch, order=order))
    return path


def tinted_beton(path: Path, n: int, seed: int = 0, labels=None) -> Path:
    """``n`` 36x36 structured images, half-tinted by their class (i % 4); ``labels`` (default
    i % 4) are what the .beton stores."""
    images = [np.round(0.5 * structured_image(36, 36, seed + i) + 0.5 * TINTS[i % 4])
              .astype(np.uint8) for i in range(n)]
    return write_beton(path, images, [i % 4 for i in range(n)] if labels is None else labels)


class RecordBatches(pl.Callback):
    """Writes ``<out_dir>/rank<r>.json``: per train epoch the labels of every sample seen,
    and per train epoch the (height, width) of its batches."""

    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)
        self.labels, self.sizes = {}, {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        images, labels = batch
        epoch = str(trainer.current_epoch)
        self.labels.setdefault(epoch, []).extend(int(v) for v in labels.reshape(-1))
        self.sizes.setdefault(epoch, set()).add(tuple(images.shape[2:]))

    def on_train_end(self, trainer, module):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {"labels": self.labels, "sizes": {e: sorted(s) for e, s in self.sizes.items()},
                  "world_size": trainer.world_size}
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


class StopAfter(pl.Callback):
    """Stops training after ``epochs`` epochs whatever ``max_epochs`` says (an interrupted
    run whose schedule still spans ``max_epochs``)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class RecordImages(pl.Callback):
    """Appends to ``<path>`` one JSON line per training batch: epoch, batch index, the sha256
    of the batch's image bytes (as the model receives them) and its labels."""

    def __init__(self, path: str):
        self.path = Path(path)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        import hashlib

        images, labels = batch[0], batch[1]
        digest = hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({"epoch": trainer.current_epoch, "batch": batch_idx,
                                "images": digest,
                                "labels": [int(v) for v in labels.reshape(-1)]}) + "\n")
