"""What a conversion killed mid-way leaves behind, and its removal.

The ``.beton`` is written to a hidden ``.OUT.beton.<pid>.partial`` file in the same directory
and renamed at the end, so an interrupted or failed conversion never leaves a half-written
file under the final name. A conversion killed with SIGKILL runs no cleanup of its own: the
name of FFCV's shared-memory segment is noted beside the ``.partial`` (``.partial.shm``), and
each run first removes the ``.partial`` files, notes and segments of conversions to the same
output whose process is dead (``remove_stale_partials``).
"""
import os
import re
from pathlib import Path
from typing import List

_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.partial(?:\.shm)?$")


def partial_path(out: Path) -> Path:
    """This process's temporary file for ``out``."""
    return out.with_name(f".{out.name}.{os.getpid()}.partial")


def segment_note(partial: Path) -> Path:
    """Where the name of FFCV's shared-memory segment for ``partial`` is noted."""
    return partial.with_name(partial.name + ".shm")


def remove_stale_partials(out: Path) -> List[Path]:
    """Remove what conversions to ``out`` that were killed left behind: their ``.partial``
    files, shared-memory notes and segments, when the process that wrote them is dead (a live
    one, another conversion running, is left alone). Returns the files removed."""
    removed = []
    for path in sorted(out.parent.glob(f".{out.name}.*.partial*")):
        match = _PARTIAL.match(path.name)
        if not match or match["name"] != out.name or _alive(int(match["pid"])):
            continue
        if path.name.endswith(".shm"):
            _unlink_segment(path)
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    try:  # a zombie is dead for this purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def _unlink_segment(note: Path) -> None:
    """Unlink the shared-memory segment named in ``note`` (nothing if it is gone)."""
    try:
        name = note.read_text().strip()
    except OSError:
        return
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return  # not a name FFCV wrote: touch nothing
    try:
        from multiprocessing import shared_memory

        segment = shared_memory.SharedMemory(name=name)
    except (FileNotFoundError, ValueError, OSError):
        return
    segment.close()
    try:
        segment.unlink()
    except FileNotFoundError:
        pass


def release_shared_memory(writer) -> None:
    """FFCV's writer unlinks its metadata segment only on success; do it on failure too."""
    memory = getattr(writer, "metadata_sm", None)
    if memory is None or isinstance(memory, int):  # prepare() sets an int placeholder first
        return
    memory.close()
    try:
        memory.unlink()
    except FileNotFoundError:  # already unlinked: the failure came after FFCV finished
        pass
