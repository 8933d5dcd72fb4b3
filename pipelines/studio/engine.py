"""The studio's warm renderer: a spec's samples op by op, reusing every compiled op whose
definition did not change.

A Loader compiles its whole pipeline anew (every op's batch loop and FFCV's stage function,
each re-optimising the Numba kernels it links), so rendering through a fresh Loader after
each save costs as much as the first epoch of a new process (6 s for one TrivialAugmentWide
on 2 cores, warm). The studio instead runs the plan's steps one by one on the chosen samples
with the same code and draws a Loader uses (``op.apply(batch, indices)``), and keeps each op
instance — with its compiled batch loop — under a fingerprint of its class, parameters,
position, seed and input type. After a save, only the steps whose fingerprint changed
compile; the others, and the decoder's Loader, are reused. The images after every step are
kept, which is what "step through the pipeline" shows.

A split's targets are drawn as ``pureffcv preview`` draws them, on the originals and the
augmented samples: the first mask laid over the pixels here, boxes and keypoints kept as
``preview.Overlay`` and drawn when the page asks for the image, at its zoom (``images.png``).
The per-step images show the image alone: a target's steps run in a Loader of their own, not
op by op.

A split with views (``image.views``) shows each view copy of the same samples side by side,
as ``pureffcv preview`` does (``Render.views``: each copy's final image, its own normalization
undone; the originals at the largest copy's size). One kept Loader runs the shared decode and
every copy's crop out of it (``ViewsDecoder`` and ``ViewCrop``, as training runs them); then
each copy's steps run op by op like a split's, so the step-through shows every copy's images
after each of its steps (``StepResult.view``: ``global1[0]``), after one timing-only step for
the shared decode.
"""
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..class_maps import names_by_label
from ..preview import (Overlay, box_classes, choose_samples, largest_size, to_display,
                       view_captions)
from .fingerprint import fingerprint

#: ops kept compiled beyond the current plan's (older variants, for undo-like edits)
KEEP_OPS = 64


@dataclass
class StepResult:
    """One step of the last render: its name, stage, YAML position, the batch after it (for
    display), its time per image and whether it compiled in this render."""
    name: str
    stage: str
    op: str
    line: Optional[int]
    output: str
    images: Optional[np.ndarray] = None  # uint8 (B, H, W, 3), or None (not an image step)
    us_per_image: Optional[float] = None
    compiled: bool = False
    compile_s: float = 0.0
    view: Optional[str] = None  # the view copy the step belongs to (``global1[0]``), or None


@dataclass
class Render:
    """Everything the page shows after one render (or the errors that stopped it): the
    originals and augmented samples (a mask target already laid over them) and, with boxes
    or keypoints targets, what to draw over each (``preview.Overlay``; ``box_names`` and
    ``box_offset`` as ``preview.draw_overlay`` takes them). With views, ``views`` holds each
    view copy's caption and images in the batch's order, and ``augmented`` is the first
    copy's."""
    version: int
    spec_text: str
    epoch: int
    classes: List[int]
    all_classes: List[int]
    class_names: Dict[int, str]
    indices: List[int] = field(default_factory=list)
    labels: List[str] = field(default_factory=list)
    originals: Optional[np.ndarray] = None
    augmented: Optional[np.ndarray] = None
    original_overlays: Optional[List[Overlay]] = None
    augmented_overlays: Optional[List[Overlay]] = None
    views: List[Tuple[str, np.ndarray]] = field(default_factory=list)
    box_names: Dict[int, str] = field(default_factory=dict)
    box_offset: int = 0
    steps: List[StepResult] = field(default_factory=list)
    explain: str = ""
    errors: List[dict] = field(default_factory=list)  # {file, line, column, message}
    seconds: float = 0.0
    compiled_steps: int = 0
    reused_steps: int = 0
    stale: bool = False  # the samples are the last good render's (this one has errors)


class Studio:
    """Renders one split of a spec on a few samples of a .beton, warm across edits.

    ``render()`` reads the spec file, compiles it (no Numba yet), runs its steps op by op on
    the chosen samples and returns a ``Render``; spec mistakes come back in ``errors`` as
    file/line/column, never as exceptions. ``new_draw()`` moves to the next epoch,
    ``pick(classes)`` changes the classes shown. Thread-safe: one render at a time.
    """

    def __init__(self, spec_path, beton, split: str = "train", n: int = 16,
                 device: str = "cpu", epoch: int = 0):
        self.spec_path = Path(spec_path)
        self.beton = str(beton)
        self.split = split
        self.n = int(n)
        self.device = device
        self.epoch = int(epoch)
        self.fields: Optional[tuple] = None  # (image field, label field) the labels are of
        self.labels = np.zeros(0, np.int64)
        self.all_classes: List[int] = []
        self.classes: List[int] = []
        self.names = names_by_label(beton)
        self.box_names, self.box_offset = box_classes(beton)
        self.version = 0
        self.last: Optional[Render] = None
        self.last_good: Optional[Render] = None
        self._lock = threading.RLock()
        self._ops: Dict[str, object] = {}  # fingerprint -> op instance (compiled once used)
        self._loaders: Dict[tuple, object] = {}  # (kind, fingerprint or size) -> Loader
        self._used: set = set()  # fingerprints the current render uses
        self._decoder_key = ""
        self._initial_fields()

    def _initial_fields(self) -> None:
        """The split's fields and labels now, when the spec compiles (a .beton the split
        cannot read is an error at start); else at the first render that compiles."""
        from compiler import SpecError, compile_spec

        try:
            compiled = compile_spec(self.spec_path, split=self.split, device="cpu")
        except (SpecError, ValueError, TypeError):
            return
        self._use_fields(compiled)

    def _use_fields(self, compiled) -> None:
        """Read the labels from the fields the compiled split reads (the loader's field
        resolution), again whenever an edit of the spec changes them."""
        from ..beton import stored_labels

        from ..beton import open_beton

        fields = (compiled.image_field, compiled.label_field if compiled.split.has_label else None)
        if fields == self.fields:
            return
        if fields[1] is None:  # segmentation: the samples are one group
            count = int(open_beton(self.beton, fields[:1]).num_samples)
            self.labels = np.zeros(count, np.int64)
        else:
            self.labels = stored_labels(self.beton, fields[1], fields[0])
        self.fields = fields
        self.all_classes = sorted(int(c) for c in np.unique(self.labels))
        self.classes = list(self.all_classes)
        self._loaders.clear()

    # -- controls -------------------------------------------------------------------------
    def new_draw(self) -> Render:
        self.epoch += 1
        return self.render()

    def same_draw(self) -> Render:
        return self.render()

    def pick(self, classes: Sequence[int]) -> Render:
        chosen = [int(c) for c in classes if int(c) in self.all_classes]
        self.classes = chosen or list(self.all_classes)
        return self.render()

    def name(self, label: int) -> str:
        return self.names.get(int(label), str(int(label)))

    # -- rendering ------------------------------------------------------------------------
    def render(self) -> Render:
        with self._lock:
            started = time.perf_counter()
            self.version += 1
            try:
                text = self.spec_path.read_text()
            except OSError as error:
                text = ""
                result = self._empty(text)
                result.errors.append({"file": str(self.spec_path), "line": None,
                                      "column": None, "message": f"cannot read: {error}"})
            else:
                result = self._empty(text)
                self._render_into(result, text)
            if result.augmented is not None and not result.errors:
                self.last_good = result
            elif result.augmented is None and self.last_good is not None:
                self._keep_last_good(result)
            result.seconds = time.perf_counter() - started
            self.last = result
            return result

    def _keep_last_good(self, result: Render) -> None:
        """Show the last good render's samples beside this render's errors (``stale``)."""
        good = self.last_good
        result.indices, result.labels = good.indices, good.labels
        result.originals, result.augmented, result.steps = good.originals, good.augmented, \
            good.steps
        result.original_overlays, result.augmented_overlays = good.original_overlays, \
            good.augmented_overlays
        result.views = good.views
        result.stale = True

    def _empty(self, text: str) -> Render:
        return Render(version=self.version, spec_text=text, epoch=self.epoch,
                      classes=list(self.classes), all_classes=list(self.all_classes),
                      class_names={c: self.name(c) for c in self.all_classes},
                      box_names=dict(self.box_names), box_offset=self.box_offset)

    def _render_into(self, result: Render, text: str) -> None:
        from compiler import SpecError, compile_spec
        from compiler.reader import load_spec

        try:
            spec = load_spec(self.spec_path)
            compiled = compile_spec(spec, split=self.split, device=self.device,
                                    epoch=self.epoch)
        except SpecError as error:
            result.errors.extend({"file": e.file, "line": e.line, "column": e.column,
                                  "message": e.message}
                                 for e in getattr(error, "errors", [error]))
            return
        except (ValueError, TypeError) as error:  # a bad device name, an op refusing a type
            result.errors.append({"file": str(self.spec_path), "line": None, "column": None,
                                  "message": " ".join(str(error).split())})
            return
        result.explain = compiled.explain()
        try:
            self._use_fields(compiled)
            self._run(compiled, result)
        except Exception as error:  # an op failing at run time: show it, keep serving
            message = " ".join(f"{type(error).__name__}: {error}".split())
            result.errors.append({"file": str(self.spec_path), "line": None, "column": None,
                                  "message": message})
        self._forget_unused(compiled)

    def _run(self, compiled, result: Render) -> None:
        import torch

        from ..preview import label_text, normalization_of, target_texts, with_targets

        # the samples `pureffcv preview` would show: classes in turn, mixup partners paired
        indices = choose_samples(self.labels, self.n, classes=self.classes,
                                 seed=compiled.spec.seed or 0, paired=bool(compiled.plan.batch))
        result.indices = [int(i) for i in indices]
        if compiled.views:  # no batch ops, no targets (the spec refuses them with views)
            decoded, labels = self._decode_views(compiled, indices, result)
            panels = []
            for copy, caption in zip(compiled.views, view_captions(compiled)):
                crop = self._record(copy.plan.steps[0], decoded[copy.output], None)
                crop.view = caption  # its crop out of the shared decode: timed there
                result.steps.append(crop)
                panels.append(self._run_steps(copy.plan, decoded[copy.output], indices, result,
                                              caption))
            result.views = list(zip(view_captions(compiled), panels))
            targets = labels
        else:
            normalization = normalization_of(compiled.plan)
            images, labels = self._decode(compiled, compiled.plan.steps[0], indices, result)
            batch = self._run_steps(compiled.plan, images, indices, result, display=False)
            targets = labels
            for step in compiled.plan.batch:
                op = self._warm(step, batch)
                self._set_epoch(op)
                t0 = time.perf_counter()
                batch, targets = op(batch, targets)
                record = self._record(step, batch, normalization)
                record.us_per_image = 1e6 * (time.perf_counter() - t0) / max(len(indices), 1)
                result.steps.append(record)
            panels = [to_display(batch, normalization)]
        originals, stored = self._originals(compiled, indices, largest_size(panels))
        outputs = self._targets(compiled, indices)
        # the first mask over both halves; boxes and keypoints drawn at the page's zoom
        result.augmented, result.augmented_overlays = with_targets(panels[0], compiled.targets,
                                                                   outputs)
        result.originals, result.original_overlays = with_targets(originals, compiled.targets,
                                                                  stored)
        texts = target_texts(compiled.targets, outputs, len(indices))
        if not compiled.split.has_label:
            result.labels = texts
            return
        names = [self.name(int(t)) for t in labels.reshape(-1)]
        if compiled.plan.batch:  # mixed targets: the class shown, then the soft target
            names = [f"{name} ({label_text(t)})" for name, t in zip(names, targets.cpu())]
        result.labels = [" ".join(filter(None, pair)) for pair in zip(names, texts)]

    def _run_steps(self, plan, batch, indices: np.ndarray, result: Render,
                   view: Optional[str] = None, display: bool = True):
        """``plan``'s steps after its decoder, op by op, on ``batch`` (the decoder's output),
        each recorded in ``result.steps`` (``view``: the view copy they belong to); the last
        step's output as a (B, C, H, W) tensor, or with ``display`` as uint8 (B, H, W, C)
        with the plan's normalization undone."""
        import torch

        from ..preview import normalization_of

        normalization = normalization_of(plan)
        for step in plan.steps[1:]:
            if step.stage == "boundary":
                if isinstance(batch, np.ndarray):
                    batch = torch.from_numpy(batch).permute(0, 3, 1, 2).to(plan.device)
                continue
            op = self._warm(step, batch)
            self._set_epoch(op)
            compiled_now = op._applier is None if hasattr(op, "_applier") else False
            t0 = time.perf_counter()
            out = op.apply(batch, indices)
            elapsed = time.perf_counter() - t0
            record = self._record(step, out, normalization)
            record.view = view
            if compiled_now and step.stage != "device":
                record.compiled, record.compile_s = True, elapsed
                t0 = time.perf_counter()
                out = op.apply(batch, indices)  # the short bench: a second, warm call
                elapsed = time.perf_counter() - t0
            record.us_per_image = 1e6 * elapsed / max(len(indices), 1)
            result.steps.append(record)
            result.compiled_steps += record.compiled
            result.reused_steps += not record.compiled
            batch = out
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(batch).permute(0, 3, 1, 2)
        return to_display(batch, normalization) if display else batch

    def _record(self, step, out, normalization) -> StepResult:
        import torch

        images = None
        if isinstance(out, np.ndarray) and out.ndim == 4:
            tensor = torch.from_numpy(out).permute(0, 3, 1, 2)
            images = to_display(tensor, normalization if out.dtype != np.uint8 else None)
        elif isinstance(out, torch.Tensor) and out.ndim == 4:
            images = to_display(out, normalization if out.dtype != torch.uint8 else None)
        pos = getattr(step, "pos", None)
        return StepResult(name=step.name, stage=step.stage, op=type(step.op).__name__,
                          line=getattr(pos, "line", None),
                          output=step.output.describe() if step.output is not None else "-",
                          images=images)

    def _warm(self, step, batch):
        """The op of ``step``, or the warm instance compiled earlier for the same definition
        and input type."""
        shape = (tuple(batch.shape[1:]), str(batch.dtype))
        key = fingerprint((step.op, step.op.clock.seed if hasattr(step.op, "clock") else None,
                           getattr(step.op, "position", None), shape))
        if key not in self._ops:
            self._ops[key] = step.op
        self._used.add(key)
        return self._ops[key]

    def _set_epoch(self, op) -> None:
        if hasattr(op, "clock"):
            op.clock.epoch = self.epoch

    def _decode(self, compiled, step, indices: np.ndarray, result: Render):
        """The decoder's output and the labels for ``indices``, from a Loader kept per decoder
        definition (FFCV compiles a Loader's pipeline when it is built)."""
        from compiler.lower import label_pipeline

        op = self._warm_decoder(step)
        labelled = compiled.split.has_label
        bound = compiled.bind([op], label_pipeline("cpu") if labelled else None)
        key = ("decoder", self._decoder_key)
        t0 = time.perf_counter()
        compiled_now = key not in self._loaders
        if compiled_now:
            self._loaders[key] = self._loader(bound, indices)
        self._select(self._loaders[key], indices)
        self._set_epoch(op)
        images, *labels = self._one_batch(self._loaders[key])
        elapsed = time.perf_counter() - t0
        record = self._record(step, images, None)
        if compiled_now:  # the short bench: time a second, warm epoch
            record.compiled, record.compile_s = True, elapsed
            t0 = time.perf_counter()
            images, *labels = self._one_batch(self._loaders[key])
            elapsed = time.perf_counter() - t0
        record.us_per_image = 1e6 * elapsed / max(len(indices), 1)
        result.steps.append(record)
        result.compiled_steps += record.compiled
        result.reused_steps += not record.compiled
        return images, labels[0].reshape(-1) if labelled else self.labels[indices]

    def _decode_views(self, compiled, indices: np.ndarray, result: Render):
        """Each view copy's crop out of the shared decode (by the copy's ``output`` name) and
        the labels for ``indices`` (the shared decode recorded as one step, for its timing),
        from a Loader kept per definition of the copies' crops: the ``ViewsDecoder`` and the
        copies' ``ViewCrop`` steps, as training runs them (``compiler.views.lower_views`` over
        the copies cut to their first step)."""
        from dataclasses import replace

        from compiler.lower import label_pipeline
        from compiler.views import ViewCopy, lower_views

        crops = [copy.plan.steps[0] for copy in compiled.views]
        key = ("views", fingerprint((compiled.image_field, [
            (s.op, s.op.clock.seed, s.op.position) for s in crops])))
        labelled = compiled.split.has_label
        compiled_now = key not in self._loaders
        t0 = time.perf_counter()
        if compiled_now:
            first_steps = [ViewCopy(c.view, c.copy, replace(c.plan, steps=c.plan.steps[:1]))
                           for c in compiled.views]
            label = compiled.bind(None, label_pipeline("cpu") if labelled else None)["label"]
            pipelines = lower_views(first_steps, compiled.image_field, compiled.clock, label)
            self._loaders[key] = self._loader(pipelines, indices)
        loader = self._loaders[key]
        decoder = loader.pipeline_specs[compiled.views[0].output].decoder  # the kept one
        self._select(loader, indices)
        self._set_epoch(decoder)
        batch = dict(zip(loader.pipeline_specs, self._one_batch(loader)))  # FFCV's order
        elapsed = time.perf_counter() - t0
        record = StepResult(name="decode (shared by the views)", stage="decoder",
                            op=type(decoder).__name__, line=None, output="-")
        if compiled_now:  # the short bench: time a second, warm epoch
            record.compiled, record.compile_s = True, elapsed
            t0 = time.perf_counter()
            batch = dict(zip(loader.pipeline_specs, self._one_batch(loader)))
            elapsed = time.perf_counter() - t0
        record.us_per_image = 1e6 * elapsed / max(len(indices), 1)
        result.steps.append(record)
        result.compiled_steps += record.compiled
        result.reused_steps += not record.compiled
        labels = batch["label"].reshape(-1) if labelled else self.labels[indices]
        return batch, labels

    def _warm_decoder(self, step):
        self._decoder_key = fingerprint((step.op, step.op.clock.seed, step.op.position))
        if self._decoder_key not in self._ops:
            self._ops[self._decoder_key] = step.op
        self._used.add(self._decoder_key)
        return self._ops[self._decoder_key]

    def _originals(self, compiled, indices: np.ndarray, size):
        """The samples decoded without augmentation at ``size`` (as ``pureffcv preview``
        shows them: the largest centred square, resized), and their targets cut by the same
        decode (``preview.stored_batches``), from a kept Loader."""
        from ffcv.transforms import ToTensor

        from operations.cpu.decoders import CenterCrop

        from ..preview import stored_batches

        decoder = CenterCrop(size=tuple(int(s) for s in size), ratio=1.0)
        targets = {t.name: ([decoder.for_target(t), ToTensor()], t.field)
                   for t in compiled.targets}
        key = ("originals", decoder.output_size, tuple(compiled.targets))
        if key not in self._loaders:
            self._loaders[key] = self._loader(compiled.bind([decoder], None, targets), indices)
        self._select(self._loaders[key], indices)
        images, *decoded = self._one_batch(self._loaders[key])
        return images, stored_batches(compiled.targets, dict(zip(targets, decoded)))

    def _targets(self, compiled, indices: np.ndarray) -> dict:
        """The targets of ``indices`` through their compiled steps (what training sees), by
        name ({} without targets), from one Loader of this render's plan."""
        if not compiled.targets:
            return {}
        pipelines = {t.name: ([step.op for step in compiled.plan.targets[t.name]], t.field)
                     for t in compiled.targets}
        loader = self._loader(compiled.bind(None, None, pipelines), indices)
        compiled.set_epoch(self.epoch)
        return dict(zip(pipelines, self._one_batch(loader)))

    def _loader(self, pipelines, indices: np.ndarray):
        """A one-batch Loader (batch size ``n``, the most samples a render shows); FFCV
        compiles its pipeline here, so it is kept and pointed at other samples by ``_select``.
        The .beton's fields that ``pipelines`` does not read are switched off."""
        from ffcv.loader import Loader, OrderOption

        from compiler.lower import without_other_fields

        from ..beton import open_beton

        fields = open_beton(self.beton, ()).field_names
        return Loader(self.beton, batch_size=self.n, order=OrderOption.SEQUENTIAL,
                      indices=indices, drop_last=False, num_workers=1,
                      pipelines=without_other_fields(pipelines, fields))

    @staticmethod
    def _select(loader, indices: np.ndarray) -> None:
        """Point a kept sequential Loader at other samples (at most its batch size): FFCV's
        sequential order reads ``indices`` at each epoch, buffers are per batch."""
        loader.indices = np.asarray(indices)
        loader.traversal_order.indices = loader.indices

    @staticmethod
    def _one_batch(loader):
        from ..preview import only_batch

        def copied(b):  # FFCV reuses its buffers
            if isinstance(b, np.ndarray):
                return np.array(b)
            return type(b)(*map(copied, b)) if isinstance(b, tuple) else b.clone()

        return tuple(copied(b) for b in only_batch(loader))

    def _forget_unused(self, compiled) -> None:
        """Keep the current plan's ops and at most KEEP_OPS others (the most recent)."""
        used = self._used
        self._used = set()
        stale = [k for k in self._ops if k not in used]
        for key in stale[:max(0, len(stale) - KEEP_OPS)]:
            del self._ops[key]
        loaders = [k for k in self._loaders]
        for key in loaders[:max(0, len(loaders) - 8)]:
            del self._loaders[key]
