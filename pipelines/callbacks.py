"""Lightning callbacks the pureffcv commands add: the every-epoch ``last.ckpt`` that makes
resuming exact, and the writer of ``pureffcv predict``'s table.

- ``LastCheckpoint``: Lightning's ``ModelCheckpoint(save_last=True, monitor=...)`` rewrites
  ``last.ckpt`` only in epochs where it saves a top-k checkpoint, i.e. when the metric improves;
  resuming from it then repeats epochs. This one writes ``last.ckpt`` after every epoch (and,
  where Lightning can, when training stops on an exception or Ctrl-C), so ``--ckpt_path
  .../last.ckpt`` continues exactly where training stopped.
- ``PredictionWriter``: ``predict_step``'s outputs (index, label, top-k classes and
  probabilities) as one CSV or Parquet file, rows in .beton order; under DDP each rank writes
  a part and rank 0 joins them.
- ``MaskWriter``: segmentation's predictions, one PNG per sample named by its .beton index
  (``000042.png``), written as each batch is predicted (no epoch's worth of masks in memory);
  under DDP each rank writes its own samples' files.
"""
import csv
import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint

from operations.errors import PureffcvError

from .class_maps import names_by_label


class PredictionError(PureffcvError, ValueError):
    """The predictions cannot be written as asked; ``str()`` is one line."""


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` in the run's checkpoint directory, rewritten at the end of every epoch
    (after validation, so it holds the epoch's metrics too), and on an exception."""

    def __init__(self, dirpath: Optional[str] = None):
        super().__init__(dirpath=dirpath, filename=self.CHECKPOINT_NAME_LAST, monitor=None,
                         save_top_k=1, save_last=False, enable_version_counter=False,
                         save_on_exception=True)

    @property
    def state_key(self) -> str:
        return "pureffcv.LastCheckpoint"


def check_output(path: str) -> None:
    """PredictionError before predicting when ``path`` cannot be written as asked."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise PredictionError(f"{path}: predictions are written as .csv or .parquet")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise PredictionError(f"{path}: writing Parquet needs pyarrow (pip install "
                                  f"pyarrow), or name a .csv file") from None
    if Path(path).is_dir():
        raise PredictionError(f"{path} is a directory; name the output file")


def check_mask_output(path: str) -> None:
    """PredictionError before predicting when ``path`` cannot be the folder of predicted
    masks."""
    if Path(path).suffix.lower() in (".csv", ".parquet"):
        raise PredictionError(f"{path}: a segmentation model's predictions are PNG masks; "
                              f"name a folder for them (--output DIR)")
    if Path(path).exists() and not Path(path).is_dir():
        raise PredictionError(f"{path} is a file; name a folder for the predicted masks")


def mask_file_name(index: int) -> str:
    """The predicted mask's file name for the sample at ``index`` of the .beton."""
    return f"{index:06d}.png"


def write_mask(mask: torch.Tensor, path: Path) -> None:
    """A (H, W) class map as a PNG: mode L for uint8, 16-bit grey (I;16) above 255 classes."""
    from PIL import Image

    values = mask.numpy()
    if values.dtype.itemsize > 1:
        image = Image.fromarray(values.astype("<u2"))  # the ids fit: num_classes <= 65536
    else:
        image = Image.fromarray(values)
    image.save(path)


class MaskWriter(BasePredictionWriter):
    """Writes each predicted batch's masks (``{"index", "mask"}`` from a segmentation
    ``predict_step``) into ``output``, a folder, as ``mask_file_name(index)``; a file of the
    same name is replaced. ``written`` is the folder once every rank has written its masks
    (on rank 0; None before and elsewhere), and ``count`` the masks this process wrote."""

    def __init__(self, output: str):
        super().__init__(write_interval="batch")
        self.output = Path(output)
        self.written: Optional[Path] = None
        self.count = 0

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch,
                           batch_idx, dataloader_idx):
        self.output.mkdir(parents=True, exist_ok=True)
        for index, mask in zip(prediction["index"].tolist(), prediction["mask"]):
            write_mask(mask, self.output / mask_file_name(int(index)))
            self.count += 1

    def on_predict_epoch_end(self, trainer, pl_module):
        self.output.mkdir(parents=True, exist_ok=True)  # an empty data set: an empty folder
        trainer.strategy.barrier("pureffcv-masks-written")  # every rank's files are there
        if trainer.global_rank == 0:
            self.written = self.output


def prediction_rows(outputs: Sequence[dict], names: Optional[Dict[int, str]] = None) -> List[dict]:
    """One row per sample: index, label[, label_name], then class_i[, name_i], prob_i for
    i = 1..k, best first; sorted by index."""
    rows = []
    for out in outputs:
        index, label = out["index"].tolist(), out["label"].tolist()
        classes, probabilities = out["classes"].tolist(), out["probabilities"].tolist()
        for i, row_label, row_classes, row_probs in zip(index, label, classes, probabilities):
            if isinstance(row_label, list):  # a vector target: its non-zero classes
                active = [k for k, v in enumerate(row_label) if v > 0]
                row = {"index": int(i), "label": " ".join(map(str, active))}
                if names is not None:
                    row["label_name"] = " ".join(names.get(k, "") for k in active)
            else:
                row = {"index": int(i), "label": int(row_label)}
                if names is not None:
                    row["label_name"] = names.get(int(row_label), "")
            for rank, (c, p) in enumerate(zip(row_classes, row_probs), start=1):
                row[f"class_{rank}"] = int(c)
                if names is not None:
                    row[f"name_{rank}"] = names.get(int(c), "")
                row[f"prob_{rank}"] = float(p)
            rows.append(row)
    rows.sort(key=lambda r: r["index"])
    return rows


def write_rows(rows: List[dict], path: Path) -> None:
    """``rows`` as CSV (probabilities with 6 decimals) or, for ``.parquet``, Parquet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = list(rows[0]) if rows else ["index"]
        pq.write_table(pa.table({c: [r[c] for r in rows] for c in columns}), str(path))
        return
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["index"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6f}" if isinstance(v, float) else v
                             for k, v in row.items()})


class PredictionWriter(BasePredictionWriter):
    """Writes the epoch's predictions to ``output`` (``.csv`` or ``.parquet``), class names
    from ``beton``'s class map when there is one. ``written`` is the path, or None."""

    def __init__(self, output: str, beton: Optional[str] = None):
        super().__init__(write_interval="epoch")
        self.output = Path(output)
        self.beton = beton
        self.written: Optional[Path] = None

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
        names = names_by_label(self.beton) or None
        outputs = predictions[0] if predictions and isinstance(predictions[0], list) \
            else predictions
        rows = prediction_rows(outputs, names)
        if trainer.world_size == 1:
            write_rows(rows, self.output)
            self.written = self.output
            return
        part = self.output.with_name(f".{self.output.name}.rank{trainer.global_rank}.pt")
        torch.save(rows, part)
        trainer.strategy.barrier("pureffcv-predictions")
        if trainer.global_rank == 0:
            parts = [self.output.with_name(f".{self.output.name}.rank{r}.pt")
                     for r in range(trainer.world_size)]
            merged = [row for p in parts for row in torch.load(p, weights_only=False)]
            merged.sort(key=lambda r: r["index"])
            write_rows(merged, self.output)
            for p in parts:
                os.unlink(p)
            self.written = self.output
        trainer.strategy.barrier("pureffcv-predictions-written")
