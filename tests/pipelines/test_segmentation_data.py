"""A segmentation folder as a run's data: converted when its .beton is missing (no class map:
masks hold ids), refused by the image-folder fallback (which reads class folders) with the
fix, and checked field by field."""
from pathlib import Path

import pytest

from pipelines.data_checks import DataError
from pipelines.datamodule import FFCVDataModule
from pipelines.demo_shapes import build_shapes_dataset
from pipelines.missing_betons import convert_missing, shared_class_map
from tests.conftest import structured_image, write_beton

SPEC = """\
version: 1
splits:
  train:
    image: {decode: {random_resized_crop: {size: 32}}}
    targets: {mask: {num_classes: 4}}
    loader: {batch_size: 4}
"""


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return build_shapes_dataset(tmp_path_factory.mktemp("shapes"), {"train": 6}, size=32)["train"]


def test_a_missing_beton_is_converted_from_a_segmentation_folder(shapes, tmp_path):
    from ffcv.reader import Reader

    beton = tmp_path / "train.beton"
    sources = [("train", str(beton), str(shapes))]
    assert shared_class_map(sources) is None  # masks hold class ids, not folder names
    convert_missing(sources, rank=0)
    reader = Reader(str(beton))
    assert reader.field_names == ["image", "mask"] and reader.num_samples == 6


def test_the_image_folder_fallback_refuses_a_split_with_masks(shapes, tmp_path):
    spec = tmp_path / "seg.yaml"
    spec.write_text(SPEC)
    data = FFCVDataModule(str(spec), train_folder=str(shapes))
    with pytest.raises(DataError, match="train: the image-folder fallback reads class folders, "
                                        "not mask targets; convert .* first"):
        data.check()


def test_a_mask_target_must_read_a_mask_field(tmp_path):
    spec = tmp_path / "seg.yaml"
    spec.write_text(SPEC.replace("{mask: {num_classes: 4}}", "{mask: {field: label}}"))
    beton = write_beton(tmp_path / "cls.beton", [structured_image(32, 32)] * 4, [0, 1, 2, 3])
    with pytest.raises(DataError, match="field 'label' \\(target 'mask', mask\\) is not a "
                                        "MaskField but IntField"):
        FFCVDataModule(str(spec), train_path=str(beton)).check()


@pytest.mark.parametrize("spec, task, classes, message", [
    (SPEC, "classification", 4, "the train split reads no label \\(label: none\\) but the "
                                "model's task is classification"),
    (SPEC.replace("    targets: {mask: {num_classes: 4}}\n", ""), "segmentation", 4,
     "the train split has no mask target but the model's task is segmentation"),
    (SPEC, "segmentation", 3, "the train masks have 4 classes but the model outputs 3; set "
                              "--model.num_classes 4"),
])
def test_a_model_task_the_split_cannot_feed_is_refused_before_training(shapes, tmp_path, spec,
                                                                       task, classes, message):
    path = tmp_path / "seg.yaml"
    path.write_text(spec)
    data = FFCVDataModule(str(path), train_path=str(tmp_path / "missing.beton"))
    with pytest.raises(DataError, match=message):
        data.check(classes, task=task)
