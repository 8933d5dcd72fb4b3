"""The device stage on a GPU (``cuda_cases``): the cupy kernel equal to the torch path bit for
bit, on the tensor's own device and on torch's current stream; the fused op, device erasing
and mixup/cutmix (all pairs at once) equal to their CPU paths; every op on ``cuda:N``. Each
case skips with its reason where CUDA, cupy or a second GPU is missing."""
import pytest

from tests.operations.device.cuda_cases import CASES, skip_reason


@pytest.mark.parametrize("name", sorted(CASES))
def test_cuda_case(name):
    needs, check = CASES[name]
    reason = skip_reason(needs)
    if reason is not None:
        pytest.skip(reason)
    check()
