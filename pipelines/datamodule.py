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
- Iterators that Lightning abandons early are closed and joined (``EpochLoader``).
- User mistakes (missing or unreadable .beton, spec errors, a class count that does not match
  the model) are one-line errors before any training.
"""
import os
import queue
import time
import warnings
from pathlib import Path
from typing import Callable, List, Optional

import lightning.pytorch as pl
import torch

from .progressive import ProgressiveResizing

#: seconds to wait for an abandoned iterator thread (it polls its stop flag every 0.5 s)
JOIN_TIMEOUT_S = 30.0


class DataError(ValueError):
    """A problem with the data files or their fit to the model; ``str()`` is one line."""


class EpochLoader:
    """An FFCV Loader that Lightning iterates once per epoch and may stop early.

    Each ``iter(loader)`` starts an ``EpochIterator`` thread that FFCV never joins when
    iteration stops before the end (ffcv #345, #393): it blocks forever on its full output
    queue, holding its batch buffers. Here ``iter`` first closes the previous iterator — stop
    flag, drain the queue so a blocked ``put`` returns, join — so threads and memory stay
    flat. ``before_epoch(loader)`` returns the epoch about to run and prepares the pipeline
    for it; the Loader's own epoch counter, which seeds FFCV's random orders, is set to the
    same.
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
            self._epoch_iterator = iter(self.loader)
        return _batches(self._epoch_iterator)

    def close(self) -> None:
        """Stop and join the running epoch's thread, if any, and release its buffers."""
        iterator, self._epoch_iterator = self._epoch_iterator, None
        if iterator is None:
            return
        iterator.terminate_event.set()
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while iterator.is_alive() and time.monotonic() < deadline:
            _drain(iterator.output_queue)
            iterator.join(timeout=0.05)
        iterator.close()
        iterator.closed = True  # FFCV's close() leaves this False and would exit twice


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


def _batches(iterator):
    """The batches of an EpochIterator; raises instead of waiting forever when its thread
    died of an error (FFCV prints the error and leaves the consumer blocked on the queue)."""
    q = iterator.output_queue
    while True:
        with q.not_empty:
            while not q._qsize():  # the unlocked size: this thread holds the queue's lock
                if not iterator.is_alive():
                    raise RuntimeError("FFCV's loader thread stopped with the error printed "
                                       "above; no more batches this epoch")
                q.not_empty.wait(timeout=1.0)
        try:
            batch = next(iterator)
        except StopIteration:
            return
        yield batch


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def beton_labels(path: str):
    """The integer labels stored in a .beton's ``label`` field (read from its metadata, no
    decoding); raises DataError when the file is missing, unreadable or has no such field."""
    from ffcv.reader import Reader

    file = Path(path)
    if not file.is_file():
        raise DataError(f"{path}: no such .beton file")
    if not os.access(file, os.R_OK):
        raise DataError(f"{path}: cannot read this file (permission denied)")
    try:
        reader = Reader(str(file))
    except Exception as exc:  # FFCV raises assorted errors for a file it cannot parse
        raise DataError(f"{path}: not a readable .beton file "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    if "label" not in reader.field_names:
        raise DataError(f"{path}: the .beton has no 'label' field "
                        f"(fields: {', '.join(reader.field_names)})")
    field = f"f{reader.field_names.index('label')}"
    return reader.metadata[field]


class FFCVDataModule(pl.LightningDataModule):
    """Train and validation Loaders compiled from a pureffcv spec.

    - ``spec``: the augmentation spec (YAML) with ``train`` and ``val`` splits.
    - ``train_path`` / ``val_path``: the .beton files (either may be None if unused).
    - ``train_split`` / ``val_split``: the spec's split names for them (e.g. ``test``).
    - ``batch_size`` / ``val_batch_size``: per-process batch sizes; None keeps the spec's.
    - ``num_workers``: CPU threads per process; None keeps the spec's, except that its
      "all cores" (-1) is divided among the processes of one machine under DDP.
    - ``progressive``: progressive resizing of the train decoder's output (None: off).
    - ``train_folder`` / ``val_folder``: ImageFolder trees to use when the split's .beton does
      not exist: with ``convert`` they are converted to it first (once, on rank 0); without,
      the split reads the folder through ``pipelines.fallback.FallbackLoader`` (same compiled
      ops, slower; one process only) and a warning says so.
    """

    def __init__(self, spec: str, train_path: Optional[str] = None,
                 val_path: Optional[str] = None, train_split: str = "train",
                 val_split: str = "val", batch_size: Optional[int] = None,
                 val_batch_size: Optional[int] = None, num_workers: Optional[int] = None,
                 progressive: Optional[ProgressiveResizing] = None,
                 train_folder: Optional[str] = None, val_folder: Optional[str] = None,
                 convert: bool = False):
        super().__init__()
        self.spec = spec
        self.train_path = train_path
        self.val_path = val_path
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

    # ----- checks before training -----------------------------------------------------------
    def check(self, num_classes: Optional[int] = None, stage: str = "fit") -> None:
        """Raise DataError / compiler.SpecError (one line each) for a missing or unreadable
        .beton, a bad spec, or labels that ``num_classes`` outputs cannot represent."""
        from compiler import load_spec

        if stage == "fit" and self.train_path is None and self.train_folder is None:
            raise DataError("no training data: set data.train_path (--data.train_path "
                            "FILE.beton) or data.train_folder (an image folder)")
        spec = load_spec(self.spec)
        for split, path, folder in self._sources():
            if path is None or self._falls_back(path, folder):
                continue
            declared = spec.split(split).label.num_classes
            labels = beton_labels(path)
            if len(labels) == 0:
                raise DataError(f"{path}: the .beton holds no samples")
            low, top = int(labels.min()), int(labels.max())
            if low < 0:
                raise DataError(f"{path}: labels must be >= 0, found {low}")
            for what, count in (("the model's num_classes", num_classes),
                                (f"the spec's {split} label num_classes", declared)):
                if count is not None and top >= count:
                    raise DataError(
                        f"{path}: labels go up to {top} ({top + 1} classes) but {what} is "
                        f"{count}; set it to at least {top + 1}")
        if self.progressive is not None and self.train_path is not None:
            decoder = spec.split(self.train_split).image.decode
            if "size" not in decoder.op_class.parameters():
                raise DataError(f"{self.spec}: progressive resizing needs a resizing train "
                                f"decoder (random_resized_crop), not '{decoder.name}'")

    def _sources(self):
        return ((self.train_split, self.train_path, self.train_folder),
                (self.val_split, self.val_path, self.val_folder))

    def _falls_back(self, path: Optional[str], folder: Optional[str]) -> bool:
        from .fallback import use_fallback

        return not self.convert and use_fallback(path, folder)

    def prepare_data(self) -> None:
        """With ``convert``: turn each image folder whose .beton is missing into that .beton
        (Lightning runs this on one process per machine, before ``setup``)."""
        from .convert import convert
        from .fallback import use_fallback

        for split, path, folder in self._sources():
            if self.convert and path is not None and use_fallback(path, folder):
                print(f"{split}: converting {folder} -> {path}")
                convert(folder, path)

    def setup(self, stage: str) -> None:
        model = self.trainer.lightning_module if self.trainer is not None else None
        self.check(getattr(model, "num_classes", None), stage)

    # ----- loaders --------------------------------------------------------------------------
    def _compile(self, split: str):
        from compiler import compile_spec

        return compile_spec(self.spec, split=split, device=str(self.trainer.strategy.root_device))

    def _overrides(self, compiled, batch_size: Optional[int]) -> dict:
        overrides = {}
        if batch_size is not None:
            overrides["batch_size"] = batch_size
        if self.num_workers is not None:
            overrides["num_workers"] = self.num_workers
        elif compiled.split.loader.num_workers == -1 and self.trainer.num_devices > 1:
            overrides["num_workers"] = max(1, (os.cpu_count() or 1) // self.trainer.num_devices)
        return overrides

    def _fallback(self, split: str, compiled, folder: str, batch_size: Optional[int],
                  shuffle: bool) -> "FallbackEpochs":
        from .fallback import FallbackLoader, warn_fallback

        if self.trainer.world_size > 1:
            raise DataError(f"{split}: the image-folder fallback runs in one process; convert "
                            f"{folder} first (--data.convert true or pureffcv convert)")
        warn_fallback(split, folder)
        loader = FallbackLoader(compiled, folder, batch_size=batch_size, shuffle=shuffle)
        return FallbackEpochs(loader, lambda: compiled.set_epoch(self.trainer.current_epoch))

    def train_dataloader(self):
        compiled = self._compile(self.train_split)
        if self._falls_back(self.train_path, self.train_folder):
            self._train_pipeline = compiled
            return self._fallback(self.train_split, compiled, self.train_folder,
                                  self.batch_size, shuffle=True)
        overrides = self._overrides(compiled, self.batch_size)
        if self.trainer.world_size > 1:
            overrides["distributed"] = True
            if compiled.split.loader.order == "quasi_random":
                warnings.warn("FFCV has no distributed quasi_random order: training with "
                              "order random instead (each rank reads a disjoint random shard)",
                              stacklevel=2)
                overrides["order"] = "random"
        self._train_pipeline = compiled
        loader = compiled.loader(self.train_path, **overrides)
        return self._remember(EpochLoader(loader, lambda ld: self._start_train_epoch(compiled, ld)))

    def _start_train_epoch(self, compiled, loader) -> int:
        epoch = self.trainer.current_epoch
        compiled.set_epoch(epoch)
        if self.progressive is not None:
            size = (self.progressive.size_at(epoch),) * 2
            decoder = compiled.decoder.op
            # FFCV sizes its buffers when it generates code: regenerate when the size changes
            loader.recompile = tuple(decoder.output_size) != size
            decoder.output_size = size
        return epoch

    def val_dataloader(self):
        if self.val_path is None and self.val_folder is None:
            return []  # no validation
        compiled = self._compile(self.val_split)
        if self._falls_back(self.val_path, self.val_folder):
            return self._fallback(self.val_split, compiled, self.val_folder,
                                  self.val_batch_size, shuffle=False)
        overrides = self._overrides(compiled, self.val_batch_size)
        overrides.update(distributed=False, order="sequential", drop_last=False)
        world, rank = self.trainer.world_size, self.trainer.global_rank
        if world > 1:
            count = len(beton_labels(self.val_path))
            overrides["indices"] = list(range(rank * count // world, (rank + 1) * count // world))
        loader = compiled.loader(self.val_path, **overrides)

        def start_epoch(_loader) -> int:
            compiled.set_epoch(self.trainer.current_epoch)
            return self.trainer.current_epoch

        return self._remember(EpochLoader(loader, start_epoch))

    def _remember(self, loader: EpochLoader) -> EpochLoader:
        self._loaders.append(loader)
        return loader

    # ----- batches --------------------------------------------------------------------------
    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Apply the train split's batch ops (mixup, cutmix) to training batches."""
        if self.trainer is not None and self.trainer.training and self._train_pipeline is not None:
            images, targets = batch
            for op in self._train_pipeline.batch_ops:
                images, targets = op(images, targets)
            return images, targets
        return batch

    def teardown(self, stage: str) -> None:
        for loader in self._loaders:
            loader.close()
        self._loaders.clear()
