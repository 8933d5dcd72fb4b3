"""YAML with positions: anchors, merge keys, duplicates, and what load_spec builds from them."""
import pytest

from compiler import SpecError, load_spec
from compiler.yaml_positions import parse


def test_nodes_remember_one_based_lines_and_columns():
    root = parse("a: 1\nb:\n  - x\n  - {y: 2}\n")
    assert (root.value["a"].pos.line, root.value["a"].pos.column) == (1, 4)
    assert (root.key_pos["b"].line, root.key_pos["b"].column) == (2, 1)
    second = root.value["b"].value[1]
    assert (second.pos.line, second.pos.column) == (4, 5)
    assert (second.key_pos["y"].line, second.key_pos["y"].column) == (4, 6)
    assert root.plain() == {"a": 1, "b": ["x", {"y": 2}]}


def test_merge_keys_merge_with_explicit_keys_winning():
    root = parse("base: &b {p: 0.5, fill: 3}\nop:\n  <<: *b\n  p: 0.9\n")
    assert root.value["op"].plain() == {"p": 0.9, "fill": 3}
    assert root.value["op"].key_pos["p"].line == 4  # the explicit key
    assert root.value["op"].key_pos["fill"].line == 1  # where the merged key was written


def test_merge_list_earlier_sources_win():
    root = parse("a: &a {k: 1}\nb: &b {k: 2, j: 3}\nc:\n  <<: [*a, *b]\n")
    assert root.value["c"].plain() == {"k": 1, "j": 3}


def test_recursive_alias_is_an_error_not_a_hang():
    with pytest.raises(SpecError, match="recursive anchor"):
        parse("a: &a [1, *a]\n")


ANCHORED = """\
version: 1
x-crop: &crop {center_crop: {size: 16}}
x-ops: &ops [flip, {normalize: {mean: cifar10}}]
splits:
  train:
    image: {decode: *crop, device: {ops: *ops}}
  val:
    image: {decode: *crop, device: {ops: *ops, dtype: float16}}
"""


def test_anchors_share_ops_between_splits():
    spec = load_spec(ANCHORED)
    train, val = spec.splits["train"], spec.splits["val"]
    assert [op.name for op in train.image.device_ops] == ["flip", "normalize"]
    assert train.image.decode.params == val.image.decode.params == {"size": 16}
    assert val.image.device_ops[1].params["mean"] == pytest.approx(
        (0.4914 * 255, 0.4822 * 255, 0.4465 * 255))
    assert (train.image.dtype, val.image.dtype) == ("float32", "float16")


def test_an_error_inside_an_anchor_is_reported_once_at_the_anchor():
    text = ANCHORED.replace("size: 16", "size: 0")
    with pytest.raises(SpecError) as info:
        load_spec(text)
    assert str(info.value) == "<string>:2:36: size of 'center_crop': must be in [1, 16384], got 0"


def test_defaults_depend_on_the_split_name():
    spec = load_spec(ANCHORED)
    train, val = spec.splits["train"].loader, spec.splits["val"].loader
    assert (train.order, train.drop_last, val.order, val.drop_last) == \
        ("random", True, "sequential", False)
    assert (train.batch_size, train.os_cache, train.num_workers, train.batches_ahead,
            train.distributed) == (256, True, -1, 3, False)
