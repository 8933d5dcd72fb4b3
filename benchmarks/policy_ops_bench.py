"""TrivialAugmentWide's 14 ops one by one (issue 14): us per image on one core, best of
``--repeats`` runs of ``--calls`` calls, on a photo-like image (gradients + noise) of
``--size`` px. The policy's cost per image is the mean of the 14 (one op per image, uniform).

    .venv/bin/python benchmarks/policy_ops_bench.py --size 160
"""
import argparse
import time

import numpy as np
from ffcv.pipeline.compiler import Compiler
from numba import njit

from operations.cpu import policies, policy_ops

#: a mid-range magnitude per op (the op's cost hardly depends on it)
MAGNITUDES = {"ShearX": 0.5, "ShearY": 0.5, "TranslateX": 10.0, "TranslateY": 10.0,
              "Rotate": 30.0, "Brightness": 0.3, "Color": 0.3, "Contrast": 0.3,
              "Sharpness": 0.3, "Posterize": 4.0, "Solarize": 128.0}


@njit
def repeat(code, magnitude, src, dst, calls):
    for _ in range(calls):
        policy_ops.apply_policy_op(code, magnitude, src, dst, 0)


def photo_like(size: int) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size]
    image = np.stack([xs * 255 // size, ys * 255 // size, (xs + ys) * 127 // size], -1)
    noise = np.random.default_rng(0).integers(-20, 20, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    Compiler.set_num_threads(1)
    image = photo_like(args.size)
    out = np.empty_like(image)
    print(f"{args.size} px, one core, us per image (best of {args.repeats} x {args.calls})")
    total = 0.0
    for code, name in enumerate(policy_ops.OP_NAMES[:len(policies.TRIVIAL_AUGMENT_WIDE)]):
        magnitude = MAGNITUDES.get(name, 0.0)
        repeat(code, magnitude, image, out, 1)
        best = np.inf
        for _ in range(args.repeats):
            start = time.perf_counter()
            repeat(code, magnitude, image, out, args.calls)
            best = min(best, (time.perf_counter() - start) / args.calls)
        total += best
        print(f"{name:<14}{1e6 * best:8.1f}")
    print(f"{'mean of 14':<14}{1e6 * total / len(policies.TRIVIAL_AUGMENT_WIDE):8.1f}")


if __name__ == "__main__":
    main()
