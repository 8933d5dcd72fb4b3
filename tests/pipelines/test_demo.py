"""`pureffcv demo --quick` end to end: data built and cached, preview written, accuracy well
above chance, and a second run reusing the data."""
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pipelines.demo import QUICK
from pipelines.demo_data import PHOTOS

PUREFFCV = str(Path(sys.executable).with_name("pureffcv"))


@pytest.mark.timeout(900)
def test_quick_demo_trains_well_above_chance_and_reuses_its_data(tmp_path):
    done = subprocess.run([PUREFFCV, "demo", "--quick", "--cache", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()
    top1 = float(summary[-3].split("validation top-1 ")[1].split("%")[0]) / 100
    assert top1 >= 0.4  # chance is 1/8 = 0.125
    run_dir = Path(summary[-2].removeprefix("run: "))
    assert run_dir.parent == tmp_path / "runs" and (run_dir / "logs").is_dir()
    with Image.open(summary[-1].removeprefix("preview: ")) as grid:
        # 16 cells in 4 columns of (64 px original | 64 px augmented) pairs, with label strips
        assert grid.width > 4 * 2 * 64 and grid.height > 4 * 64
    data = tmp_path / "demo" / QUICK.name
    for split, per_class in (("train", QUICK.train_per_class), ("val", QUICK.val_per_class)):
        for name in PHOTOS:
            assert len(list((data / "images" / split / name).glob("*.jpg"))) == per_class
    beton_time = (data / "train.beton").stat().st_mtime

    from pipelines.demo import prepare_data

    prepare_data(QUICK, tmp_path)  # a second run converts nothing
    assert (data / "train.beton").stat().st_mtime == beton_time


def test_an_unusable_cache_folder_is_one_line(tmp_path, capsys):
    from pipelines.cli import main

    cache = tmp_path / "cache"
    cache.write_text("a file, not a folder")
    assert main(["demo", "--quick", "--cache", str(cache)]) == 1
    assert capsys.readouterr().err == (f"pureffcv demo: {cache}/demo/quick/images/train/"
                                       f"{PHOTOS[0]}: Not a directory\n")
