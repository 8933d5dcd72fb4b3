"""``FFCVDataModule``: the spec's train and val splits as FFCV Loaders for Lightning.

What it takes care of (each an FFCV or Lightning trap):

- Loaders are built in the ``*_dataloader`` hooks, after the process group exists, on the
  rank's own device (``ToDevice`` targets ``trainer.strategy.root_device``).
- Training under DDP uses FFCV's ``distributed=True`` (each rank a disjoint shard per epoch);
  ``order: quasi_random`` then reads each rank's own pages (``compiler.quasi_random``: FFCV
  has no distributed quasi-random order).
- Validation never uses ``distributed=True``, which pads shards with duplicated samples: each
  rank reads its own contiguous slice of the data set in order, and the classifier's metric
  states are summed over ranks, so every sample counts exactly once.
- Every epoch sets the pipeline's keyed-RNG epoch (and the Loader's order epoch) before
  ``iter``, so a resumed run draws what an uninterrupted one would.
- Batch ops (mixup, cutmix) run on the device batch in ``on_after_batch_transfer``.
- A split with views (``image.views``, ``specs/simclr.yaml``) serves ``(views, labels)``:
  ``views`` is ``{view: [tensor per copy]}``, grouped in ``on_after_batch_transfer``
  (``CompiledPipeline.group_views``).
- Iterators that Lightning abandons early are closed and joined, and an error in FFCV's
  loader thread raises instead of hanging the epoch (``EpochLoader``, ``pipelines.loading``).
- User mistakes (missing or unreadable .beton, spec errors, plan errors, a class count that
  does not match the model, the image-folder fallback under several processes) are one-line
  errors before any training.

Its parts by concept: ``pipelines.epochs`` (what Lightning iterates each epoch),
``pipelines.data_checks`` (the data against the model and spec), ``pipelines.missing_betons``
(image folders converted on rank 0, or read through the fallback).
"""
import os
from pathlib import Path
from typing import Callable, List, Optional

import lightning.pytorch as pl

from . import class_maps
from .data_checks import (DataError, check_batches, check_int_labels, check_target_fields,
                          check_task, check_vector_target, check_views, open_reader,
                          split_fields, warn_if_empty)
from .epochs import EpochLoader, FallbackEpochs, IndexedBatches, epoch_to_run
from .missing_betons import convert_missing, shared_class_map
from .progressive import ProgressiveResizing


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

    Batches, on the device, in the spec's device dtype and channels_last: ``(images, labels)``
    (images (N, C, H, W); labels as the spec's label pipeline gives them, int64 (N,) for
    ``label: int``), then the targets in the spec's order; ``(images,)`` for ``label: none``.
    A split with views (``image.views``; training only, no batch ops or targets) serves
    ``(views, labels)``: ``views`` is a dict ``{view name: [one (N, C, H, W) tensor per
    copy]}`` in the spec's order of views and copies (``specs/simclr.yaml``: ``{"view": [v0,
    v1]}``; ``specs/dino_multicrop.yaml``: ``global1``, ``global2``: one each, ``local``:
    six), where copy ``k``'s row ``i`` and every other copy's row ``i`` are crops of the
    same image and ``labels[i]`` its label. The image-folder fallback cannot serve views.
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
        self._eval_pipelines = {}  # trainer stage ("validate", "test", ...) -> its compiled split

    # ----- checks before training -----------------------------------------------------------
    def check(self, num_classes: Optional[int] = None, stage: str = "fit",
              world_size: int = 1, multilabel: Optional[bool] = None,
              task: Optional[str] = None) -> None:
        """Raise DataError / compiler.SpecError (one line each) for a missing or unreadable
        .beton, a bad spec or plan of a split in use, a model ``task`` the split cannot feed
        (segmentation without a mask target, classification without a label), labels or
        mask classes that ``num_classes`` outputs cannot represent, or the image-folder
        fallback with ``world_size`` > 1 processes."""
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
        class_maps.check_agree([(role, path) for role, path in self._betons()
                                if Path(path).is_file()])
        shared_class_map(self._sources(stage, spec))  # a folder's classes against the .betons'
        if task == "simclr" and stage != "fit":
            raise DataError(f"the simclr task trains a backbone and monitors it by kNN "
                            f"during pureffcv fit; it has no {stage} (train a classifier on "
                            f"its backbone for that)")
        for role, (split, path, folder) in zip(("train", "val"), self._sources(stage, spec)):
            if path is None and folder is None:
                continue
            compile_spec(spec, split, device="cpu")  # plan errors now (no Numba, no GPU)
            training = stage == "fit" and role == "train"
            check_views(self.spec, spec.split(split), task, training)
            check_task(self.spec, spec.split(split), task, num_classes)
            if self._falls_back(path, folder):
                if spec.split(split).views:
                    raise DataError(f"{split}: the image-folder fallback serves one image per "
                                    f"sample, not views; convert {folder} first "
                                    f"(--data.convert true or pureffcv convert)")
                if spec.split(split).targets:
                    kinds = sorted({t.options.kind for t in spec.split(split).targets})
                    raise DataError(f"{split}: the image-folder fallback reads class folders, "
                                    f"not {' or '.join(kinds)} targets; convert {folder} first "
                                    f"(--data.convert true or pureffcv convert)")
                if world_size > 1:
                    raise DataError(f"{split}: the image-folder fallback runs in one process; "
                                    f"convert {folder} first (--convert true or pureffcv "
                                    f"convert)")
                continue
            if path is None:
                continue
            label, image_field = spec.split(split).label, spec.split(split).image.field
            check_target_fields(path, spec.split(split))
            if multilabel is not None and multilabel != (label.type == "multi_hot"):
                raise DataError(
                    f"{self.spec}: the {split} label type is {label.type} but the model's "
                    f"multilabel is {str(multilabel).lower()}; set --model.multilabel "
                    f"{str(label.type == 'multi_hot').lower()}")
            if label.type in ("multi_hot", "float"):
                check_vector_target(path, label, image_field, num_classes)
            elif label.type == "int":
                check_int_labels(path, split, label, image_field, num_classes)
            if stage == "fit" and split == self.train_split:  # after the model's contradictions
                check_batches(path, spec.split(split).loader, self.batch_size,
                              split_fields(spec.split(split)))
        if self.progressive is not None and (self.train_path, self.train_folder) != (None, None):
            if spec.split(self.train_split).views:
                raise DataError(f"{self.spec}: progressive resizing resizes one train decoder; "
                                f"the {self.train_split} split has views (set each view's "
                                f"size in the spec instead)")
            decoder = spec.split(self.train_split).image.decode
            if "size" not in decoder.op_class.parameters():
                raise DataError(f"{self.spec}: progressive resizing needs a resizing train "
                                f"decoder (random_resized_crop), not '{decoder.name}'")

    def train_batch_size(self) -> int:
        """The training batch per process: ``batch_size``, else the spec's train loader's."""
        from compiler import load_spec

        if self.batch_size is not None:
            return self.batch_size
        return load_spec(Path(self.spec)).split(self.train_split).loader.batch_size

    def _sources(self, stage: str = "fit", spec=None):
        """(split, .beton, image folder) of each source a trainer ``stage`` reads."""
        if stage in ("test", "predict"):
            return ((self._test_split(spec), self._eval_path(stage), None),)
        if stage == "validate":
            return ((self.val_split, self.val_path, self.val_folder),)
        return ((self.train_split, self.train_path, self.train_folder),
                (self.val_split, self.val_path, self.val_folder))

    def _betons(self):
        """(role, path) of every .beton this module was given, for the class-map check."""
        return [(role, path) for role, path in (("train", self.train_path),
                                                ("val", self.val_path),
                                                ("test", self.test_path),
                                                ("predict", self.predict_path))
                if path is not None]

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
        """With ``convert``: turn each image folder whose .beton is missing into that .beton
        (``pipelines.missing_betons.convert_missing``: rank 0 converts, the others wait)."""
        if self.convert:
            convert_missing(self._sources(), rank, timeout_s)

    def prepare_data(self) -> None:
        """``convert_missing`` (Lightning runs this before ``setup``; a no-op when the CLI
        converted already)."""
        self.convert_missing()

    def setup(self, stage: str) -> None:
        model = self.trainer.lightning_module if self.trainer is not None else None
        self.check(getattr(model, "num_classes", None), stage,
                   self.trainer.world_size if self.trainer is not None else 1,
                   getattr(model, "multilabel", None), getattr(model, "task", None))

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
                                shuffle=shuffle, classes=shared_class_map(self._sources()))
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
        self._eval_pipelines[stage] = compiled
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
        """Shape the device batch for the model: a split with views as ``(views, labels)``
        (``CompiledPipeline.group_views``); else apply the batch ops (mixup, cutmix,
        temporal_repeat) of the split a batch comes from: the train split's to training
        batches, the evaluation split's to validation, test and predict batches."""
        compiled = self._pipeline_of_batch()
        if compiled is None:
            return batch
        if compiled.views:  # no batch ops: the spec refuses them with views
            views, rest = compiled.group_views(batch)
            return (views, *rest)
        ops = compiled.batch_ops
        if not ops:
            return batch
        images, targets, *rest = batch
        for op in ops:
            images, targets = op(images, targets)
        return (images, targets, *rest)

    def _pipeline_of_batch(self):
        """The compiled split whose loader the trainer is reading now (None: none)."""
        trainer = self.trainer
        if trainer is None:
            return None
        if trainer.training:
            return self._train_pipeline
        if trainer.validating or trainer.sanity_checking:
            return self._eval_pipelines.get("validate")
        if trainer.testing:
            return self._eval_pipelines.get("test")
        if trainer.predicting:
            return self._eval_pipelines.get("predict")
        return None

    def teardown(self, stage: str) -> None:
        for loader in self._loaders:
            loader.close()
        self._loaders.clear()
