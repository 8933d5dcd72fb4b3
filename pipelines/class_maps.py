"""Class maps (class name -> label) and the ``OUT.classes.json`` beside each ``OUT.beton``.

Two splits that number their classes differently score one class as another with no error
(a val folder without ``green`` maps ``red`` to 1, train's ``green``), so maps agree by
construction: a split is converted with another split's map (``labels_for``), the
image-folder fallback numbers the union of the folders' classes, and the data module refuses
(``check_agree``) .beton files whose maps differ, naming both files and the classes.
"""
import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from operations.errors import PureffcvError

ClassMap = Dict[str, int]


class ClassMapError(PureffcvError, ValueError):
    """Class maps that disagree, or one that cannot be read; ``str()`` is one line."""


def sidecar(out: Union[str, Path], suffix: str) -> Path:
    """``OUT.beton`` -> ``OUT<suffix>`` (``.classes.json``, ``.skipped.txt``)."""
    out = Path(out)
    stem = out.name[:-len(".beton")] if out.name.endswith(".beton") else out.name
    return out.with_name(stem + suffix)


def classes_path(beton: Union[str, Path]) -> Path:
    """Where ``pureffcv convert`` keeps ``beton``'s class map."""
    return sidecar(beton, ".classes.json")


def write_class_map(beton: Union[str, Path], classes: ClassMap) -> Path:
    path = classes_path(beton)
    path.write_text(json.dumps(classes, indent=1) + "\n")
    return path


def read_class_map(path: Union[str, Path]) -> ClassMap:
    """A class map from a ``.classes.json`` (or from the one beside a ``.beton``); raises
    ClassMapError when it is missing or not a map of names to integers."""
    path = Path(path)
    if path.suffix == ".beton":
        path = classes_path(path)
    try:
        mapping = json.loads(path.read_text())
        return {str(name): int(label) for name, label in mapping.items()}
    except OSError as exc:
        raise ClassMapError(f"{path}: cannot read the class map ({exc.strerror or exc})") from None
    except (ValueError, TypeError, AttributeError):
        raise ClassMapError(f"{path}: not a class map (a JSON object of class name -> "
                            f"label)") from None


def beside(beton: Optional[Union[str, Path]]) -> Optional[ClassMap]:
    """The class map beside ``beton``, or None when there is none (or it is unreadable)."""
    if beton is None or not classes_path(beton).is_file():
        return None
    try:
        return read_class_map(classes_path(beton))
    except ClassMapError:
        return None


def names_by_label(beton: Optional[Union[str, Path]]) -> Dict[int, str]:
    """label -> class name from the map beside ``beton`` ({} when there is none)."""
    return {label: name for name, label in (beside(beton) or {}).items()}


def parse_classes(value: str) -> ClassMap:
    """``--classes``: a ``.classes.json``, a ``.beton`` with one beside it, or names
    separated by commas (labels 0, 1, ... in that order)."""
    if value.endswith((".json", ".beton")) or Path(value).is_file():
        return read_class_map(value)
    names = [name.strip() for name in value.split(",") if name.strip()]
    if len(set(names)) != len(names) or not names:
        raise ClassMapError(f"--classes {value!r}: give distinct class names separated by "
                            f"commas, or a .classes.json / .beton")
    return {name: label for label, name in enumerate(names)}


def labels_for(names: Sequence[str], classes: Optional[ClassMap], where: str) -> ClassMap:
    """The class map for a source whose classes are ``names``: labels 0..C-1 in sorted
    order, or ``classes`` (another split's map), which must name every one of them."""
    if classes is None:
        return {name: label for label, name in enumerate(sorted(names))}
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ClassMapError(f"{where}: class(es) {', '.join(unknown)} not in the class map "
                            f"({', '.join(sorted(classes, key=classes.get))})")
    return dict(classes)


def union(*groups: Iterable[str]) -> ClassMap:
    """One map over the union of several sources' class names, sorted."""
    return {name: label for label, name in enumerate(sorted(set().union(*groups)))}


def differences(a: ClassMap, b: ClassMap) -> List[str]:
    """Human-readable differences between two maps ('red: 2 vs 1', 'green: only in the
    first'), sorted by class name."""
    out = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            out.append(f"{name} only in the first")
        elif name not in a:
            out.append(f"{name} only in the second")
        elif a[name] != b[name]:
            out.append(f"{name}: {a[name]} vs {b[name]}")
    return out


def check_agree(betons: Sequence[Tuple[str, Optional[Union[str, Path]]]]) -> None:
    """ClassMapError (one line naming both files and the differing classes) when two of the
    ``(role, .beton)`` pairs carry class maps that differ; files without a map pass."""
    seen = [(role, path, beside(path)) for role, path in betons if path is not None]
    seen = [(role, path, mapping) for role, path, mapping in seen if mapping is not None]
    for (role_a, path_a, map_a), (role_b, path_b, map_b) in zip(seen, seen[1:]):
        if map_a != map_b:
            shown = differences(map_a, map_b)
            more = f" and {len(shown) - 6} more" if len(shown) > 6 else ""
            raise ClassMapError(
                f"the {role_a} and {role_b} class maps differ ({classes_path(path_a)} vs "
                f"{classes_path(path_b)}: {'; '.join(shown[:6])}{more}); convert the "
                f"{role_b} split with --classes {path_a}")
