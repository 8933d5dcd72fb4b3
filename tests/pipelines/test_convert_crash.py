"""``convert`` is crash-safe: a conversion killed with SIGKILL leaves no live writer process
behind, and the next run removes its ``.partial`` file and shared-memory segment; a folder
with symbolic-link loops converts each real image once."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.beton import open_beton
from pipelines.convert import convert
from pipelines.convert.cleanup import remove_stale_partials
from pipelines.convert.folders import scan_image_folder

REPO = Path(__file__).resolve().parents[2]


def children_of(pid: int) -> list:
    """Live (non-zombie) processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def is_live(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def shm_segments() -> set:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """2 classes x 60 smooth 384x384 PNGs (slow enough to write that a kill lands mid-write)."""
    root = tmp_path_factory.mktemp("crash") / "src"
    y, x = np.mgrid[0:384, 0:384]
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(60):
            image = np.stack([(x + i) % 256, (y + 3 * i) % 256, (x + y + 50 * c) % 256], -1)
            Image.fromarray(image.astype(np.uint8)).save(root / f"class{c}" / f"{i:03}.png")
    return root


def test_a_killed_convert_leaves_nothing_a_rerun_does_not_clean(folder, tmp_path):
    out = tmp_path / "data.beton"
    segments_before = shm_segments()
    process = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "convert", str(folder),
                                str(out), "--workers", "2", "--write-mode", "jpg"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = out.with_name(f".{out.name}.{process.pid}.partial")
    note = partial.with_name(partial.name + ".shm")
    deadline = time.monotonic() + 120
    writers = []
    while time.monotonic() < deadline and process.poll() is None:
        if note.exists() and partial.exists():
            writers = children_of(process.pid)
            if len(writers) >= 2:  # FFCV's writer workers are running
                break
        time.sleep(0.01)
    assert process.poll() is None and writers, "convert finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert partial.exists()  # the kill left it: nothing cleaned up in the killed process
    deadline = time.monotonic() + 20
    while any(map(is_live, writers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in writers if is_live(pid)], "writer processes outlived convert"

    removed = remove_stale_partials(out)
    assert partial in removed and note in removed
    assert not list(tmp_path.glob(".*partial*"))
    assert not (shm_segments() - segments_before), "a shared-memory segment was left behind"

    result = convert(folder, out, workers=2, write_mode="jpg")  # the rerun succeeds
    assert result.written == 120 and open_beton(out).num_samples == 120
    assert not list(tmp_path.glob(".*partial*"))


def test_a_rerun_removes_stale_partials_of_dead_processes_only(tmp_path):
    out = tmp_path / "data.beton"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".data.beton.{dead}.partial"
    stale.write_bytes(b"half a file")
    live = tmp_path / f".data.beton.{os.getppid()}.partial"  # a running conversion's file
    live.write_bytes(b"being written")
    other = tmp_path / f".other.beton.{dead}.partial"  # another output's file
    other.write_bytes(b"not ours")
    assert remove_stale_partials(out) == [stale]
    assert live.exists() and other.exists() and not stale.exists()


def test_symlink_loops_are_not_followed_and_each_real_image_is_stored_once(tmp_path):
    root = tmp_path / "src"
    for c in ("cat", "dog"):
        (root / c / "sub").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / c / "sub" / f"{i}.png")
    os.symlink(root / "cat", root / "cat" / "sub" / "loop")  # cat/sub/loop -> cat
    os.symlink("..", root / "dog" / "sub" / "up")  # dog/sub/up -> dog
    os.symlink(root / "dog" / "sub", root / "dog" / "again")  # a second way to dog/sub
    os.symlink(root / "cat" / "sub" / "0.png", root / "cat" / "link.png")  # a linked file
    paths, labels, classes = scan_image_folder(root)
    assert classes == {"cat": 0, "dog": 1}
    real = [os.path.realpath(p) for p in paths]
    assert len(real) == len(set(real)) == 6  # each real image once
    assert labels == [0, 0, 0, 1, 1, 1]
    result = convert(root, tmp_path / "loops.beton", workers=1, write_mode="raw")
    assert result.written == 6
