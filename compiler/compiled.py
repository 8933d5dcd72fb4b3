"""The result of compiling one split: FFCV pipelines, a Loader factory, the epoch clock."""
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from operations import ffcv_patches
from operations.errors import PureffcvError
from operations.rng import EpochClock

from .beton_check import BetonError, check_beton
from .explain import explain
from .ir import Plan, Step
from .lower import (bind_fields, label_pipeline, lower, ops_of, outputs_of, per_loader,
                    source_fields, without_other_fields)
from .plan import build_plan
from .quasi_random import DistributedQuasiRandom
from .reader import load_spec
from .safe_loader import SafeLoader
from .spec import Spec, SplitSpec
from .views import ViewCopy, group_views, lower_views, plan_views
from .workers import usable_workers


class CompiledPipeline:
    """One split of a spec, compiled for one device.

    ``pipelines`` is what ``ffcv.loader.Loader(pipelines=...)`` takes; its batches are
    ``outputs`` in order (image, label unless ``label: none``, then each target; with views,
    each view copy in place of the image: ``group_views`` pairs them with their views);
    ``batch_ops`` run on ``(images, labels)`` after the loader (the Lightning side applies
    them). Every op is bound
    to one EpochClock: call ``set_epoch(n)`` before ``iter(loader)`` (FFCV prefetches there).
    """

    def __init__(self, spec: Spec, split: SplitSpec, plan: Plan, clock: EpochClock,
                 views: Sequence[ViewCopy] = ()):
        self.spec = spec
        self.split = split
        self.plan = plan
        self.clock = clock
        #: a split with ``image.views``: every copy of every view, planned (``plan`` is the
        #: first one's)
        self.views: Tuple[ViewCopy, ...] = tuple(views)
        self.targets = tuple(t.target() for t in split.targets)
        if self.views:
            label = bind_fields(None, label_pipeline(plan.device, split.label.type),
                                split.image.field, split.label.field)["label"]
            self.pipelines = lower_views(self.views, split.image.field, clock, label)
        else:
            self.pipelines = lower(plan, split.image.field, split.label, self.targets)

    @property
    def device(self) -> str:
        return self.plan.device

    @property
    def decoder(self) -> Step:
        return self.plan.stage("decoder")[0]

    @property
    def cpu_steps(self) -> List[Step]:
        return self.plan.stage("cpu")

    @property
    def batch_ops(self) -> List:
        return [step.op for step in self.plan.batch]

    @property
    def image_field(self) -> str:
        """The .beton field the image pipeline reads (the spec's ``image: {field: ...}``)."""
        return self.split.image.field

    @property
    def label_field(self) -> str:
        """The .beton field the label pipeline reads (the spec's ``label: {field: ...}``)."""
        return self.split.label.field

    @property
    def outputs(self) -> tuple:
        """The names of a batch's elements, in order: image, label (unless ``label: none``),
        then the targets as written."""
        return outputs_of(self.pipelines)

    @property
    def label_ops(self) -> Optional[List]:
        """The label pipeline's ops; None for ``label: none`` (no label output)."""
        return ops_of(self.pipelines["label"]) if self.split.has_label else None

    def bind(self, image: Optional[List], label: Optional[List],
             targets: Optional[Dict[str, tuple]] = None) -> Dict[str, object]:
        """Other op lists (a partial image pipeline, a plain decoder; targets as ``{name:
        (ops, field)}``) as a pipelines dict for ``loader(pipelines=...)``, reading this
        split's fields: every tool that builds its own pipelines goes through this, never
        through the names ``image`` and ``label``."""
        return bind_fields(image, label, self.image_field, self.label_field, targets)

    def group_views(self, batch: Sequence) -> Tuple[Dict[str, list], tuple]:
        """A batch of this split (with views) as ``({view: [tensor per copy]}, rest)``."""
        return group_views(batch, self.views)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: the same epoch gives the same draws every time it starts
        (the batch ops' counters restart too)."""
        self.clock.epoch = int(epoch)
        for op in self.batch_ops:
            if hasattr(op, "restart"):
                op.restart()

    def loader_options(self, **overrides) -> dict:
        """The keyword arguments ``loader`` passes to ffcv's Loader (after ``fname``)."""
        from ffcv.loader import OrderOption

        options = self.split.loader
        kwargs = dict(batch_size=options.batch_size, num_workers=options.num_workers,
                      os_cache=options.os_cache, order=options.order,
                      distributed=options.distributed, seed=ffcv_seed(self.spec.seed),
                      drop_last=options.drop_last, batches_ahead=options.batches_ahead,
                      pipelines=per_loader(self.pipelines))
        kwargs.update(overrides)
        kwargs["num_workers"] = usable_workers(kwargs["num_workers"])
        if isinstance(kwargs["order"], str):
            kwargs["order"] = OrderOption[kwargs["order"].upper()]
        if kwargs["order"] is OrderOption.QUASI_RANDOM and kwargs["distributed"]:
            kwargs["order"] = DistributedQuasiRandom()  # FFCV has none (libffcv/ffcv #92)
        return kwargs

    def loader(self, beton_path: Union[str, os.PathLike], **overrides):
        """An ffcv Loader over ``beton_path`` with the spec's loader options; keyword
        ``overrides`` win (batch_size, num_workers, order, distributed, seed, indices, ...).

        The file is checked first (``compiler.beton_check``: a missing, truncated or damaged
        .beton, or one without the fields the pipelines read, is a one-line BetonError naming
        it). The Loader is a ``SafeLoader``: each ``iter`` is one epoch whose thread is closed
        and joined however iteration ends (a ``break`` leaks nothing), and an error in FFCV's
        loader thread raises LoaderError in the consumer instead of hanging it.

        The Loader uses this object's op instances: build one live Loader per
        CompiledPipeline (compile again for a second concurrent one)."""
        options = self.loader_options(**overrides)
        path = os.fspath(beton_path)
        reader = check_beton(path, tuple(source_fields(options["pipelines"])))
        options["pipelines"] = without_other_fields(options["pipelines"], reader.field_names)
        try:
            loader = SafeLoader(path, **options)
        except (OSError, ValueError, IndexError, KeyError, AssertionError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise BetonError(f"{path}: FFCV cannot open this .beton ({type(exc).__name__}: "
                             f"{reason})") from None
        loader.clock = self.clock
        loader.outputs = outputs_of(options["pipelines"])
        return loader

    def explain(self) -> str:
        return explain(self)

    def __repr__(self):
        return f"CompiledPipeline(split={self.plan.split!r}, device={self.device!r}, steps={len(self.plan.steps)})"


def ffcv_seed(seed: int) -> int:
    """The seed handed to FFCV's sample orders. FFCV's quasi-random order computes
    ``seed * 912300 + epoch`` in int64 Numba code and seeds NumPy with it (which takes 32
    bits): a spec seed of up to 2**64 - 1 is folded to 31 bits (seeds below 2**31 unchanged)."""
    return int(seed) % 2 ** 31


class DeviceError(PureffcvError, ValueError):
    """A device name torch does not know."""


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when CUDA is available, else ``cpu``; other names as torch spells
    them (cpu, cuda, cuda:N). Raises DeviceError for a name torch does not know."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return str(torch.device(device))
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N") from None


def compile_spec(spec_or_path: Union[Spec, str, os.PathLike], split: str = "train",
                 device: str = "auto", epoch: int = 0, optimize: bool = True) -> CompiledPipeline:
    """Load (if needed), plan and lower one split; raise SpecError for any problem.
    ``optimize=False`` skips the plan's rewrite passes (fusions): one step per op as written,
    for comparisons and debugging.

    Compiles no Numba code (that happens when a Loader first runs) and touches no GPU unless
    ``device`` is auto (one ``torch.cuda.is_available()``)."""
    ffcv_patches.apply()
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load_spec(spec_or_path)
    split_spec = spec.split(split)
    clock = EpochClock(spec.seed, epoch)
    device = resolve_device(device)
    if split_spec.views:
        views = plan_views(split_spec, device, clock, optimize)
        return CompiledPipeline(spec, split_spec, views[0].plan, clock, views)
    return CompiledPipeline(spec, split_spec, build_plan(split_spec, device, clock, optimize),
                            clock)
