"""``pureffcv train``: the same command as ``pureffcv fit`` (kept as an alias).

  pureffcv train --config run.yaml --data.train_path TRAIN.beton --data.val_path VAL.beton
"""
from .lightning import run as _run

HELP = "alias of fit"
PASSTHROUGH = True


def configure(parser) -> None:
    """LightningCLI parses this command's arguments (PASSTHROUGH)."""


def run(args) -> int:
    return _run("train", args.rest)
