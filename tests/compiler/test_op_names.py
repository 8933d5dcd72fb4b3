"""One name per op: the spec section picks the backend, explain says which ran and why, and
the old names still work as deprecated aliases that ``pureffcv check`` reports once."""
import numpy as np
import pytest
import torch

from compiler import SpecError, compile_spec, load_spec
from operations import get_op, point_map, register_op
from operations.registry import backends
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
                        "the CPU, so it runs per image in the parallel JIT stage, in place (no "
                        "buffer, no copy)")


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


DERIVED = """\
version: 1
seed: 3
splits:
  train:
    image:
      decode: {center_crop: {size: 24}}
      device:
        dtype: float32
        ops: [{solarize: {threshold: 90, p: 0.6}}, {rotate: {degrees: 30, fill: 9}}, normalize]
"""


def test_a_declared_op_runs_on_the_device_from_its_one_declaration():
    """solarize and rotate have no device code of their own: the device batch gets backends
    derived from their declarations (a table gather, a warp), and a CPU device runs their CPU
    backends per image instead; both give the same bytes."""
    on_gpu = compile_spec(DERIVED, device="cuda").plan.stage("device")
    assert [type(s.op).__name__ for s in on_gpu[:2]] == ["SolarizeOnDevice", "RotateOnDevice"]
    on_cpu = compile_spec(DERIVED, device="cpu").plan.steps
    lowered = [s for s in on_cpu if s.name in ("solarize", "rotate")]
    assert [(type(s.op).__name__, s.stage) for s in lowered] == [("Solarize", "cpu"), ("Rotate", "cpu")]
    images = np.random.default_rng(1).integers(0, 256, (20, 24, 24, 3), dtype=np.uint8)
    indices = np.arange(40, 60)
    jit = lowered[1].op.apply(lowered[0].op.apply(images, indices), indices)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
    device = on_gpu[1].op.apply(on_gpu[0].op.apply(batch, indices), indices)
    assert np.array_equal(jit, device.permute(0, 2, 3, 1).numpy())
    assert (jit != images).any(axis=(1, 2, 3)).sum() >= 15  # rotated by up to 30 degrees


def test_a_derived_device_backend_refuses_what_its_declaration_refuses():
    text = DERIVED.replace("ops: [{solarize: {threshold: 90, p: 0.6}}, {rotate: {degrees: 30, fill: 9}}, normalize]",
                           "ops: [normalize, {solarize: {threshold: 90}}]")
    with pytest.raises(SpecError, match=r"<string>:9:27: .*'solarize'.*uint8.*float32"):
        compile_spec(text, device="cuda")


def test_a_user_s_point_map_gets_a_device_backend_from_its_declaration():
    @register_op("test_halve_levels")
    @point_map
    def halve(rng, offset: int = 0):
        """Halve every value, then add ``offset``."""
        lut = np.empty(256, np.uint8)
        for v in range(256):
            lut[v] = v // 2 + offset
        return lut

    device = backends("test_halve_levels")["device"](offset=3)
    images = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    out = device.apply(torch.from_numpy(images).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(out, images // 2 + 3)


def test_a_derived_warp_after_normalize_stays_on_the_batch_with_its_fill():
    """After normalize (float16 on the CPU is carried as bits in the JIT stage) a derived warp
    is not lowered: it runs in torch, where its fill is the float value 9."""
    text = DERIVED.replace("dtype: float32", "dtype: float16").replace(
        "ops: [{solarize: {threshold: 90, p: 0.6}}, {rotate: {degrees: 30, fill: 9}}, normalize]",
        "ops: [{normalize: {mean: none, std: [1, 1, 1]}}, {rotate: {degrees: [90, 90], fill: 9}}]")
    steps = compile_spec(text, device="cpu").plan.steps
    rotate = next(s for s in steps if s.name == "rotate")
    assert (type(rotate.op).__name__, rotate.stage) == ("RotateOnDevice", "device")
    batch = torch.full((2, 3, 6, 4), 200.0, dtype=torch.float16).contiguous(
        memory_format=torch.channels_last)
    out = rotate.op.apply(batch)
    assert out.dtype == torch.float16 and set(out.unique().tolist()) == {9.0, 200.0}
