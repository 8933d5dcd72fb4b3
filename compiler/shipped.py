"""The specs shipped with pureffcv, found by name wherever the package is installed.

They are package data of the ``specs`` package (read through ``importlib.resources``), so a
wheel carries them and ``--data.spec hybrid_policy`` (or ``demo.yaml``) works from any
directory; ``pureffcv specs`` lists them. A path that exists always wins over a name.
"""
import importlib.resources
from pathlib import Path
from typing import Dict, Optional


def shipped_specs() -> Dict[str, Path]:
    """name (file name without ``.yaml``) -> the installed file, sorted by name."""
    root = importlib.resources.files("specs")
    return {entry.name[:-len(".yaml")]: Path(str(entry))
            for entry in sorted(root.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".yaml")}


def shipped_spec(name: str) -> Optional[Path]:
    """The shipped spec called ``name`` (``hybrid_policy`` or ``hybrid_policy.yaml``), or None;
    a name with a directory in it is never a shipped spec."""
    if "/" in name or "\\" in name:
        return None
    return shipped_specs().get(name[:-len(".yaml")] if name.endswith(".yaml") else name)


def summary(path: Path) -> str:
    """The first line of a spec's leading comment (what it is), '' when it has none."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""
