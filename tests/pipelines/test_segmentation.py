"""Segmentation on the training side: the confusion-matrix metrics against a hand-computed case
and a numpy reference, the segmentation head, the loss, training and evaluation steps and
predicted masks on plain in-memory batches (the FFCV side of masks is tested with the
compiler), and the demo's shape generator against PIL's drawing of the same shapes."""
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from pipelines.callbacks import MaskWriter, PredictionError, check_mask_output, write_mask
from pipelines.classifier import ImageClassifier, segmentation_loss, spec_ignore_index
from pipelines.demo_shapes import (IGNORE_INDEX, build_shapes_dataset, draw_sample,
                                   ignore_borders)
from pipelines.models import build_segmentation_resnet
from pipelines.segmentation_metrics import (ConfusionMatrix, MeanIoU, PixelAccuracy,
                                            confusion_matrix, mean_iou, pixel_accuracy)


# ----- metrics ------------------------------------------------------------------------------
def test_metrics_of_a_hand_computed_case():
    # 4 classes; class 3 occurs nowhere (left out of the mean); 255 pixels are ignored
    truth = torch.tensor([[0, 0, 1, 1],
                          [0, 2, 1, 255],
                          [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1],
                         [0, 2, 2, 0],    # (1, 3): ignored, its prediction does not count
                         [2, 0, 1, 3]])
    # counted pixels (row truth, column prediction):
    # truth 0: (0,0)->0, (0,1)->1, (1,0)->0       -> M[0] = [2, 1, 0, 0]
    # truth 1: (0,2)->1, (0,3)->1, (1,2)->2       -> M[1] = [0, 2, 1, 0]
    # truth 2: (1,1)->2, (2,0)->2, (2,1)->0       -> M[2] = [1, 0, 2, 0]
    expected = torch.tensor([[2, 1, 0, 0], [0, 2, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    matrix = confusion_matrix(pred, truth, num_classes=4, ignore_index=255)
    assert torch.equal(matrix, expected)
    # IoU = TP / (row + column - TP); rows 3, 3, 3, 0 and columns 3, 3, 3, 0:
    # classes 0, 1, 2: 2 / (3 + 3 - 2) = 1/2; class 3: 0 / 0, left out of the mean
    assert mean_iou(matrix).item() == pytest.approx(0.5)
    assert pixel_accuracy(matrix).item() == pytest.approx(6 / 9)
    # class 3 predicted once where the truth is 2: M[2] = [0, 0, 2, 1], columns 2, 3, 3, 1
    pred[2, 1] = 3
    matrix = confusion_matrix(pred, truth, num_classes=4)
    # class 0: 2 / (3 + 2 - 2) = 2/3; classes 1, 2: 1/2; class 3: 0 / (0 + 1 - 0) = 0
    assert mean_iou(matrix).item() == pytest.approx((2 / 3 + 1 / 2 + 1 / 2 + 0) / 4)
    assert pixel_accuracy(matrix).item() == pytest.approx(6 / 9)


def test_nothing_counted_is_nan_and_bad_ids_raise():
    truth = torch.full((2, 3), 255)
    matrix = confusion_matrix(torch.zeros(2, 3, dtype=torch.long), truth, 3)
    assert matrix.sum() == 0
    assert mean_iou(matrix).isnan() and pixel_accuracy(matrix).isnan()
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 3\)"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 3\)"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 3)
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(torch.zeros(2, 3), torch.zeros(3, 2), 3)


def numpy_metrics(batches, num_classes, ignore_index):
    """mIoU and pixel accuracy by explicit loops over classes (no confusion matrix)."""
    pred = np.concatenate([p.reshape(-1) for p, _ in batches])
    truth = np.concatenate([t.reshape(-1) for _, t in batches])
    kept = truth != ignore_index
    pred, truth = pred[kept], truth[kept]
    ious = []
    for c in range(num_classes):
        intersection = np.sum((pred == c) & (truth == c))
        union = np.sum((pred == c) | (truth == c))
        if union:
            ious.append(intersection / union)
    return np.mean(ious), np.mean(pred == truth)


@pytest.mark.parametrize("seed", range(6))
def test_epoch_metrics_match_a_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 7))
    ignore_index = 255 if seed % 2 else num_classes  # also an ignore index next to the classes
    batches = []
    for _ in range(int(rng.integers(1, 5))):
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 9)))
        # few classes used in some batches, so some classes are absent from both sides
        used = int(rng.integers(1, num_classes + 1))
        truth = rng.integers(0, used, size=shape)
        truth[rng.random(shape) < 0.2] = ignore_index
        pred = np.where(rng.random(shape) < 0.6, np.minimum(truth, used - 1),
                        rng.integers(0, used, size=shape))
        batches.append((pred, truth))
    miou, accuracy = MeanIoU(num_classes, ignore_index), PixelAccuracy(num_classes, ignore_index)
    matrix = ConfusionMatrix(num_classes, ignore_index)
    for pred, truth in batches:
        for metric in (miou, accuracy, matrix):
            metric.update(torch.from_numpy(pred), torch.from_numpy(truth).to(torch.uint8))
    expected_miou, expected_accuracy = numpy_metrics(batches, num_classes, ignore_index)
    if np.isnan(expected_accuracy):  # every pixel ignored
        assert miou.compute().isnan() and accuracy.compute().isnan()
        return
    assert miou.compute().item() == pytest.approx(expected_miou, rel=1e-6)
    assert accuracy.compute().item() == pytest.approx(expected_accuracy, rel=1e-6)
    assert matrix.compute().sum() == sum(int(np.sum(t != ignore_index)) for _, t in batches)


# ----- model and loss -----------------------------------------------------------------------
@pytest.mark.parametrize("arch,size", [("resnet18", (64, 64)), ("resnet50", (45, 70))])
def test_the_head_gives_logits_at_the_input_resolution(arch, size):
    model = build_segmentation_resnet(arch, num_classes=5, width=8).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, *size))
    assert logits.shape == (2, 5, *size)
    names = dict(model.named_parameters())
    assert "backbone.layer4.1.conv2.weight" in names or "backbone.layer4.2.conv3.weight" in names
    assert not any(name.startswith("backbone.fc") for name in names)  # no unused parameters
    assert model.decoder.classifier.in_channels == 16  # 2 x width


def test_segmentation_loss_matches_the_definition_and_skips_ignored_pixels():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5)
    masks = torch.randint(0, 3, (2, 4, 5), dtype=torch.uint8)
    masks[0, 0, :3] = 255
    z = logits.double().permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    t = masks.reshape(-1).numpy().astype(int)
    log_p = z - z.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    kept = t != 255
    eps = 0.1
    q = np.full((kept.sum(), 3), eps / 3)
    q[np.arange(kept.sum()), t[kept]] += 1 - eps
    expected = -(q * log_p[kept]).sum(1).mean()
    got = segmentation_loss(logits, masks, 255, label_smoothing=eps)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    all_ignored = segmentation_loss(logits, torch.full_like(masks, 255))
    assert all_ignored.item() == 0.0  # not NaN


def square_batches(n=16, size=32, seed=0, indexed=False):
    """Images with a bright square (class 1) or a dark one (class 2) on grey, masks to match
    with an ignored border row."""
    g = torch.Generator().manual_seed(seed)
    images = torch.full((n, 3, size, size), 0.5)
    masks = torch.zeros(n, size, size, dtype=torch.uint8)
    for i in range(n):
        y, x = torch.randint(0, size - 12, (2,), generator=g).tolist()
        side = int(torch.randint(8, 12, (1,), generator=g))
        label = 1 + i % 2
        images[i, :, y:y + side, x:x + side] = 1.0 if label == 1 else 0.0
        masks[i, y:y + side, x:x + side] = label
        masks[i, y, x:x + side] = 255
    images = (images - 0.5) / 0.25 + 0.05 * torch.randn(images.shape, generator=g)
    tensors = (images, masks, torch.arange(n)) if indexed else (images, masks)
    return DataLoader(TensorDataset(*tensors), batch_size=8)


def trainer(root, **kwargs):
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=root,
                      enable_checkpointing=False, **kwargs)


def segmenter(**kwargs):
    options = dict(arch="resnet18", num_classes=3, width=8, task="segmentation",
                   optimizer="adamw", lr=1e-2, weight_decay=0.0, schedule="cosine",
                   label_smoothing=0.0)
    options.update(kwargs)
    return ImageClassifier(**options)


class LossLog(pl.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def test_training_steps_lower_the_loss_and_validation_logs_miou(tmp_path):
    torch.manual_seed(0)
    model = segmenter()
    log = LossLog()
    run = trainer(tmp_path, max_epochs=8, callbacks=[log], num_sanity_val_steps=0)
    run.fit(model, square_batches(), square_batches(8, seed=1))
    assert np.mean(log.losses[-4:]) < 0.5 * np.mean(log.losses[:2])
    metrics = run.callback_metrics
    assert {"val/loss", "val/miou", "val/pixel_accuracy"} <= set(metrics)
    assert 0 < float(metrics["val/miou"]) <= float(metrics["val/pixel_accuracy"]) <= 1
    tested = run.test(model, square_batches(8, seed=1), verbose=False)[0]
    assert tested["test/miou"] == pytest.approx(float(metrics["val/miou"]), abs=1e-6)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\(\)`")
def test_evaluation_counts_every_pixel_once_and_flip_tta_is_mirror_equivariant():
    torch.manual_seed(0)
    model = segmenter(flip_tta=True).eval()
    images, masks = next(iter(square_batches()))
    with torch.no_grad():
        logits = model.evaluation_logits(images)
        mirrored = model.evaluation_logits(images.flip(3))
    assert torch.allclose(mirrored.flip(3), logits, atol=1e-5)
    model.validation_step((images, masks), 0)
    expected = confusion_matrix(logits.argmax(1), masks, 3)
    assert torch.equal(model.val_miou.matrix, expected)
    assert model.val_miou.compute().item() == pytest.approx(mean_iou(expected).item())


def test_ignore_index_option_and_classification_is_untouched():
    model = segmenter(ignore_index=0)
    assert model.ignore_index == 0 and model.val_miou.ignore_index == 0
    assert segmenter().ignore_index == 255
    with pytest.raises(ValueError, match="multilabel is for classification"):
        segmenter(multilabel=True)
    with pytest.raises(ValueError, match="unknown task 'detection'"):
        ImageClassifier(num_classes=3, width=8, task="detection")
    classifier = ImageClassifier(arch="resnet18", num_classes=4, width=8)
    assert classifier.task == "classification" and hasattr(classifier, "val_top1")
    assert not any(name.startswith("model.backbone") for name in classifier.state_dict())


def test_the_ignore_index_defaults_to_the_specs_mask_targets(tmp_path):
    class Data:
        spec = str(tmp_path / "seg.yaml")

    (tmp_path / "seg.yaml").write_text(SEGMENTATION_SPEC.replace("ignore_index: 255",
                                                                 "ignore_index: 9"))
    assert spec_ignore_index(Data()) == 9
    assert spec_ignore_index(object()) is None  # no spec
    Data.spec = "demo"  # a shipped classification spec: no mask target
    assert spec_ignore_index(Data()) is None

    class Trainer:
        datamodule = Data()

    Data.spec = str(tmp_path / "seg.yaml")
    model, given = segmenter(), segmenter(ignore_index=4)
    for m in (model, given):
        m.trainer = Trainer()
        m.setup("fit")
    assert model.ignore_index == 9 and model.test_pixel_accuracy.ignore_index == 9
    assert given.ignore_index == 4 and given.val_miou.ignore_index == 4  # the model's wins


def test_predict_writes_one_png_mask_per_sample_named_by_index(tmp_path):
    torch.manual_seed(0)
    model = segmenter(flip_tta=False).eval()
    writer = MaskWriter(str(tmp_path / "masks"))
    run = trainer(tmp_path, callbacks=[writer])
    data = square_batches(12, indexed=True)
    assert run.predict(model, data, return_predictions=False) is None
    files = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert files == [f"{i:06d}.png" for i in range(12)] and writer.written == tmp_path / "masks"
    images = torch.cat([batch[0] for batch in data])
    with torch.no_grad():
        expected = model(images).argmax(1).numpy()
    for i in range(12):
        with Image.open(tmp_path / "masks" / f"{i:06d}.png") as png:
            assert png.mode == "L" and png.size == (32, 32)
            assert np.array_equal(np.asarray(png), expected[i])


def test_masks_of_more_than_256_classes_are_16_bit_pngs(tmp_path):
    ids = torch.tensor([[0, 300], [65535, 7]], dtype=torch.int32)
    write_mask(ids, tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as png:
        assert png.mode.startswith("I")
        assert np.asarray(png).astype(np.int64).tolist() == [[0, 300], [65535, 7]]


def test_mask_output_must_be_a_folder(tmp_path):
    check_mask_output(str(tmp_path / "new"))
    check_mask_output(str(tmp_path))
    with pytest.raises(PredictionError, match="predictions are PNG masks; name a folder"):
        check_mask_output(str(tmp_path / "predictions.csv"))
    (tmp_path / "file").write_text("")
    with pytest.raises(PredictionError, match="is a file"):
        check_mask_output(str(tmp_path / "file"))


# ----- the demo's shapes --------------------------------------------------------------------
def reference_labels(shapes, size: int) -> np.ndarray:
    """The label map of ``shapes`` drawn in order, each pixel labelled by whether its centre
    is inside (circles: distance; polygons: matplotlib's point-in-path test)."""
    from matplotlib.path import Path as Outline

    rows, cols = np.mgrid[0:size, 0:size]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    labels = np.zeros(size * size, np.uint8)
    for shape in shapes:
        if shape.circle:
            cx, cy, r = shape.circle
            inside = np.hypot(centres[:, 0] - cx, centres[:, 1] - cy) <= r
        else:
            inside = Outline(shape.vertices).contains_points(centres)
        labels[inside] = shape.label
    return labels.reshape(size, size)


@pytest.mark.parametrize("seed", range(8))
def test_demo_masks_match_the_drawn_shapes(seed):
    size = 64
    image, mask, shapes = draw_sample(np.random.default_rng([seed]), size)
    assert 1 <= len(shapes) <= 4
    labels = reference_labels(shapes, size)
    assert np.array_equal(ignore_borders(labels), mask)
    assert set(np.unique(mask)) <= {0, 1, 2, 3, IGNORE_INDEX}
    assert (mask != IGNORE_INDEX).mean() > 0.6  # the border is thin
    # the image shows each shape's colour where the mask says its class (top shape: whole)
    top = shapes[-1]
    inside = labels == top.label
    inside &= reference_labels([top], size) > 0
    difference = np.abs(image[inside].astype(int) - np.array(top.colour)).mean()
    assert difference < 12  # the shape's texture noise has a standard deviation of 8


def test_ignore_borders_by_hand():
    mask = np.array([[0, 0, 0, 0],
                     [0, 1, 1, 0],
                     [0, 0, 0, 0],
                     [2, 2, 2, 2]], np.uint8)
    x = 255
    assert ignore_borders(mask).tolist() == [[0, x, x, 0],
                                             [x, x, x, x],
                                             [x, x, x, x],
                                             [x, x, x, x]]


def test_the_demo_folders_are_the_segmentation_layout_and_reused(tmp_path):
    folders = build_shapes_dataset(tmp_path, {"train": 3, "val": 2}, size=32, seed=1)
    for split, count in (("train", 3), ("val", 2)):
        stems = [f"{i:05d}" for i in range(count)]
        assert sorted(p.stem for p in (folders[split] / "images").glob("*.jpg")) == stems
        assert sorted(p.stem for p in (folders[split] / "masks").glob("*.png")) == stems
        for stem in stems:
            with Image.open(folders[split] / "masks" / f"{stem}.png") as png:
                assert png.mode == "L" and png.size == (32, 32)
    # the same sample as draw_sample gives for its key, losslessly in the PNG
    _, mask, _ = draw_sample(np.random.default_rng([1, 1, 0]), 32)
    with Image.open(folders["val"] / "masks" / "00000.png") as png:
        assert np.array_equal(np.asarray(png), mask)
    written = (folders["train"] / "masks" / "00000.png").stat().st_mtime_ns
    build_shapes_dataset(tmp_path, {"train": 3, "val": 2}, size=32, seed=1)
    assert (folders["train"] / "masks" / "00000.png").stat().st_mtime_ns == written
    build_shapes_dataset(tmp_path, {"train": 2}, size=32, seed=1)  # rebuilt, smaller
    assert len(list((folders["train"] / "images").glob("*.jpg"))) == 2


# ----- through the commands -----------------------------------------------------------------
SEGMENTATION_SPEC = """\
version: 1
seed: 0
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 32, scale: [0.5, 1.0]}}
      device: {dtype: float32, ops: [horizontal_flip, {normalize: {mean: imagenet, std: imagenet}}]}
    targets: {mask: {num_classes: 4, ignore_index: 255}}
    loader: {batch_size: 8, num_workers: 1}
  val:
    image:
      decode: {center_crop: {size: 32, ratio: 1.0}}
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    targets: {mask: {num_classes: 4, ignore_index: 255}}
    loader: {batch_size: 8, num_workers: 1}
"""


def test_fit_then_predict_writes_a_png_mask_per_sample_through_the_cli(tmp_path, capsys):
    from pipelines.cli import main
    from tests.conftest import write_segmentation_beton

    samples = [draw_sample(np.random.default_rng([7, i]), 32) for i in range(20)]
    beton = str(write_segmentation_beton(tmp_path / "shapes.beton", [s[0] for s in samples],
                                         [s[1] for s in samples]))
    spec = tmp_path / "seg.yaml"
    spec.write_text(SEGMENTATION_SPEC)
    out = tmp_path / "out"
    common = ["--data.spec", str(spec), "--model.task", "segmentation",
              "--model.num_classes", "4", "--model.arch", "resnet18", "--model.width", "8",
              "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
              "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
              "--trainer.logger.save_dir", str(out)]
    assert main(["fit", *common, "--data.train_path", beton, "--data.val_path", beton,
                 "--trainer.max_epochs", "1"]) == 0
    with open(out / "lightning_logs" / "version_0" / "metrics.csv") as f:
        text = f.read()
    assert "val/miou" in text and "val/pixel_accuracy" in text
    ckpt = str(out / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    masks = tmp_path / "masks"
    assert main(["predict", *common, "--data.predict_path", beton, "--ckpt_path", ckpt,
                 "--output", str(masks)]) == 0
    assert f"predictions written to {masks}" in capsys.readouterr().out
    assert sorted(p.name for p in masks.iterdir()) == [f"{i:06d}.png" for i in range(20)]
    with Image.open(masks / "000007.png") as png:
        assert png.mode == "L" and png.size == (32, 32)
        assert set(np.unique(np.asarray(png))) <= {0, 1, 2, 3}
    assert main(["predict", *common, "--data.predict_path", beton, "--ckpt_path", ckpt,
                 "--output", str(tmp_path / "p.csv")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"pureffcv predict: {tmp_path / 'p.csv'}: a segmentation model's predictions are PNG "
        f"masks; name a folder for them (--output DIR)")
