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


def beton_labels(path: str):
    """The integer labels stored in a .beton's ``label`` field (read from its metadata, no
    decoding); raises DataError when the file is missing, unreadable, has no such field or
    no samples."""
    from .beton import BetonError, open_beton

    try:
        reader = open_beton(path, ("label",))
    except BetonError as exc:
        raise DataError(str(exc)) from None
    return reader.metadata[f"f{reader.field_names.index('label')}"]


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
    def check(self, num_classes: Optional[int] = None, stage: str = "fit",
              world_size: int = 1) -> None:
        """Raise DataError / compiler.SpecError (one line each) for a missing or unreadable
        .beton, a bad spec or plan of a split in use, labels that ``num_classes`` outputs
        cannot represent, or the image-folder fallback with ``world_size`` > 1 processes."""
        from compiler import compile_spec, load_spec

        if stage == "fit" and self.train_path is None and self.train_folder is None:
            raise DataError("no training data: set data.train_path (--data.train_path "
                            "FILE.beton) or data.train_folder (an image folder)")
        spec = load_spec(Path(self.spec))
        for split, path, folder in self._sources():
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
            declared = spec.split(split).label.num_classes
            labels = beton_labels(path)
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
        self.check(getattr(model, "num_classes", None), stage,
                   self.trainer.world_size if self.trainer is not None else 1)

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
            return self._fallback(compiled, self.train_folder, self.batch_size, shuffle=True,
                                  before_epoch=lambda: self._start_train_epoch(compiled))
        overrides = self._overrides(compiled, self.batch_size)
        if self.trainer.world_size > 1:
            overrides["distributed"] = True
            if compiled.split.loader.order == "quasi_random":
                warnings.warn("FFCV has no distributed quasi_random order: training with "
                              "order random instead (each rank reads a disjoint random shard)",
                              stacklevel=2)
                overrides["order"] = "random"
        loader = compiled.loader(self.train_path, **overrides)

        def start_epoch(loader) -> int:
            size = tuple(compiled.decoder.op.output_size)
            epoch = self._start_train_epoch(compiled)
            # FFCV sizes its buffers when it generates code: regenerate when the size changes
            loader.recompile = tuple(compiled.decoder.op.output_size) != size
            return epoch

        return self._remember(EpochLoader(loader, start_epoch))

    def _start_train_epoch(self, compiled) -> int:
        """Set the pipeline's epoch and, with progressive resizing, the decoder's size."""
        epoch = self.trainer.current_epoch
        compiled.set_epoch(epoch)
        if self.progressive is not None:
            compiled.decoder.op.output_size = (self.progressive.size_at(epoch),) * 2
        return epoch

    def val_dataloader(self):
        if self.val_path is None and self.val_folder is None:
            return []  # no validation
        compiled = self._compile(self.val_split)
        if self._falls_back(self.val_path, self.val_folder):
            return self._fallback(compiled, self.val_folder, self.val_batch_size, shuffle=False,
                                  before_epoch=lambda: compiled.set_epoch(
                                      self.trainer.current_epoch))
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
