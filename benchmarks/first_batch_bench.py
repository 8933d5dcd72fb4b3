"""Time to the first batch of a fresh process (issue 25): from the moment the process is
started (interpreter start and imports included) to the first batch of a spec's loader,
with batch ops applied, on a CPU device.

Every run is a new process; the parent measures the wall time from spawning it to the line
the child prints after its first batch, and the child reports where its time went (import,
compile_spec, building the Loader, the first batch). Modes:

- ``cold``: an empty user cache (``PUREFFCV_CACHE_DIR`` a new directory: what
  ``pureffcv cache clear`` leaves), so every entry not built by ``make install`` compiles;
- ``warm``: the same directory again, filled by the cold run before it.

With ``--processes N`` the cold run starts N processes at once on one empty cache (DDP ranks,
several jobs on one node) and reports each one's time.

    .venv/bin/python benchmarks/first_batch_bench.py --beton photos.beton --pairs 2
    .venv/bin/python benchmarks/first_batch_bench.py --beton photos.beton --processes 4 --pairs 1
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "hybrid_policy.yaml"


def child(args) -> None:
    """The measured process: one JSON line after the first batch."""
    started = time.perf_counter()
    from compiler import compile_spec

    imported = time.perf_counter()
    compiled = compile_spec(args.spec, device="cpu")
    planned = time.perf_counter()
    loader = compiled.loader(args.beton, batch_size=args.batch_size, num_workers=args.workers)
    built = time.perf_counter()
    for images, labels in loader:
        for op in compiled.batch_ops:
            images, labels = op(images, labels)
        break
    done = time.perf_counter()
    print(json.dumps({"import_s": imported - started, "compile_spec_s": planned - imported,
                      "loader_s": built - planned, "first_batch_s": done - built}), flush=True)


def spawn(args, cache_dir: str) -> subprocess.Popen:
    env = dict(os.environ, PUREFFCV_CACHE_DIR=cache_dir)
    command = [sys.executable, __file__, "--child", "--beton", args.beton, "--spec",
               str(args.spec), "--workers", str(args.workers), "--batch-size",
               str(args.batch_size)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)


def wait(process: subprocess.Popen, started: float) -> dict:
    line = process.stdout.readline()
    total = time.perf_counter() - started
    _, err = process.communicate()
    if process.returncode != 0 or not line:
        raise SystemExit(f"child failed ({process.returncode}): {err.strip()[-2000:]}")
    return {"total_s": total, **json.loads(line)}


def run(args, mode: str, cache_dir: str, count: int = 1) -> list:
    started = time.perf_counter()
    processes = [spawn(args, cache_dir) for _ in range(count)]
    return [{"mode": mode, **wait(p, started)} for p in processes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beton", required=True)
    parser.add_argument("--spec", default=str(SPEC))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=1, help="cold + warm runs")
    parser.add_argument("--processes", type=int, default=1,
                        help="processes started together on the cold cache")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    rows = []
    for _ in range(args.pairs):
        with tempfile.TemporaryDirectory() as cache_dir:
            rows += run(args, "cold", cache_dir, args.processes)
            rows += run(args, "warm", cache_dir)
    print(f"{'mode':<6}{'total':>8}{'import':>8}{'compile':>9}{'loader':>8}{'batch':>8}  (s)")
    for row in rows:
        print(f"{row['mode']:<6}{row['total_s']:>8.1f}{row['import_s']:>8.1f}"
              f"{row['compile_spec_s']:>9.2f}{row['loader_s']:>8.1f}{row['first_batch_s']:>8.1f}")


if __name__ == "__main__":
    main()
