"""``load_spec``: YAML text -> a validated ``spec.Spec``, walking the node tree once and
reporting every mistake of a file in one SpecErrors (``FILE:LINE:COL: message`` each)."""
import contextlib
import importlib
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Dict, List, Optional, Tuple, Union

from operations import get_op
from operations.registry import deprecated_alias, did_you_mean

from .errors import ErrorList, Pos, SpecError, SpecWarning, first_line
from .shipped import shipped_spec
from .spec import (EXTENSION_PREFIX, KIND_OPTIONS, MAX_SEED, MAX_VIEW_COPIES, VERSION,
                   DeviceOptions, ImageSpec, LabelSpec, LoaderOptions, OpSpec, Range, SECTIONS,
                   Spec, SplitSpec, TargetOptions, TargetSpec, ViewSpec)
from .validate import (REQUIRED, ValueProblem, check_mapping, coerce, dataclass_params, op_params,
                       show)
from .yaml_positions import Node, parse


def load_spec(path_or_text: Union[str, os.PathLike]) -> Spec:
    """Parse and validate a spec (a path, or YAML text); raise SpecError / SpecErrors."""
    text, file = _read(path_or_text)
    root = parse(text, file)
    errors = ErrorList()
    with _directory_on_path(file):
        spec = _Loader(file, errors).spec(root)
    errors.raise_if_any()
    return spec


def _read(path_or_text) -> Tuple[str, str]:
    """(text, file name): a PathLike, an existing file or a ``*.yaml`` name is read, a shipped
    spec's name (``hybrid_policy``) reads that spec (``compiler.shipped``); any other string is
    the YAML itself."""
    file = os.fspath(path_or_text) if isinstance(path_or_text, os.PathLike) else path_or_text
    shipped = None if "\n" in file or os.path.exists(file) else shipped_spec(file)
    if shipped is not None:
        file = str(shipped)
    is_path = isinstance(path_or_text, os.PathLike) or shipped is not None or (
        "\n" not in file and (file.endswith((".yaml", ".yml")) or os.path.exists(file)))
    if not is_path:
        return path_or_text, "<string>"
    try:
        return Path(file).read_text(encoding="utf-8"), file
    except OSError as exc:
        raise SpecError(Pos(file, 1, 1), f"cannot read the spec: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(Pos(file, 1, 1), f"cannot read the spec: not UTF-8 text ({exc.reason} "
                                         f"at byte {exc.start})") from None


@contextlib.contextmanager
def _directory_on_path(file: str):
    """Modules next to the spec file can be imported (``imports:`` and dotted op names)."""
    directory = str(Path(file).resolve().parent) if file != "<string>" else None
    if directory is None or directory in sys.path:
        yield
        return
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        sys.path.remove(directory)


class _Loader:
    """Walks the node tree once, collecting every error."""

    def __init__(self, file: str, errors: ErrorList):
        self.file = file
        self.errors = errors
        self.warnings: Dict[str, SpecWarning] = {}  # by deprecated name: reported once

    def spec(self, root: Node) -> Spec:
        if not self._is_mapping(root, "the spec"):
            return Spec(self.file, 0, (), {})
        keys = {"version", "seed", "imports", "splits"}
        self._unknown_keys(root, keys, "the spec", ignore_prefix=EXTENSION_PREFIX)
        top = root.value
        if "version" not in top:
            self.errors.add(root.pos, f"the spec needs 'version: {VERSION}' at the top")
        elif top["version"].value != VERSION or isinstance(top["version"].value, bool):
            self.errors.add(top["version"].pos, f"unsupported spec version "
                            f"{show(top['version'].plain())}; this pureffcv reads version {VERSION}")
        seed = self._value(top.get("seed"), Annotated[int, Range(0, MAX_SEED)], "seed", 0)
        imports = tuple(self._imports(top["imports"])) if "imports" in top else ()
        splits = {}
        if "splits" not in top:
            self.errors.add(root.pos, "the spec needs 'splits:' (a mapping of split names, "
                                      "e.g. train and val)")
        elif self._is_mapping(top["splits"], "splits"):
            if not top["splits"].value:
                self.errors.add(top["splits"].pos, "splits is empty; define at least one split")
            for name, node in top["splits"].value.items():
                split = self._split(name, node, top["splits"].key_pos[name])
                if split is not None:
                    splits[name] = split
        return Spec(self.file, seed, imports, splits, tuple(self.warnings.values()))

    # --- sections ------------------------------------------------------------------------

    def _imports(self, node: Node) -> List[str]:
        if not node.is_list:
            node = Node([node], node.pos) if isinstance(node.value, str) else node
        if not node.is_list:
            self.errors.add(node.pos, f"imports must be a list of module names, got {show(node.plain())}")
            return []
        modules = []
        for item in node.value:
            if not isinstance(item.value, str):
                self.errors.add(item.pos, f"imports: expected a module name, got {show(item.plain())}")
                continue
            try:
                importlib.import_module(item.value)
                modules.append(item.value)
            except SystemExit as exc:  # a plugin may not end the process (Ctrl-C still does)
                self.errors.add(item.pos, f"cannot import '{item.value}': the module called "
                                          f"sys.exit({first_line(repr(exc.code))}) while importing")
            except Exception as exc:  # the module's own error, whatever it is
                self.errors.add(item.pos, f"cannot import '{item.value}': "
                                          f"{type(exc).__name__}: {first_line(exc)}")
        return modules

    def _split(self, name: str, node: Node, key_pos: Pos) -> Optional[SplitSpec]:
        what = f"split '{name}'"
        if not self._is_mapping(node, what):
            return None
        self._unknown_keys(node, {"image", "label", "targets", "batch", "loader"}, what)
        targets = self._targets(node.value.get("targets"), node.value.get("image"))
        label = self._label(node.value.get("label"), default="none" if targets else "int")
        image, views = None, ()
        if "image" not in node.value:
            self.errors.add(key_pos, f"{what} needs 'image:' (with at least 'decode:')")
        else:
            image, views = self._image(node.value["image"], what)
        batch = tuple(self._op_list(node.value.get("batch"), "batch", label))
        if views:
            self._check_view_split(node, what)
        loader = self._loader(node.value.get("loader"), name)
        if image is None:
            return None
        return SplitSpec(name, key_pos, image, label, batch, loader, tuple(targets), views)

    def _check_view_split(self, node: Node, what: str) -> None:
        """What a split with views cannot have yet: targets and batch ops."""
        for key, reason in (("targets", "targets move with one image, and views are several "
                                        "crops of it"),
                            ("batch", "batch ops mix the images of one view")):
            if key in node.value and node.value[key].value:
                self.errors.add(node.key_pos[key], f"{what}: '{key}' cannot be used with "
                                                   f"image.views ({reason}); remove one of them")

    def _targets(self, node: Optional[Node], image: Optional[Node]) -> List[TargetSpec]:
        """``targets: {NAME: {kind, field, ...}}`` (``spec.TargetOptions``; ``{}`` or null for
        a mask named NAME with the defaults); no two read one field, none the image's."""
        if node is None or node.value is None or not self._is_mapping(node, "targets"):
            return []
        if not node.value:
            self.errors.add(node.pos, "targets is empty; name a target (targets: {mask: "
                                      "{num_classes: N}}) or remove the key")
        image_field = "image"
        if image is not None and image.is_mapping and "field" in image.value:
            image_field = image.value["field"].value
        targets, readers = [], {}
        for name, options in node.value.items():
            target = self._target(name, options, node.key_pos[name])
            if target is None:
                continue
            field = target.target().field
            written = options.value if options.is_mapping else {}
            where = written["field"].pos if "field" in written else target.pos
            if field == image_field:
                self.errors.add(where, f"target '{name}' reads field '{field}', the image's "
                                       f"field; name the .beton field that holds the "
                                       f"{target.options.kind}")
            elif field in readers:
                self.errors.add(where, f"targets '{readers[field]}' and '{name}' both read "
                                       f"field '{field}'")
            readers.setdefault(field, name)
            targets.append(target)
        return targets

    def _target(self, name, options: Node, pos: Pos) -> Optional[TargetSpec]:
        if not isinstance(name, str) or not name.isidentifier():
            self.errors.add(pos, f"a target's name must be a word (letters, digits, _), got "
                                 f"{show(name)}")
            return None
        if name in ("image", "label"):
            self.errors.add(pos, f"a target cannot be named '{name}' (a batch's {name} has "
                                 f"that name); call it e.g. 'mask' and set field: {name}")
            return None
        if options.value is None:
            options = Node({}, options.pos)
        if not self._is_mapping(options, f"target '{name}'"):
            return None
        values = check_mapping(options, dataclass_params(TargetOptions), self.errors,
                               f"target '{name}'", fill_defaults=False)
        target = TargetSpec(name, pos, TargetOptions(**values))
        o = target.options
        for key, kind in ((k, kind) for kind, keys in KIND_OPTIONS.items() for k in keys):
            if key in options.value and kind != o.kind:
                self.errors.add(options.value[key].pos,
                                f"target '{name}': {key} applies to {kind} targets, not "
                                f"{o.kind}; remove it")
        pairs = [i for pair in o.flip_pairs for i in pair]
        if len(pairs) != len(set(pairs)):
            self.errors.add(options.value["flip_pairs"].pos,
                            f"target '{name}': flip_pairs name a point twice; each point is in "
                            f"at most one [left, right] pair")
        if o.num_classes is not None and o.ignore_index < o.num_classes:
            where = options.value["ignore_index"].pos if "ignore_index" in options.value else pos
            self.errors.add(where, f"target '{name}': ignore_index {o.ignore_index} is a class "
                                   f"id (num_classes is {o.num_classes}); use a value >= "
                                   f"num_classes, e.g. 255")
        return target

    def _image(self, node: Node, owner: str) -> Tuple[Optional[ImageSpec], Tuple[ViewSpec, ...]]:
        """The image (with views: the first view's) and its views."""
        what = f"{owner} image"
        if not self._is_mapping(node, what):
            return None, ()
        self._unknown_keys(node, {"decode", "cpu", "device", "field", "views"}, what)
        field = "image"
        if "field" in node.value:
            field_node = node.value["field"]
            if isinstance(field_node.value, str) and field_node.value:
                field = field_node.value
            else:
                self.errors.add(field_node.pos, f"field of {what} must be the name of a .beton "
                                                f"field, got {show(field_node.plain())}")
        if "views" not in node.value:
            return self._sections(node, what, field), ()
        for key in ("decode", "cpu", "device"):
            if key in node.value:
                self.errors.add(node.key_pos[key], f"{what} has views: each view has its own "
                                                   f"'{key}'; move it under the views")
        views = self._views(node.value["views"], what, field)
        return (views[0].image if views else None), views

    def _views(self, node: Node, what: str, field: str) -> Tuple[ViewSpec, ...]:
        """``views: {NAME: {count: N, decode: ..., cpu: [...], device: {...}}}``."""
        if not self._is_mapping(node, f"{what} views"):
            return ()
        if not node.value:
            self.errors.add(node.pos, "views is empty; name a view (views: {view: {count: 2, "
                                      "decode: {random_resized_crop: {size: 224}}}})")
        views = []
        for name, view in node.value.items():
            pos = node.key_pos[name]
            if not isinstance(name, str) or not name.isidentifier() or name == "label":
                self.errors.add(pos, f"a view's name must be a word (letters, digits, _) other "
                                     f"than 'label', got {show(name)}")
                continue
            where = f"view '{name}'"
            if not self._is_mapping(view, where):
                continue
            self._unknown_keys(view, {"count", "decode", "cpu", "device"}, where)
            count = self._value(view.value.get("count"),
                                Annotated[int, Range(1, MAX_VIEW_COPIES)],
                                f"{where} count", 1)
            image = self._sections(view, where, field)
            if image is not None:
                views.append(ViewSpec(name, pos, count, image))
        copies = sum(view.count for view in views)
        if copies > MAX_VIEW_COPIES:
            self.errors.add(node.pos, f"views have {copies} copies in all; at most "
                                      f"{MAX_VIEW_COPIES} (each copy is one more pipeline)")
        return tuple(views)

    def _sections(self, node: Node, what: str, field: str) -> Optional[ImageSpec]:
        """``decode``, ``cpu`` and ``device`` of an image or a view."""
        decode = None
        if "decode" not in node.value:
            self.errors.add(node.pos, f"{what} needs 'decode:' (a decoder op such as "
                                      f"{{random_resized_crop: {{size: 224}}}})")
        else:
            decode_node = node.value["decode"]
            if decode_node.is_list:
                self.errors.add(decode_node.pos, "decode takes one decoder op, not a list")
            else:
                decode = self._op(decode_node, "decode")
        cpu = tuple(self._op_list(node.value.get("cpu"), "cpu"))
        device_ops, dtype = (), DeviceOptions.dtype
        device = node.value.get("device")
        if device is not None and self._is_mapping(device, "device"):
            options = {k: v for k, v in device.value.items() if k != "ops"}
            values = check_mapping(Node(options, device.pos, device.key_pos),
                                   dataclass_params(DeviceOptions), self.errors, "device")
            dtype = values.get("dtype", dtype)
            device_ops = tuple(self._op_list(device.value.get("ops"), "device"))
        if decode is None:
            return None
        return ImageSpec(decode, cpu, device_ops, dtype, field)

    def _label(self, node: Optional[Node], default: str = "int") -> LabelSpec:
        if node is None:
            return LabelSpec(type=default)
        if node.value in ("int", "none"):
            return LabelSpec(type=node.value)
        if node.is_mapping:
            values = check_mapping(node, dataclass_params(LabelSpec), self.errors, "label")
            label = LabelSpec(**values)
            if label.type != "int" and label.num_classes is None:
                self.errors.add(node.pos, f"label type {label.type} needs num_classes (the "
                                          f"length of the target vector)")
            return label
        self.errors.add(node.pos, f"label must be 'int' or {{num_classes: N}} (or 'none': no "
                                  f"label), got {show(node.plain())}")
        return LabelSpec()

    def _loader(self, node: Optional[Node], split: str) -> LoaderOptions:
        values = {}
        if node is not None and self._is_mapping(node, "loader"):
            values = check_mapping(node, dataclass_params(LoaderOptions), self.errors, "loader",
                                   fill_defaults=False)
        options = LoaderOptions(**values)
        train = split == "train"
        return replace(options,
                       order=options.order or ("random" if train else "sequential"),
                       drop_last=train if options.drop_last is None else options.drop_last)

    # --- ops ---------------------------------------------------------------------------

    def _op_list(self, node: Optional[Node], section: str, label: Optional[LabelSpec] = None):
        if node is None or node.value is None:
            return []
        if not node.is_list:
            self.errors.add(node.pos, f"{section} must be a list of ops (one '- name' or "
                                      f"'- name: {{params}}' per line), got {show(node.plain())}")
            return []
        ops = (self._op(item, section, label) for item in node.value)
        return [op for op in ops if op is not None]

    def _op(self, node: Node, section: str, label: Optional[LabelSpec] = None) -> Optional[OpSpec]:
        if isinstance(node.value, str):
            name, name_pos, params = node.value, node.pos, Node({}, node.pos)
        elif node.is_mapping and len(node.value) == 1:
            (name, params), = node.value.items()
            name_pos = node.key_pos[name]
            if params.value is None:
                params = Node({}, params.pos)
            elif not params.is_mapping:
                self.errors.add(params.pos, f"parameters of '{name}' must be a mapping "
                                            f"{{name: value}}, got {show(params.plain())}")
                return None
        elif node.is_mapping and node.value:
            keys = list(node.value)
            self.errors.add(node.pos, f"an op entry has one name but this one has {len(keys)} "
                                      f"({', '.join(keys)}); indent the parameters under the op "
                                      f"name: {{{keys[0]}: {{{keys[1]}: ...}}}}")
            return None
        else:
            self.errors.add(node.pos, f"expected an op ('name' or {{name: {{params}}}}), "
                                      f"got {show(node.plain())}")
            return None
        op_class = self._resolve(name, name_pos, SECTIONS[section])
        if op_class is None:
            return None
        params_spec = op_params(op_class)
        if label is not None and "num_classes" in params_spec and "num_classes" not in params.value:
            params = self._fill_num_classes(name, name_pos, params, params_spec, label)
        values = check_mapping(Node(params.value, name_pos, params.key_pos), params_spec,
                               self.errors, f"'{name}'", fill_defaults=False)
        return OpSpec(name, op_class, values, section, name_pos, dict(params.key_pos))

    def _fill_num_classes(self, name, name_pos, params: Node, params_spec, label) -> Node:
        """Batch ops take num_classes from ``label: {num_classes: N}`` unless they set it."""
        if label.num_classes is not None:
            value = {**params.value, "num_classes": Node(label.num_classes, name_pos)}
            return Node(value, params.pos, {**params.key_pos, "num_classes": name_pos})
        if params_spec["num_classes"].default in (REQUIRED, None):
            self.errors.add(name_pos, f"'{name}' needs label.num_classes (write "
                                      f"label: {{num_classes: N}}) or its own num_classes")
            return Node({**params.value, "num_classes": Node(1, name_pos)}, params.pos,
                        {**params.key_pos, "num_classes": name_pos})
        return params

    def _resolve(self, name: str, pos: Pos, stage: str) -> Optional[type]:
        """The op's backend for ``stage`` (the section it is written in); a deprecated name
        resolves too, with a warning that gives the new spelling."""
        alias = deprecated_alias(name)
        if alias is not None and name not in self.warnings:
            self.warnings[name] = SpecWarning(pos, f"'{name}' is a deprecated name; write "
                                                   f"'{alias.name}' (the section picks the backend)")
        try:
            return get_op(name, stage)
        except LookupError as exc:  # UnknownOpError: its message has the closest names
            self.errors.add(pos, first_line(exc.args[0] if exc.args else exc))
        except ImportError as exc:
            module = name.partition(":")[0]
            self.errors.add(pos, f"cannot import '{module}' for op '{name}': {first_line(exc)}")
        except SystemExit as exc:
            module = name.partition(":")[0]
            self.errors.add(pos, f"cannot import '{module}' for op '{name}': the module called "
                                 f"sys.exit({first_line(repr(exc.code))}) while importing")
        except Exception as exc:
            self.errors.add(pos, f"cannot load op '{name}': {type(exc).__name__}: {first_line(exc)}")
        return None

    # --- helpers -------------------------------------------------------------------------

    def _is_mapping(self, node: Node, what: str) -> bool:
        if node.is_mapping:
            return True
        self.errors.add(node.pos, f"{what} must be a mapping (key: value lines), got {show(node.plain())}")
        return False

    def _unknown_keys(self, node: Node, known: set, what: str, ignore_prefix: str = None) -> None:
        for key in node.value:
            if key in known or (ignore_prefix and key.startswith(ignore_prefix)):
                continue
            self.errors.add(node.key_pos[key], f"unknown key '{key}' in {what}"
                                               f"{did_you_mean(key, known, 'its keys are')}")

    def _value(self, node: Optional[Node], hint, what: str, default):
        if node is None:
            return default
        try:
            return coerce(node, hint)
        except ValueProblem as problem:
            self.errors.add(problem.pos, f"{what}: {problem.message}")
            return default
