"""One name per op: every op with a CPU and a device backend gives the same bytes on both
(generated from the registry, so a new backend, written or derived from a declaration, is
tested without a new test), and a second backend must take the first one's parameters."""
import numpy as np
import pytest
import torch

from operations import EpochClock, PureOperation, available_ops, register_op
from operations.registry import backends
from tests.conftest import structured_batch

#: parameters that make each op fire and draw (an op with required parameters needs a line)
CASES = {"horizontal_flip": {"p": 0.5}, "random_erasing": {"p": 0.7, "value": "mean", "count": 2},
         "normalize": {"mean": "cifar10", "std": "cifar10", "dtype": "float32"},
         "brightness": {"strength": 0.6, "p": 0.8}, "solarize": {"threshold": 100.0},
         "posterize": {"bits": 3}, "rotate": {"degrees": 40.0, "fill": [10, 200, 30], "p": 0.7},
         "shear": {"degrees": [-20.0, 30.0, -10.0, 15.0]}, "translate": {"max_fraction": 0.3, "fill": 77},
         "pad_crop": {"padding": 3}, "vertical_flip": {"p": 0.5},
         "random_affine": {"degrees": 25.0, "translate": [0.2, 0.1], "scale": [0.7, 1.3],
                           "shear": 10.0, "fill": 5}}
BOTH = [name for name in available_ops() if {"cpu", "device"} <= set(backends(name))]


def test_the_ops_declared_with_both_backends():
    """Written beside the declaration (flip, erasing, normalize) or derived from it: every
    point map, channel map and matrix."""
    assert {"horizontal_flip", "random_erasing", "normalize"} <= set(BOTH)
    assert {"solarize", "posterize", "invert", "brightness", "autocontrast", "equalize",
            "vertical_flip", "rotate", "shear", "translate", "pad_crop", "random_affine"} <= set(BOTH)
    assert backends("solarize")["device"].derived and not getattr(
        backends("horizontal_flip")["device"], "derived", False)


@pytest.mark.parametrize("name", BOTH)
def test_cpu_and_device_backends_give_the_same_bytes(name):
    # enough pixels for equalize to act, and a narrow range for autocontrast to stretch
    images = structured_batch(16, 36, 40, seed=4) // 2 + 40
    indices = np.arange(300, 316)
    outputs = []
    for stage in ("cpu", "device"):
        op = backends(name)[stage](**CASES.get(name, {}))
        op.bind(EpochClock(seed=8, epoch=3), 2)
        if stage == "cpu":
            outputs.append(op.apply(images, indices))
        else:
            batch = torch.from_numpy(images).permute(0, 3, 1, 2)
            outputs.append(op.apply(batch, indices).permute(0, 2, 3, 1).numpy())
    cpu, device = outputs
    assert cpu.dtype == device.dtype and cpu.shape == device.shape
    assert np.array_equal(cpu, device)
    assert not np.array_equal(cpu.astype(np.float64), images.astype(np.float64))  # it did work


def test_a_second_backend_must_take_the_same_parameters():
    class Cpu(PureOperation):
        def __init__(self, strength: float = 1.0):
            super().__init__()

    class Device(PureOperation):
        stage = "device"

        def __init__(self, amount: float = 1.0):
            super().__init__()

    register_op("test_two_backends")(Cpu)
    with pytest.raises(TypeError, match=r"the device backend's parameters \(amount\) are not "
                                        r"the cpu backend's \(strength\)"):
        register_op("test_two_backends")(Device)
