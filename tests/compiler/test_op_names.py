"""One name per op: the spec section picks the backend, explain says which ran and why, and
the old names still work as deprecated aliases that ``pureffcv check`` reports once."""
import pytest

from compiler import compile_spec, load_spec
from operations import get_op
from operations.cpu.erasing import RandomErasingOnDevice, random_erasing
from operations.cpu.geometry import HorizontalFlipOnDevice, horizontal_flip
from operations.cpu.normalize import normalize as cpu_normalize
from operations.device.normalize import Normalize
from pipelines.cli import main

OLD_NAMES = """\
version: 1
splits:
  train:
    image:
      decode: {center_crop: {size: 8}}
      cpu:
        - cpu_normalize: {dtype: float32}
      device:
        ops:
          - flip: {p: 0.5}
          - device_random_erasing: {p: 0.5, value: 0}
          - flip
"""

NEW_NAMES = """\
version: 1
splits:
  train:
    image:
      decode: {center_crop: {size: 8}}
      cpu:
        - horizontal_flip
        - random_erasing
      device:
        ops: [horizontal_flip, normalize, random_erasing]
"""


@pytest.mark.parametrize("name, stage, backend", [
    ("horizontal_flip", "cpu", horizontal_flip), ("horizontal_flip", "device", HorizontalFlipOnDevice),
    ("random_erasing", "cpu", random_erasing), ("random_erasing", "device", RandomErasingOnDevice),
    ("normalize", "cpu", cpu_normalize), ("normalize", "device", Normalize),
    ("flip", None, HorizontalFlipOnDevice), ("device_random_erasing", "cpu", RandomErasingOnDevice),
    ("cpu_normalize", None, cpu_normalize)])
def test_the_stage_picks_the_backend_and_old_names_keep_theirs(name, stage, backend):
    assert get_op(name, stage) is backend


def test_defaults_follow_torchvision():
    assert horizontal_flip.parameters()["p"].default == 0.5
    assert HorizontalFlipOnDevice.parameters()["p"].default == 0.5


def test_new_names_in_both_sections_plan_with_the_section_s_backend():
    steps = compile_spec(NEW_NAMES, device="cuda").plan.steps
    kinds = [(s.name, type(s.op).__name__, s.stage) for s in steps if s.pos is not None]
    assert kinds == [("center_crop", "CenterCrop", "decoder"),
                     ("horizontal_flip", "HorizontalFlip", "cpu"),
                     ("random_erasing", "RandomErasing", "cpu"),
                     ("horizontal_flip+normalize", "NormalizeFlip", "device"),
                     ("random_erasing", "RandomErasingOnDevice", "device")]
    assert steps[1].note == "cpu backend: written in image.cpu"
    assert steps[-1].note == "device backend: written in image.device.ops"


def test_explain_says_which_backend_ran_and_why():
    table = compile_spec(NEW_NAMES, device="cpu").explain()
    row = next(line for line in table.splitlines() if line.split()[2:3] == ["random_erasing"]
               and line.startswith("cpu") and "lowered" in line)
    assert row.endswith("device backend: written in image.device.ops; lowered: the device is "
                        "the CPU, so it runs per image in the parallel JIT stage")


def test_old_names_warn_once_each_with_the_new_spelling():
    spec = load_spec(OLD_NAMES)
    assert [str(w) for w in spec.warnings] == [
        "<string>:7:11: warning: 'cpu_normalize' is a deprecated name; write 'normalize' "
        "(the section picks the backend)",
        "<string>:10:13: warning: 'flip' is a deprecated name; write 'horizontal_flip' "
        "(the section picks the backend)",
        "<string>:11:13: warning: 'device_random_erasing' is a deprecated name; write "
        "'random_erasing' (the section picks the backend)"]
    assert not load_spec(NEW_NAMES).warnings


def test_check_prints_the_warnings_and_passes(tmp_path, capsys):
    path = tmp_path / "old.yaml"
    path.write_text(OLD_NAMES)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr()
    assert out.err.splitlines() == [f"{path}:7:11: warning: 'cpu_normalize' is a deprecated name; "
                                    f"write 'normalize' (the section picks the backend)",
                                    f"{path}:10:13: warning: 'flip' is a deprecated name; write "
                                    f"'horizontal_flip' (the section picks the backend)",
                                    f"{path}:11:13: warning: 'device_random_erasing' is a "
                                    f"deprecated name; write 'random_erasing' (the section picks "
                                    f"the backend)"]
    assert out.out == f"{path}: ok (train)\n"
