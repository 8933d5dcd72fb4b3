"""``FFCVDataModule``: the spec's train and val splits as FFCV Loaders for Lightning.

What it takes care of (each an FFCV or Lightning trap):

- Loaders are built in the ``*_dataloader`` hooks, after the process group exists, on the
  rank's own device (``ToDevice`` targets ``trainer.strategy.root_device``).
- Training under DDP uses FFCV's ``distributed=True`` (each rank a disjoint shard per epoch).
  FFCV has no distributed ``quasi_random`` order: such a spec falls back to ``random`` with a
  warning that says so.
- Validation never uses ``distributed=True``, which pads shards with duplicated samples: each
  rank reads its own contiguous slice of the data set in order, and the classifier's metric
  states are summed over ranks, so every sample counts exactly once.
- Every epoch sets the pipeline's keyed-RNG epoch (and the Loader's order epoch) before
  ``iter``, so a resumed run draws what an uninterrupted one would.
- Batch ops (mixup, cutmix) run on the device batch in ``on_after_batch_transfer``.
- Iterators that Lightning abandons early are closed and joined, and an error in FFCV's
  loader thread raises instead of hanging the epoch (``EpochLoader``, ``pipelines.loading``).
- User mistakes (missing or unreadable .beton, spec errors, plan errors, a class count that
  does not match the model, the image-folder fallback under several processes) are one-line
  errors before any training.
"""
import os
import warnings
from pathlib import Path
from typing import Callable, List, Optional

import lightning.pytorch as pl
import torch

from operations.errors import PureffcvError

from . import loading
from .progressive import ProgressiveResizing


class DataError(PureffcvError, ValueError):
    """A problem with the data files or their fit to the model; ``str()`` is one line."""


class EpochLoader:
    """An FFCV Loader that Lightning iterates once per epoch and may stop early.

    Each ``iter(loader)`` starts an ``EpochIterator`` thread that FFCV never joins when
    iteration stops before the end (ffcv #345, #393): it blocks forever on its full output
    queue, holding its batch buffers. Here ``iter`` first closes the previous iterator
    (``pipelines.loading.close``), so threads and memory stay flat, and an error in the thread
    raises ``loading.LoaderError`` instead of leaving the epoch waiting. ``before_epoch(loader)``
    returns the epoch about to run and prepares the pipeline for it; the Loader's own epoch
    counter, which seeds FFCV's random orders, is set to the same.
    """

    def __init__(self, loader, before_epoch: Callable[[object], int]):
        self.loader = loader
        self.before_epoch = before_epoch
        # not ``_iterator``: Lightning sets a loader's ``_iterator`` to None when it resets
        # a torch DataLoader, which would lose the thread this class must join
        self._epoch_iterator = None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.close()
        self.loader.next_epoch = self.before_epoch(self.loader)
        # FFCV allocates the epoch's batch buffers here and fills them in place from its
        # thread: they must not be inference tensors (Lightning validates in inference mode)
        with torch.inference_mode(False):
            self._epoch_iterator = loading.start(self.loader)
        return loading.batches(self._epoch_iterator)

    def close(self) -> None:
        """Stop and join the running epoch's thread, if any, and release its buffers."""
        iterator, self._epoch_iterator = self._epoch_iterator, None
        if iterator is not None:
            loading.close(iterator)


class FallbackEpochs:
    """A FallbackLoader that sets the pipeline's epoch before every pass, like EpochLoader."""

    def __init__(self, loader, before_epoch: Callable[[], None]):
        self.loader = loader
        self.before_epoch = before_epoch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.before_epoch()
        return iter(self.loader)


class IndexedBatches:
    """An evaluation loader's ``(images, labels)`` batches as ``(images, labels, indices)``,
    ``indices`` the samples' positions in the .beton (the loader reads ``start``, ``start +
    1``, ... in order)."""

    def __init__(self, loader, start: int):
        self.loader, self.start = loader, start

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        position = self.start
        for images, labels in self.loader:
            count = images.shape[0]
            yield images, labels, torch.arange(position, position + count)
            position += count

    def close(self) -> None:
        self.loader.close()


class SmallDataWarning(UserWarning):
    """A split yields no batches."""


def warn_if_empty(loader, compiled):
    """``loader``, after a warning naming the split, its sample count and the fix when it
    yields no batch (fewer samples than one batch, with drop_last)."""
    if len(loader) == 0:
        batch = loader.batch_size
        count = len(loader.indices) if hasattr(loader, "indices") else len(loader.dataset)
        warnings.warn(SmallDataWarning(
            f"pureffcv: {compiled.split.name}: {count} sample(s), fewer than "
            f"one batch of {batch} with drop_last: no training batches; lower "
            f"--data.batch_size or set drop_last: false in the spec's loader"), stacklevel=2)
    return loader


def epoch_to_run(trainer) -> int:
    """The training epoch the Trainer is about to run. Not ``trainer.current_epoch`` (the
    epochs *completed*): a run resumed from a checkpoint written after an epoch's last batch
    (``last.ckpt``) starts its next epoch before that counter catches up, and would replay the
    previous epoch's order and draws. Lightning's own sampler epoch is the one used here."""
    return int(trainer.fit_loop.epoch_progress.current.processed)


def launcher_rank() -> int:
    """This process's global rank as the launcher set it (torchrun's RANK, SLURM_PROCID,
    Lightning's LOCAL_RANK for its own children), 0 when none is set."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def beton_labels(path: str, field: str = "label", image_field: Optional[str] = None):
    """The integer labels stored in a .beton's ``field`` (an IntField; read from its
    metadata, no decoding); raises DataError when the file is missing, unreadable, lacks the
    field (or ``image_field``), has no samples, or the field holds no integers."""
    reader = open_reader(path, (field,) + ((image_field,) if image_field else ()))
    from ffcv.fields import IntField

    if not isinstance(reader.handlers[field], IntField):
        raise DataError(f"{path}: field '{field}' is a {type(reader.handlers[field]).__name__}, "
                        f"not an IntField; for vector targets write label: {{field: {field}, "
                        f"type: multi_hot (or float), num_classes: N}} in the spec")
    return reader.metadata[f"f{reader.field_names.index(field)}"]


def open_reader(path: str, fields=()):
    """FFCV's Reader of ``path`` with ``fields`` present; DataError (one line) otherwise."""
    from .beton import BetonError, open_beton

    try:
        return open_beton(path, tuple(fields))
    except BetonError as exc:
        raise DataError(str(exc)) from None


def check_vector_target(path: str, label, image_field: str, num_classes: Optional[int]) -> None:
    """A ``multi_hot`` / ``float`` target: an NDArrayField of shape (num_classes,) holding the
    right dtype, whose length the model's outputs match; DataError otherwise."""
    from ffcv.fields import NDArrayField

    reader = open_reader(path, (label.field, image_field))
    handler = reader.handlers[label.field]
    if not isinstance(handler, NDArrayField):
        raise DataError(f"{path}: field '{label.field}' is a {type(handler).__name__}; a "
                        f"{label.type} target is an NDArrayField of shape "
                        f"({label.num_classes},)")
    if tuple(handler.shape) != (label.num_classes,):
        raise DataError(f"{path}: field '{label.field}' has shape {tuple(handler.shape)}, but "
                        f"the spec's label num_classes is {label.num_classes}")
    if num_classes is not None and num_classes != label.num_classes:
        raise DataError(f"{path}: targets have {label.num_classes} entries but the model's "
                        f"num_classes is {num_classes}; set it to {label.num_classes}")


class FFCVDataModule(pl.LightningDataModule):
    """Train and validation Loaders compiled from a pureffcv spec.

    - ``spec``: the augmentation spec file (YAML) with ``train`` and ``val`` splits.
    - ``train_path`` / ``val_path``: the .beton files (either may be None if unused).
    - ``train_split`` / ``val_split``: the spec's split names for them (e.g. ``test``).
    - ``batch_size`` / ``val_batch_size``: per-process batch sizes; None keeps the spec's.
    - ``num_workers``: CPU threads per process; None keeps the spec's, except that its
      "all cores" (-1) is divided among the processes of one machine under DDP. For the
      image-folder fallback: its DataLoader's decoding processes (None or -1: up to 4).
    - ``progressive``: progressive resizing of the train decoder's output (None: off).
    - ``train_folder`` / ``val_folder``: ImageFolder trees to use when the split's .beton does
      not exist: with ``convert`` they are converted to it first (once, on rank 0); without,
      the split reads the folder through ``pipelines.fallback.FallbackLoader`` (same compiled
      ops and progressive resizing, slower; one process only) and a warning says so.
    - ``test_path`` / ``predict_path``: .beton files for ``trainer.test`` / ``trainer.predict``
      (``predict_path`` defaults to ``test_path``, then ``val_path``). Both read through the
      spec's ``test_split`` (default: ``test`` when the spec has it, else ``val_split``), in
      order, each rank a contiguous slice, so every sample counts once under DDP. Predict
      batches carry a third element: the samples' indices in the .beton.
    """

    def __init__(self, spec: str, train_path: Optional[str] = None,
                 val_path: Optional[str] = None, train_split: str = "train",
                 val_split: str = "val", batch_size: Optional[int] = None,
                 val_batch_size: Optional[int] = None, num_workers: Optional[int] = None,
                 progressive: Optional[ProgressiveResizing] = None,
                 train_folder: Optional[str] = None, val_folder: Optional[str] = None,
                 convert: bool = False, test_path: Optional[str] = None,
                 predict_path: Optional[str] = None, test_split: Optional[str] = None):
        super().__init__()
        self.spec = spec
        self.train_path = train_path
        self.val_path = val_path
        self.test_path = test_path
        self.predict_path = predict_path
        self.test_split = test_split
        self.train_folder = train_folder
        self.val_folder = val_folder
        self.convert = convert
        self.train_split = train_split
        self.val_split = val_split
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.progressive = progressive
        self._loaders: List[EpochLoader] = []
        self._train_pipeline = None
        self._batch_ops = {}  # trainer stage ("train", "validate", ...) -> the split's batch ops

    # ----- checks before training -----------------------------------------------------------
    def check(self, num_classes: Optional[int] = None, stage: str = "fit",
              world_size: int = 1, multilabel: Optional[bool] = None) -> None:
        """Raise DataError / compiler.SpecError (one line each) for a missing or unreadable
        .beton, a bad spec or plan of a split in use, labels that ``num_classes`` outputs
        cannot represent, or the image-folder fallback with ``world_size`` > 1 processes."""
        from compiler import compile_spec, load_spec

        if stage == "fit" and self.train_path is None and self.train_folder is None:
            raise DataError("no training data: set data.train_path (--data.train_path "
                            "FILE.beton) or data.train_folder (an image folder)")
        spec = load_spec(Path(self.spec))
        if stage == "validate" and self.val_path is None and self.val_folder is None:
            raise DataError("no validation data: set data.val_path (--data.val_path "
                            "FILE.beton) or data.val_folder (an image folder)")
        if stage in ("test", "predict") and self._eval_path(stage) is None:
            option = "test_path" if stage == "test" else "predict_path"
            raise DataError(f"no {stage} data: set data.{option} (--data.{option} FILE.beton)")
        for split, path, folder in self._sources(stage, spec):
            if path is None and folder is None:
                continue
            compile_spec(spec, split, device="cpu")  # plan errors now (no Numba, no GPU)
            if self._falls_back(path, folder):
                if world_size > 1:
                    raise DataError(f"{split}: the image-folder fallback runs in one process; "
                                    f"convert {folder} first (--convert true or pureffcv "
                                    f"convert)")
                continue
            if path is None:
                continue
            label, image_field = spec.split(split).label, spec.split(split).image.field
            if multilabel is not None and multilabel != (label.type == "multi_hot"):
                raise DataError(
                    f"{self.spec}: the {split} label type is {label.type} but the model's "
                    f"multilabel is {str(multilabel).lower()}; set --model.multilabel "
                    f"{str(label.type == 'multi_hot').lower()}")
            if label.type != "int":
                check_vector_target(path, label, image_field, num_classes)
                continue
            declared = label.num_classes
            labels = beton_labels(path, label.field, image_field)
            low, top = int(labels.min()), int(labels.max())
            if low < 0:
                raise DataError(f"{path}: labels must be >= 0, found {low}")
            for what, count in (("the model's num_classes", num_classes),
                                (f"the spec's {split} label num_classes", declared)):
                if count is not None and top >= count:
                    raise DataError(
                        f"{path}: labels go up to {top} ({top + 1} classes) but {what} is "
                        f"{count}; set it to at least {top + 1}")
        if self.progressive is not None and (self.train_path, self.train_folder) != (None, None):
            decoder = spec.split(self.train_split).image.decode
            if "size" not in decoder.op_class.parameters():
                raise DataError(f"{self.spec}: progressive resizing needs a resizing train "
                                f"decoder (random_resized_crop), not '{decoder.name}'")

    def _sources(self, stage: str = "fit", spec=None):
        """(split, .beton, image folder) of each source a trainer ``stage`` reads."""
        if stage in ("test", "predict"):
            return ((self._test_split(spec), self._eval_path(stage), None),)
        if stage == "validate":
            return ((self.val_split, self.val_path, self.val_folder),)
        return ((self.train_split, self.train_path, self.train_folder),
                (self.val_split, self.val_path, self.val_folder))

    def _eval_path(self, stage: str) -> Optional[str]:
        if stage == "test":
            return self.test_path
        return next((p for p in (self.predict_path, self.test_path, self.val_path)
                     if p is not None), None)

    def _test_split(self, spec=None) -> str:
        """The spec's split for test and predict: ``test_split``, else ``test`` when the spec
        has one, else the validation split."""
        if self.test_split is not None:
            return self.test_split
        if spec is None:
            from compiler import load_spec

            spec = load_spec(Path(self.spec))
        return "test" if "test" in spec.splits else self.val_split

    def _falls_back(self, path: Optional[str], folder: Optional[str]) -> bool:
        from .fallback import use_fallback

        return not self.convert and use_fallback(path, folder)

    def convert_missing(self, rank: Optional[int] = None, timeout_s: float = 24 * 3600) -> None:
        """With ``convert``: turn each image folder whose .beton is missing into that .beton.
        Only global rank 0 (``rank``; default: from the launcher's environment, RANK,
        SLURM_PROCID or LOCAL_RANK) converts; other ranks wait until the file appears
        (``convert`` renames a finished file into place, so its existence means done)."""
        import time

        from .convert import convert
        from .fallback import use_fallback

        if not self.convert:
            return
        rank = launcher_rank() if rank is None else rank
        for split, path, folder in self._sources():
            if path is None or not use_fallback(path, folder):
                continue
            if rank == 0:
                print(f"{split}: converting {folder} -> {path}", flush=True)
                convert(folder, path)
                continue
            deadline = time.monotonic() + timeout_s
            while not Path(path).is_file():
                if time.monotonic() > deadline:
                    raise DataError(f"{path}: rank {rank} waited {timeout_s:.0f} s for rank 0 "
                                    f"to convert {folder}")
                time.sleep(1.0)

    def prepare_data(self) -> None:
        """``convert_missing`` (Lightning runs this before ``setup``; a no-op when the CLI
        converted already)."""
        self.convert_missing()

    def setup(self, stage: str) -> None:
        model = self.trainer.lightning_module if self.trainer is not None else None
        self.check(getattr(model, "num_classes", None), stage,
                   self.trainer.world_size if self.trainer is not None else 1,
                   getattr(model, "multilabel", None))

    # ----- loaders --------------------------------------------------------------------------
    def _compile(self, split: str):
        from compiler import compile_spec

        return compile_spec(Path(self.spec), split=split,
                            device=str(self.trainer.strategy.root_device))

    def _overrides(self, compiled, batch_size: Optional[int]) -> dict:
        overrides = {}
        if batch_size is not None:
            overrides["batch_size"] = batch_size
        if self.num_workers is not None:
            overrides["num_workers"] = self.num_workers
        elif compiled.split.loader.num_workers == -1 and self.trainer.num_devices > 1:
            overrides["num_workers"] = max(1, (os.cpu_count() or 1) // self.trainer.num_devices)
        return overrides

    def _fallback(self, compiled, folder: str, batch_size: Optional[int], shuffle: bool,
                  before_epoch: Callable[[], None]) -> "FallbackEpochs":
        from .fallback import FallbackLoader, warn_fallback

        warn_fallback(compiled.split.name, folder)
        workers = self.num_workers if self.num_workers is not None else \
            compiled.split.loader.num_workers
        if workers < 1:  # the spec's "all cores"
            workers = min(4, os.cpu_count() or 1)
        loader = FallbackLoader(compiled, folder, batch_size=batch_size, num_workers=workers,
                                shuffle=shuffle)
        return FallbackEpochs(loader, before_epoch)

    def train_dataloader(self):
        compiled = self._compile(self.train_split)
        self._train_pipeline = compiled
        if self._falls_back(self.train_path, self.train_folder):
            epochs = self._fallback(compiled, self.train_folder, self.batch_size, shuffle=True,
                                    before_epoch=lambda: self._start_train_epoch(compiled))
            warn_if_empty(epochs.loader, compiled)
            return epochs
        overrides = self._overrides(compiled, self.batch_size)
        if self.trainer.world_size > 1:
            overrides["distributed"] = True
            if compiled.split.loader.order == "quasi_random":
                warnings.warn("FFCV has no distributed quasi_random order: training with "
                              "order random instead (each rank reads a disjoint random shard)",
                              stacklevel=2)
                overrides["order"] = "random"
        loader = warn_if_empty(compiled.loader(self.train_path, **overrides), compiled)

        def start_epoch(loader) -> int:
            size = tuple(compiled.decoder.op.output_size)
            epoch = self._start_train_epoch(compiled)
            # FFCV sizes its buffers when it generates code: regenerate when the size changes
            loader.recompile = tuple(compiled.decoder.op.output_size) != size
            return epoch

        return self._remember(EpochLoader(loader, start_epoch))

    def _start_train_epoch(self, compiled) -> int:
        """Set the pipeline's epoch and, with progressive resizing, the decoder's size."""
        epoch = epoch_to_run(self.trainer)
        compiled.set_epoch(epoch)
        if self.progressive is not None:
            compiled.decoder.op.output_size = (self.progressive.size_at(epoch),) * 2
        return epoch

    def val_dataloader(self):
        if self.val_path is None and self.val_folder is None:
            return []  # no validation
        return self._eval_loader("validate", self.val_split, self.val_path, self.val_folder)

    def test_dataloader(self):
        return self._eval_loader("test", self._test_split(), self.test_path, None)

    def predict_dataloader(self):
        return self._eval_loader("predict", self._test_split(), self._eval_path("predict"), None)

    def _eval_loader(self, stage: str, split: str, path: Optional[str], folder: Optional[str]):
        """Evaluation batches of ``split`` over ``path``: in order, nothing dropped, each rank
        a contiguous slice without FFCV's duplicate padding (every sample counts once);
        ``predict`` batches carry the samples' indices as a third element."""
        compiled = self._compile(split)
        self._batch_ops[stage] = compiled.batch_ops
        before = lambda: compiled.set_epoch(self.trainer.current_epoch)  # noqa: E731
        if self._falls_back(path, folder):
            return self._fallback(compiled, folder, self.val_batch_size, shuffle=False,
                                  before_epoch=before)
        overrides = self._overrides(compiled, self.val_batch_size)
        overrides.update(distributed=False, order="sequential", drop_last=False)
        world, rank = self.trainer.world_size, self.trainer.global_rank
        count = int(open_reader(path).num_samples)
        start, stop = rank * count // world, (rank + 1) * count // world
        if world > 1:
            overrides["indices"] = list(range(start, stop))
        loader = compiled.loader(path, **overrides)

        def start_epoch(_loader) -> int:
            before()
            return self.trainer.current_epoch

        epochs = self._remember(EpochLoader(loader, start_epoch))
        return IndexedBatches(epochs, start) if stage == "predict" else epochs

    def _remember(self, loader: EpochLoader) -> EpochLoader:
        self._loaders.append(loader)
        return loader

    # ----- batches --------------------------------------------------------------------------
    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Apply the batch ops (mixup, cutmix, temporal_repeat) of the split a batch comes
        from: the train split's to training batches, the evaluation split's to validation,
        test and predict batches."""
        trainer = self.trainer
        if trainer is None:
            return batch
        if trainer.training and self._train_pipeline is not None:
            ops = self._train_pipeline.batch_ops
        elif trainer.validating or trainer.sanity_checking:
            ops = self._batch_ops.get("validate", ())
        elif trainer.testing:
            ops = self._batch_ops.get("test", ())
        elif trainer.predicting:
            ops = self._batch_ops.get("predict", ())
        else:
            ops = ()
        if not ops:
            return batch
        images, targets, *rest = batch
        for op in ops:
            images, targets = op(images, targets)
        return (images, targets, *rest)

    def teardown(self, stage: str) -> None:
        for loader in self._loaders:
            loader.close()
        self._loaders.clear()
