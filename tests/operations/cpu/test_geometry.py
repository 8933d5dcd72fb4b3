"""Geometric ops against PIL and numpy references on structured images."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from operations import EpochClock, get_op
from operations.cpu.warp import (affine_matrix, affine_warp, rotation_matrix, shear_matrix,
                                 translate_matrix)
from tests.conftest import structured_batch, structured_image


def warp(image, matrix, fill=0):
    out = np.empty_like(image)
    affine_warp(image, out, matrix, fill)
    return out


def pil_transform(image, matrix, fill=0):
    """PIL's nearest-neighbour affine transform (output -> input matrix, like ours)."""
    fill = (fill,) * 3 if isinstance(fill, int) else fill
    return np.asarray(Image.fromarray(image).transform(
        (image.shape[1], image.shape[0]), Image.AFFINE, tuple(np.ravel(matrix)),
        resample=Image.NEAREST, fillcolor=fill))


def mismatch(a, b):
    return (a != b).any(axis=-1).mean()


def shifted(image, dx, dy, fill):
    """``image`` moved right by dx and down by dy, uncovered pixels = fill (numpy slicing)."""
    h, w = image.shape[:2]
    out = np.empty_like(image)
    out[:] = fill
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def matching_shift(image, out, radius_x, radius_y, fill):
    """The integer shift (dx, dy) within the radii that turns ``image`` into ``out``, or None."""
    for dy in range(-radius_y, radius_y + 1):
        for dx in range(-radius_x, radius_x + 1):
            if np.array_equal(shifted(image, dx, dy, fill), out):
                return dx, dy
    return None


def torchvision_forward(angle, tx, ty, scale, shear_x, shear_y, cx, cy):
    """T * C * R(angle) * S(scale) * SHy(shear_y) * SHx(shear_x) * C^-1 from the definitions in
    torchvision's ``_get_inverse_affine_matrix`` docstring (3x3, input -> output)."""
    a, sx, sy = (math.radians(v) for v in (angle, shear_x, shear_y))
    translate = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1.0]])
    centre = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1.0]])
    rotation = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    zoom = np.diag([scale, scale, 1.0])
    shear_y_m = np.array([[1, 0, 0], [-math.tan(sy), 1, 0], [0, 0, 1.0]])
    shear_x_m = np.array([[1, -math.tan(sx), 0], [0, 1, 0], [0, 0, 1.0]])
    return translate @ centre @ rotation @ zoom @ shear_y_m @ shear_x_m @ np.linalg.inv(centre)


@settings(max_examples=60, deadline=None)
@given(angle=st.floats(-180, 180), tx=st.floats(-20, 20), ty=st.floats(-20, 20),
       scale=st.floats(0.2, 3), shear_x=st.floats(-60, 60), shear_y=st.floats(-60, 60),
       cx=st.floats(0, 50), cy=st.floats(0, 50))
def test_affine_matrix_inverts_torchvisions_forward_map(angle, tx, ty, scale, shear_x, shear_y, cx, cy):
    forward = torchvision_forward(angle, tx, ty, scale, shear_x, shear_y, cx, cy)
    inverse = affine_matrix(angle, tx, ty, scale, shear_x, shear_y, cx, cy)
    assert np.allclose(np.linalg.inv(forward)[:2], inverse, atol=1e-7)


def test_named_builders_are_the_affine_special_cases():
    assert np.allclose(translate_matrix(3.0, -2.0), [[1, 0, -3], [0, 1, 2]])
    # counter-clockwise (as seen, y down) 90 degrees about (5, 4) moves (cx + d, cy) to
    # (cx, cy - d): output (x, y) reads input (cx - (y - cy), cy + (x - cx))
    assert np.allclose(rotation_matrix(90.0, 5.0, 4.0), [[0, -1, 9], [1, 0, -1]], atol=1e-12)
    t = math.tan(math.radians(20))
    assert np.allclose(shear_matrix(20.0, 0.0, 5.0, 4.0), [[1, t, -4 * t], [0, 1, 0]])


@pytest.mark.parametrize("matrix", [
    rotation_matrix(30.0, 8.5, 6.5),
    affine_matrix(17.0, 2.0, -1.0, 1.2, 10.0, -5.0, 8.5, 6.5),
    shear_matrix(20.0, -7.0, 0.0, 0.0),
])
def test_affine_warp_matches_pil_transform(matrix):
    image = structured_image(13, 17, seed=1)
    # PIL steps its coordinates incrementally; a pixel centre landing within rounding error of
    # a pixel edge may round the other way. Measured: 0 mismatches for these matrices.
    assert mismatch(warp(image, matrix, (1, 2, 3)), pil_transform(image, matrix, (1, 2, 3))) <= 0.01


def test_affine_warp_matches_pil_where_centres_hit_pixel_edges():
    image = structured_image(13, 17, seed=1)
    matrix = np.array([[0.9, 0.1, 1.3], [-0.2, 1.1, -0.7]])  # decimal entries: exact ties
    assert mismatch(warp(image, matrix, 9), pil_transform(image, matrix, 9)) <= 0.05  # measured 2.7%


@pytest.mark.parametrize("angle", [17.0, 45.0, 90.0, -30.0])
def test_rotation_matches_pil_rotate(angle):
    image = structured_image(13, 17, seed=2)
    ours = warp(image, rotation_matrix(angle, 17 / 2, 13 / 2))
    assert mismatch(ours, np.asarray(Image.fromarray(image).rotate(angle, resample=Image.NEAREST))) <= 0.01


@pytest.mark.parametrize("side", [8, 9])
def test_quarter_turns_are_exact(side):
    image = structured_image(side, side, seed=3)
    for k in (1, 2, 3):
        assert np.array_equal(warp(image, rotation_matrix(90.0 * k, side / 2, side / 2)),
                              np.rot90(image, k))
    wide = structured_image(6, 11, seed=3)
    assert np.array_equal(warp(wide, rotation_matrix(180.0, 5.5, 3.0)), wide[::-1, ::-1])


def sampled_by_definition(image, matrix, fill):
    """``out[y, x] = image[floor(matrix @ (x + 0.5, y + 0.5, 1))]`` in numpy, the sums in
    affine_warp's documented order, ``fill`` outside."""
    h, w, channels = image.shape
    y, x = np.mgrid[0:h, 0:w] + 0.5
    u = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    v = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    out = np.empty_like(image)
    out[:] = fill
    out[inside] = image[v[inside].astype(np.int64), u[inside].astype(np.int64)]
    return out


@settings(max_examples=80, deadline=None)
@given(data=st.data(), channels=st.sampled_from([1, 3, 4]),
       scales=st.sampled_from([(1.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (0.7, 1.3), (-1.6, 0.45)]),
       shear=st.sampled_from([0.0, -0.0, 1e-9, 0.3]))
def test_affine_warp_samples_by_its_definition(data, channels, scales, shear):
    """Both paths (``separable_warp`` where there is no rotation or shear, the general loop
    otherwise) against numpy on the same sums: translations by whole and fractional pixels,
    flips, scalings, tiny shears."""
    h, w = data.draw(st.integers(1, 19)), data.draw(st.integers(1, 23))
    image = np.random.default_rng(data.draw(st.integers(0, 99))).integers(
        0, 256, (h, w, channels), dtype=np.uint8)
    shift = st.one_of(st.integers(-30, 30).map(float), st.floats(-30, 30))
    c, f = data.draw(shift), data.draw(shift)
    a, e = scales
    c += w if a < 0 else 0
    f += h if e < 0 else 0
    matrix = np.array([[a, shear, c], [data.draw(st.sampled_from([0.0, -shear])), e, f]])
    fill = tuple(range(7, 7 + channels))
    expected = sampled_by_definition(image, matrix, fill)
    assert np.array_equal(warp(image, matrix, fill), expected)


def test_integer_translation_is_exact_with_fill():
    image = structured_image(10, 12, seed=4)
    assert np.array_equal(warp(image, translate_matrix(3.0, -2.0), (7, 8, 9)),
                          shifted(image, 3, -2, (7, 8, 9)))


def test_flips():
    images = structured_batch(3, 5, 7)
    assert np.array_equal(get_op("vertical_flip")().apply(images), images[:, ::-1])
    assert np.array_equal(get_op("horizontal_flip")(p=1.0).apply(images), images[:, :, ::-1])


def test_pad_crop_is_a_translation_within_padding():
    images = np.repeat(structured_image(9, 11, seed=5)[None], 40, axis=0)
    op = get_op("pad_crop")(padding=2, fill=(250, 0, 250))
    op.bind(EpochClock(seed=3), 0)
    shifts = [matching_shift(images[0], out, 2, 2, (250, 0, 250)) for out in op.apply(images)]
    assert None not in shifts
    assert {dx for dx, _ in shifts} == {-2, -1, 0, 1, 2}
    assert {dy for _, dy in shifts} == {-2, -1, 0, 1, 2}


def test_translate_shifts_by_whole_pixels_up_to_the_fraction():
    images = np.repeat(structured_image(10, 20, seed=6)[None], 30, axis=0)
    op = get_op("translate")(max_fraction=0.1, fill=0)
    shifts = [matching_shift(images[0], out, 2, 1, 0) for out in op.apply(images)]
    assert None not in shifts  # |dx| <= round(0.1 * 20), |dy| <= round(0.1 * 10)
    assert len(set(shifts)) > 5


def test_rotate_with_a_fixed_angle_is_the_quarter_turn():
    images = structured_batch(4, 8, 8)
    assert np.array_equal(get_op("rotate")(degrees=(90, 90)).apply(images),
                          np.rot90(images, 1, axes=(1, 2)))


def test_shear_with_a_fixed_angle_matches_pil():
    images = structured_batch(3, 12, 15)
    out = get_op("shear")(degrees=(20, 20), fill=5).apply(images)
    t = math.tan(math.radians(20))
    # x_in = x + tan(20 deg) * (y - h/2), y_in = y: the shear about the image centre
    for image, ours in zip(images, out):
        assert mismatch(ours, pil_transform(image, [1, t, -6 * t, 0, 1, 0], 5)) <= 0.01


def test_random_affine_zoom_and_clockwise_angle_match_pil():
    images = structured_batch(2, 12, 16)
    zoom = get_op("random_affine")(degrees=0, scale=(2.0, 2.0)).apply(images)
    turn = get_op("random_affine")(degrees=(30, 30)).apply(images)
    for image, zoomed, turned in zip(images, zoom, turn):
        assert mismatch(zoomed, pil_transform(image, [0.5, 0, 4, 0, 0.5, 3])) <= 0.01
        pil_clockwise = np.asarray(Image.fromarray(image).rotate(-30, resample=Image.NEAREST))
        assert mismatch(turned, pil_clockwise) <= 0.01


def test_parameters_are_the_kernel_signatures():
    assert list(get_op("rotate").parameters()) == ["degrees", "fill", "p"]
    assert list(get_op("random_affine").parameters()) == [
        "degrees", "translate", "scale", "shear", "fill", "p"]
    with pytest.raises(TypeError):
        get_op("rotate")()  # degrees is required, as in torchvision
