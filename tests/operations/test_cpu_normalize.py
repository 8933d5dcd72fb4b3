"""cpu_normalize against a float64 numpy reference; its type rules."""
import numpy as np
import pytest

from operations import ImageType, OpTypeError, get_op
from operations.normalization import MEAN, STD
from tests.conftest import structured_batch


def reference(images, mean, std):
    return ((images.astype(np.float64) - np.array(mean)) / np.array(std)).astype(np.float32)


@pytest.mark.parametrize("mean, std", [("imagenet", "imagenet"), ("cifar10", "cifar10"),
                                       ((10.0, 128.0, 250.0), (1.0, 64.0, 0.5))])
def test_matches_float64_reference(mean, std):
    images = structured_batch(3, 6, 7)
    out = get_op("cpu_normalize")(mean=mean, std=std).apply(images)
    assert out.dtype == np.float32
    expected = reference(images, MEAN.get(mean, mean) if isinstance(mean, str) else mean,
                         STD.get(std, std) if isinstance(std, str) else std)
    assert np.array_equal(out, expected)


def test_output_type_changes_dtype_and_refuses_other_inputs():
    op = get_op("cpu_normalize")()
    assert op.output_type(ImageType(8, 8)) == ImageType(8, 8, dtype="float32")
    with pytest.raises(OpTypeError, match=r"^'cpu_normalize' expects uint8 images but gets "
                                          r"float32; move it before"):
        op.output_type(ImageType(8, 8, dtype="float32"))
    with pytest.raises(OpTypeError, match="^'cpu_normalize' cannot produce float16"):
        get_op("cpu_normalize")(dtype="float16").output_type(ImageType(8, 8))


def test_has_no_probability():
    assert list(get_op("cpu_normalize").parameters()) == ["mean", "std", "dtype"]
