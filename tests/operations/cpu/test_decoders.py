"""Keyed decoders: torchvision's crop algorithm on keyed draws, and the crops through a real
FFCV Loader against OpenCV (the resize FFCV's decoders use)."""
import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from operations import EpochClock, ImageType, get_op
from operations.cpu.decoders import random_resized_crop_box
from operations.rng import sample_key, stream_key, uniform
from tests.conftest import structured_image, write_beton


def torchvision_get_params(height, width, scale, ratio, draw):
    """torchvision's RandomResizedCrop.get_params, with ``draw(k)`` as its k-th uniform."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for k in range(10):
        target_area = area * (scale[0] + (scale[1] - scale[0]) * draw(4 * k))
        aspect_ratio = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * draw(4 * k + 1))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = int(draw(4 * k + 2) * (height - h + 1))
            j = int(draw(4 * k + 3) * (width - w + 1))
            return i, j, h, w
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    h, w = max(h, 1), max(w, 1)  # pureffcv's documented guard for images a few pixels wide
    return (height - h) // 2, (width - w) // 2, h, w


@settings(max_examples=300, deadline=None)
@given(key=st.integers(0, 2**64 - 1), height=st.integers(1, 500), width=st.integers(1, 500),
       scale=st.tuples(st.floats(0.01, 1.5), st.floats(0.01, 1.5)).map(sorted),
       ratio=st.tuples(st.floats(0.2, 5.0), st.floats(0.2, 5.0)).map(sorted))
def test_crop_box_is_torchvisions_algorithm(key, height, width, scale, ratio):
    key = np.uint64(key)
    scale, ratio = tuple(scale), tuple(ratio)
    box = random_resized_crop_box(key, height, width, scale, ratio)
    assert tuple(box) == torchvision_get_params(height, width, scale, ratio, lambda k: uniform(key, k))
    y, x, h, w = box
    assert 0 <= y and 0 <= x and y + h <= height and x + w <= width and h > 0 and w > 0


@pytest.mark.parametrize("height, width, box", [
    (100, 20, (36, 0, 27, 20)),   # too tall: w = 20, h = round(20 / 0.75) = 27, centred
    (20, 100, (0, 36, 20, 27)),   # too wide: h = 20, w = round(20 * 4/3) = 27
    (50, 60, (0, 0, 50, 60)),     # ratio 1.2 within bounds: the whole image
])
def test_fallback_is_the_clamped_centre_crop(height, width, box):
    # scale above 1 never fits, so all 10 attempts fail
    assert tuple(random_resized_crop_box(np.uint64(7), height, width, (2.0, 3.0), (3 / 4, 4 / 3))) == box


@pytest.fixture(scope="module")
def images():
    return [structured_image(32, 40, seed=i) for i in range(6)]


@pytest.fixture(scope="module")
def raw_beton(tmp_path_factory, images):
    return write_beton(tmp_path_factory.mktemp("decoders") / "raw.beton", images, range(6))


def load(path, decoder):
    from ffcv.fields.decoders import IntDecoder
    from ffcv.loader import Loader, OrderOption

    loader = Loader(str(path), batch_size=4, num_workers=1, order=OrderOption.SEQUENTIAL,
                    drop_last=False, pipelines={"image": [decoder], "label": [IntDecoder()]})
    return np.concatenate([batch.copy() for batch, _ in loader])


def area_resize(image, y, x, h, w, size):
    return cv2.resize(image[y:y + h, x:x + w], (size[1], size[0]), interpolation=cv2.INTER_AREA)


def test_random_resized_crop_cuts_the_keyed_box(raw_beton, images):
    decoder = get_op("random_resized_crop")(size=[12, 16], scale=(0.2, 0.9))
    decoder.bind(EpochClock(seed=5, epoch=2), position=0)
    out = load(raw_beton, decoder)
    assert out.shape == (6, 12, 16, 3)
    stream = stream_key(5, 2, 0)
    for index, image in enumerate(images):
        y, x, h, w = random_resized_crop_box(np.uint64(sample_key(stream, index)), 32, 40,
                                             (0.2, 0.9), (3 / 4, 4 / 3))
        assert np.array_equal(out[index], area_resize(image, y, x, h, w, (12, 16)))


def test_center_crop_and_plain_decode(raw_beton, images):
    out = load(raw_beton, get_op("center_crop")(size=14, ratio=0.875))
    # side int(0.875 * 32) = 28, offsets ((32 - 28) // 2, (40 - 28) // 2) = (2, 6)
    for index, image in enumerate(images):
        assert np.array_equal(out[index], area_resize(image, 2, 6, 28, 28, (14, 14)))
    assert np.array_equal(load(raw_beton, get_op("decode")()), np.stack(images))


def test_plain_decode_of_jpegs_is_opencvs_decode_of_the_same_bytes(tmp_path, images):
    """``decode`` on JPEG samples (its C entry's JPEG branch) against OpenCV decoding what
    FFCV's writer stores (OpenCV's encoder, BGR, quality 90): the same pixels up to the IDCT
    (FFCV's fast integer one against OpenCV's accurate one), each in its own slot."""
    jpeg_beton = write_beton(tmp_path / "plain.beton", images, range(6), write_mode="jpg")
    out = load(jpeg_beton, get_op("decode")()).astype(int)
    for index, image in enumerate(images):
        _, stored = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                 [cv2.IMWRITE_JPEG_QUALITY, 90])
        reference = cv2.cvtColor(cv2.imdecode(stored, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        difference = np.abs(out[index] - reference)
        assert difference.mean() < 2 and difference.max() <= 8, (index, difference.max())


def test_output_types_and_parameters():
    assert get_op("random_resized_crop")(size=[10, 20]).output_type(None) == ImageType(10, 20)
    assert get_op("center_crop")(size=7).output_type(None) == ImageType(7, 7)
    assert get_op("decode")().output_type(ImageType(5, 6)) == ImageType(5, 6)
    assert list(get_op("random_resized_crop").parameters()) == ["size", "scale", "ratio"]
    assert list(get_op("center_crop").parameters()) == ["size", "ratio"]
    assert get_op("decode").parameters() == {}
    assert {get_op(n).stage for n in ("random_resized_crop", "center_crop", "decode")} == {"decoder"}


def test_random_resized_crop_on_jpeg_crops_the_decoded_image(tmp_path, images):
    """Without crop-aware decoding: FFCV's full decode, then the crop and OpenCV's resize,
    exactly; with it (the default), close to that (operations.cpu.jpeg; tests/operations/cpu/
    test_jpeg.py measures it on a photograph)."""
    jpeg_beton = write_beton(tmp_path / "jpeg.beton", images, range(6), write_mode="jpg")
    decoded = load(jpeg_beton, get_op("decode")())  # FFCV's own JPEG decode, uncropped
    full = get_op("random_resized_crop")(size=10)
    full.bind(EpochClock(seed=1), position=0)
    full.crop_aware = False
    out = load(jpeg_beton, full)
    stream = stream_key(1, 0, 0)
    for index in range(6):
        y, x, h, w = random_resized_crop_box(np.uint64(sample_key(stream, index)), 32, 40,
                                             (0.08, 1.0), (3 / 4, 4 / 3))
        assert np.array_equal(out[index], area_resize(decoded[index], y, x, h, w, (10, 10)))
    for name, size in (("random_resized_crop", 10), ("center_crop", 12)):
        exact, aware = get_op(name)(size=size), get_op(name)(size=size)
        exact.crop_aware = False
        for op in (exact, aware):
            op.bind(EpochClock(seed=1), position=0)
        difference = np.abs(load(jpeg_beton, aware).astype(int) - load(jpeg_beton, exact))
        assert difference.mean() < 6 and np.percentile(difference, 95) < 40
