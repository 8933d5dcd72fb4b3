"""TrivialAugmentWide, RandAugment and AutoAugment: torchvision's tables, uniform choices,
each policy op's meaning, and deterministic per-image application."""
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from operations import EpochClock, ImageType, OpTypeError, get_op
from operations.cpu import policies as P
from operations.rng import derive, sample_key, stream_key, uniform
from tests.conftest import structured_batch, structured_image

IMAGE = structured_image(16, 16, seed=4)


def keys(n, seed=0):
    stream = np.uint64(stream_key(seed, 0, 1))
    return [np.uint64(sample_key(stream, i)) for i in range(n)]


def chi_square(counts):
    expected = np.mean(counts)
    return float(((np.asarray(counts) - expected) ** 2 / expected).sum())


def test_trivial_augment_choice_is_uniform():
    draws = np.array([P.trivial_augment_choice(k, 31) for k in keys(14000)])
    ops, bins, signs = draws[:, 0].astype(int), draws[:, 1].astype(int), draws[:, 2]
    assert chi_square(np.bincount(ops, minlength=14)) < 34.53  # df 13, p = 0.001
    assert ops.max() == 13 and bins.max() == 30 and bins.min() == 0
    assert chi_square(np.bincount(bins, minlength=31)) < 59.70  # df 30, p = 0.001
    assert set(signs) == {-1.0, 1.0} and 0.485 < (signs < 0).mean() < 0.515  # 3.5 sigma


def row(space, name, num_bins, **size):
    return P.magnitudes(space, num_bins, **size)[[op.name for op in space].index(name)]


def test_trivial_augment_wide_table_is_torchvisions():
    space = P.TRIVIAL_AUGMENT_WIDE
    assert [op.name for op in space] == [
        "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
        "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"]
    picks = [0, 1, 15, 30]
    for name in ("ShearX", "ShearY", "Brightness", "Color", "Contrast", "Sharpness"):
        assert row(space, name, 31)[picks] == pytest.approx([0.0, 0.033, 0.495, 0.99])
    for name in ("TranslateX", "TranslateY"):
        assert row(space, name, 31)[picks] == pytest.approx([0.0, 32 / 30, 16.0, 32.0])
    assert row(space, "Rotate", 31)[picks] == pytest.approx([0.0, 4.5, 67.5, 135.0])
    assert row(space, "Solarize", 31)[picks] == pytest.approx([255.0, 246.5, 127.5, 0.0])
    assert list(row(space, "Posterize", 31)) == [8] * 3 + [7] * 5 + [6] * 5 + [5] * 5 + [4] * 5 + [3] * 5 + [2] * 3
    for name in ("Identity", "AutoContrast", "Equalize"):
        assert not row(space, name, 31).any()
    assert [op.name for op in space if op.signed] == [
        "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
        "Contrast", "Sharpness"]


def test_rand_augment_and_auto_augment_tables_are_torchvisions():
    ra = P.RAND_AUGMENT
    assert [op.name for op in ra] == [op.name for op in P.TRIVIAL_AUGMENT_WIDE]
    assert row(ra, "ShearX", 31)[[9, 30]] == pytest.approx([0.09, 0.3])
    assert row(ra, "TranslateX", 31, height=224, width=200)[30] == pytest.approx(150 / 331 * 200)
    assert row(ra, "TranslateY", 31, height=224, width=200)[30] == pytest.approx(150 / 331 * 224)
    assert row(ra, "Rotate", 31)[9] == pytest.approx(9.0)
    assert row(ra, "Contrast", 31)[9] == pytest.approx(0.27)
    assert row(ra, "Solarize", 31)[9] == pytest.approx(178.5)
    assert list(row(ra, "Posterize", 31)) == [8] * 4 + [7] * 8 + [6] * 7 + [5] * 8 + [4] * 4

    aa = P.AUTO_AUGMENT
    assert [op.name for op in aa] == [op.name for op in ra[1:]] + ["Invert"]
    assert list(row(aa, "Posterize", 10)) == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
    assert row(aa, "Rotate", 10) == pytest.approx(np.arange(10) * 30 / 9)
    assert row(aa, "Solarize", 10) == pytest.approx(255 - np.arange(10) * 255 / 9)


def test_auto_augment_imagenet_policy_is_well_formed():
    policy = P.AUTO_AUGMENT_IMAGENET
    assert len(policy) == 25 and all(len(sub) == 2 for sub in policy)
    names = {op.name for op in P.AUTO_AUGMENT}
    for sub in policy:
        for name, prob, b in sub:
            assert name in names and 0.0 <= prob <= 1.0 and (b is None or 0 <= b <= 9)
    assert policy[0] == (("Posterize", 0.4, 8), ("Rotate", 0.6, 9))
    assert policy[-1] == (("Equalize", 0.8, None), ("Equalize", 0.6, None))
    assert P.IMAGENET_ROWS.shape == (25, 2)


def test_signed_magnitudes_flip_only_for_signed_ops():
    table = P.compile_space(P.TRIVIAL_AUGMENT_WIDE)
    rotate, posterize = table[5], table[10]
    assert P.op_magnitude(rotate, 10, 31, -1.0, 8, 8) == pytest.approx(-45.0)
    assert P.op_magnitude(posterize, 10, 31, -1.0, 8, 8) == 6.0


def policy_op(name, magnitude, image=IMAGE, fill=0):
    out = np.empty_like(image)
    P.apply_policy_op(P.OP_NAMES.index(name), magnitude, image, out, fill)
    return out


@pytest.mark.parametrize("name, magnitude, reference", [
    ("Identity", 0.0, lambda im: im),
    ("Brightness", 0.5, lambda im: ImageEnhance.Brightness(im).enhance(1.5)),
    ("Color", -0.3, lambda im: ImageEnhance.Color(im).enhance(0.7)),
    ("Contrast", 0.9, lambda im: ImageEnhance.Contrast(im).enhance(1.9)),
    ("Sharpness", -0.99, lambda im: ImageEnhance.Sharpness(im).enhance(0.01)),
    ("Posterize", 4.0, lambda im: ImageOps.posterize(im, 4)),
    ("Solarize", 127.5, lambda im: ImageOps.solarize(im, 128)),
    ("AutoContrast", 0.0, ImageOps.autocontrast),
    ("Equalize", 0.0, ImageOps.equalize),
    ("Invert", 0.0, ImageOps.invert),
], ids=lambda v: v if isinstance(v, str) else None)
def test_colour_policy_ops_mean_pil_enhancements(name, magnitude, reference):
    expected = np.asarray(reference(Image.fromarray(IMAGE)))
    assert np.abs(policy_op(name, magnitude).astype(int) - expected).max() <= 1  # observed 0


def test_translations_move_whole_pixels_truncated_toward_zero():
    right = np.full_like(IMAGE, 9)
    right[:, 3:] = IMAGE[:, :-3]
    assert np.array_equal(policy_op("TranslateX", 3.7, fill=9), right)
    up = np.zeros_like(IMAGE)
    up[:-2] = IMAGE[2:]
    assert np.array_equal(policy_op("TranslateY", -2.9), up)


def test_rotate_is_counter_clockwise_about_the_centre():
    assert np.array_equal(policy_op("Rotate", 90.0), np.rot90(IMAGE))
    assert np.array_equal(policy_op("Rotate", -90.0), np.rot90(IMAGE, -1))


@pytest.mark.parametrize("name", ["ShearX", "ShearY"])
@pytest.mark.parametrize("m", [0.3, -0.55])
def test_shears_are_about_the_top_left_corner(name, m):
    # torchvision: F.affine(shear=degrees(atan(m)), center=[0, 0]); output pixel centre
    # (x + .5, y + .5) samples the input at x + .5 + m (y + .5) (ShearX), nearest below.
    h, w = IMAGE.shape[:2]
    expected = np.zeros_like(IMAGE)
    for y in range(h):
        for x in range(w):
            u, v = x + 0.5, y + 0.5
            u, v = (u + m * v, v) if name == "ShearX" else (u, v + m * u)
            if 0 <= u < w and 0 <= v < h:
                expected[y, x] = IMAGE[int(np.floor(v)), int(np.floor(u))]
    assert np.array_equal(policy_op(name, m), expected)


def bound(name, seed=3, **params):
    op = get_op(name)(**params)
    op.bind(EpochClock(seed=seed), position=2)
    return op


@pytest.mark.parametrize("name, params", [("trivial_augment_wide", {}), ("rand_augment", {}),
                                          ("auto_augment", {"fill": (10, 20, 30)})])
def test_policies_are_deterministic_per_image_and_change_with_epoch(name, params):
    images = structured_batch(12, 32, 32)  # >= 256 pixels per step, or PIL's equalize is a no-op
    op = bound(name, **params)
    first = op.apply(images)
    assert first.shape == images.shape and first.dtype == np.uint8
    assert np.array_equal(first, op.apply(images))
    changed = sum(not np.array_equal(first[i], images[i]) for i in range(12))
    assert changed >= 6
    op.clock.epoch = 1
    assert not np.array_equal(first, op.apply(images))


#: torchvision's TrivialAugmentWide magnitudes at 31 bins, written out (not read from P)
TAW_NAMES = ["Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
             "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"]
TAW_MAGNITUDES = {"ShearX": np.linspace(0, 0.99, 31), "ShearY": np.linspace(0, 0.99, 31),
                  "TranslateX": np.linspace(0, 32, 31), "TranslateY": np.linspace(0, 32, 31),
                  "Rotate": np.linspace(0, 135, 31), "Brightness": np.linspace(0, 0.99, 31),
                  "Color": np.linspace(0, 0.99, 31), "Contrast": np.linspace(0, 0.99, 31),
                  "Sharpness": np.linspace(0, 0.99, 31),
                  "Posterize": 8 - np.round(np.arange(31) / 5), "Solarize": np.linspace(255, 0, 31)}
NEAREST = Image.Resampling.NEAREST


def pil_trivial_augment(image, name, m):
    """torchvision's meaning of one TrivialAugmentWide op at signed magnitude ``m``, in PIL."""
    im = Image.fromarray(image)
    size = im.size
    affine = {"ShearX": (1, m, 0, 0, 1, 0), "ShearY": (1, 0, 0, m, 1, 0),
              "TranslateX": (1, 0, -int(m), 0, 1, 0), "TranslateY": (1, 0, 0, 0, 1, -int(m))}
    if name in affine:
        out = im.transform(size, Image.Transform.AFFINE, affine[name], NEAREST, fillcolor=(0, 0, 0))
    elif name == "Rotate":
        out = im.rotate(m, resample=NEAREST, fillcolor=(0, 0, 0))
    elif name in ("Brightness", "Color", "Contrast", "Sharpness"):
        out = getattr(ImageEnhance, name)(im).enhance(1.0 + m)
    elif name == "Posterize":
        out = ImageOps.posterize(im, int(m))
    elif name == "Solarize":
        out = ImageOps.solarize(im, m)
    elif name == "AutoContrast":
        out = ImageOps.autocontrast(im)
    elif name == "Equalize":
        out = ImageOps.equalize(im)
    else:
        out = im
    return np.asarray(out)


def test_trivial_augment_wide_applies_the_drawn_op_as_pil_does():
    """Per image: the op, bin and sign its docstring's draws 0-2 pick (computed here from the
    RNG contract), applied by PIL with torchvision's magnitudes."""
    images = structured_batch(40, 16, 16)
    out = bound("trivial_augment_wide", seed=8).apply(images)
    stream = np.uint64(stream_key(8, 0, 2))
    seen = set()
    for i in range(len(images)):
        rng = np.uint64(derive(np.uint64(sample_key(stream, i)), 1))  # the kernel's key
        name = TAW_NAMES[int(uniform(rng, 0) * 14)]
        m = TAW_MAGNITUDES.get(name, np.zeros(31))[int(uniform(rng, 1) * 31)]
        signed = name not in ("Identity", "Posterize", "Solarize", "AutoContrast", "Equalize")
        if signed and uniform(rng, 2) < 0.5:
            m = -m
        expected = pil_trivial_augment(images[i], name, m)
        differs = np.abs(out[i].astype(int) - expected).max(axis=-1)
        if name == "Rotate":  # PIL rounds its rotation matrix to 15 digits: a rare other pixel
            assert (differs > 0).mean() <= 0.02, name
        else:
            assert differs.max() <= 1, name  # enhancements: PIL's blend within one level
        seen.add(name)
    assert len(seen) >= 10


def test_rand_augment_with_no_ops_is_identity_and_checks_its_bin():
    images = structured_batch(3, 8, 8)
    assert np.array_equal(bound("rand_augment", num_ops=0).apply(images), images)
    with pytest.raises(OpTypeError, match="'rand_augment' needs magnitude < num_magnitude_bins "
                                          r"\(it is a bin index\), got 31 with 31 bins"):
        get_op("rand_augment")(magnitude=31).output_type(ImageType(8, 8))
    with pytest.raises(OpTypeError, match="'auto_augment' expects uint8 images but gets float16"):
        get_op("auto_augment")().output_type(ImageType(8, 8, dtype="float16"))


def test_a_space_is_data_naming_policy_ops():
    """A new space is SpaceOp lines naming POLICY_OPS entries; nothing else to edit."""
    space = (P.SpaceOp("Invert"), P.SpaceOp("Solarize", 255.0, 0.0),
             P.SpaceOp("TranslateY", 0.0, 0.5, per_side=True))
    table = P.compile_space(space)
    assert [P.OP_NAMES[int(code)] for code in table[:, P.CODE]] == ["Invert", "Solarize",
                                                                    "TranslateY"]
    assert P.op_magnitude(table[1], 2, 3, 1.0, 8, 8) == 0.0  # last bin: threshold 0
    assert P.op_magnitude(table[2], 2, 3, 1.0, 8, 6) == 4.0  # half the height of 8 px
    out = np.empty_like(IMAGE)
    P.apply_policy_op(int(table[0, P.CODE]), 0.0, IMAGE, out, 0)
    assert np.array_equal(out, 255 - IMAGE)
    with pytest.raises(KeyError):
        P.compile_space((P.SpaceOp("Posterise"),))
