"""operations without FFCV: the stand-ins of ``operations.ffcv_stand_ins`` have FFCV 1.0.2's
API, and in a process where ``import ffcv`` fails, ``operations``, the device ops and their
tests import and run (what ``scripts/gpu_check.sh`` relies on, on a GPU node without FFCV)."""
import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ffcv.pipeline import allocation_query, compiler, operation, state

from operations import ffcv_stand_ins
from operations.cpu.erasing import RandomErasingOnDevice
from operations.rng import EpochClock

REPO = Path(__file__).resolve().parents[2]

WITHOUT_FFCV = r"""
import importlib.abc, json, sys

class NoFFCV(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ffcv" or name.startswith("ffcv."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoFFCV())
import numpy as np, torch
import operations
from operations import EpochClock, available_ops
from operations.ffcv_api import FFCV_MISSING, Operation
from operations.cpu.erasing import RandomErasingOnDevice
import operations.device.mix, operations.device.normalize, operations.device.temporal
import tests.operations.device.test_cuda, tests.operations.device.test_erasing
import tests.operations.device.test_mix, tests.operations.device.test_normalize
import tests.operations.device.test_rng
from tests.operations.device.cuda_cases import CASES

op = RandomErasingOnDevice(p=0.9, value="mean")
op.bind(EpochClock(3, 1), 2)
images = torch.arange(4 * 3 * 10 * 12, dtype=torch.int64).remainder(251).to(torch.uint8)
images = images.view(4, 10, 12, 3).permute(0, 3, 1, 2)
print(json.dumps({"missing": FFCV_MISSING, "ffcv_loaded": any(m.split(".")[0] == "ffcv" for m in sys.modules),
                  "operation_module": Operation.__module__, "ops": available_ops(),
                  "cases": sorted(CASES), "erased": op.apply(images).flatten().tolist()}))
"""


def fields(cls):
    return [(f.name, f.default) for f in dataclasses.fields(cls)]


def public_signatures(cls):
    """Each public method's parameters: names, kinds and defaults (annotations aside)."""
    return {name: [(p.name, p.kind, p.default)
                   for p in inspect.signature(getattr(cls, name)).parameters.values()]
            for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


def test_the_stand_ins_have_ffcvs_api():
    assert fields(ffcv_stand_ins.State) == fields(state.State)
    assert fields(ffcv_stand_ins.AllocationQuery) == fields(allocation_query.AllocationQuery)
    assert ffcv_stand_ins.AllocationQuery.__dataclass_params__.frozen
    assert public_signatures(ffcv_stand_ins.Operation) == public_signatures(operation.Operation)
    assert ffcv_stand_ins.Operation.__abstractmethods__ == operation.Operation.__abstractmethods__
    assert public_signatures(ffcv_stand_ins.Compiler) == public_signatures(compiler.Compiler)
    for make in (state.State, ffcv_stand_ins.State):
        with pytest.raises(AssertionError, match="Can't be in JIT mode and on the GPU"):
            make(True, torch.device("cuda"), (2,), np.dtype("uint8"))
        with pytest.raises(AssertionError, match="Can't allocate a torch tensor in JIT mode"):
            make(True, torch.device("cpu"), (2,), torch.uint8)


def test_operations_and_the_device_tests_import_and_run_without_ffcv():
    done = subprocess.run([sys.executable, "-c", WITHOUT_FFCV], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["missing"].startswith("FFCV cannot be imported (ModuleNotFoundError: ")
    assert not report["ffcv_loaded"]
    assert report["operation_module"] == "operations.ffcv_stand_ins"
    assert {"normalize_flip", "mixup", "cutmix", "random_erasing",
            "trivial_augment_wide"} <= set(report["ops"])
    assert "random_resized_crop" not in report["ops"]  # decoders need FFCV's C library
    assert len(report["cases"]) >= 7
    # the same op, the same bytes as in this process, which has FFCV
    op = RandomErasingOnDevice(p=0.9, value="mean")
    op.bind(EpochClock(3, 1), 2)
    images = torch.arange(4 * 3 * 10 * 12, dtype=torch.int64).remainder(251).to(torch.uint8)
    images = images.view(4, 10, 12, 3).permute(0, 3, 1, 2)
    erased = op.apply(images)
    assert not torch.equal(erased, images)
    assert report["erased"] == erased.flatten().tolist()
