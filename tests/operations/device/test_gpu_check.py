"""scripts/gpu_check.sh end to end with this machine's Python: exit 0 and one JSON file; where
CUDA is absent every GPU step is skipped with its reason."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]


def test_the_gpu_check_writes_one_json_and_says_why_it_skips(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(out)], cwd=tmp_path,
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"gpu_check: ok; wrote {out}" in done.stdout
    result = json.loads(out.read_text())
    assert result["ok"] and set(result["steps"]) == {"environment", "cuda_tests", "device_bench",
                                                     "device_stage"}
    assert result["steps"]["environment"]["operations"]["imports"]
    cases = result["steps"]["cuda_tests"]["cases"]
    assert len(cases) >= 7 and all(case["status"] != "failed" for case in cases.values())
    if not torch.cuda.is_available():
        assert set(result["skipped"]) == {"cuda_tests", "device_bench", "device_stage"}
        assert all(case["reason"].startswith("needs CUDA") for case in cases.values())
        assert "skipped: needs CUDA (torch.cuda.is_available() is False)" in done.stdout
