"""FFCVDataModule with a real Trainer over small .beton files: learning, progressive resizing,
flat thread counts, one-line data errors. (DDP runs are in test_train.py.)"""
import json
import threading

import lightning.pytorch as pl
import pytest
import torch

from compiler import SpecError
from pipelines.classifier import ImageClassifier
from pipelines.data_checks import DataError
from pipelines.datamodule import FFCVDataModule
from pipelines.epochs import EpochLoader
from pipelines.progressive import ProgressiveResizing
from tests.conftest import structured_image
from tests.pipelines.train_helpers import RecordBatches, tinted_beton, write_spec


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("lightning")
    return {"root": root, "spec": str(write_spec(root / "spec.yaml")),
            "train": str(tinted_beton(root / "train.beton", 64)),
            "val": str(tinted_beton(root / "val.beton", 32, seed=1000))}


def trainer(root, **kwargs):
    options = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                   enable_checkpointing=False, enable_model_summary=False, default_root_dir=root)
    options.update(kwargs)
    return pl.Trainer(**options)


def tiny_model(**kwargs):
    return ImageClassifier(arch="resnet18", num_classes=4, width=8, **kwargs)


def test_a_few_epochs_learn_the_tints_well_above_chance(data):
    torch.manual_seed(0)
    model = tiny_model(lr=0.2, schedule="triangular", peak_epoch=1)
    run = trainer(data["root"], max_epochs=4)
    run.fit(model, FFCVDataModule(data["spec"], data["train"], data["val"]))
    assert run.callback_metrics["val/top1"].item() >= 0.6  # chance: 0.25 (4 classes)
    assert run.callback_metrics["train/images_per_sec"].item() > 0


def test_progressive_resizing_changes_the_batch_size_on_the_ramps_epochs(data, tmp_path):
    ramp = ProgressiveResizing(start_size=16, end_size=32, start_epoch=1, end_epoch=3, step=8)
    record = RecordBatches(str(tmp_path))
    run = trainer(data["root"], max_epochs=5, limit_train_batches=2, limit_val_batches=0,
                  num_sanity_val_steps=0, callbacks=[record])
    run.fit(tiny_model(), FFCVDataModule(data["spec"], data["train"], data["val"],
                                         progressive=ramp))
    sizes = json.loads((tmp_path / "rank0.json").read_text())["sizes"]
    # by hand: <= epoch 1: 16; epoch 2: 16 + 16/2 = 24; >= epoch 3: 32
    assert sizes == {"0": [[16, 16]], "1": [[16, 16]], "2": [[24, 24]], "3": [[32, 32]],
                     "4": [[32, 32]]}


def test_thirty_short_epochs_leave_no_growing_thread_count(data):
    counts = []

    class CountThreads(pl.Callback):
        def on_train_epoch_end(self, trainer, module):
            counts.append(threading.active_count())

    run = trainer(data["root"], max_epochs=30, limit_train_batches=2, limit_val_batches=1,
                  num_sanity_val_steps=1, callbacks=[CountThreads()])
    datamodule = FFCVDataModule(data["spec"], data["train"], data["val"])
    before = threading.active_count()
    run.fit(tiny_model(), datamodule)
    assert len(counts) == 30
    assert max(counts[2:]) <= counts[2]  # flat after warm-up (FFCV alone: one more per epoch)
    assert threading.active_count() <= before  # teardown joined the last epoch's threads


def test_epoch_loader_joins_threads_that_plain_ffcv_leaks(data):
    from compiler import compile_spec

    from ffcv.loader import Loader

    def loader():
        return compile_spec(data["spec"], "val", device="cpu").loader(data["val"], batch_size=4)

    compiled = compile_spec(data["spec"], "val", device="cpu")  # FFCV's own Loader, unguarded
    plain = Loader(data["val"], **compiled.loader_options(batch_size=4))
    before = threading.active_count()
    abandoned = []
    for _ in range(3):  # three epochs, each stopped after one batch
        abandoned.append(iter(plain))
        next(abandoned[-1])
    leaked = threading.active_count() - before
    wrapped = EpochLoader(loader(), lambda _: 0)
    before = threading.active_count()
    for _ in range(3):
        next(iter(wrapped))
    wrapped.close()
    assert leaked == 3  # the bug this guards against is real (ffcv #345)
    assert threading.active_count() == before
    for iterator in abandoned:  # let them go: they wait on a full queue, polling this flag
        iterator.terminate_event.set()


def test_data_errors_are_one_line_each(data, tmp_path):
    garbage = tmp_path / "garbage.beton"
    garbage.write_bytes(b"not a beton" * 10)
    cases = [
        (FFCVDataModule(data["spec"], str(tmp_path / "missing.beton"), data["val"]), 4,
         f"{tmp_path / 'missing.beton'}: no such .beton file"),
        (FFCVDataModule(data["spec"], data["train"], str(garbage)), 4,
         f"{garbage}: damaged or not a .beton file (format version"),
        (FFCVDataModule(data["spec"], None, data["val"]), 4,
         "no training data: set data.train_path (--data.train_path FILE.beton)"),
        (FFCVDataModule(data["spec"], data["train"], data["val"]), 3,
         f"{data['train']}: labels go up to 3 (4 classes) but the model's num_classes is 3; "
         f"set it to at least 4"),
    ]
    for datamodule, num_classes, message in cases:
        with pytest.raises(DataError) as error:
            datamodule.check(num_classes)
        assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_spec_errors_surface_as_spec_errors(data, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(open(data["spec"]).read().replace("horizontal_flip", "horizontal_flips"))
    with pytest.raises(SpecError) as error:
        FFCVDataModule(str(spec), data["train"], data["val"]).check(4)
    assert str(error.value).startswith(f"{spec}:7:14: unknown op 'horizontal_flips'")


def test_a_mistyped_spec_path_is_reported_as_missing(data, tmp_path):
    missing = tmp_path / "spec"  # no .yaml suffix: once read as YAML text
    with pytest.raises(SpecError) as error:
        FFCVDataModule(str(missing), data["train"]).check(4)
    assert str(error.value) == f"{missing}:1:1: cannot read the spec: No such file or directory"


def test_a_beton_without_labels_is_refused(tmp_path, data):
    from ffcv.fields import RGBImageField
    from ffcv.writer import DatasetWriter

    path = tmp_path / "images_only.beton"
    images = [(structured_image(8, 8, i),) for i in range(4)]
    DatasetWriter(str(path), {"image": RGBImageField()}, num_workers=1).from_indexed_dataset(images)
    with pytest.raises(DataError, match="the .beton has no 'label' field \\(fields: image\\)"):
        FFCVDataModule(data["spec"], str(path)).check(4)


def tinted_folder(root, n: int, seed: int):
    """The images of ``tinted_beton`` as an ImageFolder tree of PNGs (class folders c0..c3)."""
    import numpy as np
    from PIL import Image

    from tests.pipelines.train_helpers import TINTS

    for i in range(n):
        image = np.round(0.5 * structured_image(36, 36, seed + i) + 0.5 * TINTS[i % 4])
        (root / f"c{i % 4}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(root / f"c{i % 4}" / f"{i:03d}.png")
    return str(root)


def test_without_a_beton_the_image_folder_trains_through_the_fallback(data, tmp_path):
    from pipelines.fallback import FallbackWarning

    train = tinted_folder(tmp_path / "train", 64, seed=0)
    val = tinted_folder(tmp_path / "val", 32, seed=1000)
    module = FFCVDataModule(data["spec"], str(tmp_path / "missing.beton"),
                            str(tmp_path / "missing_val.beton"), train_folder=train,
                            val_folder=val)
    torch.manual_seed(0)
    run = trainer(data["root"], max_epochs=6)
    with pytest.warns(FallbackWarning, match="no .beton file, so training reads the image folder"):
        run.fit(tiny_model(lr=0.2, schedule="triangular", peak_epoch=1), module)
    assert run.callback_metrics["val/top1"].item() >= 0.6  # chance: 0.25 (4 classes)
    assert not (tmp_path / "missing.beton").exists()  # nothing converted without convert=True


def test_convert_turns_a_missing_betons_folder_into_the_beton_first(data, tmp_path):
    train = tinted_folder(tmp_path / "train", 16, seed=0)
    beton = tmp_path / "train.beton"
    module = FFCVDataModule(data["spec"], str(beton), train_folder=train, convert=True)
    run = trainer(data["root"], max_epochs=1, limit_train_batches=1)
    run.fit(tiny_model(), module)
    from pipelines.data_checks import beton_labels

    assert sorted(beton_labels(str(beton)).tolist()) == sorted(i % 4 for i in range(16))


def test_the_fallback_under_several_processes_is_refused_before_training(data, tmp_path):
    train = tinted_folder(tmp_path / "train", 4, seed=0)
    module = FFCVDataModule(data["spec"], str(tmp_path / "missing.beton"), train_folder=train)
    module.check(4)  # one process: fine
    with pytest.raises(DataError) as error:
        module.check(4, world_size=2)
    assert str(error.value) == (f"train: the image-folder fallback runs in one process; convert "
                                f"{train} first (--convert true or pureffcv convert)")


def test_the_fallback_applies_progressive_resizing_with_the_given_workers(data, tmp_path):
    from pipelines.fallback import FallbackWarning

    train = tinted_folder(tmp_path / "train", 16, seed=0)
    ramp = ProgressiveResizing(start_size=16, end_size=32, start_epoch=0, end_epoch=2, step=8)
    record = RecordBatches(str(tmp_path / "record"))
    workers = []

    class Workers(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            workers.append(trainer.train_dataloader.loader.num_workers)

    run = trainer(data["root"], max_epochs=3, limit_train_batches=1, limit_val_batches=0,
                  num_sanity_val_steps=0, callbacks=[record, Workers()])
    with pytest.warns(FallbackWarning):
        run.fit(tiny_model(), FFCVDataModule(data["spec"], str(tmp_path / "missing.beton"),
                                             train_folder=train, num_workers=1,
                                             progressive=ramp))
    sizes = json.loads((tmp_path / "record" / "rank0.json").read_text())["sizes"]
    # by hand: epoch 0: 16; epoch 1: 16 + 16/2 = 24; epoch 2: 32
    assert sizes == {"0": [[16, 16]], "1": [[24, 24]], "2": [[32, 32]]}
    assert workers == [1, 1, 1]  # decoding in a worker process, as the warning says
