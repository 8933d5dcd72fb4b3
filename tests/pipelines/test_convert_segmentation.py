"""`pureffcv convert` of a segmentation folder (SRC/images beside SRC/masks): masks read back
through MaskDecoder are the PNGs' ids exactly (palette masks by index, not colour), resized
with their images by nearest neighbour, stored >= 10x smaller than raw; every damaged file is
skipped and listed with its exact reason, every wrong source or option is a one-line error.

References: the arrays the PNGs were saved from, PIL's NEAREST resize, FFCV's own Reader."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from operations.cpu.mask_field import decode_mask
from pipelines.cli import main
from pipelines.convert import ConversionError, convert
from tests.conftest import structured_image
from tests.operations.cpu.test_mask_field import label_map, read

H, W = 24, 32
EXTENSIONS = ".bmp, .gif, .jpeg, .jpg, .pgm, .png, .ppm, .tif, .tiff, .webp"


def save_mask(path: Path, ids: np.ndarray, mode: str = "L") -> np.ndarray:
    """``ids`` as a PNG of ``mode``: L, 1, I;16 (PIL's for uint8, bool, uint16 arrays), P (a
    palette whose colours are not the indices), or RGB/RGBA/LA (the ids repeated: a mask of
    colours). Returns ``ids``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "P":
        image = Image.fromarray(ids, "P")
        image.putpalette([(7 * k + 100) % 256 for k in range(768)])
    elif mode in ("RGB", "RGBA", "LA"):
        image = Image.fromarray(np.dstack([ids] * len(mode)), mode)
    else:
        image = Image.fromarray(ids)
    image.save(path)
    return ids


def save_image(path: Path, seed: int, height: int = H, width: int = W) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = structured_image(height, width, seed)
    Image.fromarray(rgb).save(path)
    return rgb


def stored(path: Path, name: str) -> np.ndarray:
    """FFCV's per-sample metadata of field ``name`` (no decoding)."""
    from ffcv.reader import Reader

    reader = Reader(str(path))
    return reader.metadata[f"f{reader.field_names.index(name)}"]


def good_folder(root: Path) -> Path:
    """Two good pairs, a and b: ids 0-4 and 255, mode L."""
    for k, stem in enumerate("ab"):
        save_image(root / f"images/{stem}.png", k)
        save_mask(root / f"masks/{stem}.png", label_map(H, W, k, classes=5))
    return root


# -- reading back ---------------------------------------------------------------------------

def test_masks_read_back_exactly_with_nested_folders_and_palettes(tmp_path):
    src = tmp_path / "src"
    expected = [  # in the images' order: each folder's files, then its sub-folders'
        ("z", save_mask(src / "masks/z.png", label_map(H, W, 3) % 2 == 1, "1").astype(np.uint8)),
        ("city/x", save_mask(src / "masks/city/x.png", label_map(H, W, 1))),
        ("city/y", save_mask(src / "masks/city/y.png", label_map(H, W, 2), "P")),
    ]
    for k, (stem, _) in enumerate(expected):
        save_image(src / f"images/{stem}.png", k)
    result = convert(src, tmp_path / "seg.beton", write_mode="raw", workers=2, num_classes=21)
    assert (result.written, result.skipped, result.classes, result.classes_path) == \
        (3, [], None, None)
    assert not (tmp_path / "seg.classes.json").exists()
    masks = read(tmp_path / "seg.beton")
    assert masks.dtype == np.uint8 and masks.shape == (3, H, W, 1)
    for k, (stem, ids) in enumerate(expected):
        assert np.array_equal(masks[k, :, :, 0], ids), stem
    assert stored(tmp_path / "seg.beton", "image")["mode"].tolist() == [1, 1, 1]  # raw


def test_sixteen_bit_masks_are_stored_as_uint16(tmp_path):
    src = tmp_path / "src"
    wide = label_map(H, W, 4, np.uint16, classes=1000)
    save_mask(src / "masks/a.png", wide, "I;16")
    save_mask(src / "masks/b.png", label_map(H, W, 5))  # 8-bit, in a uint16 data set
    for k, stem in enumerate("ab"):
        save_image(src / f"images/{stem}.jpg", k)
    convert(src, tmp_path / "wide.beton", workers=1, num_classes=1000)
    masks = read(tmp_path / "wide.beton")
    assert masks.dtype == np.uint16
    assert np.array_equal(masks[0, :, :, 0], wide)
    assert np.array_equal(masks[1, :, :, 0], label_map(H, W, 5))


def test_an_ignore_index_past_255_makes_the_masks_uint16(tmp_path):
    convert(good_folder(tmp_path / "src"), tmp_path / "i.beton", workers=1, ignore_index=300)
    assert stored(tmp_path / "i.beton", "mask")["dtype"].tolist() == [1, 1]


def test_max_resolution_resizes_masks_with_their_images_by_nearest_neighbour(tmp_path):
    src = tmp_path / "src"
    ids = [label_map(60, 90, seed) for seed in range(2)]
    for k, stem in enumerate("ab"):
        save_image(src / f"images/{stem}.png", k, 60, 90)
        save_mask(src / f"masks/{stem}.png", ids[k])
    save_image(src / "images/small.png", 2)  # below the limit: kept as is
    save_mask(src / "masks/small.png", label_map(H, W, 2))
    convert(src, tmp_path / "r.beton", workers=1, max_resolution=40)
    image, mask = stored(tmp_path / "r.beton", "image"), stored(tmp_path / "r.beton", "mask")
    assert image["height"].tolist() == mask["height"].tolist() == [26, 26, H]
    assert image["width"].tolist() == mask["width"].tolist() == [40, 40, W]
    raw = np.fromfile(tmp_path / "r.beton", np.uint8)  # two sizes: inflate them by hand
    for k in range(2):
        start, size = int(mask[k]["data_ptr"]), int(mask[k]["nbytes"])
        got = decode_mask(raw[start:start + size].tobytes(), 26, 40, np.uint8)
        reference = np.asarray(Image.fromarray(ids[k]).resize((40, 26), Image.NEAREST))
        assert np.array_equal(got, reference), k


def test_shape_like_masks_are_stored_ten_times_smaller_than_raw(tmp_path):
    src = tmp_path / "src"
    for seed in range(6):
        save_image(src / f"images/{seed}.jpg", seed, 375, 500)
        save_mask(src / f"masks/{seed}.png", label_map(375, 500, seed))
    convert(src, tmp_path / "big.beton", workers=1, num_classes=21)
    mask = stored(tmp_path / "big.beton", "mask")
    ratio = (375 * 500 * len(mask)) / mask["nbytes"].sum()
    print(f"mask field: {ratio:.0f}x smaller than raw")
    assert ratio >= 10


# -- damaged files: skipped, listed, counted -------------------------------------------------

def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _truncated_png(path: Path) -> None:
    save_mask(path, np.random.default_rng(0).integers(0, 5, (H, W)).astype(np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _broken_link(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(path.parent / "nowhere.png")


def _ids(*values) -> np.ndarray:
    """A mask of class 2 on 0, with ``values`` in its first row."""
    ids = np.zeros((H, W), np.uint8)
    ids[4:12, 6:20] = 2
    ids[0, :len(values)] = values
    return ids


def _ignore_250(src: Path) -> None:
    """Masks a and b with 250 where they had 255; c with 250 and 255."""
    for stem in "ab":
        ids = np.asarray(Image.open(src / f"masks/{stem}.png"))
        save_mask(src / f"masks/{stem}.png", np.where(ids == 255, 250, ids).astype(np.uint8))
    save_image(src / "images/c.png", 3)
    save_mask(src / "masks/c.png", _ids(250, 255))


#: (damage(src), options, [(file relative to src, reason; {src} is the source folder)])
DAMAGED = {
    "image without mask": (lambda s: save_image(s / "images/c.png", 3), {},
                           [("images/c.png", "no mask {src}/masks/c.png")]),
    "mask without image": (lambda s: save_mask(s / "masks/c.png", _ids()), {},
                           [("masks/c.png", "no image {src}/images/c.* for this mask")]),
    "sub-folders not mirrored": (
        lambda s: (save_image(s / "images/day/c.png", 3), save_mask(s / "masks/night/c.png", _ids())),
        {}, [("images/day/c.png", "no mask {src}/masks/day/c.png"),
             ("masks/night/c.png", "no image {src}/images/night/c.* for this mask")]),
    "mask of another size": (
        lambda s: (save_image(s / "images/c.png", 3), save_mask(s / "masks/c.png", _ids()[:20, :30])),
        {}, [("masks/c.png", "30x20 pixels; its image {src}/images/c.png has 32x24")]),
    "class ids not below num_classes": (
        lambda s: (save_image(s / "images/c.png", 3), save_mask(s / "masks/c.png", _ids(9, 7, 4))),
        {"num_classes": 5},
        [("masks/c.png", "class ids 7, 9 not below --num-classes 5 (nor the ignore index 255)")]),
    "many class ids not below num_classes": (
        lambda s: (save_image(s / "images/c.png", 3),
                   save_mask(s / "masks/c.png", _ids(*range(3, 12)))),
        {"num_classes": 5}, [("masks/c.png", "class ids 5, 6, 7, 8, 9, ... not below "
                                             "--num-classes 5 (nor the ignore index 255)")]),
    "255 with another ignore index": (
        _ignore_250, {"num_classes": 5, "ignore_index": 250},
        [("masks/c.png", "class ids 255 not below --num-classes 5 (nor the ignore index 250)")]),
    "RGB mask": (
        lambda s: (save_image(s / "images/c.png", 3), save_mask(s / "masks/c.png", _ids(), "RGB")),
        {}, [("masks/c.png", "ValueError: mode RGB is not a single-channel class map (save "
                             "masks as L, P or I;16 PNGs)")]),
    "RGBA mask": (
        lambda s: (save_image(s / "images/c.png", 3), save_mask(s / "masks/c.png", _ids(), "RGBA")),
        {}, [("masks/c.png", "ValueError: mode RGBA is not a single-channel class map (save "
                             "masks as L, P or I;16 PNGs)")]),
    "grey and alpha mask": (
        lambda s: (save_image(s / "images/c.png", 3), save_mask(s / "masks/c.png", _ids(), "LA")),
        {}, [("masks/c.png", "ValueError: mode LA is not a single-channel class map (save "
                             "masks as L, P or I;16 PNGs)")]),
    "truncated PNG mask": (
        lambda s: (save_image(s / "images/c.png", 3), _truncated_png(s / "masks/c.png")),
        {}, [("masks/c.png", "OSError: image file is truncated")]),
    "mask of random bytes": (
        lambda s: (save_image(s / "images/c.png", 3),
                   _write(s / "masks/c.png", np.random.default_rng(1).bytes(300))),
        {}, [("masks/c.png", "UnidentifiedImageError: cannot identify image file "
                             "'{src}/masks/c.png'")]),
    "empty mask file": (
        lambda s: (save_image(s / "images/c.png", 3), _write(s / "masks/c.png", b"")),
        {}, [("masks/c.png", "UnidentifiedImageError: cannot identify image file "
                             "'{src}/masks/c.png'")]),
    "mask a broken link": (
        lambda s: (save_image(s / "images/c.png", 3), _broken_link(s / "masks/c.png")),
        {}, [("masks/c.png", "FileNotFoundError: [Errno 2] No such file or directory: "
                             "'{src}/masks/c.png'")]),
    "JPEG mask": (
        lambda s: (save_image(s / "images/c.png", 3), save_image(s / "masks/c.jpg", 4)),
        {}, [("masks/c.jpg", "not a .png mask (masks must be lossless PNGs)"),
             ("images/c.png", "no mask {src}/masks/c.png")]),
    "unreadable image": (
        lambda s: (_write(s / "images/c.jpg", b"\xff\xd8 not a jpeg"),
                   save_mask(s / "masks/c.png", _ids())),
        {}, [("images/c.jpg", "UnidentifiedImageError: cannot identify image file "
                              "'{src}/images/c.jpg'")]),
    "two images for one stem": (
        lambda s: (save_image(s / "images/c.jpg", 3), save_image(s / "images/c.png", 4),
                   save_mask(s / "masks/c.png", _ids())),
        {}, [(f, "the stem c names several files (images/c.jpg, images/c.png, masks/c.png); "
                 "keep one image and one mask per stem")
             for f in ("images/c.jpg", "images/c.png", "masks/c.png")]),
    "hidden files are no masks": (
        lambda s: (_write(s / "masks/.c.png", b"editor's backup"),
                   _write(s / "masks/.cache/d.png", b"thumbnail")),
        {}, []),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_file_is_skipped_listed_and_counted(tmp_path, case):
    damage, options, expected = DAMAGED[case]
    src = good_folder(tmp_path / "src")
    damage(src)
    ids_of_a = np.asarray(Image.open(src / "masks/a.png"))
    result = convert(src, tmp_path / "out.beton", workers=1, **options)
    lines = [f"{src / path}: {reason.format(src=src)}" for path, reason in expected]
    assert [f"{path}: {reason}" for path, reason in result.skipped] == lines
    report = tmp_path / "out.skipped.txt"
    if lines:
        assert report.read_text().splitlines() == lines
    else:
        assert not report.exists()
    assert result.written == 2  # the good pairs, whatever else is wrong
    assert np.array_equal(read(tmp_path / "out.beton")[0, :, :, 0], ids_of_a)


# -- wrong sources and options: one line ----------------------------------------------------

def error_of(capsys, *argv) -> str:
    assert main(["convert", *map(str, argv), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def _no_images(src: Path) -> None:
    for path in (src / "images").iterdir():
        path.unlink()
    (src / "images/readme.txt").write_text("no images here")


def _no_png_masks(src: Path) -> None:
    for stem in "ab":
        (src / f"masks/{stem}.png").unlink()
        save_image(src / f"masks/{stem}.jpg", 0)


def _no_pairs(src: Path) -> None:
    for stem in "ab":
        (src / f"masks/{stem}.png").rename(src / f"masks/{stem}-mask.png")


#: (change to the good folder, extra arguments, message; {src}, {out} stand for the paths)
WRONG = {
    "no images": (_no_images, [], "{src}/images: no image files (" + EXTENSIONS + ")"),
    "no PNG masks": (_no_png_masks, [], "{src}/masks: no .png masks"),
    "no pair": (_no_pairs, [], "{src}: no image with a usable mask; 4 files skipped (listed "
                               "in {out}.skipped.txt)"),
    "num classes 0": (None, ["--num-classes", "0"], "num classes must lie in [1, 65536]; got 0"),
    "ignore index out of range": (None, ["--ignore-index", "70000"],
                                  "ignore index must lie in [0, 65535]; got 70000"),
    "a class map": (None, ["--classes", "cat,dog"],
                    "{src}: masks hold class ids, not names; --classes applies to image "
                    "folders and CSVs"),
    "strict": (lambda s: save_image(s / "images/c.png", 3), ["--strict"],
               "1 skipped image or mask file(s), listed in {out}.skipped.txt; nothing written "
               "(--strict)"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_a_wrong_source_or_option_is_one_line(tmp_path, capsys, case):
    change, argv, message = WRONG[case]
    src = good_folder(tmp_path / "src")
    if change:
        change(src)
    out = tmp_path / "out"
    assert error_of(capsys, src, f"{out}.beton", *argv) == \
        "pureffcv convert: " + message.format(src=src, out=out)
    assert not Path(f"{out}.beton").exists()


def test_mask_options_on_a_class_folder_are_an_error(tmp_path):
    save_image(tmp_path / "src/cat/a.png", 0)
    for options in ({"num_classes": 3}, {"ignore_index": 0}):
        with pytest.raises(ConversionError) as error:
            convert(tmp_path / "src", tmp_path / "x.beton", workers=1, **options)
        assert str(error.value) == (f"{tmp_path / 'src'}: --num-classes and --ignore-index apply "
                                    f"to segmentation folders (SRC/images beside SRC/masks)")


def test_the_cli_converts_and_reports(tmp_path, capsys):
    src = good_folder(tmp_path / "src")
    save_image(src / "images/c.png", 3)
    assert main(["convert", str(src), str(tmp_path / "cli.beton"), "--workers", "1",
                 "--num-classes", "5", "--ignore-index", "255"]) == 0
    out = capsys.readouterr().out
    assert "classes" not in out
    assert f"skipped {src / 'images/c.png'}: no mask {src / 'masks/c.png'}" in out
    assert "2 written, 1 skipped" in out


def test_the_help_shows_the_mask_options(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    out = capsys.readouterr().out
    for option in ("--num-classes", "--ignore-index", "SRC/images", "SRC/masks"):
        assert option in out
