"""Convert an ImageFolder tree, a multi-label CSV, a ``.npz`` of arrays or a segmentation
folder (images and masks) into an FFCV ``.beton``, with its class map (``OUT.classes.json``;
none for masks) and, when some files could not be used, ``OUT.skipped.txt`` (one
``path: reason`` line each) beside it.

By concept: ``folders`` (scanning an ImageFolder tree), ``label_csv`` (multi-label CSVs),
``arrays`` (``.npz``), ``segmentation`` (pairing images with masks), ``images`` and
``masks`` (decoding and checking image and mask files), ``writer`` (FFCV's writer, made
safe), ``cleanup`` (what a killed conversion leaves behind) and ``run`` (the ``convert``
function that ties them together). Detection and pose data: ``coco.convert_coco`` and
``yolo.convert_yolo``, sharing ``detection`` (checks, ``OUT.categories.json``, writing boxes
and keypoints).
"""
from .errors import ConversionError
from .run import ConversionResult, convert, default_workers

__all__ = ["ConversionError", "ConversionResult", "convert", "default_workers"]
