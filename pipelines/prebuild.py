"""Compile the built-in entries once per installation (``pureffcv cache build``; ``make
install`` runs it): every split of every shipped spec runs one batch on a CPU device over a
small generated .beton of JPEGs, in a child process whose cache directory is the built-in
entries' (``operations.cache.builtin_root``), so the C entries of every built-in op they use,
FFCV's OS-cache reader and the Numba helpers importing FFCV compiles, are kept there. A first
process on the machine then loads them instead of compiling for about a minute, also after
``pureffcv cache clear`` (which leaves them). Specs with other ops or dtypes compile what they add, once, into the
user's cache as before.

    python -m pipelines.prebuild            # what `pureffcv cache build` runs in its child
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

from operations.errors import PureffcvError

ROOT = Path(__file__).resolve().parents[1]
#: the shipped specs whose entries are built in
SHIPPED_SPECS = ROOT / "specs"


class PrebuildError(PureffcvError, RuntimeError):
    """Building the built-in entries failed."""


def shipped_specs() -> List[Path]:
    return sorted(SHIPPED_SPECS.glob("*.yaml"))


def build(specs: List[Path] = None) -> Tuple[int, float]:
    """Run ``python -m pipelines.prebuild`` with the built-in entries' directory as its
    cache; returns (splits run, seconds). Raises PrebuildError (one line) if it fails."""
    from operations import cache

    specs = shipped_specs() if specs is None else specs
    root = cache.builtin_root()
    env = dict(os.environ, PUREFFCV_CACHE_DIR=str(root), PUREFFCV_CACHE="1")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipelines.prebuild", *map(str, specs)],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PrebuildError(f"building the built-in entries failed: {reason}")
    return int(done.stdout.split()[0]), time.perf_counter() - started


def run_splits(specs: List[Path], beton: Path) -> int:
    """One batch of every split of ``specs`` on the CPU (batch ops applied); the count."""
    from compiler import compile_spec, load_spec

    count = 0
    for path in specs:
        spec = load_spec(path)
        for split in spec.splits:
            compiled = compile_spec(spec, split=split, device="cpu")
            # os_cache: its reader is kept in the cache (ffcv_patches); the process cache's
            # is compiled by FFCV in every process anyway
            loader = compiled.loader(beton, batch_size=4, num_workers=1, order="sequential",
                                     drop_last=False, os_cache=True, distributed=False)
            for images, *rest in loader:  # labels and targets, as the split reads
                for op in compiled.batch_ops:
                    images, _ = op(images, rest[0])
                break
            count += 1
    return count


def small_jpeg_beton(folder: Path) -> Path:
    """8 JPEGs of 72x56 with structure, labels 0..7 and masks of 4 classes (for specs with
    a mask target), in ``folder``/small.beton."""
    import numpy as np
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    from operations.cpu.mask_field import MaskField

    y, x = np.mgrid[0:56, 0:72]
    images = [np.stack([(x * 3 + i * 20) % 256, (y * 4) % 256, (x + y + 40 * i) % 256],
                       axis=-1).astype(np.uint8) for i in range(8)]

    class Samples:
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return images[i], i, ((y // 14 + x // 18 + i) % 4).astype(np.uint8)

    path = folder / "small.beton"
    writer = DatasetWriter(str(path), {"image": RGBImageField(write_mode="jpg"),
                                       "label": IntField(), "mask": MaskField()}, num_workers=1)
    writer.from_indexed_dataset(Samples(), chunksize=8)
    return path


def main(argv: List[str]) -> None:
    import warnings

    warnings.filterwarnings("ignore")  # specs asking for more workers than this machine runs
    specs = [Path(a) for a in argv] or shipped_specs()
    with tempfile.TemporaryDirectory() as tmp:
        print(run_splits(specs, small_jpeg_beton(Path(tmp))))


if __name__ == "__main__":
    main(sys.argv[1:])
