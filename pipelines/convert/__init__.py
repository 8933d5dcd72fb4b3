"""Convert an ImageFolder tree, a multi-label CSV or a ``.npz`` of arrays into an FFCV
``.beton``, with its class map (``OUT.classes.json``) and, when some images could not be
read, ``OUT.skipped.txt`` (one ``path: reason`` line each) beside it.

By concept: ``folders`` (scanning an ImageFolder tree), ``label_csv`` (multi-label CSVs),
``arrays`` (``.npz``), ``images`` (decoding and checking image files), ``writer`` (FFCV's
writer, made safe), ``cleanup`` (what a killed conversion leaves behind) and ``run`` (the
``convert`` function that ties them together).
"""
from .errors import ConversionError
from .run import ConversionResult, convert, default_workers

__all__ = ["ConversionError", "ConversionResult", "convert", "default_workers"]
