"""Train an image classifier on .beton files with a pureffcv spec, through LightningCLI.

Every LightningCLI convention works: a run config (--config run.yaml), dotted overrides
(--trainer.devices 2 --trainer.strategy ddp, --model.arch resnet18, --data.spec SPEC,
--data.train_path TRAIN.beton --data.val_path VAL.beton), --print_config, and resuming with
--ckpt_path CHECKPOINT. The resolved config is saved beside the run's logs.

  pureffcv train --config specs/runs/imagenet_rn50.yaml --trainer.devices 8
  pureffcv train --config run.yaml --ckpt_path runs/version_0/checkpoints/last.ckpt

Missing or unreadable .beton files, spec and plan errors, a model whose num_classes does not fit
the labels and an image folder without .beton under several processes are reported in one line
before training starts; an op failing in FFCV's loader thread is one line too. Multi-GPU and
multi-node: see docs/lightning.md.
"""
import sys
import warnings

HELP = "train a classifier on .beton data with a spec (LightningCLI: --config, --trainer.*)"
PASSTHROUGH = True


def configure(parser) -> None:
    """LightningCLI parses this command's arguments (PASSTHROUGH)."""


def run(args) -> int:
    from pathlib import Path
    from typing import Optional

    from lightning.pytorch.cli import LightningCLI

    from compiler import SpecError
    from pipelines.classifier import ImageClassifier
    from pipelines.datamodule import DataError, FFCVDataModule
    from pipelines.loading import LoaderError

    class TrainCLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.add_argument("--ckpt_path", type=Optional[str], default=None,
                                help="resume training from this checkpoint")
            parser.add_argument("--convert", type=bool, default=False,
                                help="convert data.train_folder/val_folder to the missing "
                                     ".beton files before training (else: slower fallback)")
            parser.link_arguments("convert", "data.convert")

    # the classifier owns its optimizer and schedule: no --optimizer / --lr_scheduler options
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    cli = TrainCLI(ImageClassifier, FFCVDataModule, args=args.rest, run=False,
                   auto_configure_optimizers=False, parser_kwargs={"prog": "pureffcv train"},
                   save_config_kwargs={"overwrite": True},
                   trainer_defaults={"use_distributed_sampler": False})
    ckpt_path = cli.config.ckpt_path
    try:
        if ckpt_path is not None and not Path(ckpt_path).is_file():
            raise DataError(f"{ckpt_path}: no such checkpoint file")
        cli.datamodule.check(cli.model.num_classes, world_size=cli.trainer.world_size)
    except (DataError, SpecError) as exc:
        print(f"pureffcv train: {exc}", file=sys.stderr)
        return 1
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    except LoaderError as exc:
        print(f"pureffcv train: {exc}", file=sys.stderr)
        return 1
    return 0
