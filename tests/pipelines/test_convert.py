"""`pureffcv convert`: image folders and .npz files in, .beton files read back with FFCV out.

References are built from the arrays the test images were made from (lossless formats), the
definitions of greyscale/palette/RGBA to RGB, and PIL's JPEG decoder for JPEG files."""
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.cli import main
from pipelines.convert import ConversionError, convert
from tests.conftest import structured_image

H, W = 24, 32
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 200, 30], [40, 90, 250], [255, 255, 255]],
                   np.uint8)


def jpeg_bytes(image: np.ndarray, quality: int = 95) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Three classes, eight readable images in six formats and modes, two broken files, one
    non-image file and hidden files (ignored).
    Returns (workdir, [(path relative to workdir, expected RGB, label)]) in file order."""
    work = tmp_path_factory.mktemp("convert")
    root = work / "images"
    for folder in ("ant/sub", "bee", "cat"):
        (root / folder).mkdir(parents=True)
    expected = []

    def add(relative, reference, label):
        expected.append((f"images/{relative}", reference, label))

    (root / "ant/a.jpg").write_bytes(jpeg_bytes(structured_image(H, W, 1)))
    add("ant/a.jpg", np.asarray(Image.open(root / "ant/a.jpg")), 0)  # PIL's JPEG decode
    rgb = structured_image(H, W, 2)
    Image.fromarray(rgb).save(root / "ant/b.png")
    add("ant/b.png", rgb, 0)
    (root / "ant/notes.txt").write_text("not an image")
    (root / "ant/._a.jpg").write_bytes(b"\x00\x05\x16\x07")  # macOS metadata: hidden
    (root / "bee/.cache").mkdir()
    (root / "bee/.cache/thumb.png").write_bytes(b"hidden folder")
    rgb = structured_image(H, W, 3)
    Image.fromarray(rgb).save(root / "ant/sub/c.bmp")
    add("ant/sub/c.bmp", rgb, 0)

    rgb = structured_image(H, W, 4)
    Image.fromarray(rgb).save(root / "bee/d.webp", lossless=True)
    add("bee/d.webp", rgb, 1)
    grey = structured_image(H, W, 5)[..., 0]
    Image.fromarray(grey, mode="L").save(root / "bee/grey.png")
    add("bee/grey.png", np.repeat(grey[..., None], 3, axis=2), 1)
    index = (np.arange(H * W).reshape(H, W) // 7 % len(PALETTE)).astype(np.uint8)
    palette_image = Image.fromarray(index, mode="P")
    palette_image.putpalette(PALETTE.reshape(-1).tolist())
    palette_image.save(root / "bee/palette.png")
    add("bee/palette.png", PALETTE[index], 1)
    rgba = np.dstack([structured_image(H, W, 6), np.linspace(0, 255, H * W).reshape(H, W)])
    Image.fromarray(rgba.astype(np.uint8), mode="RGBA").save(root / "bee/rgba.png")
    add("bee/rgba.png", rgba[..., :3].astype(np.uint8), 1)  # alpha dropped, not composited

    (root / "cat/corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(600))
    whole = jpeg_bytes(structured_image(H, W, 7))
    (root / "cat/truncated.jpg").write_bytes(whole[:len(whole) // 2])
    (root / "cat/e.jpg").write_bytes(jpeg_bytes(structured_image(H, W, 8)))
    add("cat/e.jpg", np.asarray(Image.open(root / "cat/e.jpg")), 2)
    return work, expected


@pytest.fixture(scope="module")
def converted(image_folder):
    """The folder converted in raw mode by the installed `pureffcv` command, 2 workers."""
    work, _ = image_folder
    command = [str(Path(sys.executable).with_name("pureffcv")), "convert", "images",
               "out/data.beton", "--write-mode", "raw", "--workers", "2"]
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)
    return work, done


def read_back(path: Path, count: int):
    """All images and labels of a same-size .beton, in file order, via an FFCV Loader."""
    from ffcv.fields.basics import IntDecoder
    from ffcv.fields.rgb_image import SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption

    loader = Loader(str(path), batch_size=count, num_workers=1, order=OrderOption.SEQUENTIAL,
                    pipelines={"image": [SimpleRGBImageDecoder()], "label": [IntDecoder()]})
    (images, labels), = list(loader)
    return np.asarray(images), np.asarray(labels).reshape(-1)


def field_metadata(path: Path, name: str) -> np.ndarray:
    """The per-sample metadata FFCV stored for field ``name`` (no decoding, no Numba)."""
    from ffcv.reader import Reader

    reader = Reader(str(path))
    assert reader.field_names == ["image", "label"]
    return reader.metadata[f"f{reader.field_names.index(name)}"]


def test_cli_reports_classes_written_and_skipped(converted):
    work, done = converted
    assert done.returncode == 0, done.stderr
    assert "8 written, 2 skipped" in done.stdout
    assert "Traceback" not in done.stderr
    assert json.loads((work / "out/data.classes.json").read_text()) == {"ant": 0, "bee": 1,
                                                                         "cat": 2}
    assert [line.split()[-1] for line in done.stdout.splitlines()[1:4]] == ["ant", "bee", "cat"]
    report = (work / "out/data.skipped.txt").read_text().splitlines()
    assert [line.split(": ")[0] for line in report] == ["images/cat/corrupt.jpg",
                                                        "images/cat/truncated.jpg"]
    assert "skipped images/cat/truncated.jpg: " in done.stdout
    assert sorted(os.listdir(work / "out")) == ["data.beton", "data.classes.json",
                                                "data.skipped.txt"]


def test_raw_mode_reads_back_pixel_exact_with_labels(converted, image_folder):
    work, done = converted
    _, expected = image_folder
    assert done.returncode == 0, done.stderr
    images, labels = read_back(work / "out/data.beton", 8)
    assert labels.tolist() == [label for _, _, label in expected] == [0, 0, 0, 1, 1, 1, 1, 2]
    for image, (path, reference, _) in zip(images, expected):
        np.testing.assert_array_equal(image, reference, err_msg=path)


def test_strict_exits_1_and_writes_no_beton(image_folder, tmp_path, capsys):
    work, _ = image_folder
    out = tmp_path / "strict.beton"
    assert main(["convert", str(work / "images"), str(out), "--strict", "--workers", "1"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    report = tmp_path / "strict.skipped.txt"
    assert error == (f"pureffcv convert: 2 unreadable image(s), listed in {report}; "
                     "nothing written (--strict)")
    assert sorted(os.listdir(tmp_path)) == ["strict.skipped.txt"]
    assert len(report.read_text().splitlines()) == 2


def test_image_unreadable_at_write_time_is_an_error_not_a_hang(tmp_path, monkeypatch, capsys):
    (tmp_path / "src/a").mkdir(parents=True)
    Image.fromarray(structured_image(8, 8)).save(tmp_path / "src/a/good.png")
    (tmp_path / "src/a/bad.png").write_bytes(b"garbage")
    monkeypatch.setattr("pipelines.convert.images.check_image", lambda path: (192, None))  # missed
    assert error_of(capsys, tmp_path / "src", tmp_path / "a.beton") == (
        "pureffcv convert: an image became unreadable while writing (was SRC modified during "
        "the conversion?); nothing written")
    assert os.listdir(tmp_path) == ["src"]


def save_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_round_trip(tmp_path):
    images = np.stack([structured_image(20, 28, seed) for seed in range(5)])
    src = save_npz(tmp_path / "arrays.npz", images=images, labels=np.array([3, 1, 4, 1, 5]))
    result = convert(src, tmp_path / "arrays.beton", write_mode="raw", workers=2)
    assert (result.written, result.skipped) == (5, [])
    assert json.loads(result.classes_path.read_text()) == {"1": 1, "3": 3, "4": 4, "5": 5}
    read_images, labels = read_back(tmp_path / "arrays.beton", 5)
    assert labels.tolist() == [3, 1, 4, 1, 5]
    np.testing.assert_array_equal(read_images, images)


def test_npz_class_names(tmp_path):
    src = save_npz(tmp_path / "named.npz", images=np.zeros((3, 4, 4, 3), np.uint8),
                   labels=np.array([1, 0, 1]), classes=np.array(["left", "right"]))
    result = convert(src, tmp_path / "named.beton", workers=1)
    assert result.classes == json.loads(result.classes_path.read_text()) == {"left": 0,
                                                                              "right": 1}
    assert field_metadata(tmp_path / "named.beton", "label").tolist() == [1, 0, 1]


def test_overwrite_refused_without_force(tmp_path, capsys):
    src = save_npz(tmp_path / "a.npz", images=np.zeros((2, 4, 4, 3), np.uint8),
                   labels=np.array([0, 1]))
    out = tmp_path / "a.beton"
    out.write_bytes(b"precious")
    assert main(["convert", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (f"pureffcv convert: {out} already exists "
                                    "(use --force to overwrite)")
    assert out.read_bytes() == b"precious"
    assert main(["convert", str(src), str(out), "--force", "--workers", "1"]) == 0
    assert field_metadata(out, "label").tolist() == [0, 1]


@pytest.fixture
def interrupted(tmp_path, monkeypatch):
    """(src, out, seen, check): an .npz source, an existing output that a failed --force
    conversion must keep, what FFCV's writer had created (``seen``), and ``check()`` which
    asserts that nothing of the failed attempt is left."""
    from ffcv.writer import DatasetWriter

    src = save_npz(tmp_path / "a.npz", labels=np.arange(6),
                   images=np.stack([structured_image(16, 16, s) for s in range(6)]))
    out = tmp_path / "out" / "a.beton"
    out.parent.mkdir()
    out.write_bytes(b"previous version")
    seen = {}
    prepare = DatasetWriter.prepare

    def recording_prepare(writer):  # runs before the workers start
        prepare(writer)
        seen.update(partial=Path(writer.fname), shm=writer.metadata_sm.name)

    def check():
        assert seen["partial"].parent == out.parent and seen["size"] > 0  # it was writing
        assert os.listdir(out.parent) == ["a.beton"]
        assert out.read_bytes() == b"previous version"
        assert multiprocessing.active_children() == []
        assert not Path("/dev/shm", seen["shm"]).exists()

    monkeypatch.setattr(DatasetWriter, "prepare", recording_prepare)
    return src, out, seen, check


def test_failure_after_writing_leaves_old_output_and_no_partial_file(interrupted,
                                                                     monkeypatch):
    from ffcv.writer import DatasetWriter

    src, out, seen, check = interrupted

    def finalize_then_fail(writer, allocations):  # all samples written, header not yet
        seen["size"] = seen["partial"].stat().st_size
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(DatasetWriter, "finalize", finalize_then_fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        convert(src, out, force=True, workers=2)
    check()


def test_ctrl_c_while_workers_write_stops_them_and_cleans_up(interrupted, monkeypatch):
    import time

    import ffcv.writer
    from pipelines.convert.writer import ArraySamples

    src, out, seen, check = interrupted
    slow_image = ArraySamples.image

    def image(samples, i):  # runs in the writer's workers: keep them busy, count samples
        time.sleep(0.2)
        (out.parent.parent / f"sample-{i}").touch()
        return slow_image(samples, i)

    def ctrl_c(seconds):  # FFCV's parent polls the workers' progress with sleep()
        seen.update(size=seen["partial"].stat().st_size,
                    workers=len(multiprocessing.active_children()))
        raise KeyboardInterrupt

    monkeypatch.setattr(ArraySamples, "image", image)
    monkeypatch.setattr(ffcv.writer, "sleep", ctrl_c)
    assert main(["convert", str(src), str(out), "--force", "--workers", "2"]) == 130
    assert seen["workers"] == 2  # interrupted while both workers were alive
    check()
    done = list(out.parent.parent.glob("sample-*"))
    assert len(done) < 6  # the workers were stopped, not left to finish


def test_max_resolution_and_smart_mode(tmp_path):
    (tmp_path / "src/only").mkdir(parents=True)
    Image.fromarray(structured_image(200, 300, 1)).save(tmp_path / "src/only/big.png")
    Image.fromarray(structured_image(20, 30, 2)).save(tmp_path / "src/only/small.png")
    convert(tmp_path / "src", tmp_path / "s.beton", max_resolution=256, workers=1)
    image = field_metadata(tmp_path / "s.beton", "image")
    # big: 300x200 -> 256x170 (longer side to 256), 130 KB raw > 48 KiB threshold -> JPEG (0)
    # small: untouched, 1.8 KB raw -> raw (1)
    assert image["width"].tolist() == [256, 30]
    assert image["height"].tolist() == [170, 20]
    assert image["mode"].tolist() == [0, 1]


def error_of(capsys, *argv) -> str:
    assert main(["convert", *map(str, argv), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    out = tmp_path / "x.beton"
    assert error_of(capsys, tmp_path / "missing", out) == \
        f"pureffcv convert: {tmp_path / 'missing'}: no such file or directory"
    (tmp_path / "empty").mkdir()
    assert error_of(capsys, tmp_path / "empty", out) == (
        f"pureffcv convert: {tmp_path / 'empty'}: no class sub-folders "
        "(expected SRC/<class>/<image>)")
    (tmp_path / "text/a").mkdir(parents=True)
    (tmp_path / "text/a/readme.txt").write_text("hi")
    assert error_of(capsys, tmp_path / "text", out).startswith(
        f"pureffcv convert: {tmp_path / 'text'}: no image files in its class sub-folders (.bmp,")
    (tmp_path / "bad/a").mkdir(parents=True)
    (tmp_path / "bad/a/x.png").write_bytes(b"")
    assert error_of(capsys, tmp_path / "bad", out) == (
        f"pureffcv convert: {tmp_path / 'bad'}: none of its 1 images could be read "
        f"(listed in {tmp_path / 'x.skipped.txt'})")
    assert error_of(capsys, tmp_path / "bad", out, "--jpeg-quality", "0") == \
        "pureffcv convert: JPEG quality must lie in [1, 100]; got 0"
    assert not out.exists()


@pytest.mark.parametrize("arrays, message", [
    (dict(images=np.zeros((2, 8, 8), np.uint8), labels=np.zeros(2, int)),
     "'images' must have shape (N, H, W, 3) with N, H, W > 0; got (2, 8, 8)"),
    (dict(images=np.zeros((2, 8, 8, 3), np.float32), labels=np.zeros(2, int)),
     "'images' must be uint8; got float32"),
    (dict(images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.zeros(3, int)),
     "'labels' must be 2 integers, shape (2,); got int64 (3,)"),
    (dict(images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.zeros(2)),
     "'labels' must be 2 integers, shape (2,); got float64 (2,)"),
    (dict(images=np.zeros((2, 8, 8, 3), np.uint8)), "no 'labels' array (found: images)"),
    (dict(images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.array([0, 2]),
          classes=np.array(["a", "b"])),
     "labels must lie in [0, 1] to index 'classes'; got [0, 2]"),
])
def test_npz_mistakes_are_one_line_errors(tmp_path, capsys, arrays, message):
    src = save_npz(tmp_path / "a.npz", **arrays)
    assert error_of(capsys, src, tmp_path / "a.beton") == f"pureffcv convert: {src}: {message}"


def test_unreadable_npz(tmp_path, capsys):
    src = tmp_path / "a.npz"
    src.write_bytes(b"not a zip file")
    assert error_of(capsys, src, tmp_path / "a.beton").startswith(
        f"pureffcv convert: {src}: not a readable .npz (")


def test_library_raises_conversion_error(tmp_path):
    with pytest.raises(ConversionError, match="write mode 'png' is not one of smart, raw"):
        convert(tmp_path, tmp_path / "a.beton", write_mode="png")


def test_os_errors_are_one_line_with_the_path(tmp_path, capsys):
    src = save_npz(tmp_path / "a.npz", images=np.zeros((2, 4, 4, 3), np.uint8),
                   labels=np.array([0, 1]))
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("a file, where OUT's folder should be")
    assert error_of(capsys, src, not_a_folder / "a.beton") == \
        f"pureffcv convert: {not_a_folder}: File exists"


@pytest.mark.parametrize("probability", [0.0, 0.3, 1.0])
def test_proportion_mode_compresses_the_given_share_the_same_way_every_run(tmp_path, probability):
    images = np.stack([structured_image(24, 32, i) for i in range(40)])
    np.savez(tmp_path / "a.npz", images=images, labels=np.arange(40) % 2)
    modes = []
    for run in range(2):
        out = tmp_path / f"{run}.beton"
        convert(tmp_path / "a.npz", out, write_mode="proportion", workers=1,
                compress_probability=probability)
        modes.append(field_metadata(out, "image")["mode"].tolist())  # 0 JPEG, 1 raw
    assert modes[0] == modes[1]
    jpeg = modes[0].count(0)
    assert {0.0: jpeg == 0, 1.0: jpeg == 40}.get(probability, 4 <= jpeg <= 20)


def test_compress_probability_mistakes_are_one_line_errors(tmp_path, capsys):
    out = tmp_path / "x.beton"
    assert error_of(capsys, tmp_path, out, "--write-mode", "proportion",
                    "--compress-probability", "1.5") == \
        "pureffcv convert: compress probability must lie in [0, 1]; got 1.5"
    assert error_of(capsys, tmp_path, out, "--compress-probability", "0.2") == \
        "pureffcv convert: --compress-probability applies to --write-mode proportion, not 'smart'"
