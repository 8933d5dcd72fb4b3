"""Write a checkpoint's predictions for a .beton to a CSV (or Parquet) file (LightningCLI).

  pureffcv predict --config run.yaml --ckpt_path runs/.../checkpoints/last.ckpt \
      --data.predict_path DATA.beton --output predictions.csv --top_k 5

One row per sample in .beton order: index, label (the stored one), then class_1, prob_1, ...
class_k, prob_k, best first (softmax probabilities; multi-label: sigmoid, ranked), with
label_name and name_i columns when DATA.classes.json (written by pureffcv convert) exists.
--data.predict_path defaults to --data.test_path, then --data.val_path; the spec's test split
(else val) is the pipeline.
"""
from .lightning import run as _run

HELP = "write a checkpoint's top-k predictions for a .beton to CSV/Parquet"
PASSTHROUGH = True


def configure(parser) -> None:
    """LightningCLI parses this command's arguments (PASSTHROUGH)."""


def run(args) -> int:
    return _run("predict", args.rest)
