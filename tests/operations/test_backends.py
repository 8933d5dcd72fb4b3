"""One name per op: every op with a CPU and a device backend gives the same bytes on both
(generated from the registry, so a new backend is tested without a new test), and a second
backend must take the first one's parameters."""
import numpy as np
import pytest
import torch

from operations import EpochClock, PureOperation, available_ops, register_op
from operations.registry import backends
from tests.conftest import structured_batch

#: parameters that make each op fire and draw (an op with required parameters needs a line)
CASES = {"horizontal_flip": {"p": 0.5}, "random_erasing": {"p": 0.7, "value": "mean", "count": 2},
         "normalize": {"mean": "cifar10", "std": "cifar10", "dtype": "float32"}}
BOTH = [name for name in available_ops() if {"cpu", "device"} <= set(backends(name))]


def test_the_ops_declared_with_both_backends():
    assert {"horizontal_flip", "random_erasing", "normalize"} <= set(BOTH)


@pytest.mark.parametrize("name", BOTH)
def test_cpu_and_device_backends_give_the_same_bytes(name):
    images = structured_batch(16, 12, 14, seed=4)
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
