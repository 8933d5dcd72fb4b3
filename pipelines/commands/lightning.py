"""What ``pureffcv fit | validate | test | predict`` (and ``train``, an alias of ``fit``)
share: one LightningCLI over ``ImageClassifier`` and ``FFCVDataModule``, one-line errors
before anything runs, then the Trainer method of the subcommand.

Every LightningCLI convention works for each: a run config (--config run.yaml), dotted
overrides (--trainer.devices 2, --model.arch resnet18, --data.spec SPEC, --data.train_path
TRAIN.beton, --data.val_path VAL.beton, --data.test_path TEST.beton), --print_config, and
--ckpt_path CHECKPOINT (fit: resume; the others: the weights to evaluate; ``last`` and
``best`` as Lightning reads them).

The order of work: the checkpoint exists; with --convert true, image folders whose .beton is
missing are converted (rank 0; other ranks wait); the data and spec are checked against the
model (missing files, spec and plan errors, labels beyond num_classes: one line each, exit
1); then the Trainer runs. ``fit`` always writes ``last.ckpt`` after every epoch
(``pipelines.callbacks.LastCheckpoint``), so resuming from it is exact.
"""
import sys
import warnings

#: the Trainer method of each subcommand
METHODS = {"fit": "fit", "train": "fit", "validate": "validate", "test": "test",
           "predict": "predict"}
#: Lightning's names for a checkpoint it finds itself
SPECIAL_CHECKPOINTS = ("last", "best", "hpc", "registry")


def run(name: str, argv) -> int:
    from pathlib import Path
    from typing import Optional

    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    from operations.errors import PureffcvError
    from pipelines.callbacks import (LastCheckpoint, MaskWriter, PredictionWriter,
                                     check_mask_output, check_output)
    from pipelines.classifier import ImageClassifier
    from pipelines.datamodule import FFCVDataModule
    from pipelines.notices import quiet_library_notices

    method = METHODS[name]
    missing = missing_logger_package(argv)
    if missing:
        print(f"pureffcv {name}: {missing}", file=sys.stderr)
        return 1

    class CLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.add_argument("--ckpt_path", type=Optional[str], default=None,
                                help="fit: resume from this checkpoint; validate/test/predict: "
                                     "the weights to evaluate")
            parser.add_argument("--convert", type=bool, default=False,
                                help="convert data.train_folder/val_folder to the missing "
                                     ".beton files first (else: slower fallback); the same "
                                     "as --data.convert")
            if method == "predict":
                parser.add_argument("--output", type=Optional[str], default=None,
                                    help="predictions file, .csv or .parquet (default: "
                                         "predictions.csv in the trainer's default_root_dir); "
                                         "segmentation: a folder of PNG masks (default: "
                                         "predictions/ there)")
                parser.add_argument("--top_k", type=int, default=5,
                                    help="classes written per sample (default: 5, at most "
                                         "num_classes)")

    # the classifier owns its optimizer and schedule: no --optimizer / --lr_scheduler options
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    # the classifier lowers log_every_n_steps to the epoch's batch count (always a train/loss)
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is "
                                              r"smaller than the logging interval")
    # predict batches carry their .beton indices themselves (IndexedBatches)
    warnings.filterwarnings("ignore", message="Couldn't infer the batch indices fetched")
    # evaluating a fit's checkpoint needs none of its callbacks
    warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`, callbacks")
    quiet_library_notices()  # Lightning's tips and inner deprecations: not the user's run
    cli = CLI(ImageClassifier, FFCVDataModule, args=list(argv), run=False,
              auto_configure_optimizers=False, parser_kwargs={"prog": f"pureffcv {name}"},
              save_config_kwargs={"overwrite": True},
              trainer_defaults={"use_distributed_sampler": False})
    config, trainer, model, data = cli.config, cli.trainer, cli.model, cli.datamodule
    data.convert = data.convert or config.convert
    ckpt_path = config.ckpt_path
    stage = "fit" if method == "fit" else method
    extra = {}
    try:
        if ckpt_path is not None and ckpt_path not in SPECIAL_CHECKPOINTS \
                and not Path(ckpt_path).is_file():
            raise PureffcvError(f"{ckpt_path}: no such checkpoint file")
        if method == "predict" and getattr(model, "task", None) == "segmentation":
            # masks are written batch by batch, not kept for the epoch's end
            output = config.output or str(Path(trainer.default_root_dir) / "predictions")
            check_mask_output(output)
            writer = MaskWriter(output)
            trainer.callbacks.append(writer)
            extra["return_predictions"] = False
        elif method == "predict":
            output = config.output or str(Path(trainer.default_root_dir) / "predictions.csv")
            check_output(output)
            model.predict_top_k = max(1, min(config.top_k, model.num_classes))
            writer = PredictionWriter(output, data._eval_path("predict"))
            trainer.callbacks.append(writer)
            extra["return_predictions"] = True
        data.convert_missing()
        data.check(model.num_classes, stage=stage, world_size=trainer.world_size,
                   multilabel=getattr(model, "multilabel", None),
                   task=getattr(model, "task", None))
    except PureffcvError as exc:  # DataError, SpecError, ConversionError, PredictionError...
        print(f"pureffcv {name}: {exc}", file=sys.stderr)
        return 1
    if method == "fit":
        add_last_checkpoint(trainer, ModelCheckpoint, LastCheckpoint)
    try:
        getattr(trainer, method)(model, datamodule=data, ckpt_path=ckpt_path, **extra)
    except PureffcvError as exc:  # LoaderError from FFCV's thread, a fallback error...
        print(f"pureffcv {name}: {exc}", file=sys.stderr)
        return 1
    if method == "predict" and writer.written is not None:
        print(f"predictions written to {writer.written}")
    return 0


def add_last_checkpoint(trainer, checkpoint_class, last_class) -> None:
    """Give ``trainer`` a ``LastCheckpoint`` unless it has one (in the directory of the
    configured checkpoints when they name one). A configured checkpoint that
    also keeps ``save_last`` would write ``last-v1.ckpt`` beside it (and only when its metric
    improves): its ``save_last`` is turned off, with a note."""
    callbacks = trainer.callbacks
    if any(isinstance(cb, last_class) for cb in callbacks):
        return
    for cb in callbacks:
        if isinstance(cb, checkpoint_class) and cb.save_last:
            print(f"pureffcv: last.ckpt is written after every epoch by pureffcv's "
                  f"LastCheckpoint; save_last of the checkpoint monitoring {cb.monitor!r} is "
                  f"turned off", file=sys.stderr)
            cb.save_last = False
    position = next((i for i, cb in enumerate(callbacks) if isinstance(cb, checkpoint_class)),
                    len(callbacks))
    # beside the configured checkpoints when they name a directory, else in the run's own
    dirpath = next((cb.dirpath for cb in callbacks
                    if isinstance(cb, checkpoint_class) and cb.dirpath), None)
    callbacks.insert(position, last_class(dirpath))


def missing_logger_package(argv) -> str:
    """A one-line message when the arguments or a --config file ask for TensorBoardLogger but
    neither tensorboard nor tensorboardX is installed (jsonargparse would print a page of
    parser errors); else ''."""
    import importlib.util
    from pathlib import Path

    argv = list(argv)
    texts = list(argv)
    for flag, value in zip(argv, argv[1:]):
        if flag in ("--config", "-c") and Path(value).is_file():
            texts.append(Path(value).read_text(errors="replace"))
    if not any("TensorBoardLogger" in text for text in texts):
        return ""
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        return ""
    return ("TensorBoardLogger needs tensorboard: pip install 'pureffcv[tensorboard]' (or "
            "log to CSV: --trainer.logger CSVLogger --trainer.logger.save_dir runs)")
