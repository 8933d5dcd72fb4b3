"""Where a CPU-device pipeline's time goes, step by step: the wall time of each parallel JIT
step (the decoder, a CPU op, a chain) per image, over the steady epochs of one loader, and
what is left between them (FFCV's per-batch glue, the epoch starts).

Every JIT step runs through a cached C entry (``pointers.by_pointer``); this script wraps
the entries the loader builds with a timer, so it measures the loader as it runs (with the
timers' negligible cost). ``--threads 1 --workers 1`` gives each step's cost on one core.

    .venv/bin/python benchmarks/jit_steps_bench.py photos.beton --epochs 3
    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/jit_steps_bench.py photos.beton --workers 1
"""
import argparse
import collections
import time

from operations import batch_loop, pointers
from operations.cpu import decode_loop, decoders, fused
from operations.device import batch

#: the modules whose steps build their entries with ``by_pointer``
STEP_MODULES = (batch_loop, fused, decode_loop, decoders, batch)


def timed_entries() -> dict:
    """Replace ``by_pointer`` in the step modules by a version whose entries add their wall
    time to the returned table (seconds and calls by step name)."""
    table = collections.defaultdict(lambda: [0.0, 0])
    build = pointers.by_pointer

    def timed_by_pointer(function, *args, **kwargs):
        run = build(function, *args, **kwargs)
        cells = getattr(getattr(function, "py_func", function), "__closure__", None) or ()
        parts = [getattr(c.cell_contents, "__name__", "") for c in cells
                 if callable(c.cell_contents)]
        name = f"{function.__name__}({', '.join(p for p in parts if p)})"

        def timed(*arguments):
            start = time.perf_counter()
            result = run(*arguments)
            entry = table[name]
            entry[0] += time.perf_counter() - start
            entry[1] += 1
            return result
        return timed

    for module in STEP_MODULES:
        module.by_pointer = timed_by_pointer
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("beton")
    parser.add_argument("--spec", default="specs/hybrid_policy.yaml")
    parser.add_argument("--split", default="train")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one more)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    table = timed_entries()
    from compiler import compile_spec  # after the patch: the loader's steps build entries
    from pipelines import loading

    pipeline = compile_spec(args.spec, split=args.split, device="cpu")
    loader = pipeline.loader(args.beton, order="random", drop_last=False,
                             num_workers=args.workers, batch_size=args.batch_size)
    images_seen, start = 0, time.perf_counter()
    for epoch in range(args.epochs + 1):
        if epoch == 1:  # the first epoch compiles
            table.clear()
            images_seen, start = 0, time.perf_counter()
        pipeline.set_epoch(epoch)
        for images, labels in loading.epoch(loader):
            for op in pipeline.batch_ops:
                images, labels = op(images, labels)
            images_seen += len(images)
    wall = (time.perf_counter() - start) / images_seen * 1e6
    print(f"{args.spec} [{args.split}] on cpu, {args.workers} workers, batch "
          f"{args.batch_size}: {1e6 / wall:,.0f} images/s, {wall:.0f} µs an image")
    steps = 0.0
    for name, (seconds, calls) in table.items():
        steps += seconds
        print(f"  {seconds / images_seen * 1e6:7.1f} µs  {name}  ({calls} calls)")
    print(f"  {wall - steps / images_seen * 1e6:7.1f} µs  between the steps")


if __name__ == "__main__":
    main()
