"""Evaluate a checkpoint on the validation .beton with the spec's val split (LightningCLI).

  pureffcv validate --config run.yaml --ckpt_path runs/.../checkpoints/last.ckpt \
      --data.val_path VAL.beton

Reports and logs val/loss, val/top1, val/top5 (multi-label: val/map, val/f1); every sample
counts once, also under DDP.
"""
from .lightning import run as _run

HELP = "evaluate a checkpoint on the val split (LightningCLI: --config, --ckpt_path)"
PASSTHROUGH = True


def configure(parser) -> None:
    """LightningCLI parses this command's arguments (PASSTHROUGH)."""


def run(args) -> int:
    return _run("validate", args.rest)
