"""Crop-aware JPEG decoding (operations.cpu.jpeg, roi_jpeg.c) against independent references:
FFCV's and PIL's full decodes, numpy block means and area-weight matrices, OpenCV's resize."""
import io

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from operations.cpu import jpeg
from tests.conftest import structured_image

pytestmark = pytest.mark.skipif(not jpeg.AVAILABLE, reason="operations/cpu/_roi_jpeg*.so is not "
                                "built (pip install -e . or python setup.py build_ext --inplace)")


def photo(height=240, width=320):
    """A natural photograph (scikit-image's demo data), else a structured image."""
    try:
        from skimage import data
        image = data.astronaut()
    except ImportError:
        return structured_image(height, width, seed=3)
    return np.ascontiguousarray(image[:height, :width])


def encode(image, subsampling=2, quality=90) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return np.frombuffer(buffer.getvalue(), np.uint8)


def ffcv_decode(data, height, width):
    from ffcv.libffcv import imdecode

    out = np.zeros((height, width, 3), np.uint8)
    imdecode(data, out, height, width, height, width, 0, 0, 1, 1, False, False)
    return out


def pil_decode(data):
    return np.asarray(Image.open(io.BytesIO(data.tobytes())).convert("RGB"))


def decode(data, scale, y0, y1, x0, x1, size):
    buffer, region = np.zeros(size, np.uint8), np.zeros(4, np.int64)
    status = jpeg.roi_decode(data, buffer, scale, y0, y1, x0, x1, region)
    rows, column, columns = region[1:]
    return status, region, buffer[:rows * columns * 3].reshape(rows, columns, 3)


@pytest.mark.parametrize("subsampling", [0, 2])  # 4:4:4 and 4:2:0
def test_full_decode_at_scale_one_is_ffcvs_bytes(subsampling):
    image = photo()
    data = encode(image, subsampling)
    status, region, out = decode(data, 8, 0, 240, 0, 320, image.size)
    assert status == 0 and list(region) == [0, 240, 0, 320]
    assert np.array_equal(out, ffcv_decode(data, 240, 320))


@pytest.mark.parametrize("subsampling", [0, 2])
def test_a_region_is_the_full_decode_cut_at_mcu_columns(subsampling):
    image = photo()
    data = encode(image, subsampling)
    full = ffcv_decode(data, 240, 320)
    status, region, out = decode(data, 8, 37, 150, 77, 203, image.size)
    y0, rows, column, columns = region
    assert status == 0 and (y0, rows) == (37, 113)
    mcu = 8 if subsampling == 0 else 16
    assert column % mcu == 0 and column <= 77 and column + columns >= 203
    reference = full[37:150, column:column + columns]
    # rows are exact; chroma upsampling sees the cut only in the first and last column
    assert np.array_equal(out[:, 1:-1], reference[:, 1:-1])
    assert np.abs(out.astype(int) - reference).max() <= 16


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_dct_scaled_decode_is_close_to_the_block_means_of_the_full_decode(scale):
    image = photo()
    data = encode(image, subsampling=0)
    factor = 8 // scale
    status, region, out = decode(data, scale, 0, 240 // factor, 0, 320 // factor, image.size)
    assert status == 0 and out.shape == (240 // factor, 320 // factor, 3)
    means = pil_decode(data).reshape(240 // factor, factor, 320 // factor, factor, 3).mean((1, 3))
    difference = np.abs(out - means)
    assert difference.mean() < 2.0 and difference.max() < 40


def area_matrix(start, stop, count, limit):
    """(count, limit) weights: output cell i averages the source over its share of
    [start, stop), partly covered samples weighted by the covered fraction."""
    edges = np.linspace(start, stop, count + 1)
    pixels = np.arange(limit)
    overlap = (np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels))
    return np.clip(overlap, 0, None) / ((stop - start) / count)


@pytest.mark.parametrize("box, size", [((0, 60, 0, 80), (30, 40)), ((3.5, 51.25, 7.75, 70.5), (17, 23)),
                                       ((10.1, 20.9, 5.3, 15.7), (10, 10))])
def test_area_resize_is_the_exact_area_average(box, size):
    image = structured_image(60, 80, seed=4)
    y0, y1, x0, x1 = box
    out = np.zeros(size + (3,), np.uint8)
    assert jpeg.area_resize(image, y0, y1, x0, x1, out) == 0
    rows, cols = area_matrix(y0, y1, size[0], 60), area_matrix(x0, x1, size[1], 80)
    reference = np.einsum("iy,yxc,jx->ijc", rows, image.astype(np.float64), cols)
    assert np.abs(out - reference).max() <= 0.51 + 1e-3  # rounding, float32 sums
    if box == (0, 60, 0, 80):  # on the pixel grid: OpenCV's INTER_AREA
        expected = cv2.resize(image, (40, 30), interpolation=cv2.INTER_AREA)
        assert np.abs(out.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("shrink", [1.0, 1.07, 1.5, 2.0, 2.6, 3.3, 4.8, 7.5])
def test_area_resize_is_the_exact_area_average_for_every_tap_count(shrink):
    """Random boxes whose cells span 1 to 8 source pixels: every specialised tap count of
    the vertical and horizontal passes, and the generic ones past them."""
    image = structured_image(90, 120, seed=7)
    rng = np.random.default_rng(int(shrink * 100))
    for _ in range(6):
        out_h, out_w = int(rng.integers(3, 80 / shrink + 4)), int(rng.integers(3, 110 / shrink + 4))
        h, w = min(out_h * shrink, 90.0), min(out_w * shrink, 120.0)
        out_h, out_w = max(1, int(h / shrink)), max(1, int(w / shrink))
        y0, x0 = rng.uniform(0, 90 - h), rng.uniform(0, 120 - w)
        out = np.zeros((out_h, out_w, 3), np.uint8)
        assert jpeg.area_resize(image, y0, y0 + h, x0, x0 + w, out) == 0
        rows, cols = area_matrix(y0, y0 + h, out_h, 90), area_matrix(x0, x0 + w, out_w, 120)
        reference = np.einsum("iy,yxc,jx->ijc", rows, image.astype(np.float64), cols)
        assert np.abs(out - reference).max() <= 0.51 + 1e-3, (y0, h, x0, w, out_h, out_w)


@pytest.mark.parametrize("h, w, out, expected", [(300, 300, 160, 8), (200, 200, 160, 8), (320, 320, 160, 4),
                                                 (330, 700, 160, 4), (200, 700, 96, 4), (200, 800, 48, 2),
                                                 (640, 640, 80, 1), (100, 100, 160, 8)])
def test_the_scale_is_the_smallest_keeping_the_crop_at_least_the_output(h, w, out, expected):
    assert jpeg.dct_scale(h, w, out, out) == expected


def test_crop_resize_stays_close_to_full_decode_and_the_same_resize():
    """The deviation docs/performance.md reports, on a photograph: scaled crops within a
    small mean difference of today's output (FFCV's decode, OpenCV's INTER_AREA), crops at
    scale 8/8 equal to it but for the decoded region's edge columns."""
    image = photo(240, 320)
    data = encode(image)
    full = ffcv_decode(data, 240, 320)
    buffer = np.zeros(image.size, np.uint8)
    rng = np.random.default_rng(0)
    scales = set()
    for _ in range(40):
        h, w = int(rng.integers(40, 240)), int(rng.integers(40, 320))
        y, x = int(rng.integers(0, 240 - h + 1)), int(rng.integers(0, 320 - w + 1))
        size = int(rng.integers(16, 90))
        out = np.zeros((size, size, 3), np.uint8)
        assert jpeg.decode_crop_resized(data, buffer, 240, 320, y, x, h, w, out)
        today = cv2.resize(full[y:y + h, x:x + w], (size, size), interpolation=cv2.INTER_AREA)
        difference = np.abs(out.astype(int) - today)
        scale = jpeg.dct_scale(h, w, size, size)
        scales.add(scale)
        if scale == 8:
            assert difference.mean() < 0.05, (y, x, h, w, size)
        else:  # coarser cells (8/M source pixels) deviate more where the cut crosses them
            bound = 2.5 if scale >= 4 else 5.0
            assert difference.mean() < bound, (y, x, h, w, size)
            assert np.percentile(difference, 99) < 40, (y, x, h, w, size)
    assert scales == {1, 2, 4, 8}


def test_non_jpeg_bytes_are_refused_without_writing():
    png = io.BytesIO()
    Image.fromarray(structured_image(20, 30)).save(png, format="PNG")
    for data in (np.frombuffer(png.getvalue(), np.uint8), np.zeros(100, np.uint8),
                 encode(photo())[:200]):  # a PNG, zeros, a JPEG cut inside its header
        buffer = np.full(20 * 30 * 3, 7, np.uint8)
        out = np.full((8, 8, 3), 7, np.uint8)
        assert jpeg.decode_crop_resized(data, buffer, 20, 30, 0, 0, 20, 30, out) is False
        assert (out == 7).all()


def test_a_region_outside_the_scaled_image_is_refused():
    data = encode(photo())
    assert decode(data, 4, 0, 121, 0, 10, 240 * 320 * 3)[0] == -2  # 120 scaled rows
    assert decode(data, 8, 0, 240, 0, 320, 100)[0] == -3  # destination too small


def test_corrupt_jpegs_decode_or_are_refused_never_crash():
    """Bit flips and truncations anywhere in the file, random crops and scales: libjpeg's
    errors come back as a status (and the decoders fall back), warnings decode what is there."""
    data = encode(photo(120, 160))
    rng = np.random.default_rng(1)
    buffer = np.zeros(120 * 160 * 3, np.uint8)
    statuses = set()
    for trial in range(300):
        broken = data.copy()
        if trial % 3 == 0:
            broken = broken[:int(rng.integers(2, len(data)))]
        else:
            where = rng.integers(0, len(data), int(rng.integers(1, 8)))
            broken[where] ^= rng.integers(1, 256, len(where)).astype(np.uint8)
        h, w = int(rng.integers(1, 121)), int(rng.integers(1, 161))
        y, x = int(rng.integers(0, 121 - h)), int(rng.integers(0, 161 - w))
        out = np.zeros((int(rng.integers(1, 64)),) * 2 + (3,), np.uint8)
        statuses.add(jpeg.decode_crop_resized(broken, buffer, 120, 160, y, x, h, w, out))
    assert statuses == {True, False}


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), shrink=st.floats(1.0, 5.0), mirror=st.booleans(),
       dtype=st.sampled_from(["float32", "float16"]))
def test_area_resize_normalized_is_the_lookup_of_the_area_resize(seed, shrink, mirror, dtype):
    """The fused resize + normalize (+ mirror) of the views' shared decode: exactly the area
    resize, then numpy's table lookup (mirrored columns when ``mirror``), for float32 tables
    and float16 bit patterns, at every tap count."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    out_h, out_w = int(rng.integers(2, 40)), int(rng.integers(2, 50))
    h, w = min(out_h * shrink, 70.0), min(out_w * shrink, 90.0)
    out_h, out_w = max(1, int(h / shrink)), max(1, int(w / shrink))
    y0, x0 = rng.uniform(0, 70 - h), rng.uniform(0, 90 - w)
    values = rng.normal(size=(3, 256))
    table = (values.astype(np.float32) if dtype == "float32"
             else values.astype(np.float16).view(np.uint16))
    resized = np.zeros((out_h, out_w, 3), np.uint8)
    assert jpeg.area_resize(image, y0, y0 + h, x0, x0 + w, resized) == 0
    expected = table[np.arange(3), resized]  # (h, w, 3): table[c, resized[y, x, c]]
    if mirror:
        expected = expected[:, ::-1]
    out = np.full((out_h, out_w, 3), 7, table.dtype)
    assert jpeg.area_resize_normalized(image, y0, y0 + h, x0, x0 + w, out, table, mirror) == 0
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("abi", [None, 1])
def test_a_library_built_from_an_older_roi_jpeg_is_refused_with_a_warning(monkeypatch, abi):
    """A stale _roi_jpeg*.so (no version, or another one) would be called with arguments it
    does not read: it is not used, and the warning says how to rebuild it."""
    from operations.cpu import native

    class Stale:
        pureffcv_roi_decode = pureffcv_area_resize = object()

    if abi is not None:
        Stale.pureffcv_roi_abi = staticmethod(lambda: abi)
    monkeypatch.setattr(native.ctypes, "CDLL", lambda path: Stale())
    with pytest.warns(RuntimeWarning, match="older roi_jpeg.c.*make install"):
        assert native._load_roi_library() == (None, None)
