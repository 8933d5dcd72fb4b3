"""Train an image classifier on .beton data with a pureffcv spec, through LightningCLI.

  pureffcv fit --config specs/runs/imagenet_rn50.yaml --data.train_path TRAIN.beton \
      --data.val_path VAL.beton --trainer.devices 8
  pureffcv fit --config run.yaml --ckpt_path runs/.../checkpoints/last.ckpt     # resume

last.ckpt is written after every epoch: resuming from it continues the epoch counter, the
augmentations' random draws, the learning-rate schedule and the metrics exactly. No .beton
yet: --data.train_folder DIR --data.val_folder DIR --convert true converts them first.
Missing files, spec and plan errors and a num_classes that cannot hold the labels are one
line each before anything trains. Multi-GPU, multi-node: see docs/lightning.md.
"""
from .lightning import run as _run

HELP = "train a classifier on .beton data with a spec (LightningCLI: --config, --trainer.*)"
PASSTHROUGH = True


def configure(parser) -> None:
    """LightningCLI parses this command's arguments (PASSTHROUGH)."""


def run(args) -> int:
    return _run("fit", args.rest)
