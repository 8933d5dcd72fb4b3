"""`pureffcv demo --task segmentation --quick` end to end: the shapes data drawn, converted and
cached, the preview written, validation mIoU well above predicting background everywhere, and
a second run reusing the data."""
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.demo_segmentation import QUICK

PUREFFCV = str(Path(sys.executable).with_name("pureffcv"))


@pytest.mark.timeout(900)
def test_quick_segmentation_demo_beats_all_background_and_reuses_its_data(tmp_path):
    # one loader thread: FFCV sets torch's threads to it, and on a shared 2-core machine two
    # OpenMP threads of training against other processes ran 30x slower
    done = subprocess.run([PUREFFCV, "demo", "--task", "segmentation", "--quick", "--workers",
                           "1", "--cache", str(tmp_path)], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()
    first = summary[-3]
    miou = float(first.split("validation mIoU ")[1].split("%")[0]) / 100
    background = float(first.split("all background: ")[1].split("%")[0]) / 100
    assert 0.15 < background < 0.25  # about 80% of the pixels are background, 1 class of 4
    assert miou >= background + 0.12  # measured: 41% against 20%
    run_dir = Path(summary[-2].removeprefix("run: "))
    assert run_dir.parent == tmp_path / "runs" and (run_dir / "logs").is_dir()
    assert Path(summary[-1].removeprefix("preview: ")).is_file()
    data = tmp_path / "demo_segmentation" / QUICK.name
    for split, count in (("train", QUICK.train), ("val", QUICK.val)):
        assert len(list((data / "images" / split / "images").glob("*.jpg"))) == count
        assert len(list((data / "images" / split / "masks").glob("*.png"))) == count
    beton_time = (data / "train.beton").stat().st_mtime

    from pipelines.demo_segmentation import prepare_data

    prepare_data(QUICK, tmp_path)  # a second run converts nothing
    assert (data / "train.beton").stat().st_mtime == beton_time
