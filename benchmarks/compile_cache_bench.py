"""Compile once per machine (issue 15): a *second* process's first epoch and steady-state
images/s, with pureffcv's on-disk Numba cache (operations/cache.py) and without it.

Every measurement is a fresh process running the same spec on the same .beton:

- ``uncached``: ``PUREFFCV_CACHE=0``, every kernel compiles (today's behaviour);
- ``cached``: the kernels' C entries (``operations/pointers.py``) load from a cache directory
  filled by the first ``cached`` process (which is reported as ``cache fill``).

The runs alternate (uncached, cached, uncached, cached, ...) so that a slow spell of a shared
machine hits both; the table reports each run and the median ratios.

    .venv/bin/python benchmarks/compile_cache_bench.py                     # hybrid spec, 2 pairs
    .venv/bin/python benchmarks/compile_cache_bench.py --spec benchmarks/policy_160.yaml --pairs 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "hybrid_policy.yaml"


def child(args) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    started = time.perf_counter()
    import operations  # noqa: F401  (FFCV patches first)
    from compiler import compile_spec
    from pipelines.loading import epoch

    imported = time.perf_counter() - started
    compiled = compile_spec(args.spec, device="cpu")
    loader = compiled.loader(args.beton, batch_size=args.batch_size, num_workers=args.workers,
                             order="sequential", drop_last=False, distributed=False)
    count = len(loader.indices)
    times = []
    for e in range(args.epochs):
        compiled.set_epoch(e)
        t0 = time.perf_counter()
        for _ in epoch(loader):
            pass
        times.append(time.perf_counter() - t0)
    print(json.dumps({"mode": args.mode, "import_s": imported, "first_epoch_s": times[0],
                      "steady_images_per_s": count / statistics.median(times[1:]),
                      "images": count}))


def measure(mode: str, args, cache_dir: str) -> dict:
    env = dict(os.environ, PUREFFCV_CACHE_DIR=cache_dir,
               PUREFFCV_CACHE="1" if mode == "cached" else "0")
    command = [sys.executable, __file__, "--child", mode, "--beton", args.beton, "--spec",
               str(args.spec), "--epochs", str(args.epochs), "--workers", str(args.workers),
               "--batch-size", str(args.batch_size)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_beton(folder: Path, per_class: int) -> str:
    from pipelines.convert import convert
    from pipelines.demo_data import build_demo_images

    images = build_demo_images(folder, {"train": per_class})["train"]
    beton = folder / "photos.beton"
    convert(images, beton, write_mode="jpg", jpeg_quality=90)
    return str(beton)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--beton", help="data (default: demo photo crops, 8 classes)")
    parser.add_argument("--images-per-class", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=2, help="uncached/cached pairs")
    parser.add_argument("--epochs", type=int, default=4, help="per process; the first compiles")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--child", choices=("cached", "uncached"), help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        return child(args)

    with tempfile.TemporaryDirectory() as tmp:
        if args.beton is None:
            args.beton = build_beton(Path(tmp), args.images_per_class)
        cache_dir = str(Path(tmp) / "numba-cache")
        runs = [dict(measure("cached", args, cache_dir), mode="cache fill")]
        for _ in range(args.pairs):
            runs.append(measure("uncached", args, cache_dir))
            runs.append(measure("cached", args, cache_dir))
    uncached = [r for r in runs if r["mode"] == "uncached"]
    cached = [r for r in runs if r["mode"] == "cached"]
    summary = {
        "spec": str(args.spec), "workers": args.workers, "images": runs[0]["images"],
        "runs": runs,
        "first_epoch_uncached_s": statistics.median(r["first_epoch_s"] for r in uncached),
        "first_epoch_cached_s": statistics.median(r["first_epoch_s"] for r in cached),
        "steady_cached_over_uncached": statistics.median(
            c["steady_images_per_s"] / u["steady_images_per_s"] for u, c in zip(uncached, cached)),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{args.spec.name}, {summary['images']} images, {args.workers} workers, "
          f"{args.epochs} epochs per process")
    print(f"{'run':<12}{'import s':>10}{'1st epoch s':>13}{'steady img/s':>14}")
    for r in runs:
        print(f"{r['mode']:<12}{r['import_s']:>10.1f}{r['first_epoch_s']:>13.1f}"
              f"{r['steady_images_per_s']:>14.0f}")
    print(f"first epoch, median: uncached {summary['first_epoch_uncached_s']:.1f} s, cached "
          f"{summary['first_epoch_cached_s']:.1f} s; steady cached/uncached "
          f"{summary['steady_cached_over_uncached']:.3f}")


if __name__ == "__main__":
    main()
