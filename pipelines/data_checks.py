"""Checks of a split's data before any training: the .beton is there and readable, its
labels fit the model and the spec, vector targets have the declared shape, and a split
yields at least one batch. Each failure is one line (``DataError``)."""
import warnings
from typing import Optional

from operations.errors import PureffcvError


class DataError(PureffcvError, ValueError):
    """A problem with the data files or their fit to the model; ``str()`` is one line."""


class SmallDataWarning(UserWarning):
    """A split yields no batches."""


def warn_if_empty(loader, compiled):
    """``loader``, after a warning naming the split, its sample count and the fix when it
    yields no batch (fewer samples than one batch, with drop_last)."""
    if len(loader) == 0:
        batch = loader.batch_size
        count = len(loader.indices) if hasattr(loader, "indices") else len(loader.dataset)
        warnings.warn(SmallDataWarning(
            f"pureffcv: {compiled.split.name}: {count} sample(s), fewer than "
            f"one batch of {batch} with drop_last: no training batches; lower "
            f"--data.batch_size or set drop_last: false in the spec's loader"), stacklevel=2)
    return loader


def beton_labels(path: str, field: str = "label", image_field: str = "image"):
    """The integer labels stored in a .beton's ``field`` (``pipelines.beton.stored_labels``);
    raises DataError when the file is missing, unreadable, lacks the field (or
    ``image_field``), has no samples, or the field holds no integers."""
    from .beton import BetonError, stored_labels

    try:
        return stored_labels(path, field, image_field)
    except BetonError as exc:
        raise DataError(str(exc)) from None


def open_reader(path: str, fields=()):
    """FFCV's Reader of ``path`` with ``fields`` present; DataError (one line) otherwise."""
    from .beton import BetonError, open_beton

    try:
        return open_beton(path, tuple(fields))
    except BetonError as exc:
        raise DataError(str(exc)) from None


def check_vector_target(path: str, label, image_field: str, num_classes: Optional[int]) -> None:
    """A ``multi_hot`` / ``float`` target: an NDArrayField of shape (num_classes,) holding the
    right dtype, whose length the model's outputs match; DataError otherwise."""
    from ffcv.fields import NDArrayField

    reader = open_reader(path, (label.field, image_field))
    handler = reader.handlers[label.field]
    if not isinstance(handler, NDArrayField):
        raise DataError(f"{path}: field '{label.field}' is a {type(handler).__name__}; a "
                        f"{label.type} target is an NDArrayField of shape "
                        f"({label.num_classes},)")
    if tuple(handler.shape) != (label.num_classes,):
        raise DataError(f"{path}: field '{label.field}' has shape {tuple(handler.shape)}, but "
                        f"the spec's label num_classes is {label.num_classes}")
    if num_classes is not None and num_classes != label.num_classes:
        raise DataError(f"{path}: targets have {label.num_classes} entries but the model's "
                        f"num_classes is {num_classes}; set it to {label.num_classes}")


def check_int_labels(path: str, split: str, label, image_field: str,
                     num_classes: Optional[int]) -> None:
    """Class-index labels: >= 0, and below both the model's and the spec's num_classes;
    DataError otherwise."""
    labels = beton_labels(path, label.field, image_field)
    low, top = int(labels.min()), int(labels.max())
    if low < 0:
        raise DataError(f"{path}: labels must be >= 0, found {low}")
    for what, count in (("the model's num_classes", num_classes),
                        (f"the spec's {split} label num_classes", label.num_classes)):
        if count is not None and top >= count:
            raise DataError(f"{path}: labels go up to {top} ({top + 1} classes) but {what} is "
                            f"{count}; set it to at least {top + 1}")


def check_batches(path: str, loader, batch_size: Optional[int] = None, fields=()) -> None:
    """DataError when a training split yields no batch: fewer samples in ``path`` than one
    batch (``batch_size``, else the spec's ``loader.batch_size``) with ``drop_last`` (Lightning
    would stop at once with 'No training batches' and exit 0, writing no checkpoint); the
    split's ``fields`` are checked first."""
    batch = batch_size or loader.batch_size
    count = int(open_reader(path, fields).num_samples)
    if loader.drop_last and count < batch:
        raise DataError(f"{path}: {count} sample(s), fewer than one batch of {batch} with "
                        f"drop_last: no training batches; lower --data.batch_size or set "
                        f"drop_last: false in the spec's loader")


def check_target_fields(path: str, split) -> None:
    """Each of the split's targets reads a field of its kind in ``path`` (a mask a
    ``MaskField``, boxes a ``BoxesField``, keypoints a ``KeypointsField`` with the points its
    ``flip_pairs`` name); DataError naming the field otherwise (a field of another kind would
    decode as garbage or fail later)."""
    from operations.cpu.instances_field import BoxesField, KeypointsField
    from operations.cpu.mask_field import MaskField

    fields = {"mask": MaskField, "boxes": BoxesField, "keypoints": KeypointsField}
    targets = [t.target() for t in split.targets]
    reader = open_reader(path, tuple(t.field for t in targets) + (split.image.field,))
    for target in targets:
        handler, wanted = reader.handlers[target.field], fields[target.kind]
        if not isinstance(handler, wanted):
            raise DataError(f"{path}: field '{target.field}' (target '{target.name}', "
                            f"{target.kind}) is not a {wanted.__name__} but "
                            f"{type(handler).__name__}; convert the data with pureffcv convert "
                            f"(docs/targets.md)")
        points = getattr(handler, "num_keypoints", None)
        named = [i for pair in target.flip_pairs for i in pair]
        if points is not None and named and max(named) >= points:
            raise DataError(f"{path}: target '{target.name}' swaps point {max(named)} in "
                            f"flip_pairs but field '{target.field}' holds {points} keypoints "
                            f"(0..{points - 1})")


def split_fields(split) -> tuple:
    """The .beton fields a split reads: the image's, the label's (unless ``label: none``)
    and the targets'."""
    label = (split.label.field,) if split.has_label else ()
    return (split.image.field,) + label + tuple(t.target().field for t in split.targets)


def check_task(spec_path: str, split, task: Optional[str], num_classes: Optional[int]) -> None:
    """DataError when the model's ``task`` cannot train on ``split``: segmentation needs a mask
    target whose classes ``num_classes`` outputs cover, classification a label."""
    masks = [t.target() for t in split.targets if t.options.kind == "mask"]
    if task == "segmentation" and not masks:
        raise DataError(f"{spec_path}: the {split.name} split has no mask target but the "
                        f"model's task is segmentation; add targets: {{mask: {{num_classes: "
                        f"N}}}} to the split or set --model.task classification")
    if task == "classification" and not split.has_label:
        raise DataError(f"{spec_path}: the {split.name} split reads no label (label: none) "
                        f"but the model's task is classification; set --model.task "
                        f"segmentation or give the split a label")
    declared = masks[0].num_classes if task == "segmentation" else None
    if declared is not None and num_classes is not None and num_classes < declared:
        raise DataError(f"{spec_path}: the {split.name} masks have {declared} classes but the "
                        f"model outputs {num_classes}; set --model.num_classes {declared}")


def check_views(spec_path: str, split, task: Optional[str], training: bool) -> None:
    """DataError when a split's views do not fit the model's ``task`` or the split's use: a
    split with views trains the simclr task only (its batches are ``(views, labels)``) and
    with two or more copies in all (NT-Xent's positives are the other copies of each
    sample); the simclr task trains on views and validates on single images."""
    copies = sum(view.count for view in split.views)
    if split.views and not training:
        raise DataError(f"{spec_path}: the {split.name} split has views, but only the training "
                        f"split may: evaluation reads one image per sample (image.decode)")
    if split.views and task in ("classification", "segmentation"):
        raise DataError(f"{spec_path}: the {split.name} split has views (batches of several "
                        f"crops per image) but the model's task is {task}; set --model.task "
                        f"simclr, or read one image per sample (image.decode)")
    if task == "simclr" and training and copies < 2:
        found = f"{copies} view copy" if split.views else "no views"
        raise DataError(f"{spec_path}: the simclr task trains on two or more views of each "
                        f"image, but the {split.name} split has {found}; give its image "
                        f"views (specs/simclr.yaml)")
