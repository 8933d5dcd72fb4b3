"""The stored boxes and keypoints (operations.cpu.instances_field): samples with varying
instance counts (0 included) written with FFCV's own DatasetWriter beside images and read back
through a plain FFCV Loader with BoxesDecoder / KeypointsDecoder are what was written, exactly
(padded to the file's largest count); the Python readers and the Numba reader agree with the
bytes on disk; what is refused, in one line."""
import numpy as np
import pytest

from compiler.safe_loader import LoaderError, epoch
from operations.cpu.instances_field import (BOXES_TYPE_ID, KEYPOINTS_TYPE_ID, MAX_INSTANCES,
                                            BoxesDecoder, BoxesField, BoxesSample,
                                            InstancesError, KeypointsDecoder, KeypointsField,
                                            KeypointsSample, instances_sample_reader,
                                            read_boxes, read_keypoints)
from operations.kernel_errors import KernelError
from tests.conftest import structured_image

H, W, K = 24, 32, 5
COUNTS = [3, 0, 1, 7, 0, 2, 5]  # 7 samples: batches of 4 and 3, empty samples in both


def instances(seed: int, count: int):
    """``count`` random boxes inside a W x H image (float32-exact values), labels 0-9, and
    keypoints with every visibility."""
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 1, (count, 2, 2)) * [W, H]
    boxes = np.concatenate([corners.min(1), corners.max(1)], 1).astype(np.float32)
    labels = rng.integers(0, 10, count).astype(np.int64)
    points = np.concatenate([rng.uniform(0, 1, (count, K, 2)) * [W, H],
                             rng.integers(0, 3, (count, K, 1))], 2).astype(np.float32)
    return boxes, labels, points


def write(path, counts=COUNTS, keypoints=True):
    from ffcv.fields import RGBImageField
    from ffcv.writer import DatasetWriter

    data = [instances(seed, n) for seed, n in enumerate(counts)]

    class Samples:
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            boxes, labels, points = data[i]
            row = (structured_image(H, W, i), BoxesSample(boxes, labels, H, W))
            return row + ((KeypointsSample(points, H, W),) if keypoints else ())

    fields = {"image": RGBImageField(write_mode="raw"), "boxes": BoxesField()}
    if keypoints:
        fields["keypoints"] = KeypointsField(K)
    DatasetWriter(str(path), fields, num_workers=1).from_indexed_dataset(Samples(), chunksize=2)
    return path, data


def read(path, keypoints=True, batch_size: int = 4):
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import ToTensor

    pipelines = {"image": None, "boxes": [BoxesDecoder(), ToTensor()]}
    if keypoints:
        pipelines["keypoints"] = [KeypointsDecoder(), ToTensor()]
    loader = Loader(str(path), batch_size=batch_size, num_workers=2, drop_last=False,
                    order=OrderOption.SEQUENTIAL, pipelines=pipelines)
    batches = [[part.numpy().copy() for part in batch] for batch in epoch(loader)]
    return [np.concatenate(parts) for parts in zip(*batches)]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write(tmp_path_factory.mktemp("instances") / "instances.beton")


def test_boxes_and_keypoints_read_back_exactly_through_a_plain_loader(written):
    path, data = written
    boxes, points = read(path)
    largest = max(COUNTS)
    assert boxes.dtype == np.float32 and boxes.shape == (len(COUNTS), largest, 6)
    assert points.dtype == np.float32 and points.shape == (len(COUNTS), largest, K, 3)
    for i, (want_boxes, want_labels, want_points) in enumerate(data):
        n = len(want_boxes)
        assert np.array_equal(boxes[i, :n, :4], want_boxes), i
        assert np.array_equal(boxes[i, :n, 4], want_labels.astype(np.float32)), i
        assert (boxes[i, :n, 5] == 1).all() and (boxes[i, n:] == 0).all(), i
        assert np.array_equal(points[i, :n], want_points), i
        assert (points[i, n:] == 0).all(), i


def test_the_fields_are_registered_and_store_their_metadata(written):
    """FFCV's Reader builds the fields from the type ids in the field table (K from the
    header arguments); the metadata and the Python readers agree with what was written."""
    from ffcv.reader import Reader
    from ffcv.types import TYPE_ID_HANDLER

    path, data = written
    assert TYPE_ID_HANDLER[BOXES_TYPE_ID] is BoxesField
    assert TYPE_ID_HANDLER[KEYPOINTS_TYPE_ID] is KeypointsField
    reader = Reader(str(path))
    assert isinstance(reader.handlers["boxes"], BoxesField)
    assert reader.handlers["keypoints"].num_keypoints == K
    boxes_meta, points_meta = reader.metadata["f1"], reader.metadata["f2"]
    assert boxes_meta["count"].tolist() == COUNTS == points_meta["count"].tolist()
    assert (boxes_meta["height"] == H).all() and (boxes_meta["width"] == W).all()
    assert boxes_meta["size"].tolist() == [20 * n for n in COUNTS]
    assert points_meta["size"].tolist() == [12 * K * n for n in COUNTS]
    raw = np.fromfile(path, np.uint8)
    for i, (want_boxes, want_labels, want_points) in enumerate(data):
        row, prow = boxes_meta[i], points_meta[i]
        got_boxes, got_labels = read_boxes(raw[row["ptr"]:row["ptr"] + row["size"]].tobytes(),
                                           int(row["count"]))
        assert np.array_equal(got_boxes, want_boxes) and np.array_equal(got_labels, want_labels)
        got_points = read_keypoints(raw[prow["ptr"]:prow["ptr"] + prow["size"]].tobytes(),
                                    int(prow["count"]), K)
        assert np.array_equal(got_points, want_points)
    assert BoxesField().get_decoder_class() is BoxesDecoder
    assert KeypointsField(3).get_decoder_class() is KeypointsDecoder


def test_the_numba_reader_gives_address_size_height_width_count(written):
    from ffcv.loader import Loader

    path, _ = written
    loader = Loader(str(path), batch_size=4, pipelines={"image": None, "keypoints": None})
    decoder = BoxesDecoder()
    decoder.accept_globals(loader.reader.metadata["f1"], loader.memory_manager.compile_reader())
    read_samples = instances_sample_reader(decoder.memory_read)
    with loader.memory_manager.schedule_epoch(np.arange(len(COUNTS))) as context:
        rows = read_samples(np.arange(len(COUNTS)), decoder.metadata, context.state)
    assert rows.dtype == np.int64 and rows.shape == (len(COUNTS), 5)
    assert rows[:, 1].tolist() == [20 * n for n in COUNTS]
    assert (rows[:, 2] == H).all() and (rows[:, 3] == W).all()
    assert rows[:, 4].tolist() == COUNTS
    assert ((rows[:, 0] == 0) == (np.array(COUNTS) == 0)).all()  # nothing stored for 0


def test_a_file_without_any_instance_decodes_to_one_invalid_row(tmp_path):
    path, _ = write(tmp_path / "empty.beton", counts=[0, 0, 0], keypoints=False)
    boxes, = read(path, keypoints=False)
    assert boxes.shape == (3, 1, 6) and (boxes == 0).all()


def test_a_damaged_count_stops_the_epoch_with_one_line_naming_the_sample(tmp_path):
    from ffcv.reader import Reader

    path, _ = write(tmp_path / "damaged.beton", counts=[2, 3, 1, 2], keypoints=False)
    metadata = Reader(str(path)).metadata
    table = path.read_bytes().find(metadata.tobytes())  # where the metadata table lies
    field_offset = metadata.dtype.fields["f1"][1] + INSTANCES_OFFSET["count"]
    with open(path, "r+b") as f:  # sample 2 claims 2 boxes where its bytes hold 1
        f.seek(table + 2 * metadata.itemsize + field_offset)
        f.write(np.array([2], "<u4").tobytes())
    with pytest.raises(LoaderError) as error:
        read(path, keypoints=False)
    assert isinstance(error.value.__cause__, KernelError)
    assert str(error.value.__cause__) == (
        "op BoxesDecoder failed on sample 2: ValueError: the stored instances' bytes do not "
        "match their count (damaged data)")


INSTANCES_OFFSET = {name: BoxesField().metadata_type.fields[name][1]
                    for name in BoxesField().metadata_type.names}


# -- what is refused -------------------------------------------------------------------------

GOOD_BOXES = np.array([[1, 2, 5, 6]], np.float32)


@pytest.mark.parametrize("sample, message", [
    (BoxesSample(np.zeros((2, 5)), [0, 1], H, W),
     "boxes must be a float array (n, 4) of x1, y1, x2, y2; got shape (2, 5)"),
    (BoxesSample(np.zeros(4), [0], H, W),
     "boxes must be a float array (n, 4) of x1, y1, x2, y2; got shape (4,)"),
    (BoxesSample([["a", 1, 2, 3]], [0], H, W),
     "boxes must be a float array (n, 4) of x1, y1, x2, y2; got list"),
    (BoxesSample([[1, 2, np.nan, 4]], [0], H, W),
     "boxes row 0 is not finite: [1.0, 2.0, nan, 4.0]"),
    (BoxesSample([[0, 0, 1, 1], [1, 2, 3, np.inf]], [0, 1], H, W),
     "boxes row 1 is not finite: [1.0, 2.0, 3.0, inf]"),
    (BoxesSample([[5, 2, 1, 6]], [0], H, W),
     "box 0 has a negative size: [5.0, 2.0, 1.0, 6.0] (x1, y1, x2, y2 with x1 <= x2, y1 <= y2)"),
    (BoxesSample(GOOD_BOXES, [0, 1], H, W),
     "labels must be integers (n,) = (1,), one per box; got int64 (2,)"),
    (BoxesSample(GOOD_BOXES, [0.5], H, W),
     "labels must be integers (n,) = (1,), one per box; got float64 (1,)"),
    (BoxesSample(GOOD_BOXES, [-1], H, W), "labels must lie in [0, 2147483647]; got -1"),
    (BoxesSample(GOOD_BOXES, [0], 0, W),
     "the image size must be two integers in [1, 65535]; got height 0, width 32"),
    (BoxesSample(np.zeros((MAX_INSTANCES + 1, 4)), np.zeros(MAX_INSTANCES + 1, int), H, W),
     "65536 boxes in one sample; at most 65535"),
    ((GOOD_BOXES, [0]), "a boxes sample is BoxesSample(boxes, labels, height, width); got tuple"),
])
def test_boxes_refused_in_one_line(sample, message):
    with pytest.raises(InstancesError) as error:
        BoxesField().encode(np.zeros(1, BoxesField().metadata_type)[0], sample, None)
    assert str(error.value) == message


@pytest.mark.parametrize("sample, message", [
    (KeypointsSample(np.zeros((1, 4, 3)), H, W),
     "keypoints must be a float array (n, 3, 3) of x, y, visibility; got shape (1, 4, 3)"),
    (KeypointsSample(np.zeros((1, 3, 2)), H, W),
     "keypoints must be a float array (n, 3, 3) of x, y, visibility; got shape (1, 3, 2)"),
    (KeypointsSample(np.full((1, 3, 3), np.nan), H, W),
     "keypoints row 0 is not finite: [[nan, nan, nan], [nan, nan, nan], [nan, nan, nan]]"),
    (KeypointsSample(np.array([[[1, 1, 2], [1, 1, 3], [0, 0, 0]]]), H, W),
     "keypoint 1 of instance 0 has visibility 3.0; COCO's are 0 (not labelled), 1 (not "
     "visible), 2 (visible)"),
    (KeypointsSample(np.zeros((MAX_INSTANCES + 1, 3, 3)), H, W),
     "65536 keypoints in one sample; at most 65535"),
])
def test_keypoints_refused_in_one_line(sample, message):
    with pytest.raises(InstancesError) as error:
        KeypointsField(3).encode(np.zeros(1, KeypointsField(3).metadata_type)[0], sample, None)
    assert str(error.value) == message


def test_keypoint_count_and_readers_refuse_in_one_line():
    with pytest.raises(InstancesError, match=r"^num_keypoints must be an integer in \[1, 65535\]; "
                                             r"got 0$"):
        KeypointsField(0)
    with pytest.raises(InstancesError, match=r"^the stored boxes hold 30 bytes; 2 boxes take 40$"):
        read_boxes(bytes(30), 2)
    with pytest.raises(InstancesError, match=r"^the stored keypoints hold 12 bytes; 1 instances "
                                             r"of 2 take 24$"):
        read_keypoints(bytes(12), 1, 2)
    empty_boxes, empty_labels = read_boxes(b"", 0)
    assert empty_boxes.shape == (0, 4) and empty_labels.shape == (0,)
