"""Boxes and keypoints as a run's data: the DataModule checks that each target reads a field
of its kind and feeds a detector batches of ``BoxBatch`` and ``KeypointBatch``."""
import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from operations.device.instance_batch import detection_targets
from pipelines.data_checks import DataError
from pipelines.datamodule import FFCVDataModule
from tests.conftest import structured_image, write_beton, write_detection_beton

SPEC = """\
version: 1
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 32}}
      device: {ops: [horizontal_flip, normalize]}
    targets:
      boxes: {kind: boxes, min_area: 4}
      keypoints: {kind: keypoints, flip_pairs: [[0, 1]]}
    loader: {batch_size: 4, num_workers: 1}
"""


@pytest.fixture(scope="module")
def beton(tmp_path_factory):
    images = [structured_image(40, 48, seed=i) for i in range(8)]
    boxes = [[[2, 3, 20 + i, 30]] * (1 + i % 3) for i in range(8)]
    labels = [[i % 5] * (1 + i % 3) for i in range(8)]
    points = [np.tile([[[5, 6, 2], [15, 16, 1]]], (1 + i % 3, 1, 1)) for i in range(8)]
    return write_detection_beton(tmp_path_factory.mktemp("det") / "det.beton", images, boxes,
                                 labels, points)


class TinyDetector(pl.LightningModule):
    """The docs' example (docs/targets.md, 'Feeding a detector'): a model that takes
    torchvision's list of dicts, here a box regressor on pooled features."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Conv2d(3, 8, 3, stride=4)
        self.head = torch.nn.Linear(8, 4)
        self.seen = []

    def training_step(self, batch, batch_index):
        images, boxes, points = batch
        targets = detection_targets(boxes)  # [{"boxes": (n, 4), "labels": (n,)}, ...]
        self.seen.append(([len(t["boxes"]) for t in targets], tuple(points.points.shape)))
        predicted = self.head(self.features(images).mean((2, 3)))  # one box per image
        first = torch.stack([t["boxes"][0] if len(t["boxes"]) else torch.zeros(4)
                             for t in targets])
        return torch.nn.functional.l1_loss(predicted, first / 32)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_the_datamodule_feeds_a_detector(beton, tmp_path):
    spec = tmp_path / "det.yaml"
    spec.write_text(SPEC)
    model = TinyDetector()
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, max_epochs=1,
                         default_root_dir=tmp_path)
    trainer.fit(model, FFCVDataModule(str(spec), train_path=str(beton)))
    assert len(model.seen) == 2  # 8 samples, batches of 4
    counts = [n for batch, _ in model.seen for n in batch]
    assert len(counts) == 8 and all(0 <= n <= 3 for n in counts) and sum(counts) > 0
    assert all(shape[0] == 4 and shape[2:] == (2, 2) for _, shape in model.seen)


@pytest.mark.parametrize("targets, message", [
    ("{boxes: {kind: boxes, field: image}}", "reads field 'image', the image's field"),
    ("{boxes: {kind: boxes, field: keypoints}}",
     "field 'keypoints' (target 'boxes', boxes) is not a BoxesField but KeypointsField"),
    ("{points: {kind: keypoints, field: boxes}}",
     "field 'boxes' (target 'points', keypoints) is not a KeypointsField but BoxesField"),
    ("{keypoints: {kind: keypoints, flip_pairs: [[1, 2]]}}",
     "target 'keypoints' swaps point 2 in flip_pairs but field 'keypoints' holds 2 keypoints "
     "(0..1)"),
])
def test_a_target_must_read_a_field_of_its_kind(beton, tmp_path, targets, message):
    spec = tmp_path / "det.yaml"
    spec.write_text(SPEC.replace(SPEC[SPEC.index("    targets:"):SPEC.index("    loader:")],
                                 f"    targets: {targets}\n"))
    with pytest.raises(Exception) as caught:
        FFCVDataModule(str(spec), train_path=str(beton)).check()
    assert message in str(caught.value)


def test_a_boxes_target_on_a_classification_beton_is_refused(tmp_path):
    spec = tmp_path / "det.yaml"
    spec.write_text(SPEC.replace(SPEC[SPEC.index("    targets:"):SPEC.index("    loader:")],
                                 "    targets: {boxes: {kind: boxes, field: label}}\n"))
    beton = write_beton(tmp_path / "cls.beton", [structured_image(32, 32)] * 4, [0, 1, 2, 3])
    with pytest.raises(DataError, match="field 'label' \\(target 'boxes', boxes\\) is not a "
                                        "BoxesField but IntField"):
        FFCVDataModule(str(spec), train_path=str(beton)).check()
