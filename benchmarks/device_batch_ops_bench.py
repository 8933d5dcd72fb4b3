"""device_random_erasing and mixup/cutmix (issue 14): the in-place, boxes-only ops against the
whole-batch form they replaced (copy the batch, float64 mean of every image, a full-batch
``torch.where`` per rectangle; mixup/cutmix through ``images.flip(0)`` copies), written out
here as the baseline. Median of ``--repeats`` calls, us per image, one run, same batch.

    .venv/bin/python benchmarks/device_batch_ops_bench.py --batch-size 64 --size 224 --threads 1
"""
import argparse
import time

import numpy as np
import torch

import operations  # noqa: F401  (registers the ops)
from operations import EpochClock
from operations.device import rng
from operations.cpu.erasing import RandomErasingOnDevice, erasing_boxes
from operations.device.mix import Cutmix, Mixup, cutmix_box


def whole_batch_erasing(op, images, indices):
    """The former forward: every pixel of the batch read and written per rectangle."""
    out = images.clone()
    keys = rng.derive(op.sample_keys(torch.from_numpy(indices)), 1)
    erased = rng.uniform(keys, 0) < op.params["p"]
    b, c, height, width = images.shape
    ys = torch.arange(height).view(1, height, 1)
    xs = torch.arange(width).view(1, 1, width)
    means = images.to(torch.float64).sum((2, 3), keepdim=True) / (height * width)
    boxes = erasing_boxes(keys, 1, height, width, op.params["scale"], op.params["ratio"])
    y, x, h, w = (t.view(b, 1, 1) for t in boxes)
    inside = (ys >= y) & (ys < y + h) & (xs >= x) & (xs < x + w) & erased.view(b, 1, 1)
    fill = (means.to(images.dtype) if op.params["value"] == "mean"
            else torch.zeros((), dtype=images.dtype))
    out.copy_(torch.where(inside.unsqueeze(1), fill, out))
    return out


def whole_batch_mix(images, lam, cutmix):
    if cutmix:
        y0, y1, x0, x1 = cutmix_box(np.uint64(1), lam, *images.shape[-2:])
        mixed = images.clone()
        mixed[..., y0:y1, x0:x1] = images.flip(0)[..., y0:y1, x0:x1]
        return mixed
    return torch.lerp(images.flip(0), images, lam)


def median_us(function, repeats, images):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e6 * float(np.median(times)) / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    b = args.batch_size
    images = torch.rand(b, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    indices = np.arange(b)
    print(f"float32 batch {b} x 3 x {args.size} x {args.size}, {args.threads} thread(s), "
          f"us per image (median of {args.repeats})")
    print(f"{'op':<24}{'whole batch':>12}{'in place':>10}{'speed-up':>10}")
    for value in ("zero", "mean"):
        op = RandomErasingOnDevice(p=0.5, value=value)
        op.bind(EpochClock(0, 0), 1)
        step = op.generate_code()
        old = median_us(lambda: whole_batch_erasing(op, images, indices), args.repeats, b)
        new = median_us(lambda: step(images, None, indices), args.repeats, b)
        print(f"{'erasing ' + value:<24}{old:>12.0f}{new:>10.0f}{old / new:>9.1f}x")
    for name, op in (("mixup", Mixup(num_classes=10)), ("cutmix", Cutmix(num_classes=10))):
        op.bind(EpochClock(0, 0), 1)
        labels = torch.arange(b) % 10
        old = median_us(lambda: whole_batch_mix(images, 0.7, name == "cutmix"), args.repeats, b)
        new = median_us(lambda: op(images, labels), args.repeats, b)
        print(f"{name:<24}{old:>12.0f}{new:>10.0f}{old / new:>9.1f}x")


if __name__ == "__main__":
    main()
