"""explain's table line by line, and the check/explain commands (exit codes, no traceback,
no Numba compilation, no GPU)."""
import subprocess
import sys
from pathlib import Path

import numba

from compiler import compile_spec
from pipelines.cli import main

REPO = Path(__file__).resolve().parents[2]

SPEC = """\
version: 1
seed: 5
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 48}}
      cpu: [{solarize: {threshold: 128, p: 0.2}}]
      device:
        dtype: float16
        ops: [flip, normalize]
    label: {num_classes: 10}
    batch: [mixup]
    loader: {batch_size: 32, num_workers: 2}
"""


def test_explain_table(tmp_path, monkeypatch):
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 16)  # any machine: 2 workers fit
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    lines = compile_spec(path, device="cpu").explain().splitlines()
    assert lines == [
        f"split 'train' of {path}: device cpu, seed 5",
        "",
        "stage     rng  step                 op                 output                             runs          note",
        "decoder   0    random_resized_crop  RandomResizedCrop  48x48x3 uint8 HWC cpu              jit-parallel",
        "cpu       1    solarize             Solarize           48x48x3 uint8 HWC cpu              jit-parallel  "
        "cpu backend: written in image.cpu",
        "cpu       2    flip+normalize       JitNormalizeFlip   48x48x3 float16 HWC cpu            jit-parallel  "
        "fused: one device kernel; lowered: the device is the CPU, so it runs per image in the "
        "parallel JIT stage",
        "boundary  -    to_tensor            ToTensor           48x48x3 float16 HWC cpu            transfer",
        "boundary  -    float16_from_bits    Float16FromBits    48x48x3 float16 HWC cpu            transfer",
        "boundary  -    to_torch_image       ToTorchImage       48x48x3 float16 channels_last cpu  transfer",
        "batch     4    mixup                Mixup              48x48x3 float16 channels_last cpu  batch         "
        "not lowered: no pairwise JIT form on float16 images, so it runs on the batch after the loader",
        "",
        "fields: image from 'image', label from 'label'",
        "label: IntDecoder -> ToTensor -> Squeeze -> ToDevice(cpu)",
        "loader: batch_size 32, order random, drop_last true, os_cache true, num_workers 2, "
        "batches_ahead 3, distributed false",
    ]


def test_explain_says_when_the_machine_runs_fewer_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 1)
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    last = compile_spec(path, device="cpu").explain().splitlines()[-1]
    assert "num_workers 2 (this machine runs 1: uses 1), batches_ahead" in last


def test_check_reports_every_problem_of_every_file(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(SPEC)
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("threshold: 128", "threshold: 300").replace("[mixup]", "[mixupp]"))
    assert main(["check", str(good), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{good}: ok (train)\n"
    assert err.splitlines() == [  # SPEC spells the flip by its old name: a warning, no error
        f"{good}:10:15: warning: 'flip' is a deprecated name; write 'horizontal_flip' (the "
        f"section picks the backend)",
        f"{bad}:7:36: threshold of 'solarize': must be in [0.0, 255.0], got 300.0",
        f"{bad}:12:13: unknown op 'mixupp'; did you mean 'mixup'?",
    ]
    assert main(["check", str(good)]) == 0


def test_explain_command_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    assert main(["explain", str(path), "--split", "val", "--device", "cpu"]) == 1
    assert capsys.readouterr().err == f"{path}:1:1: no split named 'val'; splits in this spec: train\n"
    assert main(["explain", str(path), "--device", "tpu9"]) == 1
    assert "unknown device 'tpu9'" in capsys.readouterr().err
    assert main(["explain", str(path), "--device", "cpu"]) == 0
    assert "flip+normalize" in capsys.readouterr().out


def test_check_compiles_no_numba_code_and_touches_no_gpu(tmp_path):
    """Run check in a fresh interpreter, then look at every registered kernel's compiled
    signatures and at CUDA's initialization state."""
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    script = f"""
import sys, torch
from pipelines.cli import main
from operations import available_ops, get_op
rc = main(["check", {str(path)!r}, {str(REPO / 'specs' / 'hybrid_policy.yaml')!r}])
compiled = [n for n in available_ops() if getattr(get_op(n), "kernel", None) is not None
            and get_op(n).kernel.signatures]
print(rc, compiled, torch.cuda.is_initialized())
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.stdout.splitlines()[-1] == "0 [] False", result.stderr
