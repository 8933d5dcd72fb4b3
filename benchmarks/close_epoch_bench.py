"""What stopping an epoch early costs: after the first batch of a spec's loader on a CPU
device, the time ``break`` takes to stop and join FFCV's loader thread, and how many batches
that thread computed in all (FFCV's ``EpochIterator.run_pipeline`` calls, counted).

    .venv/bin/python benchmarks/close_epoch_bench.py small.beton --batch-size 8 --epochs 3
"""
import argparse
import time
from pathlib import Path

from ffcv.loader.epoch_iterator import EpochIterator

from compiler import compile_spec

SPEC = Path(__file__).resolve().parents[1] / "specs" / "hybrid_policy.yaml"


def count_batches() -> list:
    """Patch ``EpochIterator.run_pipeline`` to append each batch's index to the returned list."""
    computed = []
    run_pipeline = EpochIterator.run_pipeline

    def counted(self, b_ix, *args):
        computed.append(b_ix)
        return run_pipeline(self, b_ix, *args)

    EpochIterator.run_pipeline = counted
    return computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("beton")
    parser.add_argument("--spec", default=str(SPEC))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="early-stopped epochs")
    args = parser.parse_args()

    computed = count_batches()
    loader = compile_spec(args.spec, device="cpu").loader(
        args.beton, batch_size=args.batch_size, num_workers=args.workers)
    for epoch in range(args.epochs):
        computed.clear()
        batches = iter(loader)
        next(batches)
        started = time.perf_counter()
        batches.close()  # what `break` in a for loop does
        print(f"epoch {epoch}: stopping took {time.perf_counter() - started:.3f} s; the "
              f"thread computed {len(computed)} of the epoch's {len(loader)} batches")


if __name__ == "__main__":
    main()
