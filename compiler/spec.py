"""The spec language, version 1, as typed values: a Spec of splits, each an image (decoder,
CPU ops, device ops), a label, batch ops and loader options (``reader.load_spec`` builds it
from YAML).

Every node of a Spec keeps the file position it came from, so the planner can point at the
op that causes a problem. See docs/spec.md for the language itself.
"""
from dataclasses import dataclass, field
from typing import Annotated, Any, Dict, List, Literal, Optional, Tuple

from operations.params import MAX_CLASSES, Range
from operations.registry import did_you_mean
from operations.targets import Target

from .errors import Pos, SpecError, SpecWarning

VERSION = 1
#: sections of a split's image field and the op stage each one holds
SECTIONS = {"decode": "decoder", "cpu": "cpu", "device": "device", "batch": "batch"}
#: top-level keys starting with this are ignored: a place for YAML anchors (``x-common: &c``)
EXTENSION_PREFIX = "x-"
#: the largest seed: a 64-bit unsigned integer (the keyed RNG's width)
MAX_SEED = 2 ** 64 - 1
#: limits of loader options (FFCV allocates batches_ahead + 2 batch buffers per field)
MAX_BATCH_SIZE = 65536
MAX_WORKERS = 1024
MAX_BATCHES_AHEAD = 64


@dataclass(frozen=True)
class OpSpec:
    """One op as written: its name (registry name or ``module:Attr``), class, the parameter
    values the user set (validated and converted), and where it was written."""

    name: str
    op_class: type
    params: Dict[str, Any]
    section: str
    pos: Pos
    param_pos: Dict[str, Pos] = field(default_factory=dict)

    @property
    def stage(self) -> str:
        return getattr(self.op_class, "stage", "cpu")


@dataclass(frozen=True)
class LoaderOptions:
    """``loader:`` — options of the ffcv Loader built for a split."""

    batch_size: Annotated[int, Range(1, MAX_BATCH_SIZE)] = 256
    #: null: random for a split named train, sequential otherwise
    order: Optional[Literal["sequential", "random", "quasi_random"]] = None
    #: null: true for a split named train, false otherwise (validation sees every sample)
    drop_last: Optional[bool] = None
    os_cache: bool = True
    #: -1: all cores
    num_workers: Annotated[int, Range(-1, MAX_WORKERS)] = -1
    batches_ahead: Annotated[int, Range(1, MAX_BATCHES_AHEAD)] = 3
    distributed: bool = False


@dataclass(frozen=True)
class DeviceOptions:
    """``image.device:`` keys other than ``ops`` (a view's ``device:`` too)."""

    dtype: Literal["uint8", "float16", "bfloat16", "float32"] = "float32"


@dataclass(frozen=True)
class LabelSpec:
    """``label:`` — ``int``, ``none``, or ``{num_classes: N, field: NAME, type: TYPE}``.

    - ``num_classes``: needed by mixup/cutmix, and by ``multi_hot`` / ``float`` (the vector's
      length).
    - ``field``: the .beton field holding the target (default ``label``).
    - ``type``: ``int`` (a class index, FFCV IntField), ``multi_hot`` (a 0/1 vector of
      ``num_classes`` entries, FFCV NDArrayField: multi-label) or ``float`` (a float vector of
      ``num_classes`` entries, NDArrayField: soft targets) or ``none`` (no label is read:
      ``label: none``, the default of a split with ``targets``).
    """

    num_classes: Optional[Annotated[int, Range(1, MAX_CLASSES)]] = None
    field: str = "label"
    type: Literal["int", "multi_hot", "float", "none"] = "int"


#: the largest class id a mask may hold (uint16 masks)
MAX_MASK_VALUE = 65535


#: a keypoint index (a target's ``flip_pairs``)
KeypointIndex = Annotated[int, Range(0, 65535)]
#: the options that apply to one target kind only (the others apply to every kind)
KIND_OPTIONS = {"mask": ("ignore_index", "num_classes"),
                "boxes": ("format", "normalized", "min_area", "min_visibility", "min_size"),
                "keypoints": ("flip_pairs",)}


@dataclass(frozen=True)
class TargetOptions:
    """One entry of ``targets:`` (``targets: {NAME: {...}}``), a target that moves with the
    image under the same draws (``operations.targets``).

    - ``kind``: ``mask`` (a per-pixel class map, uint8 or uint16, the size of the image),
      ``boxes`` (boxes with class labels, a varying number per image) or ``keypoints``
      (instances of a fixed number of points with visibility).
    - ``field``: the .beton field holding it (default: the target's name).
    - masks: ``ignore_index``, the class id of pixels a loss ignores; warps write it where
      they uncover pixels (default 255); ``num_classes``: class ids run
      0..num_classes-1 (besides ``ignore_index``); null: not checked.
    - boxes: ``format`` of the batch's boxes (``xyxy`` default, ``xywh``, ``cxcywh``);
      ``normalized``: divided by the image's width and height (default false: pixels);
      a box stays valid while its area is >= ``min_area`` px^2, the share of its area the
      crops and warps kept is >= ``min_visibility`` (0..1) and both sides are >=
      ``min_size`` px (defaults 0: a box is dropped only when nothing of it is left).
    - keypoints: ``flip_pairs``, the [left, right] point indices a mirror swaps.
    """

    kind: Literal["mask", "boxes", "keypoints"] = "mask"
    field: Optional[str] = None
    ignore_index: Annotated[int, Range(0, MAX_MASK_VALUE)] = 255
    num_classes: Optional[Annotated[int, Range(1, MAX_MASK_VALUE + 1)]] = None
    format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy"
    normalized: bool = False
    min_area: Annotated[float, Range(0, None)] = 0.0
    min_visibility: Annotated[float, Range(0, 1)] = 0.0
    min_size: Annotated[float, Range(0, None)] = 0.0
    flip_pairs: Tuple[Tuple[KeypointIndex, KeypointIndex], ...] = ()


@dataclass(frozen=True)
class TargetSpec:
    """A target as written: its options and where its name was written."""

    name: str
    pos: Pos
    options: TargetOptions

    def target(self) -> Target:
        """The target the ops see (``operations.targets.Target``)."""
        o = self.options
        return Target(self.name, o.kind, o.field or self.name, o.ignore_index, o.num_classes,
                      box_format=o.format, normalized=o.normalized, min_area=o.min_area,
                      min_visibility=o.min_visibility, min_size=o.min_size,
                      flip_pairs=o.flip_pairs)


@dataclass(frozen=True)
class ImageSpec:
    decode: OpSpec
    cpu: Tuple[OpSpec, ...] = ()
    device_ops: Tuple[OpSpec, ...] = ()
    dtype: str = "float32"
    field: str = "image"  # the .beton field holding the image (``image: {field: img}``)


#: the most view copies of a split, all views together (each copy is one more pipeline and
#: one more batch tensor)
MAX_VIEW_COPIES = 64


@dataclass(frozen=True)
class ViewSpec:
    """One entry of ``image.views`` (``views: {NAME: {count, decode, cpu, device}}``):
    ``count`` copies, each cropped by ``image.decode`` out of the sample's one shared decode
    with its own draws (the view's name and the copy's index are in its keys), then run
    through the view's own CPU and device ops."""

    name: str
    pos: Pos
    count: int
    image: ImageSpec


@dataclass(frozen=True)
class SplitSpec:
    name: str
    pos: Pos
    image: ImageSpec
    label: LabelSpec
    batch: Tuple[OpSpec, ...]
    loader: LoaderOptions
    targets: Tuple[TargetSpec, ...] = ()
    #: ``image.views``; with views, ``image`` is the first view's (what one-image tools show)
    views: Tuple[ViewSpec, ...] = ()

    @property
    def has_label(self) -> bool:
        return self.label.type != "none"

    def ops(self) -> List[OpSpec]:
        """The split's ops in pipeline order; an op's index here is its RNG stream."""
        return [self.image.decode, *self.image.cpu, *self.image.device_ops, *self.batch]


@dataclass(frozen=True)
class Spec:
    file: str
    seed: int
    imports: Tuple[str, ...]
    splits: Dict[str, SplitSpec]
    #: deprecated op names, each reported once, where it is first written
    warnings: Tuple[SpecWarning, ...] = ()

    def split(self, name: str) -> SplitSpec:
        if name not in self.splits:
            raise SpecError(Pos(self.file, 1, 1), f"no split named '{name}'"
                            f"{did_you_mean(name, self.splits, 'splits in this spec')}")
        return self.splits[name]
