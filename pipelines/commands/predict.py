"""Write a checkpoint's predictions for a .beton to a CSV (or Parquet) file (LightningCLI).

  pureffcv predict --config run.yaml --ckpt_path runs/.../checkpoints/last.ckpt \
      --data.predict_path DATA.beton --output predictions.csv --top_k 5

One row per sample in .beton order: index, label (the stored one), then class_1, prob_1, ...
class_k, prob_k, best first (softmax probabilities; multi-label: sigmoid, ranked), with
label_name and name_i columns when DATA.classes.json (written by pureffcv convert) exists.
--data.predict_path defaults to --data.test_path, then --data.val_path; the spec's test split
(else val) is the pipeline.

A segmentation model (--model.task segmentation) writes masks instead: --output names a folder
(default: predictions/ in the trainer's default_root_dir) and each sample's predicted class map
is a PNG there named by its .beton index (000042.png; mode L, 16-bit above 256 classes), at
the resolution the split's decoder gives.
"""
from .lightning import run as _run

HELP = "write a checkpoint's top-k predictions for a .beton to CSV/Parquet (masks: PNGs)"
PASSTHROUGH = True


def configure(parser) -> None:
    """LightningCLI parses this command's arguments (PASSTHROUGH)."""


def run(args) -> int:
    return _run("predict", args.rest)
