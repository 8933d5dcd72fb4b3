"""`pureffcv convert --coco` and `--yolo` (pipelines.convert.coco, .yolo, .detection): a good
COCO file and a good YOLO folder round-trip (boxes exact to float32, category ids mapped to
contiguous labels, keypoints, polygon and RLE masks against hand-computed pixels, boxes scaled
with --max-resolution), and a corpus of damaged annotations, each with its exact skip reason
or one-line error.

References: the numbers written into the annotation files, pixel sets computed by hand (loops
over pixel centres), a COCO RLE encoder written here from pycocotools' C source, FFCV's own
Reader for what was stored."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from operations.cpu.instances_field import read_boxes, read_keypoints
from operations.cpu.mask_field import decode_mask
from pipelines.cli import main
from pipelines.convert import ConversionError
from pipelines.convert.coco import convert_coco, polygon_mask, rle_from_string
from pipelines.convert.detection import AnnotationError, read_categories
from pipelines.convert.yolo import convert_yolo
from tests.conftest import structured_image

H, W = 24, 32


def save_image(path: Path, seed: int = 0, height: int = H, width: int = W) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(structured_image(height, width, seed)).save(path)


def stored(path: Path):
    """{field name: [per-sample value]} read with FFCV's Reader and the Python readers:
    boxes as (boxes, labels, height, width), keypoints as (points), masks as arrays."""
    from ffcv.reader import Reader

    reader = Reader(str(path))
    raw = np.fromfile(path, np.uint8)
    out = {}
    for k, name in enumerate(reader.field_names):
        rows = reader.metadata[f"f{k}"]
        if name == "boxes":
            out[name] = [read_boxes(raw[r["ptr"]:r["ptr"] + r["size"]].tobytes(), int(r["count"]))
                         + (int(r["height"]), int(r["width"])) for r in rows]
        elif name == "keypoints":
            k_points = reader.handlers[name].num_keypoints
            out[name] = [read_keypoints(raw[r["ptr"]:r["ptr"] + r["size"]].tobytes(),
                                        int(r["count"]), k_points) for r in rows]
        elif name == "mask":
            out[name] = [decode_mask(raw[r["data_ptr"]:r["data_ptr"] + r["nbytes"]].tobytes(),
                                     int(r["height"]), int(r["width"]),
                                     np.uint8 if r["dtype"] == 0 else np.uint16) for r in rows]
    out["fields"] = list(reader.field_names)
    return out


def xyxy(*bbox) -> np.ndarray:
    x, y, w, h = bbox
    return np.array([x, y, x + w, y + h], np.float64)


# -- COCO ----------------------------------------------------------------------------------

CATEGORIES = [
    {"id": 3, "name": "car", "supercategory": "vehicle"},
    {"id": 1, "name": "person", "supercategory": "person",
     "keypoints": ["nose", "left_eye", "right_eye"], "skeleton": [[1, 2], [1, 3]]},
    {"id": 7, "name": "dog", "supercategory": "animal"},
]


def coco_source(root: Path, images=None, annotations=None, categories=None) -> Path:
    """Images a.png, b.png (no annotations) and sub/c.png (32x24) and their annotations."""
    for k, name in enumerate(["a.png", "b.png", "sub/c.png"]):
        save_image(root / "images" / name, k)
    data = {
        "images": images if images is not None else [
            {"id": 10, "file_name": "a.png", "width": W, "height": H},
            {"id": 11, "file_name": "b.png", "width": W, "height": H},
            {"id": 12, "file_name": "sub/c.png", "width": W, "height": H}],
        "annotations": annotations if annotations is not None else [
            {"id": 1, "image_id": 10, "category_id": 3, "bbox": [2.5, 3.25, 10.125, 8.0],
             "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 1, "bbox": [14, 1, 6.5, 20], "iscrowd": 0,
             "keypoints": [16, 4, 2, 17.5, 3, 1, 0, 0, 0]},
            {"id": 3, "image_id": 12, "category_id": 7, "bbox": [25, 18, 10, 10], "iscrowd": 0},
            {"id": 4, "image_id": 12, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 1},
            {"id": 5, "image_id": 12, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0,
             "keypoints": [2, 2, 2, 40, 2, 2, 3, 3, 1]}],
        "categories": categories if categories is not None else CATEGORIES,
    }
    path = root / "ann.json"
    path.write_text(json.dumps(data))
    return path


def test_a_good_coco_file_round_trips(tmp_path):
    ann = coco_source(tmp_path)
    result = convert_coco(ann, tmp_path / "images", tmp_path / "out.beton", write_mode="raw",
                          workers=1)
    assert (result.written, result.skipped) == (3, [])
    assert (result.tally.boxes, result.tally.clipped, result.tally.crowd,
            result.tally.hidden_keypoints, result.tally.empty_images) == (4, 1, 1, 1, 1)
    data = stored(tmp_path / "out.beton")
    assert data["fields"] == ["image", "boxes", "keypoints"]
    # labels: category ids 1, 3, 7 -> 0, 1, 2
    expected = [(np.array([xyxy(2.5, 3.25, 10.125, 8.0), xyxy(14, 1, 6.5, 20)]), [1, 0]),
                (np.zeros((0, 4)), []),
                (np.array([[25, 18, 32, 24], xyxy(1, 1, 4, 4)]), [2, 0])]  # the dog clipped
    for (boxes, labels, height, width), (want, want_labels) in zip(data["boxes"], expected):
        assert (height, width) == (H, W)
        assert boxes.dtype == np.float32 and np.array_equal(boxes, want.astype(np.float32))
        assert labels.tolist() == want_labels
    points = data["keypoints"]
    assert np.array_equal(points[0], np.float32([[[0, 0, 0]] * 3,
                                                 [[16, 4, 2], [17.5, 3, 1], [0, 0, 0]]]))
    assert points[1].shape == (0, 3, 3)
    assert np.array_equal(points[2], np.float32([[[0, 0, 0]] * 3,  # x = 40 > 32: hidden
                                                 [[2, 2, 2], [0, 0, 0], [3, 3, 1]]]))
    assert read_categories(tmp_path / "out.beton") == {
        "source": "coco",
        "labels": [{"label": 0, "category_id": 1, "name": "person", "supercategory": "person"},
                   {"label": 1, "category_id": 3, "name": "car", "supercategory": "vehicle"},
                   {"label": 2, "category_id": 7, "name": "dog", "supercategory": "animal"}],
        "num_keypoints": 3, "keypoints": ["nose", "left_eye", "right_eye"],
        "skeleton": [[1, 2], [1, 3]]}
    assert not (tmp_path / "out.skipped.txt").exists()


def test_crowd_annotations_are_kept_on_request_and_a_file_without_keypoints_has_none(tmp_path):
    categories = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    ann = coco_source(tmp_path, categories=categories, annotations=[
        {"id": 4, "image_id": 12, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 1}])
    result = convert_coco(ann, tmp_path / "images", tmp_path / "out.beton", workers=1,
                          keep_crowd=True, write_mode="raw")
    assert result.tally.crowd == 0 and result.tally.boxes == 1
    data = stored(tmp_path / "out.beton")
    assert data["fields"] == ["image", "boxes"]
    assert np.array_equal(data["boxes"][2][0], np.float32([[0, 0, 5, 5]]))
    assert "keypoints" not in read_categories(tmp_path / "out.categories.json")


def test_max_resolution_scales_boxes_and_keypoints_with_the_image(tmp_path):
    """31x24 shrunk to a longer side of 20: FFCV stores 20x15 (truncated), so x scales by
    20/31 and y by 15/24."""
    save_image(tmp_path / "images/a.png", 0, height=24, width=31)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 31, "height": 24}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [3, 4, 20, 12],
                         "keypoints": [10, 12, 2, 31, 24, 2, 0, 0, 0]}],
        "categories": [CATEGORIES[1]]}))
    convert_coco(ann, tmp_path / "images", tmp_path / "out.beton", workers=1,
                 max_resolution=20, write_mode="raw")
    data = stored(tmp_path / "out.beton")
    boxes, labels, height, width = data["boxes"][0]
    assert (height, width) == (15, 20)
    sx, sy = 20 / 31, 15 / 24
    assert np.array_equal(boxes, np.float32([[3 * sx, 4 * sy, 23 * sx, 16 * sy]]))
    assert np.array_equal(data["keypoints"][0],
                          np.float32([[[10 * sx, 12 * sy, 2], [20, 15, 2], [0, 0, 0]]]))


def rle_to_string(counts) -> str:
    """pycocotools' ``rleToString``, transcribed from its C source (maskApi.c)."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def centres_inside(height, width, inside) -> np.ndarray:
    """The pixels whose centre satisfies ``inside(x, y)``, by a loop."""
    return np.array([[inside(c + 0.5, r + 0.5) for c in range(width)] for r in range(height)])


def test_polygon_and_rle_masks_are_rasterised_by_pixel_centres(tmp_path):
    save_image(tmp_path / "images/a.png", 0)
    crowd = np.zeros((H, W), bool)
    crowd[20:23, 28:31] = True
    crowd_runs = [int(len(list(g))) for g in _runs(crowd.T.reshape(-1))]
    corner = np.zeros((H, W), bool)
    corner[0:2, 0:3] = True
    corner_runs = [int(len(list(g))) for g in _runs(corner.T.reshape(-1))]
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 5, "bbox": [2, 3, 8, 5],
             "segmentation": [[2, 3, 10, 3, 10, 8, 2, 8]]},
            {"id": 2, "image_id": 1, "category_id": 9, "bbox": [12, 0, 8, 8],
             "segmentation": [[12, 0, 20, 0, 12, 8]]},
            {"id": 3, "image_id": 1, "category_id": 5, "bbox": [28, 20, 3, 3], "iscrowd": 1,
             "segmentation": {"counts": crowd_runs, "size": [H, W]}},
            {"id": 4, "image_id": 1, "category_id": 9, "bbox": [0, 0, 3, 2], "iscrowd": 1,
             "segmentation": {"counts": rle_to_string(corner_runs), "size": [H, W]}}],
        "categories": [{"id": 5, "name": "box"}, {"id": 9, "name": "triangle"}]}))
    result = convert_coco(ann, tmp_path / "images", tmp_path / "out.beton", workers=1,
                          polygon_masks=True, keep_crowd=True, write_mode="raw")
    assert result.skipped == [] and result.tally.boxes == 4
    mask = stored(tmp_path / "out.beton")["mask"][0]
    expected = np.zeros((H, W), np.uint8)
    expected[3:8, 2:10] = 1  # label 0 + 1: columns 2..9, rows 3..7
    expected[centres_inside(H, W, lambda x, y: x >= 12 and y < 8 and x < 20 - y)] = 2
    expected[crowd] = 1
    expected[corner] = 2
    assert mask.dtype == np.uint8 and np.array_equal(mask, expected)
    assert read_categories(tmp_path / "out.beton")["mask"] == {"background": 0, "offset": 1}


def _runs(flat):
    """Runs of equal values, background (False) first (an empty first run if needed)."""
    from itertools import groupby

    groups = [list(g) for _, g in groupby(flat.tolist())]
    return ([[]] if groups[0][0] else []) + groups


def test_polygon_rasterising_by_hand():
    """Centres exactly on a right/bottom edge are outside, on a left/top edge inside; a
    polygon partly outside the image is cut; several polygons are a union."""
    square = np.array([[0.5, 0.5], [3.5, 0.5], [3.5, 2.5], [0.5, 2.5]])
    assert np.array_equal(polygon_mask([square], 4, 5), centres_inside(
        4, 5, lambda x, y: 0.5 <= x < 3.5 and 0.5 <= y < 2.5))
    big = np.array([[-5, -5], [3, -5], [3, 2], [-5, 2]], float)
    far = np.array([[4, 3], [5, 3], [5, 4], [4, 4]], float)
    assert np.array_equal(polygon_mask([big, far], 4, 5), centres_inside(
        4, 5, lambda x, y: (x < 3 and y < 2) or (x > 4 and y > 3)))
    assert rle_from_string(rle_to_string([5, 3, 200, 1, 7, 90])).tolist() == [5, 3, 200, 1, 7,
                                                                             90]


# -- YOLO ----------------------------------------------------------------------------------

def yolo_source(root: Path, labels=None, data_yaml="names: [cat, dog, bird]\n") -> Path:
    for k, name in enumerate(["a.png", "sub/b.png", "c.png"]):
        save_image(root / "images" / name, k)
    labels = labels if labels is not None else {
        "a.txt": "1 0.5 0.5 0.25 0.5\n\n0 0.125 0.25 0.25 0.5\n",
        "sub/b.txt": "2 0.9375 0.5 0.25 0.25\n",  # right edge at x = 34: clipped to 32
    }
    for name, text in labels.items():
        (root / "labels" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "labels" / name).write_text(text)
    (root / "labels").mkdir(exist_ok=True)
    if data_yaml is not None:
        (root / "data.yaml").write_text(data_yaml)
    return root


def test_a_good_yolo_folder_round_trips(tmp_path):
    src = yolo_source(tmp_path / "src")
    result = convert_yolo(src, tmp_path / "out.beton", workers=1, write_mode="raw")
    assert (result.written, result.skipped) == (3, [])
    assert (result.tally.boxes, result.tally.clipped, result.tally.empty_images) == (3, 1, 1)
    data = stored(tmp_path / "out.beton")
    assert data["fields"] == ["image", "boxes"]
    # ImageFolder order: a.png, c.png (no label file: no boxes), then sub/b.png
    (a, a_labels, _, _), (c, c_labels, _, _), (b, b_labels, _, _) = data["boxes"]
    assert np.array_equal(a, np.float32([[12, 6, 20, 18], [0, 0, 8, 12]]))
    assert a_labels.tolist() == [1, 0]
    assert c.shape == (0, 4) and c_labels.shape == (0,)
    assert np.array_equal(b, np.float32([[26, 9, 32, 15]])) and b_labels.tolist() == [2]
    assert read_categories(tmp_path / "out.beton") == {"source": "yolo", "labels": [
        {"label": 0, "category_id": 0, "name": "cat"},
        {"label": 1, "category_id": 1, "name": "dog"},
        {"label": 2, "category_id": 2, "name": "bird"}]}


def test_yolo_pose_and_names_from_classes_txt(tmp_path):
    src = yolo_source(tmp_path / "src", labels={
        "a.txt": "0 0.5 0.5 0.5 0.5 0.25 0.5 2 0.5 0.25 1\n",
        "c.txt": "0 0.5 0.5 0.5 0.5 0 0 0 2 0.5 2\n"},  # second point outside: hidden
        data_yaml="kpt_shape: [2, 3]\nflip_idx: [1, 0]\n")
    (src / "classes.txt").write_text("person\n")
    result = convert_yolo(src, tmp_path / "out.beton", workers=1, write_mode="raw")
    assert result.tally.hidden_keypoints == 1
    data = stored(tmp_path / "out.beton")
    assert np.array_equal(data["keypoints"][0], np.float32([[[8, 12, 2], [16, 6, 1]]]))
    assert np.array_equal(data["keypoints"][1], np.float32([[[0, 0, 0], [0, 0, 0]]]))
    assert data["keypoints"][2].shape == (0, 2, 3)
    categories = read_categories(tmp_path / "out.beton")
    assert categories["labels"] == [{"label": 0, "category_id": 0, "name": "person"}]
    assert (categories["num_keypoints"], categories["flip_idx"]) == (2, [1, 0])


def test_yolo_without_names_numbers_the_classes_found(tmp_path):
    src = yolo_source(tmp_path / "src", data_yaml=None)
    convert_yolo(src, tmp_path / "out.beton", workers=1, write_mode="raw")
    names = [row["name"] for row in read_categories(tmp_path / "out.beton")["labels"]]
    assert names == ["0", "1", "2"]


# -- the corpus of damaged annotations -----------------------------------------------------

GOOD_IMAGE = {"id": 1, "file_name": "a.png", "width": W, "height": H}
PERSON = {"id": 1, "name": "person", "keypoints": ["nose", "eye", "ear"]}


def annotation(**changes) -> dict:
    return {"id": 7, "image_id": 1, "category_id": 1, "bbox": [2, 3, 4, 5], **changes}


# (name, the COCO file's images, annotations, whether masks are asked, expected skipped line)
COCO_SKIPS = [
    ("nan box", None, [annotation(bbox=[float("nan"), 2, 3, 4])],
     "ann.json: annotations[0] (id 7) of a.png: bbox [nan, 2, 3, 4] has a value that is not a "
     "finite number"),
    ("infinite box", None, [annotation(bbox=[1, 2, float("inf"), 4])],
     "ann.json: annotations[0] (id 7) of a.png: bbox [1, 2, inf, 4] has a value that is not a "
     "finite number"),
    ("negative width", None, [annotation(bbox=[5, 2, -3, 4])],
     "ann.json: annotations[0] (id 7) of a.png: bbox [5, 2, -3, 4] has a negative width (-3)"),
    ("negative height", None, [annotation(bbox=[5, 2, 3, -0.5])],
     "ann.json: annotations[0] (id 7) of a.png: bbox [5, 2, 3, -0.5] has a negative height "
     "(-0.5)"),
    ("empty box", None, [annotation(bbox=[5, 2, 3, 0])],
     "ann.json: annotations[0] (id 7) of a.png: bbox [5, 2, 3, 0] is empty (zero height)"),
    ("outside right", None, [annotation(bbox=[32, 2, 5, 5])],
     "ann.json: annotations[0] (id 7) of a.png: bbox [32, 2, 5, 5] lies entirely outside the "
     "32x24 image"),
    ("outside above", None, [annotation(bbox=[3, -9, 5, 9])],
     "ann.json: annotations[0] (id 7) of a.png: bbox [3, -9, 5, 9] lies entirely outside the "
     "32x24 image"),
    ("unknown category", None, [annotation(category_id=99)],
     "ann.json: annotations[0] (id 7) of a.png: category_id 99 is not among the categories "
     "(1)"),
    ("unknown image", None, [annotation(image_id=42)],
     "ann.json: annotations[0] (id 7): image_id 42 is not among the images"),
    ("bbox of 3 numbers", None, [annotation(bbox=[1, 2, 3])],
     "ann.json: annotations[0] (id 7) of a.png: 'bbox' must be 4 numbers [x, y, width, "
     "height]; got [1, 2, 3]"),
    ("bbox of strings", None, [annotation(bbox=["1", 2, 3, 4])],
     "ann.json: annotations[0] (id 7) of a.png: 'bbox' must be 4 numbers [x, y, width, "
     "height]; got [\"1\", 2, 3, 4]"),
    ("annotation not an object", None, [[1, 2]],
     "ann.json: annotations[0]: an array; expected an object"),
    ("too few keypoints", None, [annotation(keypoints=[1, 1, 2, 3, 3, 2])],
     "ann.json: annotations[0] (id 7) of a.png: 2 keypoints; category 'person' declares 3"),
    ("too many keypoints", None, [annotation(keypoints=[1, 1, 2] * 4)],
     "ann.json: annotations[0] (id 7) of a.png: 4 keypoints; category 'person' declares 3"),
    ("keypoint visibility", None, [annotation(keypoints=[1, 1, 2, 3, 3, 5, 0, 0, 0])],
     "ann.json: annotations[0] (id 7) of a.png: keypoint 1 has visibility 5; COCO's are 0 "
     "(not labelled), 1 (not visible), 2 (visible)"),
    ("keypoints not a multiple of 3", None, [annotation(keypoints=[1, 1, 2, 3])],
     "ann.json: annotations[0] (id 7) of a.png: 'keypoints' must be numbers x, y, visibility "
     "per keypoint"),
    ("short polygon", None, [annotation(segmentation=[[1, 1, 5, 5]])],
     "ann.json: annotations[0] (id 7) of a.png: a polygon must be 3 or more x, y pairs of "
     "numbers; got 4 values"),
    ("no segmentation", None, [annotation()],
     "ann.json: annotations[0] (id 7) of a.png: no 'segmentation' (--polygon-masks draws "
     "every annotation's)"),
    ("segmentation of another kind", None, [annotation(segmentation="x")],
     "ann.json: annotations[0] (id 7) of a.png: 'segmentation' must be polygons or RLE; got "
     "\"x\""),
    ("rle of another size", None,
     [annotation(segmentation={"counts": [100], "size": [10, 10]})],
     "ann.json: annotations[0] (id 7) of a.png: RLE of 10x10 pixels; its image is 32x24"),
    ("rle counts wrong", None, [annotation(segmentation={"counts": [5, 6], "size": [H, W]})],
     "ann.json: annotations[0] (id 7) of a.png: RLE counts add up to 11 pixels (or one is "
     "negative); the image has 768"),
    ("missing image file", [GOOD_IMAGE, {"id": 2, "file_name": "gone.png"}], [],
     "images/gone.png: no such file (named by image id 2 of ann.json)"),
    ("image of another size", [{**GOOD_IMAGE, "width": 40, "height": 30}], [],
     "images/a.png: 32x24 pixels; image id 1 of ann.json says 40x30"),
    ("unreadable image", [GOOD_IMAGE, {"id": 2, "file_name": "broken.png"}], [],
     "images/broken.png: UnidentifiedImageError: cannot identify image file"),
    ("image without file_name", [GOOD_IMAGE, {"id": 2}], [],
     "ann.json: images[1]: 'file_name' must be a file name; got None"),
    ("image of zero width", [GOOD_IMAGE, {"id": 2, "file_name": "a.png", "width": 0,
                                          "height": 5}], [],
     "ann.json: images[1]: 'width' must be a positive integer; got 0"),
]


@pytest.mark.parametrize("images, annotations, expected", [case[1:] for case in COCO_SKIPS],
                         ids=[case[0] for case in COCO_SKIPS])
def test_damaged_coco_annotations_are_skipped_with_their_reason(tmp_path, images, annotations,
                                                                expected):
    save_image(tmp_path / "images/a.png")
    (tmp_path / "images/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images or [GOOD_IMAGE], "annotations": annotations,
                               "categories": [PERSON]}))
    masks = "segmentation" in expected or "RLE" in expected or "polygon" in expected.lower()
    with pytest.raises(ConversionError) as error:  # strict: listed, then nothing written
        convert_coco(ann, tmp_path / "images", tmp_path / "out.beton", workers=1, strict=True,
                     polygon_masks=masks)
    assert str(error.value) == (f"1 skipped image(s) or annotation(s), listed in "
                                f"{tmp_path / 'out.skipped.txt'}; nothing written (--strict)")
    assert not (tmp_path / "out.beton").exists()
    line, = (tmp_path / "out.skipped.txt").read_text().splitlines()
    assert line.startswith(f"{tmp_path}/{expected}"), line


def test_a_skipped_annotation_leaves_its_image_and_the_others(tmp_path):
    save_image(tmp_path / "images/a.png")
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [GOOD_IMAGE], "categories": [PERSON], "annotations": [
        annotation(bbox=[5, 2, -3, 4]), annotation(id=8, bbox=[1, 2, 3, 4])]}))
    result = convert_coco(ann, tmp_path / "images", tmp_path / "out.beton", workers=1)
    assert result.written == 1 and len(result.skipped) == 1
    boxes, labels, _, _ = stored(tmp_path / "out.beton")["boxes"][0]
    assert np.array_equal(boxes, np.float32([[1, 2, 4, 6]])) and labels.tolist() == [0]


COCO_ERRORS = [
    ("malformed json", '{"images": [],\n "categories": [\n    {"id": 1 "name": "a"}]}',
     "{ann}:3:14: malformed JSON: Expecting ',' delimiter"),
    ("top level array", "[]", "{ann}: a COCO file is an object with 'images', 'annotations' "
                              "and 'categories'; got an array"),
    ("no categories", '{"images": []}', "{ann}: 'categories' must be an array; got nothing"),
    ("empty categories", '{"images": [], "categories": []}',
     "{ann}: 'categories' is empty; boxes need at least one"),
    ("category id twice", '{"images": [], "categories": [{"id": 1, "name": "a"}, '
                          '{"id": 1, "name": "b"}]}',
     "{ann}: categories[1]: id 1 appears twice"),
    ("category without name", '{"images": [], "categories": [{"id": 1}]}',
     "{ann}: categories[0]: 'name' must be a string; got None"),
    ("two keypoint counts", '{"images": [], "categories": [{"id": 1, "name": "a", '
                            '"keypoints": ["x"]}, {"id": 2, "name": "b", '
                            '"keypoints": ["x", "y"]}]}',
     "{ann}: categories declare 1 and 2 keypoints; a .beton's keypoints field has one count"),
    ("image id twice", '{"images": [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": '
                       '"a.png"}], "categories": [{"id": 1, "name": "a"}]}',
     "{ann}: images[1]: image id 1 appears twice"),
    ("not utf-8", b"\xff\xfe{}", "{ann}: not UTF-8 text (byte 0)"),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in COCO_ERRORS],
                         ids=[case[0] for case in COCO_ERRORS])
def test_a_coco_file_that_cannot_be_read_is_a_one_line_error(tmp_path, text, expected):
    save_image(tmp_path / "images/a.png")
    ann = tmp_path / "ann.json"
    ann.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConversionError) as error:
        convert_coco(ann, tmp_path / "images", tmp_path / "out.beton", workers=1)
    assert str(error.value) == expected.format(ann=ann)
    assert isinstance(error.value, AnnotationError) == ("malformed" in expected)


YOLO_SKIPS = [
    ("four fields", "1 0.5 0.5 0.2\n",
     "labels/a.txt:1: 4 fields; a YOLO line has 5: class cx cy w h"),
    ("a polygon line", "1 0.1 0.1 0.5 0.1 0.5 0.5\n",
     "labels/a.txt:1: 7 fields; a YOLO line has 5: class cx cy w h"),
    ("not a number", "0 0.5 0.5 0.2 0.2\n1 0.5 abc 0.2 0.2\n",
     "labels/a.txt:2: 'abc' is not a number"),
    ("class not an integer", "1.5 0.5 0.5 0.2 0.2\n",
     "labels/a.txt:1: class '1.5' is not an integer"),
    ("class out of range", "5 0.5 0.5 0.2 0.2\n",
     "labels/a.txt:1: class 5 is out of range: 2 classes (0..1)"),
    ("negative class", "-1 0.5 0.5 0.2 0.2\n",
     "labels/a.txt:1: class -1 is out of range: 2 classes (0..1)"),
    ("nan box", "0 nan 0.5 0.2 0.2\n",
     "labels/a.txt:1: box nan 0.5 0.2 0.2 has a value that is not a finite number"),
    ("negative width", "0 0.5 0.5 -0.25 0.5\n",
     "labels/a.txt:1: box 0.5 0.5 -0.25 0.5 has a negative width (-8)"),
    ("zero height", "0 0.5 0.5 0.25 0\n", "labels/a.txt:1: box 0.5 0.5 0.25 0 is empty (zero "
                                           "height)"),
    ("outside", "0 1.5 0.5 0.2 0.2\n",
     "labels/a.txt:1: box 1.5 0.5 0.2 0.2 lies entirely outside the 32x24 image"),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in YOLO_SKIPS],
                         ids=[case[0] for case in YOLO_SKIPS])
def test_damaged_yolo_lines_are_skipped_with_path_and_line(tmp_path, text, expected):
    src = yolo_source(tmp_path / "src", labels={"a.txt": text}, data_yaml="names: [a, b]\n")
    with pytest.raises(ConversionError, match="nothing written"):
        convert_yolo(src, tmp_path / "out.beton", workers=1, strict=True)
    line, = (tmp_path / "out.skipped.txt").read_text().splitlines()
    assert line == f"{src}/{expected}"


def test_a_label_file_without_an_image_is_skipped(tmp_path):
    src = yolo_source(tmp_path / "src", labels={"a.txt": "0 0.5 0.5 0.2 0.2\n",
                                                "zz.txt": "0 0.5 0.5 0.2 0.2\n"})
    result = convert_yolo(src, tmp_path / "out.beton", workers=1)
    assert result.skipped == [(str(src / "labels/zz.txt"),
                               "no image for this label file (SRC/images/<same path>."
                               "<jpg|png|...>)")]


YOLO_ERRORS = [
    ("malformed data.yaml", "names: [a, b\nnc: 2\n", None,
     "{src}/data.yaml:2:3: malformed YAML: expected ',' or ']', but got ':'"),
    ("nc disagrees", "names: [a, b]\nnc: 3\n", None,
     "{src}/data.yaml: 'nc' is 3 but 'names' lists 2 classes"),
    ("names map with a gap", "names: {0: a, 2: b}\n", None,
     "{src}/data.yaml: 'names' must map the class ids 0..C-1 to names; got ids [0, 2]"),
    ("bad kpt_shape", "names: [a]\nkpt_shape: [17, 4]\n", None,
     "{src}/data.yaml: 'kpt_shape' must be [K, 2] or [K, 3] (K keypoints of x, y[, "
     "visibility]); got [17, 4]"),
    ("classes.txt with a blank line", None, "a\n\nb\n",
     "{src}/classes.txt:2: an empty class name (one name per line, class 0 first)"),
]


@pytest.mark.parametrize("data_yaml, classes, expected", [case[1:] for case in YOLO_ERRORS],
                         ids=[case[0] for case in YOLO_ERRORS])
def test_a_yolo_folder_that_cannot_be_read_is_a_one_line_error(tmp_path, data_yaml, classes,
                                                               expected):
    src = yolo_source(tmp_path / "src", data_yaml=data_yaml)
    if classes is not None:
        (src / "classes.txt").write_text(classes)
    with pytest.raises(ConversionError) as error:
        convert_yolo(src, tmp_path / "out.beton", workers=1)
    assert str(error.value) == expected.format(src=src)


def test_a_yolo_folder_without_labels_is_an_error(tmp_path):
    save_image(tmp_path / "src/images/a.png")
    with pytest.raises(ConversionError) as error:
        convert_yolo(tmp_path / "src", tmp_path / "out.beton", workers=1)
    assert str(error.value) == (f"{tmp_path}/src/labels: no such directory (the label .txt files "
                                f"of a YOLO folder: SRC/images/<path>.jpg beside "
                                f"SRC/labels/<path>.txt)")


def test_the_corpus_has_at_least_fifteen_cases():
    assert len(COCO_SKIPS) + len(COCO_ERRORS) + len(YOLO_SKIPS) + len(YOLO_ERRORS) >= 15


# -- the command line ----------------------------------------------------------------------

def test_the_cli_converts_coco_and_reports(tmp_path, capsys):
    ann = coco_source(tmp_path)
    assert main(["convert", str(tmp_path / "images"), str(tmp_path / "cli.beton"), "--coco",
                 str(ann), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "categories (3, saved to" in out and "    0  person (id 1)" in out
    assert "4 boxes written (1 images without boxes)" in out
    assert "1 boxes partly outside their image clipped to it" in out
    assert "1 crowd annotations left out (--keep-crowd keeps them)" in out
    assert "1 labelled keypoints outside their image marked not labelled" in out
    assert "3 written, 0 skipped" in out


def test_the_cli_converts_yolo(tmp_path, capsys):
    src = yolo_source(tmp_path / "src")
    assert main(["convert", str(src), str(tmp_path / "cli.beton"), "--yolo", "--workers",
                 "1"]) == 0
    assert "3 written, 0 skipped" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--coco", "{ann}", "--num-classes", "3"],
     "pureffcv convert: --num-classes does not apply to --coco or --yolo (their categories "
     "come from the annotations)"),
    (["--polygon-masks"], "pureffcv convert: --polygon-masks and --keep-crowd apply to --coco"),
    (["--yolo", "--keep-crowd"],
     "pureffcv convert: --polygon-masks and --keep-crowd apply to --coco"),
])
def test_the_cli_refuses_options_that_do_not_apply(tmp_path, capsys, extra, message):
    ann = coco_source(tmp_path)
    argv = [a.format(ann=ann) for a in extra]
    assert main(["convert", str(tmp_path / "images"), str(tmp_path / "x.beton"), *argv]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == message


def test_the_cli_prints_malformed_json_at_its_line_and_column(tmp_path, capsys):
    save_image(tmp_path / "images/a.png")
    (tmp_path / "ann.json").write_text('{"images": [}')
    assert main(["convert", str(tmp_path / "images"), str(tmp_path / "x.beton"), "--coco",
                 str(tmp_path / "ann.json")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"{tmp_path / 'ann.json'}:1:13: malformed JSON: Expecting value")
