"""pureffcv pipelines: everything a user runs (conversion, Lightning DataModule and model,
the CLI, the demo, benchmarks glue). Imports compiler and operations, never the reverse."""

#: public names, imported on first use so that ``pureffcv --help`` does not load torch
_LAZY = {"FFCVDataModule": "datamodule", "ImageClassifier": "classifier"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
