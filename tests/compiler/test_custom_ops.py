"""Custom ops from an ``imports:`` module, a dotted path and an entry point are found and
validated like built-ins; the worked example of docs/custom-ops.md runs from its YAML."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from compiler import SpecError, compile_spec, load_spec
from tests.conftest import structured_batch

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = Path(__file__).resolve().parent / "custom_ops_example"
EXAMPLE = EXAMPLE_DIR / "example.yaml"


def test_imports_and_dotted_path_are_found():
    spec = load_spec(EXAMPLE)
    gain, swap = spec.splits["train"].image.cpu
    assert (gain.name, gain.op_class.__name__, gain.params) == (
        "channel_gain", "ChannelGain", {"strength": 0.5, "channel": 1})
    assert (swap.name, swap.op_class.__name__, swap.stage) == (
        "my_lab_augment:swap_red_blue", "SwapRedBlue", "cpu")
    assert spec.imports == ("my_lab_augment",)


def test_bad_params_to_a_custom_op_read_like_a_builtins(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    path = tmp_path / "bad.yaml"
    path.write_text(EXAMPLE.read_text()
                    .replace("strength: 0.5", "strength: 2")
                    .replace("my_lab_augment:swap_red_blue", "{my_lab_augment:swap_red_blue: {q: 1}}"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).splitlines() == [
        f"{path}:10:36: strength of 'channel_gain': must be in [0.0, 1.0], got 2.0",
        f"{path}:11:43: unknown key 'q' in 'my_lab_augment:swap_red_blue'; its keys are: p",
    ]
    doc = (REPO / "docs" / "custom-ops.md").read_text()  # its example is this first line
    assert str(info.value).splitlines()[0].replace(str(path), "example.yaml") in doc


def test_failing_import_reports_the_modules_own_error(tmp_path, monkeypatch):
    (tmp_path / "broken_lab_ops.py").write_text("raise RuntimeError('GPU driver missing')\n")
    path = tmp_path / "spec.yaml"
    path.write_text("version: 1\nimports:\n  - broken_lab_ops\nsplits: {}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).splitlines()[0] == (
        f"{path}:3:5: cannot import 'broken_lab_ops': RuntimeError: GPU driver missing")


def _gain_interval(src: np.ndarray, dst: np.ndarray):
    """The gains g with dst == min(floor(src * g + 0.5), 255) for every pixel (from the
    definition): each pixel bounds g to [(dst - 0.5) / src, (dst + 0.5) / src)."""
    src, dst = src.astype(np.float64).ravel(), dst.astype(np.float64).ravel()
    used = (src > 0) & (dst < 255)
    return ((dst[used] - 0.5) / src[used]).max(), ((dst[used] + 0.5) / src[used]).min()


def test_the_worked_example_runs_from_yaml():
    compiled = compile_spec(EXAMPLE, device="cpu")
    gain, swap, _ = (step.op for step in compiled.cpu_steps)  # the last: the moved normalize
    images = structured_batch(8, 12, 10, seed=4)
    gained = gain.apply(images)
    assert np.array_equal(gained[..., [0, 2]], images[..., [0, 2]])
    intervals = [_gain_interval(images[i, ..., 1], gained[i, ..., 1]) for i in range(8)]
    for low, high in intervals:
        assert 0.5 - 1e-9 <= high and low <= 1.5 + 1e-9 and low < high  # one gain fits, in range
    assert len({round(low, 2) for low, _ in intervals}) > 1  # a gain per image, not per batch
    assert np.array_equal(gain.apply(images), gained)  # same seed and epoch: same bytes
    compiled.set_epoch(1)
    assert not np.array_equal(gain.apply(images), gained)
    assert np.array_equal(swap.apply(images), images[..., ::-1])


PLUGIN_SETUP = """\
[metadata]
name = pureffcv-test-plugin
version = 0.1

[options]
py_modules = pureffcv_test_plugin, pureffcv_broken_plugin

[options.entry_points]
pureffcv.operations =
    broken_plugin = pureffcv_broken_plugin
    test_plugin = pureffcv_test_plugin
"""

PLUGIN_MODULE = '''\
"""A plugin that registers one op when its entry point is loaded."""
from operations import register_op


@register_op("plugin_invert")
def plugin_invert(image_in, image_out, rng):
    """255 - x."""
    for y in range(image_in.shape[0]):
        for x in range(image_in.shape[1]):
            for c in range(image_in.shape[2]):
                image_out[y, x, c] = 255 - image_in[y, x, c]
'''


def test_entry_point_op_is_found_and_validated(tmp_path):
    """A real package installed with pip; into a target folder on PYTHONPATH rather than the
    shared .venv, so that other processes using the venv never see it half-installed. Its
    first entry point fails to load: the second still registers its op, and the failure is
    named only where an op is unknown, after the closest names."""
    package = tmp_path / "plugin"
    package.mkdir()
    (package / "setup.cfg").write_text(PLUGIN_SETUP)
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n')
    (package / "pureffcv_test_plugin.py").write_text(PLUGIN_MODULE)
    (package / "pureffcv_broken_plugin.py").write_text("raise RuntimeError('no GPU driver')\n")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(package)],
                   check=True, capture_output=True, timeout=300)
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent("""\
        version: 1
        splits:
          train:
            image:
              decode: {center_crop: {size: 8}}
              cpu: [plugin_invert, {plugin_invert: {p: 1.5}}]
        """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "check", str(spec)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert (result.returncode, result.stderr) == (
        1, f"{spec}:6:48: p of 'plugin_invert': must be in [0.0, 1.0], got 1.5\n")
    spec.write_text(spec.read_text().replace("p: 1.5", "p: 0.5"))
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "check", str(spec)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert (result.returncode, result.stdout) == (0, f"{spec}: ok (train)\n"), result.stderr
    spec.write_text(spec.read_text().replace("[plugin_invert,", "[plugin_invrt,"))
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "check", str(spec)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert (result.returncode, result.stderr) == (
        1, f"{spec}:6:13: unknown op 'plugin_invrt'; did you mean 'plugin_invert'? (plugins "
           f"that failed to load: pureffcv-test-plugin (broken_plugin): RuntimeError: no GPU "
           f"driver)\n")


SHORT_FORMS = """\
version: 1
seed: 6
imports: [my_lab_augment]
splits:
  train:
    image:
      decode: decode
      cpu:
        - gamma: {low: 0.5, high: 2.0}
        - brightness: {strength: 0.3}
        - zoom: {fill: 9}
        - pad_crop: {padding: 2, fill: 9}
      device: {dtype: uint8}
    loader: {batch_size: 16, num_workers: 1, order: sequential, drop_last: false}
"""


def test_a_custom_point_map_and_warp_fuse_with_the_builtins(small_beton, monkeypatch):
    """Declared with ``point_map`` and ``affine``, custom ops join the fused table and warp:
    the table run is byte-identical to the ops one by one; gamma itself matches numpy."""
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    fused = compile_spec(SHORT_FORMS, device="cpu")
    assert [(s.name, type(s.op).__name__) for s in fused.cpu_steps] == [
        ("gamma+brightness", "FusedLut"), ("zoom+pad_crop", "FusedAffine")]
    lut_only = SHORT_FORMS.replace("        - zoom: {fill: 9}\n        - pad_crop: {padding: 2, fill: 9}\n", "")
    ours, plain = (torch.cat([x.clone() for x, _ in compile_spec(lut_only, device="cpu", optimize=o)
                              .loader(small_beton)]) for o in (True, False))
    assert torch.equal(ours, plain)

    from operations import EpochClock, get_op
    from operations.rng import derive, sample_key, stream_key, uniform

    op = get_op("gamma")(low=0.5, high=2.0)
    op.bind(EpochClock(seed=6), 1)
    images = structured_batch(6, 10, 12, seed=2)
    out = op.apply(images)
    for i, image in enumerate(images):
        rng = np.uint64(derive(np.uint64(sample_key(np.uint64(stream_key(6, 0, 1)), i)), 1))
        g = 0.5 + 1.5 * uniform(rng, 0)
        assert np.array_equal(out[i], np.floor(255.0 * (image / 255.0) ** g + 0.5).astype(np.uint8))
