"""The package is declared in setup.cfg; this file adds the one C extension, the crop-aware
JPEG decoder (operations/cpu/roi_jpeg.c, against libjpeg-turbo's libjpeg API:
libjpeg62-turbo-dev). ``pip install -e .`` (scripts/install.sh) builds it in place; without
it the decoders fall back to FFCV's full decode (operations/cpu/jpeg.py)."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("operations.cpu._roi_jpeg", sources=["operations/cpu/roi_jpeg.c"],
                             libraries=["jpeg"], extra_compile_args=["-O3", "-ffp-contract=off"])])
