"""Throughput of a compiled pipeline, its per-stage breakdown, and comparison baselines.

Every number comes from the same invocation, epochs of all variants interleaved, so ratios are
meaningful on a noisy machine: the full pipeline, prefixes of it (decode only; decode + CPU
ops; + transfer) whose differences give the per-stage cost, for a split with targets the
whole image pipeline without them (``image_only``: what the masks cost), then optional
baselines
(``torch_hybrid``: the same decoder followed by per-image torch ops, the correct-but-slow
hybrid; ``ffcv_decode``: FFCV's own decoder for the same crop, RandomResizedCrop or CenterCrop,
with ToTensor and ToTorchImage, the floor FFCV users compare against; ``ffcv_views``, for a
split with views: FFCV's own decoder once per view copy, one pipeline each on the same field
(FFCV decodes the image again for each); ``dataloader``: a plain
PyTorch DataLoader decoding the source images with PIL; ``dali``: NVIDIA DALI's CPU pipeline
doing the hybrid policy's work on the same JPEG bytes, where ``nvidia.dali`` is importable,
``pipelines/dali_baseline.py``).

For a split with views the variants are the whole split (every copy from one decode) and
``one_view``: its first view's pipeline alone, one copy decoded as a single image; images/s
counts samples, whatever the number of views.

Each variant's first epoch (Numba compiling every op, then one epoch) is timed apart from the
steady epochs; ``compile_s`` is the first epoch minus one steady epoch.
"""
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

from . import dali_baseline, loading

#: prefixes of the image pipeline, cumulative: each adds one stage to the previous; the full
#: pipeline (variant "pipeline") adds the device ops and batch ops
STAGE_PREFIXES = ("decode", "cpu_ops", "transfer")
#: the baselines ``compare`` can name (``pureffcv bench --compare``)
BASELINES = ("torch_hybrid", "ffcv_decode", "ffcv_views", "dataloader", "dali")


@dataclass
class Throughput:
    """One measured variant: compile + first epoch separately, then steady state."""

    name: str
    first_epoch_s: float
    images: int
    seconds: float
    epochs: int = 1  # timed epochs that ``images`` and ``seconds`` add up

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else float("nan")

    @property
    def compile_s(self) -> float:
        """What the first epoch cost beyond a steady one: mostly Numba compiling the ops
        (never below 0; noise can hide a fast compile)."""
        if not self.epochs:
            return float("nan")
        return max(0.0, self.first_epoch_s - self.seconds / self.epochs)


@dataclass
class BenchReport:
    spec: str
    split: str
    device: str
    num_workers: int
    batch_size: int
    epochs: int
    variants: Dict[str, Throughput] = field(default_factory=dict)

    def stage_costs_us(self) -> Dict[str, float]:
        """Microseconds per image spent in each stage (differences of cumulative prefixes;
        noise can make a cheap stage slightly negative); ``targets``: what the split's targets
        add to its image pipeline. Empty for a split with views (no prefixes measured)."""
        if STAGE_PREFIXES[0] not in self.variants:
            return {}
        whole = "image_only" if "image_only" in self.variants else "pipeline"
        costs, before = {}, 0.0
        for stage, variant in zip(STAGE_PREFIXES + ("device_ops", "targets"),
                                  STAGE_PREFIXES + (whole, "pipeline")):
            total = 1e6 / self.variants[variant].images_per_s
            costs[stage] = total - before
            before = total
        if whole == "pipeline":
            del costs["targets"]
        return costs

    def to_json(self) -> dict:
        """The documented ``pureffcv bench --json`` keys."""
        return {
            "spec": self.spec, "split": self.split, "device": self.device,
            "num_workers": self.num_workers, "batch_size": self.batch_size, "epochs": self.epochs,
            "images_per_s": self.variants["pipeline"].images_per_s,
            "first_epoch_s": self.variants["pipeline"].first_epoch_s,
            "compile_s": self.variants["pipeline"].compile_s,
            "stages_us_per_image": self.stage_costs_us(),
            "variants": {name: {**asdict(t), "images_per_s": t.images_per_s,
                                "compile_s": t.compile_s}
                         for name, t in self.variants.items()},
        }

    def table(self) -> str:
        base = self.variants["pipeline"].images_per_s
        lines = [f"{self.spec} [{self.split}] on {self.device}, {self.num_workers} workers, "
                 f"batch {self.batch_size}, {self.epochs} timed epochs",
                 f"{'variant':<14}{'images/s':>10}{'vs pipeline':>13}{'first epoch':>13}"
                 f"{'compile':>10}"]
        for name, t in self.variants.items():
            lines.append(f"{name:<14}{t.images_per_s:>10.0f}{t.images_per_s / base:>12.2f}x"
                         f"{t.first_epoch_s:>12.1f}s{t.compile_s:>9.1f}s")
        costs = self.stage_costs_us()
        if costs:
            lines.append("per-stage cost (us/image): " + ", ".join(
                f"{k} {v:.0f}" for k, v in costs.items()))
        return "\n".join(lines)


@dataclass
class Variant:
    """A batch source to time: ``make_batches(epoch)`` iterates one epoch; ``on_batch(images,
    labels)`` runs on every batch (e.g. batch ops)."""

    name: str
    make_batches: Callable[[int], object]
    on_batch: Optional[Callable] = None


def time_variants(variants: List[Variant], epochs: int, progress: bool = True) -> Dict[str, Throughput]:
    """One warm-up epoch per variant (compilation happens there), then ``epochs`` rounds that
    time one epoch of every variant in turn: a slow spell of a shared machine lands on all
    variants alike instead of on whichever ran then, so their ratios stay meaningful."""
    import torch
    from tqdm import tqdm

    synchronize = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    def run_epoch(variant: Variant, epoch: int):
        start, count = time.perf_counter(), 0
        for images, *rest in variant.make_batches(epoch):  # labels and targets, if any
            if variant.on_batch is not None:
                images, _ = variant.on_batch(images, rest[0])
            count += len(images)
        synchronize()
        return time.perf_counter() - start, count

    first = {}
    timed = {v.name: [0.0, 0] for v in variants}
    with tqdm(total=(epochs + 1) * len(variants), desc="bench", unit="epoch",
              disable=not progress, leave=False) as bar:
        for epoch in range(epochs + 1):
            for variant in variants:
                bar.set_postfix_str(variant.name)
                seconds, count = run_epoch(variant, epoch)
                if epoch == 0:
                    first[variant.name] = seconds
                else:
                    timed[variant.name][0] += seconds
                    timed[variant.name][1] += count
                bar.update(1)
    return {v.name: Throughput(v.name, first[v.name], timed[v.name][1], timed[v.name][0], epochs)
            for v in variants}


def _loader_batches(compiled, beton: str, image_steps: Optional[int], options: dict):
    """A batch source over a prefix of the compiled image pipeline (None: all of it; with
    views, the first copy's, decoded alone)."""
    from ffcv.transforms import ToTensor

    pipeline = [step.op for step in compiled.plan.steps][:image_steps]
    if not any(isinstance(op, ToTensor) for op in pipeline):
        pipeline = pipeline + [ToTensor()]
    loader = compiled.loader(beton, pipelines=compiled.bind(pipeline, compiled.label_ops),
                             **options)

    def batches(epoch):
        compiled.set_epoch(epoch)
        return loading.epoch(loader)

    return batches


def ffcv_decoder(decoder):
    """FFCV's own decoder for what our ``decoder`` op does: RandomResizedCropRGBImageDecoder
    (same size, scale, ratio; crops from Numba's RNG) for ``random_resized_crop``,
    CenterCropRGBImageDecoder for ``center_crop``; ValueError for other decoders."""
    from ffcv.fields.rgb_image import CenterCropRGBImageDecoder, RandomResizedCropRGBImageDecoder

    from operations.cpu.decoders import CenterCrop, RandomResizedCrop

    def param(name):  # the op's bound parameters (``params``), or older ops' attributes
        return getattr(decoder, "params", {}).get(name, getattr(decoder, name, None))

    if isinstance(decoder, RandomResizedCrop):
        return RandomResizedCropRGBImageDecoder(
            tuple(decoder.output_size), scale=tuple(float(s) for s in param("scale")),
            ratio=tuple(float(r) for r in param("ratio")))
    if isinstance(decoder, CenterCrop):
        return CenterCropRGBImageDecoder(tuple(decoder.output_size), ratio=float(param("ratio")))
    raise ValueError(f"--compare ffcv_decode needs a random_resized_crop or center_crop "
                     f"decoder, not {type(decoder).__name__}")


def _ffcv_decode_batches(compiled, beton: str, options: dict):
    """FFCV's decoder for the split's crop + ToTensor + ToTorchImage: no augmentation."""
    from ffcv.transforms import ToTensor, ToTorchImage

    pipeline = [ffcv_decoder(compiled.decoder.op), ToTensor(), ToTorchImage()]
    loader = compiled.loader(beton, pipelines=compiled.bind(pipeline, compiled.label_ops),
                             **options)
    return lambda epoch: loading.epoch(loader)


def _ffcv_views_batches(compiled, beton: str, options: dict):
    """FFCV's own decoder for each view copy's crop (+ ToTensor + ToTorchImage), one pipeline
    per copy on the image field: FFCV decodes the image once per copy."""
    from ffcv.pipeline import PipelineSpec
    from ffcv.transforms import ToTensor, ToTorchImage

    pipelines = {copy.output: PipelineSpec(compiled.image_field, transforms=[
        ffcv_decoder(copy.plan.steps[0].op), ToTensor(), ToTorchImage()])
        for copy in compiled.views}
    pipelines["label"] = compiled.bind(None, compiled.label_ops)["label"]
    loader = compiled.loader(beton, pipelines=pipelines, **options)
    return lambda epoch: loading.epoch(loader)


def _dali_batches(compiled, beton: str, report: "BenchReport"):
    """DALI's CPU pipeline for the split's random-resized crop (its size, scale, ratio)."""
    from operations.cpu.decoders import RandomResizedCrop

    decoder = compiled.decoder.op
    if not isinstance(decoder, RandomResizedCrop):
        raise ValueError(f"--compare dali needs a random_resized_crop decoder, not "
                         f"{type(decoder).__name__}")
    return dali_baseline.dali_batches(beton, decoder.output_size[0], decoder.params["scale"],
                                      decoder.params["ratio"], report.batch_size,
                                      report.num_workers, seed=compiled.spec.seed)


def bench(spec_path: str, beton: str, split: str = "train", device: str = "auto",
          epochs: int = 3, num_workers: Optional[int] = None, batch_size: Optional[int] = None,
          compare: List[str] = (), images_dir: Optional[str] = None,
          progress: bool = True) -> BenchReport:
    """Measure the compiled split and, cumulatively, each stage prefix; then the baselines
    named in ``compare`` (``torch_hybrid``, ``ffcv_decode``; ``dataloader`` needs
    ``images_dir``).

    ``spec_path``: a spec file (or YAML text). Raises, before any timed run, FileNotFoundError,
    ValueError, compiler.SpecError and pipelines.convert.ConversionError (``images_dir``);
    ``pipelines.loading.LoaderError`` when an op fails in FFCV's loader thread. All one line."""
    from compiler import compile_spec

    if not os.path.isfile(beton):
        raise FileNotFoundError(f"{beton}: no such .beton file")
    unknown = [name for name in compare if name not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline '{unknown[0]}'; use {' or '.join(BASELINES)}")
    if "dataloader" in compare and images_dir is None:
        raise ValueError("--compare dataloader needs --images DIR (the source image folder)")
    if "dali" in compare and not dali_baseline.available():
        raise ValueError("--compare dali needs NVIDIA DALI (pip install nvidia-dali-cuda130: "
                         "it runs CPU pipelines without a GPU)")
    options = {"order": "random", "drop_last": False}
    if num_workers is not None:
        options["num_workers"] = num_workers
    if batch_size is not None:
        options["batch_size"] = batch_size
    reference = compile_spec(spec_path, split=split, device=device)
    if "ffcv_views" in compare and not reference.views:
        raise ValueError(f"--compare ffcv_views needs a split with image.views; '{split}' "
                         f"has none")
    if "ffcv_decode" in compare:
        ffcv_decoder(reference.decoder.op)  # its ValueError now, before any timing
    loader_options = reference.loader_options(**options)
    workers = loader_options["num_workers"]
    report = BenchReport(str(spec_path), split, reference.device,
                         workers if workers > 0 else os.cpu_count(), loader_options["batch_size"],
                         epochs)
    if "dataloader" in compare:  # scans the folder now: its errors come before any timing
        from .hybrid_baseline import dataloader_batches

        folder_batches = dataloader_batches(images_dir, reference.decoder.output.height,
                                            report.batch_size, report.num_workers)

    def run_batch_ops(compiled):
        ops = compiled.batch_ops

        def on_batch(images, labels):
            for op in ops:
                images, labels = op(images, labels)
            return images, labels
        return on_batch if ops else None

    full = compile_spec(spec_path, split=split, device=device)
    loader = full.loader(beton, **options)
    variants = [Variant("pipeline", lambda e: (full.set_epoch(e), loading.epoch(loader))[1],
                        run_batch_ops(full))]
    if reference.views:
        compiled = compile_spec(spec_path, split=split, device=device)
        variants.append(Variant("one_view", _loader_batches(compiled, beton, None, options)))
        if "ffcv_views" in compare:
            compiled = compile_spec(spec_path, split=split, device=device)
            variants.append(Variant("ffcv_views", _ffcv_views_batches(compiled, beton,
                                                                       options)))
        report.variants = time_variants(variants, epochs, progress)
        return report
    kinds = [step.stage for step in reference.plan.steps]
    ends = {"decode": kinds.count("decoder"),
            "cpu_ops": kinds.count("decoder") + kinds.count("cpu"),
            "transfer": len(kinds) - kinds.count("device")}
    for stage in STAGE_PREFIXES:
        compiled = compile_spec(spec_path, split=split, device=device)
        variants.append(Variant(stage, _loader_batches(compiled, beton, ends[stage], options)))
    if reference.targets:  # the whole image pipeline without the targets: what they cost
        compiled = compile_spec(spec_path, split=split, device=device)
        variants.append(Variant("image_only", _loader_batches(compiled, beton, len(kinds),
                                                              options)))
    if "torch_hybrid" in compare:
        from .hybrid_baseline import hybrid_batches

        compiled = compile_spec(spec_path, split=split, device=device)
        decode = _loader_batches(compiled, beton, ends["decode"], options)
        variants.append(Variant("torch_hybrid", hybrid_batches(decode, compiled.device)))
    if "ffcv_decode" in compare:
        compiled = compile_spec(spec_path, split=split, device=device)
        variants.append(Variant("ffcv_decode", _ffcv_decode_batches(compiled, beton, options)))
    if "dataloader" in compare:
        variants.append(Variant("dataloader", folder_batches))
    if "dali" in compare:
        variants.append(Variant("dali", _dali_batches(reference, beton, report)))
    report.variants = time_variants(variants, epochs, progress)
    return report


def plot_report(report: BenchReport, path: str) -> None:
    """A horizontal bar chart of images/s per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.variants)
    rates = [report.variants[n].images_per_s for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.2))
    ax.barh(names[::-1], rates[::-1], color="#4477aa")
    ax.set_xlabel("images/s")
    ax.set_title(f"{report.spec} [{report.split}] on {report.device}, {report.num_workers} workers")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
