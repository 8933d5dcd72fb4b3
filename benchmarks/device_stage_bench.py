"""Device-stage throughput: the steps a Loader runs after ToDevice on one batch, as FFCV calls
them, in images/s: normalize_flip (uint8 -> ``--dtype``, flips, channels_last),
device_random_erasing (p 0.25, in place) and mixup_cutmix (DeiT's recipe, in place).

Input: a uint8 channels_last batch (default 256 x 3 x 224 x 224) already on ``--device`` (the
host-to-device copy is the Loader's, not timed here). Each figure is the median of
``--repeats`` timed runs after a warm-up, synchronised on CUDA. Needs no FFCV.

    python benchmarks/device_stage_bench.py --device cuda:0 --json
    python benchmarks/device_stage_bench.py --device cpu --batch-size 32 --repeats 3
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from device_bench import batch_arguments, header, open_device, timed  # noqa: E402
from operations import EpochClock  # noqa: E402
from operations.cpu.erasing import RandomErasingOnDevice  # noqa: E402
from operations.device.mix import MixupCutmix  # noqa: E402
from operations.device.normalize import NormalizeFlip  # noqa: E402
from operations.device.stage import TORCH_DTYPES  # noqa: E402


def measure(device: torch.device, batch_size: int, size: int, repeats: int, dtype: str) -> dict:
    clock = EpochClock(0, 0)
    fused, erasing = NormalizeFlip(dtype=dtype, p=0.5), RandomErasingOnDevice(p=0.25)
    mixing = MixupCutmix(num_classes=1000)
    for position, op in enumerate((fused, erasing, mixing)):
        op.bind(clock, position)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, size, size, 3), dtype=torch.uint8,
                           generator=generator).to(device).permute(0, 3, 1, 2)
    labels = (torch.arange(batch_size) % 1000).to(device)
    indices = np.arange(batch_size)
    dst = torch.empty((batch_size, size, size, 3), dtype=TORCH_DTYPES[dtype], device=device)
    normalize_step, erasing_step = fused.generate_code(), erasing.generate_code()
    floats = normalize_step(images, dst, indices)

    def whole_stage():
        out = erasing_step(normalize_step(images, dst, indices), None, indices)
        return mixing(out, labels)

    steps = {"normalize_flip": lambda: normalize_step(images, dst, indices),
             "device_random_erasing": lambda: erasing_step(floats, None, indices),
             "mixup_cutmix": lambda: mixing(floats, labels),
             "stage": whole_stage}
    results = {}
    for name, step in steps.items():
        seconds = timed(step, device, repeats)
        results[name] = {"ms": seconds * 1e3, "images/s": batch_size / seconds}
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": str(device), "device_name": device_name, "batch_size": batch_size,
            "size": size, "dtype": dtype, "repeats": repeats, "results": results}


def report(result: dict) -> str:
    lines = [header(result)]
    for name, row in result["results"].items():
        lines.append(f"  {name:22s} {row['ms']:9.2f} ms  {row['images/s']:12.0f} images/s")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    batch_arguments(parser)
    args = parser.parse_args(argv)
    device = open_device(args.device, "device_stage_bench")
    if device is None:
        return 1
    result = measure(device, args.batch_size, args.size, args.repeats, args.dtype)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
