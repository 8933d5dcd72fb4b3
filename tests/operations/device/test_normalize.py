"""Device normalize, flip and the fused normalize_flip on CPU tensors: correctly rounded values
against a float64 reference, flips equal to the CPU horizontal_flip's, channels_last output,
every element written, and inside a real FFCV Loader."""
import numpy as np
import pytest
import torch

from operations import EpochClock, ImageType, OpTypeError, get_op
from operations.cpu.geometry import HorizontalFlipOnDevice as Flip
from operations.device.normalize import Normalize, NormalizeFlip, normalize_flip_torch
from operations.ffcv_api import FFCV_MISSING
from operations.normalization import MEAN, STD, lookup_table
from tests.conftest import structured_batch, structured_image

DTYPES = {"float16": (torch.float16, 2.0 ** -10), "bfloat16": (torch.bfloat16, 2.0 ** -7),
          "float32": (torch.float32, 2.0 ** -23)}
CUSTOM = ((10.0, 128.0, 250.0), (3.0, 64.0, 0.7))


def channels_last(nhwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(nhwc)).permute(0, 3, 1, 2)


def reference(nhwc: np.ndarray, mean, std, flips) -> np.ndarray:
    """float64 (B, C, H, W): mirror the flipped samples, then (x - mean) / std."""
    x = nhwc.astype(np.float64)
    x = np.where(np.asarray(flips)[:, None, None, None], x[:, :, ::-1], x)
    return ((x - np.array(mean)) / np.array(std)).transpose(0, 3, 1, 2)


def assert_correctly_rounded(out: torch.Tensor, ref: np.ndarray, epsilon: float):
    """|out - ref| <= half an ulp of the output dtype at ref (one correct rounding)."""
    magnitude = np.maximum(np.abs(ref), 2.0 ** -14)
    half_ulp = 2.0 ** np.floor(np.log2(magnitude)) * epsilon / 2
    error = np.abs(out.to(torch.float64).numpy() - ref)
    assert (error <= half_ulp).all(), f"max error {error.max()} exceeds dtype rounding"


def cpu_flips(images: np.ndarray, indices, seed: int, epoch: int, position: int) -> list:
    """Which samples the CPU horizontal_flip(p=0.5) at this seed/epoch/position mirrors."""
    op = get_op("horizontal_flip")(p=0.5)
    op.bind(EpochClock(seed, epoch), position)
    out = op.apply(images, np.asarray(indices, dtype=np.int64))
    flipped = [bool((o == i[:, ::-1]).all()) for o, i in zip(out, images)]
    assert all(f or (o == i).all() for f, o, i in zip(flipped, out, images))
    return flipped


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", ["op", "torch"])
@pytest.mark.parametrize("mean, std", [(MEAN["imagenet"], STD["imagenet"]), CUSTOM])
def test_fused_values_are_correctly_rounded(dtype, path, mean, std):
    torch_dtype, epsilon = DTYPES[dtype]
    images = np.random.default_rng(1).integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    batch = channels_last(images)
    if path == "torch":
        flips = [True, False, True, True, False, False]
        out = torch.full((6, 5, 7, 3), float("nan"), dtype=torch_dtype).permute(0, 3, 1, 2)
        normalize_flip_torch(batch, out, lookup_table(mean, std, torch_dtype), torch.tensor(flips))
    else:  # the Numba loop, with the op's own keyed decisions
        op = NormalizeFlip(mean=mean, std=std, dtype=dtype)
        flips = op.flips(torch.arange(6)).tolist()
        assert 0 < sum(flips) < 6
        out = op.apply(batch)
    assert out.dtype == torch_dtype
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert not torch.isnan(out).any()
    assert_correctly_rounded(out, reference(images, mean, std, flips), epsilon)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_element_of_the_loader_buffer_is_written(dtype):
    torch_dtype, _ = DTYPES[dtype]
    batch = channels_last(structured_batch(5, 6, 9))
    op = NormalizeFlip(dtype=dtype)
    dst = torch.full((8, 6, 9, 3), float("nan"), dtype=torch_dtype)  # FFCV's buffer is larger
    out = op.generate_code()(batch, dst, np.arange(10, 15))
    assert out.shape == (5, 3, 6, 9) and out.is_contiguous(memory_format=torch.channels_last)
    assert out.data_ptr() == dst.data_ptr()
    assert not torch.isnan(dst[:5]).any()


def test_flip_decisions_equal_the_cpu_horizontal_flip():
    images = structured_batch(24, 6, 8, seed=3)
    indices = np.arange(100, 124)
    expected = cpu_flips(images, indices, seed=11, epoch=4, position=5)
    assert 4 < sum(expected) < 20
    clock = EpochClock(seed=11, epoch=4)
    flip, normalize = Flip(p=0.5), Normalize(dtype="float32")
    flip.bind(clock, 5)
    normalize.bind(clock, 6)
    fused = normalize.absorb(flip)
    assert isinstance(fused, NormalizeFlip) and flip.absorb(normalize) is None  # normalize absorbs
    assert fused.flips(torch.from_numpy(indices)).tolist() == expected
    flipped = flip.apply(channels_last(images), indices)
    assert flipped.is_contiguous(memory_format=torch.channels_last)
    mirrored = np.where(np.array(expected)[:, None, None, None], images[:, :, ::-1], images)
    assert np.array_equal(flipped.permute(0, 2, 3, 1).numpy(), mirrored)
    out = fused.apply(channels_last(images), indices)
    assert torch.equal(out, normalize.apply(flipped))


def test_flips_change_with_the_epoch_and_repeat_within_it():
    op = NormalizeFlip(p=0.5)
    op.bind(EpochClock(seed=2), 0)
    indices = torch.arange(64)
    first = op.flips(indices)
    assert torch.equal(first, op.flips(indices))
    op.clock.epoch = 1
    assert not torch.equal(first, op.flips(indices))
    assert not NormalizeFlip(p=0.0).flips(indices).any()
    assert NormalizeFlip(p=1.0).flips(indices).all()


def test_output_type_and_refusals():
    image = ImageType(32, 40, dtype="uint8", layout="channels_last", device="cpu", jit=False)
    assert NormalizeFlip(dtype="bfloat16").output_type(image) == image.but(dtype="bfloat16")
    assert Normalize().output_type(image).dtype == "float32"  # dtype unset and not filled in
    assert Flip().output_type(image.but(dtype="float16")).dtype == "float16"
    with pytest.raises(OpTypeError) as error:
        Normalize().output_type(image.but(dtype="float16"))
    assert str(error.value) == ("'normalize' expects uint8 images but gets float16: they are "
                                "normalized already (normalize once: in image.cpu or in image.device.ops)")
    with pytest.raises(OpTypeError, match="'normalize' has 3 mean/std values but the images "
                                          "have 1 channels"):
        Normalize().output_type(image.but(channels=1))


def test_names_and_parameters_resolve():
    op = get_op("normalize", "device")(mean="cifar10", std=(1.0, 2.0, 4.0), dtype="float16")
    assert op.params["mean"] == MEAN["cifar10"] and op.params["std"] == (1.0, 2.0, 4.0)
    assert list(get_op("normalize_flip").parameters()) == ["mean", "std", "dtype", "p"]
    assert get_op("flip").stage == "device" and get_op("normalize_flip").stage == "device"


@pytest.mark.skipif(FFCV_MISSING is not None, reason=f"a Loader needs FFCV: {FFCV_MISSING}")
def test_fused_op_in_a_real_loader(small_beton):
    """40 raw 32x40 images; the loader hands batch indices to the fused op on the CPU."""
    from ffcv.fields.decoders import IntDecoder, SimpleRGBImageDecoder  # FFCV is optional here
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import ToDevice, ToTensor, ToTorchImage

    clock = EpochClock(seed=5, epoch=2)
    fused = NormalizeFlip(dtype="float16", p=0.5)
    fused.bind(clock, 3)
    loader = Loader(str(small_beton), batch_size=16, num_workers=1, order=OrderOption.SEQUENTIAL,
                    drop_last=False,
                    pipelines={"image": [SimpleRGBImageDecoder(), ToTensor(),
                                         ToDevice(torch.device("cpu")), ToTorchImage(), fused],
                               "label": [IntDecoder(), ToTensor()]})
    images = np.stack([structured_image(32, 40, seed=i) for i in range(40)])
    flips = cpu_flips(images, range(40), seed=5, epoch=2, position=3)
    seen = 0
    for batch, _ in loader:
        assert batch.dtype == torch.float16
        assert batch.is_contiguous(memory_format=torch.channels_last)
        part = slice(seen, seen + len(batch))
        ref = reference(images[part], MEAN["imagenet"], STD["imagenet"], flips[part])
        assert_correctly_rounded(batch, ref, DTYPES["float16"][1])
        seen += len(batch)
    assert seen == 40
