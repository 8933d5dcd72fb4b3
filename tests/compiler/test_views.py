"""``image.views`` (issue 24): several crops of one image, each copy with its own draws, from
one shared decode.

The references here are independent of the code under test: every .beton stores images whose
pixels encode their own coordinates (red = 2 x column, green = 2 x row), so the crop box a
view shows can be read back from its pixels; the boxes it should show come from torchvision's
RandomResizedCrop.get_params written again in plain Python over the keyed RNG's documented
contract (splitmix64, ``operations/rng.py``), and its distribution from the same algorithm
over NumPy's generator. Blur and solarize are detected from the pixels; JPEG views are
compared with a PIL decode of the stored bytes, cropped and area-resized by OpenCV.
"""
import io
import math
import textwrap
from typing import Optional

import numpy as np
import pytest
import torch

from compiler import SpecError, compile_spec, load_spec
from compiler.spec import MAX_VIEW_COPIES
from compiler.views import view_stream
from operations.cpu.decoders import random_resized_crop_box
from operations.rng import sample_key, stream_key
from tests.conftest import structured_image, write_beton

H, W = 96, 128  # coordinate images: 2 x column fits a byte up to 127, 2 x row up to 95
SEED = 7
N = 300  # samples of the coordinate .beton (the statistics use every copy of all of them)
RATIO = (3 / 4, 4 / 3)
SCALES = {"global": (0.4, 1.0), "local": (0.05, 0.4)}
SIZES = {"global": 64, "local": 32}
COUNTS = {"global": 2, "local": 3}
OUTPUTS = ("global_0", "global_1", "local_0", "local_1", "local_2", "label")

SPEC = f"""\
version: 1
seed: {SEED}
splits:
  train:
    image:
      views:
        global: {{count: 2, decode: {{random_resized_crop: {{size: 64, scale: [0.4, 1.0]}}}}}}
        local: {{count: 3, decode: {{random_resized_crop: {{size: 32, scale: [0.05, 0.4]}}}}}}
    label: int
    loader: {{batch_size: 64, num_workers: 1}}
"""


# --- an independent reference: the keyed RNG's contract and torchvision's box, in Python --

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix64(z: int) -> int:
    z &= MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _derive(key: int, value: int) -> int:
    return _mix64(key ^ _mix64(value + GOLDEN))


def _keyed_uniform(seed: int, epoch: int, position: int, index: int):
    """``draw -> float`` in [0, 1) for one sample of one op's stream (operations/rng.py's
    contract: key = derive(derive(derive(mix64(seed + golden), epoch), position), index))."""
    key = _derive(_derive(_derive(_mix64(seed + GOLDEN), epoch), position), index)
    return lambda draw: (_mix64(key + (draw + 1) * GOLDEN) >> 11) * 2.0 ** -53


def _torchvision_box(uniform, height: int, width: int, scale, ratio):
    """torchvision.transforms.RandomResizedCrop.get_params, attempt k drawing 4k..4k+3 from
    ``uniform`` (area, log-ratio, row offset, column offset): ``(y, x, h, w)``."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for attempt in range(10):
        draw = 4 * attempt
        target = area * (scale[0] + (scale[1] - scale[0]) * uniform(draw))
        aspect = math.exp(log_lo + (log_hi - log_lo) * uniform(draw + 1))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            y = int(uniform(draw + 2) * (height - h + 1))
            x = int(uniform(draw + 3) * (width - w + 1))
            return y, x, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def expected_box(view: str, copy: int, index: int, epoch: int = 0, seed: int = SEED):
    """The box copy ``copy`` of ``view`` shows for sample ``index``: its stream starts at
    ``view_stream(view, copy)`` (the crop is the copy's first op)."""
    uniform = _keyed_uniform(seed, epoch, view_stream(view, copy), index)
    return _torchvision_box(uniform, H, W, SCALES[view], RATIO)


def numpy_torchvision_areas(count: int, scale, seed: int) -> np.ndarray:
    """The area fractions of ``count`` torchvision RandomResizedCrop boxes of an H x W image,
    drawn with NumPy's generator."""
    rng = np.random.default_rng(seed)
    boxes = [_torchvision_box(lambda _: rng.random(), H, W, scale, RATIO) for _ in range(count)]
    return np.array([h * w for _, _, h, w in boxes]) / (H * W)


# --- coordinate images and reading a box back from a view ----------------------------------

def coordinate_image(index: int) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    image = np.empty((H, W, 3), np.uint8)
    image[..., 0] = 2 * x
    image[..., 1] = 2 * y
    image[..., 2] = index % 251
    return image


def _ramp(profile: np.ndarray):
    """(start, length) in source pixels of a resized 2 x coordinate ramp: an output pixel c of
    S shows source position start + (c + 0.5) * length / S - 0.5 (area and bilinear resizes
    alike); the edges, where an enlarging resize clamps, are left out of the fit."""
    size = len(profile)
    centres = np.arange(size) + 0.5
    keep = slice(size // 5, size - size // 5)
    slope, intercept = np.polyfit(centres[keep], profile[keep] / 2, 1)
    return intercept + 0.5, slope * size


def recover_box(view: np.ndarray) -> np.ndarray:
    """``(y, x, h, w)`` (floats) of the crop a (3, S, S) view of a coordinate image shows."""
    view = view.astype(np.float64)
    x, w = _ramp(view[0].mean(axis=0))
    y, h = _ramp(view[1].mean(axis=1))
    return np.array([y, x, h, w])


def run_loader(compiled, path, **overrides) -> dict:
    """Every element of every batch, concatenated per output name, as NumPy arrays."""
    batches = [[t.clone() for t in batch] for batch in compiled.loader(path, **overrides)]
    return {name: torch.cat([b[k] for b in batches]).numpy()
            for k, name in enumerate(compiled.outputs)}


@pytest.fixture(scope="module")
def coordinate_beton(tmp_path_factory):
    return write_beton(tmp_path_factory.mktemp("views") / "coordinates.beton",
                       [coordinate_image(i) for i in range(N)], list(range(N)))


@pytest.fixture(scope="module")
def coordinate_views(coordinate_beton):
    """Every copy of every sample, in sample order (batch 64, one worker)."""
    compiled = compile_spec(SPEC, "train", device="cpu")
    out = run_loader(compiled, coordinate_beton, order="sequential", drop_last=False)
    return compiled, out


# --- 1. each copy shows its own crop ------------------------------------------------------

def test_reference_box_is_the_shipped_box_function():
    """The Python reference agrees with the njit box function on the keys the views use
    (so a disagreement below is the views', not the reference's)."""
    for view in SCALES:
        for copy in range(COUNTS[view]):
            for index in range(0, N, 7):
                stream = stream_key(np.uint64(SEED), np.int64(0),
                                    np.int64(view_stream(view, copy)))
                key = sample_key(np.uint64(stream), np.int64(index))
                box = random_resized_crop_box(np.uint64(key), H, W, SCALES[view], RATIO)
                assert tuple(int(v) for v in box) == expected_box(view, copy, index)


def test_each_copy_shows_its_own_keyed_crop(coordinate_views):
    compiled, out = coordinate_views
    assert compiled.outputs == OUTPUTS
    assert [(c.view, c.copy, c.output) for c in compiled.views] == [
        ("global", 0, "global_0"), ("global", 1, "global_1"),
        ("local", 0, "local_0"), ("local", 1, "local_1"), ("local", 2, "local_2")]
    assert np.array_equal(out["label"], np.arange(N))
    for copy in compiled.views:
        assert copy.plan.steps[0].position == view_stream(copy.view, copy.copy)
        size = SIZES[copy.view]
        images = out[copy.output]
        assert images.shape == (N, 3, size, size) and images.dtype == np.uint8
        assert np.all(images[:, 2] == (np.arange(N) % 251)[:, None, None])  # its own sample
        worst = 0.0
        for index in range(N):
            got = recover_box(images[index])
            want = np.array(expected_box(copy.view, copy.copy, index), np.float64)
            error = np.abs(got - want).max()
            assert error < 1.5, (copy.output, index, want, got.round(2))
            worst = max(worst, error)
        assert worst < 1.0, (copy.output, worst)  # typically about half a pixel


def test_copies_and_views_of_one_sample_differ(coordinate_views):
    """The two global copies, the three local ones and the views between them show different
    crops of each sample: never the same pixels, and the same box (read back) at most by
    rare chance."""
    _, out = coordinate_views
    names = OUTPUTS[:-1]
    boxes = {name: np.array([recover_box(out[name][i]) for i in range(N)]) for name in names}
    for a, first in enumerate(names):
        for second in names[a + 1:]:
            if out[first].shape == out[second].shape:
                same_pixels = sum(np.array_equal(out[first][i], out[second][i])
                                  for i in range(N))
                assert same_pixels == 0, (first, second)
            same_box = int((np.abs(boxes[first] - boxes[second]).max(axis=1) < 1.5).sum())
            assert same_box <= 2, (first, second, same_box)


# --- 2. each view's crop scale follows its declared range ----------------------------------

def _ks_does_not_reject(sample: np.ndarray, reference: np.ndarray, alpha: float = 0.01,
                        use_scipy: bool = True):
    """Whether a two-sample Kolmogorov-Smirnov test keeps "same distribution" at ``alpha``
    (scipy's when importable, else the statistic against its asymptotic critical value)."""
    try:
        from scipy.stats import ks_2samp
    except ImportError:
        use_scipy = False
    if use_scipy:
        result = ks_2samp(sample, reference)
        return result.pvalue > alpha, result.pvalue
    grid = np.sort(np.concatenate([sample, reference]))
    cdf = lambda data: np.searchsorted(np.sort(data), grid, side="right") / len(data)
    d = np.abs(cdf(sample) - cdf(reference)).max()
    n, m = len(sample), len(reference)
    critical = math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))
    return d < critical, d


@pytest.mark.parametrize("view", ["global", "local"])
def test_crop_scale_distribution_matches_the_declared_range(coordinate_views, view):
    _, out = coordinate_views
    low, high = SCALES[view]
    boxes = np.array([recover_box(out[f"{view}_{copy}"][i])
                      for copy in range(COUNTS[view]) for i in range(N)])
    h, w = boxes[:, 2], boxes[:, 3]
    fractions = h * w / (H * W)
    # the box's sides are the rounded sides of an area in [low, high] x H x W: allow half a
    # pixel of rounding and under a pixel of read-back error on each side
    slack = 1.25
    assert np.all((h + slack) * (w + slack) >= low * H * W), fractions.min()
    assert np.all((h - slack) * (w - slack) <= high * H * W), fractions.max()
    assert np.all((w / h > RATIO[0] * 0.9) & (w / h < RATIO[1] * 1.1))
    # both ends of the range are reached (uniform in area)
    assert fractions.min() < low + 0.1 * (high - low)
    assert fractions.max() > high - 0.1 * (high - low)
    reference = numpy_torchvision_areas(20000, SCALES[view], seed=12345)
    accepted, statistic = _ks_does_not_reject(fractions, reference)
    assert accepted, (view, statistic)


def test_the_scale_check_has_power():
    """The same KS comparison (scipy's and the fallback) keeps a sample of the declared
    scale and rejects one of a scale range a quarter narrower."""
    local = numpy_torchvision_areas(600, SCALES["local"], seed=1)
    narrower = numpy_torchvision_areas(600, (0.05, 0.3), seed=2)
    reference = numpy_torchvision_areas(20000, SCALES["local"], seed=12345)
    for use_scipy in (True, False):
        assert _ks_does_not_reject(local, reference, use_scipy=use_scipy)[0]
        assert not _ks_does_not_reject(narrower, reference, use_scipy=use_scipy)[0]


# --- 3. per-sample views depend on the seed, epoch and index only ---------------------------

def test_views_do_not_depend_on_workers_batch_size_or_order(coordinate_beton,
                                                            coordinate_views):
    _, reference = coordinate_views  # batch 64, one worker, sequential
    count = 37
    indices = np.arange(count)
    runs = [dict(batch_size=4, num_workers=1, order="sequential"),
            dict(batch_size=7, num_workers=2, order="sequential"),
            dict(batch_size=7, num_workers=2, order="random")]
    for overrides in runs:
        compiled = compile_spec(SPEC, "train", device="cpu")
        out = run_loader(compiled, coordinate_beton, indices=indices, drop_last=False,
                         **overrides)
        order = out["label"]  # the label is the sample's index
        assert sorted(order.tolist()) == list(range(count)), overrides
        if overrides["order"] == "sequential":
            assert order.tolist() == list(range(count))
        for name in OUTPUTS[:-1]:
            for k, index in enumerate(order):
                assert out[name][k].tobytes() == reference[name][index].tobytes(), (
                    overrides, name, index)

    compiled = compile_spec(SPEC, "train", device="cpu")
    compiled.set_epoch(1)
    epoch1 = run_loader(compiled, coordinate_beton, indices=indices, batch_size=7,
                        num_workers=2, order="sequential", drop_last=False)
    for name in OUTPUTS[:-1]:
        view, copy = name.rsplit("_", 1)
        changed = sum(epoch1[name][i].tobytes() != reference[name][i].tobytes()
                      for i in range(count))
        assert changed == count, (name, changed)
        for i in range(count):  # and epoch 1 shows epoch 1's boxes
            want = np.array(expected_box(view, int(copy), i, epoch=1), np.float64)
            assert np.abs(recover_box(epoch1[name][i]) - want).max() < 1.5, (name, i)


def test_a_view_keeps_its_draws_when_other_views_are_added_or_reordered(coordinate_beton,
                                                                          coordinate_views):
    """A copy's stream comes from its view's name and its index only."""
    _, reference = coordinate_views
    spec = SPEC.replace(
        "      views:\n",
        "      views:\n        extra: {decode: {random_resized_crop: {size: 16}}}\n")
    spec = spec.replace("        global:", "        zzz: {decode: {center_crop: {size: 16}}}\n"
                                          "        global:")
    lines = spec.splitlines(keepends=True)
    g = next(k for k, line in enumerate(lines) if line.startswith("        global:"))
    lines[g], lines[g + 1] = lines[g + 1], lines[g]  # local before global
    compiled = compile_spec("".join(lines), "train", device="cpu")
    assert compiled.outputs == ("extra_0", "zzz_0", "local_0", "local_1", "local_2",
                                "global_0", "global_1", "label")
    out = run_loader(compiled, coordinate_beton, indices=np.arange(20), order="sequential",
                     drop_last=False)
    for name in OUTPUTS[:-1]:
        assert out[name].tobytes() == reference[name][:20].tobytes(), name


# --- 4. per-view probabilities (BYOL) -------------------------------------------------------

BYOL_LIKE = """\
version: 1
seed: 3
splits:
  train:
    image:
      views:
        view1:
          decode: {center_crop: {size: 32, ratio: 1.0}}
          cpu: [{gaussian_blur: {kernel_size: 9, sigma: [1.0, 2.0], p: 1.0}}]
        view2:
          decode: {center_crop: {size: 32, ratio: 1.0}}
          cpu:
            - gaussian_blur: {kernel_size: 9, sigma: [1.0, 2.0], p: 0.1}
            - solarize: {threshold: 128, p: 0.2}
    label: int
"""


def _binomial_interval(n: int, p: float, confidence: float = 0.999):
    try:
        from scipy.stats import binom
    except ImportError:
        z, sd = 3.29, math.sqrt(n * p * (1 - p))
        return math.floor(n * p - z * sd), math.ceil(n * p + z * sd)
    return tuple(int(v) for v in binom.interval(confidence, n, p))


def _roughness(image: np.ndarray) -> float:
    """Mean absolute difference of neighbouring pixels (high-frequency energy)."""
    image = image.astype(np.float64)
    return float(np.abs(np.diff(image, axis=-1)).mean() + np.abs(np.diff(image, axis=-2)).mean())


def _solarized(image: np.ndarray) -> np.ndarray:
    return np.where(image >= 128, 255 - image, image)


def test_byol_views_blur_and_solarize_at_their_own_rates(tmp_path):
    n = 300
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    path = write_beton(tmp_path / "noise.beton", list(noise), list(range(n)))
    compiled = compile_spec(BYOL_LIKE, "train", device="cpu")
    assert compiled.outputs == ("view1_0", "view2_0", "label")
    out = run_loader(compiled, path, batch_size=50, num_workers=1, order="sequential",
                     drop_last=False)
    assert np.array_equal(out["label"], np.arange(n))
    blurred = {"view1_0": 0, "view2_0": 0}
    solarized = {"view1_0": 0, "view2_0": 0}
    for name in blurred:
        for i in range(n):
            original = noise[i].transpose(2, 0, 1)  # the crop is the whole image, unresized
            got = out[name][i]
            if np.array_equal(got, original):
                continue
            if np.array_equal(got, _solarized(original)):
                solarized[name] += 1
                continue
            # blurred: far smoother than the image (solarized or not) it came from
            was_solarized = int(got.max()) < 128  # blurred noise always has values >= 128
            unblurred = _solarized(original) if was_solarized else original
            assert _roughness(got) < 0.4 * _roughness(unblurred), (name, i)
            assert np.abs(got.astype(int) - unblurred).mean() > 10, (name, i)
            blurred[name] += 1
            solarized[name] += was_solarized
    assert blurred["view1_0"] == n and solarized["view1_0"] == 0
    low, high = _binomial_interval(n, 0.1)
    assert low <= blurred["view2_0"] <= high, blurred
    low, high = _binomial_interval(n, 0.2)
    assert low <= solarized["view2_0"] <= high, solarized


def _ops(copy) -> list:
    """(op name, params) of a copy's steps, fused steps' parts included."""
    steps = [part for step in copy.plan.steps for part in (step.parts or (step,))]
    return [(step.name, dict(getattr(step.op, "params", None) or {})) for step in steps]


def test_shipped_byol_spec_blurs_and_solarizes_per_view():
    compiled = compile_spec("specs/byol.yaml", "train", device="cpu")
    assert compiled.outputs == ("view1_0", "view2_0", "label")
    ops = {copy.output: _ops(copy) for copy in compiled.views}
    for name, (blur_p, solarize) in {"view1_0": (1.0, False), "view2_0": (0.1, True)}.items():
        names = [op for op, _ in ops[name]]
        assert names[0] == "random_resized_crop"
        crop = ops[name][0][1]
        assert crop["size"] == 224 and tuple(crop["scale"]) == (0.08, 1.0)
        blurs = [params for op, params in ops[name] if op == "gaussian_blur"]
        assert len(blurs) == 1 and blurs[0]["p"] == blur_p
        assert blurs[0]["kernel_size"] == 23 and tuple(blurs[0]["sigma"]) == (0.1, 2.0)
        solarizes = [params for op, params in ops[name] if op == "solarize"]
        if solarize:
            assert len(solarizes) == 1 and solarizes[0]["p"] == 0.2
            assert solarizes[0]["threshold"] == 128
        else:
            assert solarizes == []
    # the two views draw from different streams
    first, second = (copy.plan.steps[0].position for copy in compiled.views)
    assert first == view_stream("view1", 0) and second == view_stream("view2", 0)
    assert first != second


# --- 5. JPEG: views match a plain decode, cropped and resized ------------------------------

def _stored_jpegs(path) -> list:
    """Each sample's stored JPEG bytes, read from the .beton with FFCV's Reader."""
    from ffcv.fields.rgb_image import IMAGE_MODES
    from ffcv.reader import Reader

    reader = Reader(str(path))
    data = np.fromfile(str(path), np.uint8)
    table = {int(row["ptr"]): int(row["size"]) for row in reader.alloc_table}
    image = f"f{reader.field_names.index('image')}"  # FFCV names metadata fields by place
    jpegs = []
    for sample in reader.metadata:
        assert sample[image]["mode"] == IMAGE_MODES["jpg"]
        pointer = int(sample[image]["data_ptr"])
        jpegs.append(data[pointer:pointer + table[pointer]].tobytes())
    return jpegs


def test_jpeg_views_match_a_full_decode_cropped_and_resized(tmp_path):
    import cv2
    from PIL import Image

    n = 24
    images = [structured_image(H, W, seed=i) for i in range(n)]
    path = write_beton(tmp_path / "jpeg.beton", images, list(range(n)), write_mode="jpg")
    jpegs = _stored_jpegs(path)
    assert all(j[:2] == b"\xff\xd8" for j in jpegs)
    decoded = [np.asarray(Image.open(io.BytesIO(j)).convert("RGB")) for j in jpegs]
    assert all(d.shape == (H, W, 3) for d in decoded)
    compiled = compile_spec(SPEC, "train", device="cpu")
    out = run_loader(compiled, path, batch_size=8, num_workers=1, order="sequential",
                     drop_last=False)
    worst = {}
    for copy in compiled.views:
        size = SIZES[copy.view]
        for i in range(n):
            y, x, h, w = expected_box(copy.view, copy.copy, i)
            reference = cv2.resize(decoded[i][y:y + h, x:x + w], (size, size),
                                   interpolation=cv2.INTER_AREA)
            got = out[copy.output][i].transpose(1, 2, 0)
            error = np.abs(got.astype(np.float64) - reference).mean()
            assert error < 3, (copy.output, i, (y, x, h, w), error)
            worst[copy.output] = max(worst.get(copy.output, 0), error)
    assert set(worst) == set(OUTPUTS[:-1])


def test_jpeg_comparison_tells_crops_apart(tmp_path):
    """The JPEG check has power: a view is far from a different copy's box."""
    import cv2
    from PIL import Image

    image = structured_image(H, W, seed=3)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    decoded = np.asarray(Image.open(io.BytesIO(encoded.tobytes())).convert("RGB"))
    y, x, h, w = expected_box("global", 0, 3)
    y2, x2, h2, w2 = expected_box("global", 1, 3)
    first = cv2.resize(decoded[y:y + h, x:x + w], (64, 64), interpolation=cv2.INTER_AREA)
    second = cv2.resize(decoded[y2:y2 + h2, x2:x2 + w2], (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(first.astype(float) - second).mean() > 10


# --- 6. spec errors -------------------------------------------------------------------------

HEAD = "version: 1\nsplits:\n  train:\n    image:\n"  # lines 1-4; the image body from line 5


def image(body: str, after: str = "") -> str:
    """A spec whose train split's image is ``body`` (from line 5, indent 6), then ``after``
    (split keys, indent 4)."""
    return (HEAD + textwrap.indent(textwrap.dedent(body), " " * 6)
            + textwrap.indent(textwrap.dedent(after), " " * 4))


def errors_of(text) -> list:
    """Every error line of a spec (loaded, then its train split compiled for cpu)."""
    with pytest.raises(SpecError) as caught:
        compile_spec(load_spec(text), "train", device="cpu")
    error = caught.value
    lines = str(error).splitlines()
    assert lines == [f"{e.file}:{e.line}:{e.column}: {e.message}"
                     for e in getattr(error, "errors", [error])]
    return lines


VIEW = "{count: 2, decode: {random_resized_crop: {size: 32}}}"

ERROR_CASES = [
    ("views-with-decode",
     image(f"decode: {{center_crop: {{size: 32}}}}\nviews:\n  v: {VIEW}\n"),
     "<string>:5:7: split 'train' image has views: each view has its own 'decode'; move it under "
     "the views"),
    ("views-with-cpu",
     image(f"views:\n  v: {VIEW}\ncpu: [{{horizontal_flip: {{p: 0.5}}}}]\n"),
     "<string>:7:7: split 'train' image has views: each view has its own 'cpu'"),
    ("view-without-decode",
     image("views:\n  v: {count: 2, cpu: [{horizontal_flip: {p: 0.5}}]}\n"),
     "<string>:6:12: view 'v' needs 'decode:'"),
    ("view-decode-not-a-crop",
     image("views:\n  v:\n    decode: decode\n"),
     "<string>:7:19: view 'v' decodes with 'decode'; a view starts with a crop of the "
     "shared decode: random_resized_crop, center_crop or resize"),
    ("count-zero",
     image("views:\n  v: {count: 0, decode: {center_crop: {size: 32}}}\n"),
     "<string>:6:20: view 'v' count: must be in [1, 64], got 0"),
    ("count-too-many",
     image(f"views:\n  v: {{count: {MAX_VIEW_COPIES + 1}, decode: "
           f"{{center_crop: {{size: 32}}}}}}\n"),
     f"<string>:6:20: view 'v' count: must be in [1, {MAX_VIEW_COPIES}], "
     f"got {MAX_VIEW_COPIES + 1}"),
    ("copies-in-all-too-many",
     image("views:\n  a: {count: 40, decode: {center_crop: {size: 32}}}\n"
           "  b: {count: 30, decode: {center_crop: {size: 16}}}\n"),
     f"<string>:6:9: views have 70 copies in all; at most {MAX_VIEW_COPIES}"),
    ("count-not-an-integer",
     image("views:\n  v: {count: two, decode: {center_crop: {size: 32}}}\n"),
     "<string>:6:20: view 'v' count:"),
    ("views-with-batch-ops",
     image(f"views:\n  v: {VIEW}\n",
           "label: {num_classes: 10}\nbatch: [{mixup: {alpha: 0.2}}]\n"),
     "<string>:8:5: split 'train': 'batch' cannot be used with image.views (batch ops mix "
     "the images of one view); remove one of them"),
    ("views-with-targets",
     image(f"views:\n  v: {VIEW}\n", "targets: {mask: {}}\n"),
     "<string>:7:5: split 'train': 'targets' cannot be used with image.views"),
    ("views-empty",
     image("views: {}\n"),
     "<string>:5:14: views is empty; name a view"),
    ("views-not-a-mapping",
     image("views: [a, b]\n"),
     "<string>:5:14: split 'train' image views must be a mapping"),
    ("view-named-label",
     image(f"views:\n  label: {VIEW}\n"),
     "<string>:6:9: a view's name must be a word (letters, digits, _) other than 'label', "
     "got 'label'"),
    ("view-name-not-an-identifier",
     image(f"views:\n  my-view: {VIEW}\n"),
     "<string>:6:9: a view's name must be a word (letters, digits, _) other than 'label', "
     "got 'my-view'"),
    ("view-name-a-number",
     image(f"views:\n  1: {VIEW}\n"),
     "<string>:6:9: a view's name must be a word"),
    ("view-unknown-key",
     image("views:\n  v: {counts: 2, decode: {center_crop: {size: 32}}}\n"),
     "<string>:6:13: unknown key 'counts' in view 'v'; did you mean 'count'?"),
    ("view-unknown-op",
     image("views:\n  v:\n    decode: {center_crop: {size: 32}}\n"
           "    cpu: [{horizontal_flp: {p: 0.5}}]\n"),
     "<string>:8:18: unknown op"),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_view_spec_errors(text, expected):
    lines = errors_of(text)
    assert any(line.startswith(expected) for line in lines), (lines, text)


def test_view_spec_errors_name_the_file(tmp_path):
    path = tmp_path / "views.yaml"
    path.write_text(image(f"views:\n  v: {VIEW}\n  w: {{count: 0, decode: decode}}\n"))
    lines = errors_of(path)
    assert lines == [f"{path}:7:20: view 'w' count: must be in [1, 64], got 0"], lines


def test_every_view_mistake_is_reported_at_once():
    lines = errors_of(image("decode: {center_crop: {size: 32}}\nviews:\n"
                            "  label: {decode: {center_crop: {size: 32}}}\n"
                            "  v: {count: 0, decode: {center_crop: {size: 32}}, sizes: 3}\n"))
    assert [line.split(": ", 1)[0] for line in lines] == [
        "<string>:5:7", "<string>:7:9", "<string>:8:20", "<string>:8:58"], lines


def test_a_valid_views_spec_loads():
    spec = load_spec(SPEC)
    split = spec.split("train")
    assert [(v.name, v.count) for v in split.views] == [("global", 2), ("local", 3)]
    assert split.image is split.views[0].image  # what one-image tools show
    assert [v.image.decode.params["scale"] for v in split.views] == [(0.4, 1.0), (0.05, 0.4)]


def test_each_view_runs_its_own_device_ops(coordinate_beton, coordinate_views):
    """A view's device ops apply to its copies only: 'global' flipped and normalized (float32,
    channels_last), 'local' untouched uint8; the crops are those of the plain spec (the
    crop's stream does not depend on the ops after it)."""
    _, reference = coordinate_views
    mean, std = np.array([10.0, 20.0, 30.0]), np.array([2.0, 4.0, 8.0])
    spec = SPEC.replace(
        "scale: [0.4, 1.0]}}}",
        "scale: [0.4, 1.0]}}, device: {dtype: float32, ops: [{horizontal_flip: {p: 1.0}}, "
        "{normalize: {mean: [10, 20, 30], std: [2, 4, 8]}}]}}")
    compiled = compile_spec(spec, "train", device="cpu")
    batch = next(iter(compiled.loader(coordinate_beton, batch_size=10, num_workers=1,
                                      order="sequential", indices=np.arange(10))))
    views, (labels,) = compiled.group_views(batch)
    assert torch.equal(labels, torch.arange(10))
    for copy, tensor in enumerate(views["global"]):
        assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (10, 3, 64, 64)
        assert tensor.is_contiguous(memory_format=torch.channels_last)
        raw = reference[f"global_{copy}"][:10].astype(np.float64)[..., ::-1]  # mirrored
        want = (raw - mean[:, None, None]) / std[:, None, None]
        np.testing.assert_allclose(tensor.numpy(), want, atol=1e-4)
    for copy, tensor in enumerate(views["local"]):
        assert tensor.dtype == torch.uint8
        assert np.array_equal(tensor.numpy(), reference[f"local_{copy}"][:10])


# --- 7. explain -----------------------------------------------------------------------------

def test_explain_shows_the_shared_decode_and_every_copy():
    compiled = compile_spec(SPEC, "train", device="cpu")
    text = compiled.explain()
    assert "shared decode" in text and "ViewsDecoder" in text
    assert "all 5 view copies" in text
    for copy in compiled.views:
        header = f"view '{copy.view}' copy {copy.copy} -> batch element '{copy.output}'"
        assert text.count(header) == 1, header
        section = text.split(header, 1)[1].split("\n\n", 1)[0]
        assert str(view_stream(copy.view, copy.copy)) in section  # its crop's stream
        assert "random_resized_crop" in section and "ViewCrop" in section
        assert f"{SIZES[copy.view]}x{SIZES[copy.view]}x3" in section
    assert text.index("shared decode") < text.index("view 'global' copy 0")
    assert "label: IntDecoder" in text


def test_group_views_pairs_each_copy_with_its_view(coordinate_beton):
    compiled = compile_spec(SPEC, "train", device="cpu")
    batch = next(iter(compiled.loader(coordinate_beton, batch_size=5, num_workers=1,
                                      order="sequential", indices=np.arange(5))))
    views, rest = compiled.group_views(batch)
    assert list(views) == ["global", "local"]
    assert [len(views["global"]), len(views["local"])] == [2, 3]
    assert all(t.shape == (5, 3, 64, 64) for t in views["global"])
    assert all(t.shape == (5, 3, 32, 32) for t in views["local"])
    assert views["local"][2] is batch[4]
    assert len(rest) == 1 and torch.equal(rest[0], torch.arange(5))


# --- a one-copy view is its decoder's bytes ----------------------------------------------

@pytest.mark.parametrize("write_mode", ["raw", "jpg"])
@pytest.mark.parametrize("decode", ["{center_crop: {size: 40, ratio: 0.8}}",
                                    "{resize: {size: [24, 56]}}"])
def test_a_one_copy_view_gives_its_decoders_bytes(tmp_path, write_mode, decode):
    """No randomness in these crops, so the plain split and the view draw the same box: the
    shared decode (crop-aware JPEG region at the copy's own DCT scale, or for raw images
    FFCV's resize of the stored image) must give exactly what the decoder alone gives."""
    images = [structured_image(90 + 7 * (i % 3), 120 - 5 * (i % 4), i) for i in range(12)]
    path = write_beton(tmp_path / "data.beton", images, list(range(12)), write_mode=write_mode)
    plain = compile_spec(f"version: 1\nsplits:\n  train:\n    image: {{decode: {decode}}}\n",
                         device="cpu")
    view = compile_spec(f"version: 1\nsplits:\n  train:\n    image: {{views: {{only: "
                        f"{{decode: {decode}}}}}}}\n", device="cpu")
    options = {"order": "sequential", "drop_last": False, "batch_size": 5}
    expected = run_loader(plain, path, **options)["image"]
    got = run_loader(view, path, **options)["only_0"]
    assert got.shape == expected.shape and got.dtype == expected.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


# --- the shared decode runs each copy's normalize (+ flip) when nothing comes between ------

FINISHED_SPEC = """\
version: 1
splits:
  train:
    image:
      views:
        big: {count: 2, decode: {random_resized_crop: {size: 48, scale: [0.05, 1.0]}}BIG}
        small: {count: 1, decode: {random_resized_crop: {size: 24, scale: [0.3, 1.0]}}SMALL}
"""
NORMALIZE = "{normalize: {mean: [10, 20, 30], std: [2, 4, 8]}}"


def finished_spec(dtype: Optional[str], p: float = 0.0) -> str:
    """FINISHED_SPEC with 'big' flipped (probability ``p``) and normalized and 'small'
    normalized, both to ``dtype``; None: no device ops (the uint8 crops)."""
    if dtype is None:
        return FINISHED_SPEC.replace("BIG", "").replace("SMALL", "")
    big = f", device: {{dtype: {dtype}, ops: [{{horizontal_flip: {{p: {p}}}}}, {NORMALIZE}]}}"
    small = f", device: {{dtype: {dtype}, ops: [{NORMALIZE}]}}"
    return FINISHED_SPEC.replace("BIG", big).replace("SMALL", small)


@pytest.mark.parametrize("write_mode", ["raw", "jpg"])
@pytest.mark.parametrize("dtype, p", [("float32", 0.5), ("float16", 0.5), ("float32", 0.0)])
def test_the_shared_decode_normalizes_each_copy_as_its_own_step_would(tmp_path, monkeypatch,
                                                                       write_mode, dtype, p):
    """Every copy goes straight from its crop to normalize (+ flip), so the decoder runs them
    (in the area resize's rows, or after an enlarging or raw resize): the same bytes as the
    copies' own JitNormalizeFlip steps, and each copy is numpy's normalization of the uint8
    crop the same spec gives without device ops, mirrored or not (both seen when p = 0.5)."""
    import compiler.views as views

    images = [structured_image(70 + 9 * (i % 4), 96 - 7 * (i % 3), i) for i in range(40)]
    path = write_beton(tmp_path / "data.beton", images, list(range(40)), write_mode=write_mode)
    options = {"order": "sequential", "drop_last": False, "batch_size": 16}
    fused = compile_spec(finished_spec(dtype, p), device="cpu")
    assert views.finishes_in_decode(fused.views)
    got = run_loader(fused, path, **options)
    crops = run_loader(compile_spec(finished_spec(None), device="cpu"), path, **options)
    monkeypatch.setattr(views, "finishes_in_decode", lambda copies: False)
    steps = run_loader(compile_spec(finished_spec(dtype, p), device="cpu"), path, **options)
    mean = np.array([10.0, 20.0, 30.0])
    std = np.array([2.0, 4.0, 8.0])
    mirrored = []
    for name in ("big_0", "big_1", "small_0"):
        assert got[name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got[name], steps[name])
        hwc = np.moveaxis(crops[name], 1, -1).astype(np.float64)
        want = np.moveaxis(((hwc - mean) / std).astype(dtype), -1, 1)  # NCHW, as served
        for sample, want_one in zip(got[name], want):
            mirrored.append(not np.array_equal(sample, want_one))
            if mirrored[-1]:
                np.testing.assert_array_equal(sample, want_one[..., ::-1])
    assert any(mirrored) == (p > 0) and not all(mirrored)


def test_explain_says_which_steps_the_shared_decode_runs():
    """Fused: every copy's normalize step says the shared decode runs it. A copy with an op
    between its crop and normalize keeps every copy's steps their own."""
    text = compile_spec(finished_spec("float32", 0.5), device="cpu").explain()
    assert text.count("run by the shared decode") == 3
    between = finished_spec("float32", 0.5).replace(
        ", device: {dtype: float32, ops: [{normalize", ", cpu: [{grayscale: {p: 0.5}}], "
        "device: {dtype: float32, ops: [{normalize", 1)
    assert "run by the shared decode" not in compile_spec(between, device="cpu").explain()


def test_jpeg_views_do_not_depend_on_workers_or_batch_size(tmp_path):
    """The shared decode's scratch block is its thread's (``scratch_row``), or the sample's
    where a batch has fewer rows than threads: every split of the samples over threads and
    batches gives the same bytes."""
    images = [structured_image(70 + 9 * (i % 4), 96 - 7 * (i % 3), i) for i in range(23)]
    path = write_beton(tmp_path / "data.beton", images, list(range(23)), write_mode="jpg")
    runs = [dict(batch_size=16, num_workers=1), dict(batch_size=1, num_workers=2),
            dict(batch_size=3, num_workers=2), dict(batch_size=23, num_workers=2)]
    outs = [run_loader(compile_spec(finished_spec("float32", 0.5), device="cpu"), path,
                       order="sequential", drop_last=False, **run) for run in runs]
    for name in ("big_0", "big_1", "small_0"):
        for run, out in zip(runs[1:], outs[1:]):
            np.testing.assert_array_equal(out[name], outs[0][name], err_msg=str(run))
