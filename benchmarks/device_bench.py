"""Device-stage benchmark: the fused normalize+flip against the same work as separate torch ops
and against FFCV's NormalizeImage followed by a torch flip.

Input: a uint8 channels_last batch (default 256 x 3 x 224 x 224) on ``--device``. Each result
is the median of ``--repeats`` timed runs after a warm-up, reported as GB/s of bytes read +
written (uint8 in, float out: 1 + itemsize bytes per element, the same count for every
variant), as a fraction of a plain device-to-device copy's GB/s (``clone`` of the uint8 batch,
2 bytes per element), and as speed ratios of the fused op to the others.

On the CPU, FFCV's NormalizeImage is its Numba op on numpy HWC (what its CPU mode runs); on
CUDA its cupy kernel (needs cupy and pytorch_pfn_extras, and runs only on cuda:0 — FFCV's bug);
a variant that cannot run is reported as skipped with the reason. ``--threads`` sets Numba's
and torch's CPU threads alike (default: all cores), as FFCV's Loader does with num_workers.

    python benchmarks/device_bench.py --device cpu --batch-size 64 --repeats 5
    python benchmarks/device_bench.py --device cuda:0 --json
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from operations.device.normalize import NormalizeFlip  # noqa: E402
from operations.device.stage import TORCH_DTYPES  # noqa: E402
from operations.ffcv_api import Compiler  # noqa: E402  (FFCV's, or its stand-in without FFCV)
from operations.normalization import MEAN, STD  # noqa: E402


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def separate_torch_ops(images, flips, mean, std, dtype):
    """The unfused pipeline: flip, float, subtract, divide, cast, channels_last."""
    mirrored = torch.where(flips.view(-1, 1, 1, 1), images.flip(3), images)
    return (mirrored.float().sub(mean).div(std).to(dtype)
            .contiguous(memory_format=torch.channels_last))


def ffcv_normalize_then_flip(images, flips, mean, std, dtype):
    """FFCV's NormalizeImage (as its own Loader stage would run it) followed by a torch flip;
    returns a zero-argument callable, or raises RuntimeError saying why it cannot run."""
    from ffcv.pipeline.compiler import Compiler
    from ffcv.pipeline.state import State
    from ffcv.transforms import NormalizeImage

    np_dtype = np.dtype(dtype)
    op = NormalizeImage(np.array(mean), np.array(std), np_dtype)
    b, c, h, w = images.shape
    if images.device.type == "cpu":
        state = State(jit_mode=True, device=torch.device("cpu"), shape=(h, w, c), dtype=np.uint8)
        op.declare_state_and_memory(state)
        code = Compiler.compile(op.generate_code())
        nhwc = images.permute(0, 2, 3, 1).numpy()
        dst = np.empty((b, h, w, c), op.dtype)
        indices = np.arange(b)
        flips = flips.view(-1, 1, 1, 1)

        def run():
            out = torch.from_numpy(code(nhwc, dst, indices))
            out = out.view(torch.float16) if out.dtype == torch.int16 else out  # FFCV's float16
            return torch.where(flips, out.flip(2), out).permute(0, 3, 1, 2)
        return run
    if images.device != torch.device("cuda:0"):
        raise RuntimeError("FFCV's GPU NormalizeImage only runs on cuda:0")
    try:
        import cupy  # noqa: F401
        import pytorch_pfn_extras  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"FFCV's GPU NormalizeImage needs {exc.name}") from None
    state = State(jit_mode=False, device=images.device, shape=(c, h, w), dtype=torch.uint8)
    op.declare_state_and_memory(state)
    code = op.generate_code()
    dst = torch.empty((b, h, w, c), dtype=TORCH_DTYPES[np_dtype.name], device=images.device)
    flips = flips.to(images.device).view(-1, 1, 1, 1)

    def run():
        out = code(images, dst)
        return torch.where(flips, out.flip(3), out)
    return run


def measure(device: torch.device, batch_size: int, size: int, repeats: int, dtype: str) -> dict:
    torch_dtype = TORCH_DTYPES[dtype]
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, size, size, 3), dtype=torch.uint8,
                           generator=generator).to(device).permute(0, 3, 1, 2)
    fused = NormalizeFlip(dtype=dtype, p=0.5)
    code = fused.generate_code()
    dst = torch.empty((batch_size, size, size, 3), dtype=torch_dtype, device=device)
    indices = np.arange(batch_size)
    flips = fused.flips(torch.from_numpy(indices)).to(device)
    mean = torch.tensor(MEAN["imagenet"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD["imagenet"], device=device).view(1, 3, 1, 1)

    elements = images.numel()
    moved = elements * (1 + torch_dtype.itemsize)
    variants = {
        "copy": (lambda: images.clone(), 2 * elements),
        "fused": (lambda: code(images, dst, indices), moved),
        "separate_torch": (lambda: separate_torch_ops(images, flips, mean, std, torch_dtype), moved),
    }
    skipped = {}
    try:
        variants["ffcv_normalize_flip"] = (
            ffcv_normalize_then_flip(images, flips, MEAN["imagenet"], STD["imagenet"], dtype), moved)
    except ImportError as exc:  # a GPU node without FFCV
        skipped["ffcv_normalize_flip"] = f"FFCV is not importable ({exc})"
    except (RuntimeError, TypeError, ValueError) as exc:
        skipped["ffcv_normalize_flip"] = str(exc)

    results = {}
    for name, (fn, nbytes) in variants.items():
        seconds = timed(fn, device, repeats)
        results[name] = {"ms": seconds * 1e3, "GB/s": nbytes / seconds / 1e9}
    copy = results["copy"]["GB/s"]
    for name, row in results.items():
        row["fraction_of_copy"] = row["GB/s"] / copy
    ratios = {f"fused_vs_{name}": results[name]["ms"] / results["fused"]["ms"]
              for name in results if name not in ("fused", "copy")}
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": str(device), "device_name": device_name, "threads": torch.get_num_threads(),
            "batch_size": batch_size, "size": size, "dtype": dtype, "repeats": repeats,
            "results": results, "speedups": ratios, "skipped": skipped}


def header(result: dict) -> str:
    """A device benchmark's first report line: the device, the batch and the repeats."""
    return (f"{result['device_name']} ({result['device']}), batch {result['batch_size']} x 3 x "
            f"{result['size']} x {result['size']} uint8 -> {result['dtype']}, median of "
            f"{result['repeats']}")


def batch_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every device benchmark takes: device, batch size, image size, repeats,
    output dtype and --json."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--dtype", choices=sorted(TORCH_DTYPES.keys() - {"uint8"}),
                        default="float16")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def open_device(name: str, program: str):
    """``torch.device(name)``, or None after one line on stderr when it cannot run here."""
    try:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("CUDA is not available here")
    except (RuntimeError, ValueError) as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return None
    return device


def report(result: dict) -> str:
    lines = [header(result)]
    for name, row in result["results"].items():
        lines.append(f"  {name:22s} {row['ms']:9.2f} ms  {row['GB/s']:8.2f} GB/s  "
                     f"{100 * row['fraction_of_copy']:6.1f}% of copy")
    for name, ratio in result["speedups"].items():
        lines.append(f"  {name:32s} {ratio:6.2f}x")
    for name, why in result["skipped"].items():
        lines.append(f"  {name}: skipped ({why})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    batch_arguments(parser)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="CPU threads for Numba and torch (FFCV's import sets both to 1)")
    args = parser.parse_args(argv)
    device = open_device(args.device, "device_bench")
    if device is None:
        return 1
    Compiler.set_num_threads(args.threads)  # numba and torch alike, as a Loader does
    result = measure(device, args.batch_size, args.size, args.repeats, args.dtype)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
