"""Evaluate a checkpoint on a held-out .beton (--data.test_path), through the spec's ``test``
split when it has one, else its val split (LightningCLI).

  pureffcv test --config run.yaml --ckpt_path runs/.../checkpoints/last.ckpt \
      --data.test_path TEST.beton

Reports and logs test/loss, test/top1, test/top5 (multi-label: test/map, test/f1); every
sample counts once, also under DDP.
"""
from .lightning import run as _run

HELP = "evaluate a checkpoint on --data.test_path (LightningCLI: --config, --ckpt_path)"
PASSTHROUGH = True


def configure(parser) -> None:
    """LightningCLI parses this command's arguments (PASSTHROUGH)."""


def run(args) -> int:
    return _run("test", args.rest)
