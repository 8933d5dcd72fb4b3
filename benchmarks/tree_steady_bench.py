"""Steady-state images/s of one spec in two (or more) source trees, in alternating fresh
processes: did a change cost speed? Check out the trees first, e.g. with
``git worktree add /tmp/before <commit>`` (and copy the built ``operations/cpu/_roi_jpeg*.so``
into each, or build it there).

    .venv/bin/python benchmarks/tree_steady_bench.py --beton photos.beton --trees /tmp/before .
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def child(tree: str, beton: str, spec: str, epochs: int) -> None:
    """One measurement in this (fresh) process, importing pureffcv from ``tree``."""
    sys.path.insert(0, tree)
    from compiler import compile_spec
    from pipelines.loading import epoch

    compiled = compile_spec(str(Path(tree) / spec), device="cpu")
    loader = compiled.loader(beton, batch_size=64, num_workers=2, order="sequential",
                             drop_last=False, distributed=False)
    times = []
    for e in range(epochs):
        compiled.set_epoch(e)
        started = time.perf_counter()
        for _ in epoch(loader):
            pass
        times.append(time.perf_counter() - started)
    print(json.dumps({"first_epoch_s": times[0],
                      "steady": len(loader.indices) / statistics.median(times[1:])}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beton", required=True)
    parser.add_argument("--trees", nargs="+", required=True)
    parser.add_argument("--spec", default="specs/hybrid_policy.yaml", help="inside each tree")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5, help="per process; the first compiles")
    parser.add_argument("--child", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.beton, args.spec, args.epochs)

    env = dict(os.environ, PUREFFCV_CACHE="0")  # compile everything: the same work in each
    results = {str(Path(tree).resolve()): [] for tree in args.trees}
    for _ in range(args.rounds):
        for tree in results:
            done = subprocess.run([sys.executable, __file__, "--beton", args.beton, "--spec",
                                   args.spec, "--epochs", str(args.epochs), "--trees", tree,
                                   "--child", tree],
                                  env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{tree} failed:\n{done.stderr[-3000:]}")
            results[tree].append(json.loads(done.stdout.strip().splitlines()[-1])["steady"])
    for tree, rates in results.items():
        print(f"{tree:<50} " + "  ".join(f"{r:7.0f}" for r in rates) + "  images/s")


if __name__ == "__main__":
    main()
