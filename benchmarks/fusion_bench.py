"""The fusion passes' benchmark: images/s of a CPU op chain compiled with the passes (one
fused step) and without (``compile_spec(..., optimize=False)``: one step per op), run with
``op.apply`` on one batch of photo crops in this process, same data, same thread count.

- ``colour``: five point maps (brightness, solarize, posterize, autocontrast, equalize), fused
  into one lookup table per channel (byte-identical output);
- ``geometry``: three affine ops (horizontal_flip, rotate, translate), fused into one warp.

Ratios, not absolutes, are the result. The first call of each variant compiles it (reported).

    .venv/bin/python benchmarks/fusion_bench.py --size 160 --batch 64 --repeats 5
"""
import argparse
import time

import numpy as np

CHAINS = {
    "colour": """
        - brightness: {strength: 0.4}
        - solarize: {threshold: 160, p: 0.5}
        - posterize: {bits: 5, p: 0.5}
        - autocontrast: {p: 0.5}
        - equalize: {p: 0.5}""",
    "geometry": """
        - horizontal_flip: {p: 0.5}
        - rotate: {degrees: 20}
        - translate: {max_fraction: 0.1}""",
}

SPEC = """\
version: 1
splits:
  train:
    image:
      decode: decode
      cpu:{ops}
"""


def photo_batch(n: int, size: int) -> np.ndarray:
    """``n`` square crops of scikit-image's bundled colour photos, resized to ``size``."""
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(rng.integers(min(photo.shape[:2]) // 2, min(photo.shape[:2]) + 1))
        y = int(rng.integers(0, photo.shape[0] - side + 1))
        x = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
        crops.append(np.asarray(crop))
    return np.stack(crops)


def run_chain(ops, images: np.ndarray) -> np.ndarray:
    for op in ops:
        images = op.apply(images)
    return images


def measure(ops, images: np.ndarray, repeats: int) -> dict:
    """First call (compiles) and the best of ``repeats`` timed calls, as images/s."""
    start = time.perf_counter()
    run_chain(ops, images)
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run_chain(ops, images)
        best = min(best, time.perf_counter() - start)
    return {"images_per_s": len(images) / best, "first_call_s": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="Numba threads (prange over the batch)")
    args = parser.parse_args()

    from ffcv.pipeline.compiler import Compiler

    from compiler import compile_spec

    Compiler.set_num_threads(args.threads)
    images = photo_batch(args.batch, args.size)
    print(f"{args.batch} images of {args.size}x{args.size}, {args.threads} thread(s), best of "
          f"{args.repeats}\n")
    print(f"{'chain':<10}{'steps':>6}{'fused/s':>10}{'steps':>6}{'unfused/s':>11}{'ratio':>7}"
          f"{'compile fused/unfused':>24}")
    for name, ops in CHAINS.items():
        spec = SPEC.format(ops=ops)
        fused = [s.op for s in compile_spec(spec, device="cpu").cpu_steps]
        plain = [s.op for s in compile_spec(spec, device="cpu", optimize=False).cpu_steps]
        a, b = measure(fused, images, args.repeats), measure(plain, images, args.repeats)
        if name == "colour":
            assert np.array_equal(run_chain(fused, images), run_chain(plain, images))
        print(f"{name:<10}{len(fused):>6}{a['images_per_s']:>10.0f}{len(plain):>6}"
              f"{b['images_per_s']:>11.0f}{a['images_per_s'] / b['images_per_s']:>7.2f}"
              f"{a['first_call_s']:>14.1f}s /{b['first_call_s']:>5.1f}s")


if __name__ == "__main__":
    main()
