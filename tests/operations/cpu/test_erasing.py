"""Cutout and random erasing: rectangles inside the image, everything else untouched, area
and ratio within bounds, fill values exact."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operations import EpochClock, get_op
from tests.conftest import structured_batch


def no_zero_batch(n, height, width, seed=0):
    """Structured images without the level 0, so a zero-filled rectangle is visible."""
    return np.maximum(structured_batch(n, height, width, seed), 1)


def bounding_box(mask):
    """(y, x, h, w) of a mask's True pixels, or None when there are none."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return ys.min(), xs.min(), ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


def erased_boxes(images, out, fill=0):
    """Per image: the box of pixels set to ``fill`` (all channels), after checking they form a
    solid rectangle and everything outside it is unchanged."""
    boxes = []
    for image, result in zip(images, out):
        mask = (result == fill).all(axis=-1)
        box = bounding_box(mask)
        if box is not None:
            y, x, h, w = box
            assert mask[y:y + h, x:x + w].all()  # one solid rectangle
        assert np.array_equal(result[~mask], image[~mask])
        boxes.append(box)
    return boxes


def test_random_erasing_boxes_follow_scale_and_ratio():
    images = no_zero_batch(60, 20, 24)
    out = get_op("random_erasing")(p=1.0).apply(images)
    boxes = erased_boxes(images, out)
    assert None not in boxes  # 20x24 always fits within 10 attempts at these scales
    for y, x, h, w in boxes:
        # h = round(sqrt(a r)), w = round(sqrt(a / r)): rounding moves each side by <= 0.5
        assert 0.02 * 480 - (h + w) / 2 - 0.25 <= h * w <= 0.33 * 480 + (h + w) / 2 + 0.25
        assert 0.3 <= (h + 0.5) / max(w - 0.5, 0.5) and (h - 0.5) / (w + 0.5) <= 3.3
        assert h < 20 and w < 24  # torchvision's strict fit test


def test_random_erasing_skips_when_nothing_fits():
    # scale 0.99-1 of a 10x10 square: sides round to 10, never < 10, so torchvision keeps the image
    images = no_zero_batch(10, 10, 10)
    out = get_op("random_erasing")(p=1.0, scale=(0.99, 1.0), ratio=(1.0, 1.0)).apply(images)
    assert np.array_equal(out, images)


def test_random_erasing_fill_values():
    images = no_zero_batch(24, 16, 18)
    make = lambda **kw: get_op("random_erasing")(p=1.0, **kw).apply(images)  # noqa: E731
    boxes = erased_boxes(images, make(value="zero"))
    constant, mean, noise = make(value=77), make(value="mean"), make(value="random")
    for i, (y, x, h, w) in enumerate(boxes):
        inside = np.zeros(images.shape[1:3], bool)
        inside[y:y + h, x:x + w] = True
        for result in (constant, mean, noise):  # the same draws place the same rectangle
            assert np.array_equal(result[i][~inside], images[i][~inside])
        assert (constant[i][inside] == 77).all()
        assert (mean[i][inside] == np.round(images[i].reshape(-1, 3).mean(axis=0))).all()
    pixels = np.concatenate([noise[i, y:y + h, x:x + w].reshape(-1, 3)
                             for i, (y, x, h, w) in enumerate(boxes)]).astype(float)
    # N(0, 1) in ImageNet-normalized units: about mean 124/116/104 and sd 58/57/57 (clipping
    # at 0 and 255 shrinks the sd slightly)
    assert np.allclose(pixels.mean(axis=0), [123.7, 116.3, 103.5], atol=8)
    assert ((pixels.std(axis=0) > 45) & (pixels.std(axis=0) < 62)).all()


def test_random_erasing_count_adds_rectangles():
    images = no_zero_batch(20, 24, 24)
    one = get_op("random_erasing")(p=1.0).apply(images) == 0
    three = get_op("random_erasing")(p=1.0, count=3).apply(images) == 0
    assert (three[one]).all()  # the first rectangle is the same draw
    assert three.sum() > one.sum()


def test_random_erasing_probability():
    images = no_zero_batch(400, 6, 6)
    op = get_op("random_erasing")(scale=(0.1, 0.2), ratio=(1.0, 1.0))  # p = 0.5 by default
    op.bind(EpochClock(seed=9), 3)
    erased = (op.apply(images) != images).any(axis=(1, 2, 3)).sum()
    assert 160 < erased < 240  # binomial(400, 0.5): sd 10, bounds 4 sd out


def test_cutout_square_of_size_clipped_at_borders():
    images = no_zero_batch(50, 16, 20)
    zero = get_op("cutout")(size=5).apply(images)
    coloured = get_op("cutout")(size=5, fill=(10, 20, 30)).apply(images)
    boxes = erased_boxes(images, zero)
    inside_count = 0
    for i, (y, x, h, w) in enumerate(boxes):
        assert h <= 5 and w <= 5
        assert h == 5 or y == 0 or y + h == 16  # shorter only where clipped by a border
        assert w == 5 or x == 0 or x + w == 20
        inside_count += h == 5 and w == 5
        assert (coloured[i, y:y + h, x:x + w] == [10, 20, 30]).all()
    assert inside_count > 10


def test_signatures_and_defaults():
    erasing = get_op("random_erasing").parameters()
    assert {n: p.default for n, p in erasing.items()} == {
        "p": 0.5, "scale": (0.02, 0.33), "ratio": (0.3, 3.3), "value": "zero", "count": 1}
    with pytest.raises(TypeError):
        get_op("cutout")()  # size is required


@settings(max_examples=30, deadline=None)
@given(st.integers(-3, 12), st.integers(-3, 12), st.integers(0, 10), st.integers(0, 10),
       st.sampled_from([0, 7, (1, 2, 3)]), st.sampled_from([np.uint8, np.float32]))
def test_fill_rect_sets_exactly_the_box(y, x, h, w, fill, dtype):
    """``fill_rect`` against numpy slicing, for boxes inside the image and empty ones (a
    negative or zero side fills nothing)."""
    from operations.cpu.erasing import fill_rect

    image = np.arange(10 * 10 * 3).reshape(10, 10, 3).astype(dtype)
    expected = image.copy()
    y, x = max(y, 0), max(x, 0)
    h, w = min(h, 10 - y), min(w, 10 - x)
    if h > 0 and w > 0:
        expected[y:y + h, x:x + w] = fill
    fill_rect(image, y, x, h, w, fill)
    assert np.array_equal(image, expected)
