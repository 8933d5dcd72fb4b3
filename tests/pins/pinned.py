"""Regression pins for the "one definition per op" redesign: SHA-256 digests of what every
shipped spec and every built-in op produced, for fixed seeds and inputs, at commit cb3f755
(before the redesign). They are not a reference for correctness — the op tests compare with
PIL and numpy — only a guard that a refactor keeps the bytes.

``python -m tests.pins.pinned`` prints the current digests as JSON (to re-pin after a change
of behaviour made on purpose, which the commit message must say).
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

#: the shipped specs at cb3f755 (specs shipped later, such as the segmentation demo's, are
#: checked by their own tests)
PINNED_SPECS = ("cifar10", "demo", "hybrid_policy", "imagenet_rn18", "imagenet_rn50")
SPECS = [Path(__file__).resolve().parents[2] / "specs" / f"{name}.yaml" for name in PINNED_SPECS]
PINS = Path(__file__).with_name("pinned_bytes.json")

#: every built-in op with parameters that make it fire and draw (kernel p's at 1.0)
OP_CASES = {
    "brightness": {"strength": 0.6}, "contrast": {"strength": 0.6},
    "saturation": {"strength": 0.6}, "hue": {"strength": 0.3},
    "color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1},
    "grayscale": {"p": 1.0}, "solarize": {"threshold": 128, "p": 1.0},
    "posterize": {"bits": 3, "p": 1.0}, "autocontrast": {"p": 1.0}, "equalize": {"p": 1.0},
    "invert": {"p": 1.0}, "sharpness": {"factor": 1.8, "p": 1.0},
    "gaussian_blur": {"kernel_size": 5}, "horizontal_flip": {"p": 0.5},
    "vertical_flip": {"p": 0.5}, "pad_crop": {"padding": 4, "fill": 7},
    "translate": {"max_fraction": 0.2}, "rotate": {"degrees": 30, "fill": [1, 2, 3]},
    "shear": {"degrees": 20}, "random_affine": {"degrees": 20, "translate": [0.1, 0.1],
                                                "scale": [0.8, 1.2], "shear": 10},
    "trivial_augment_wide": {}, "rand_augment": {}, "auto_augment": {},
    "cutout": {"size": 8}, "random_erasing": {"p": 0.7, "value": "mean", "count": 2},
    "cpu_normalize": {"dtype": "float16"},
}
#: sequences whose fusion passes must keep the bytes of the ops one by one
FUSED_SPECS = {
    "lut": ["brightness: {strength: 0.5}", "solarize: {threshold: 100, p: 1.0}",
            "equalize: {p: 1.0}", "posterize: {bits: 4, p: 1.0}"],
    "affine": ["horizontal_flip: {p: 0.5}", "pad_crop: {padding: 3}", "vertical_flip: {p: 0.5}"],
}


def digest(array) -> str:
    if isinstance(array, torch.Tensor):
        array = array.contiguous().cpu().numpy()
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def batch(n=12, height=36, width=44):
    from tests.conftest import structured_batch

    return structured_batch(n, height, width, seed=5)


def op_digests() -> dict:
    from operations import EpochClock, get_op

    images, out = batch(), {}
    for name, params in OP_CASES.items():
        op = get_op(name)(**params)
        op.bind(EpochClock(seed=3, epoch=2), 4)
        out[name] = digest(op.apply(images, np.arange(100, 100 + len(images))))
    return out


def photo_beton(path: Path) -> Path:
    """24 structured 44x52 images, raw (the decoders' JPEG path may change on purpose: its
    tests bound the deviation; one size: the CIFAR spec decodes as is), labels i % 3."""
    from tests.conftest import structured_image, write_beton

    images = [structured_image(44, 52, seed=i) for i in range(24)]
    return write_beton(path, images, [i % 3 for i in range(24)])


def spec_digests(beton: Path) -> dict:
    from compiler import compile_spec

    out = {}
    for spec in SPECS:
        for split in ("train", "val", "test"):
            for epoch in (0, 1):
                try:  # one Loader per CompiledPipeline: at cb3f755 a second lost its decoder
                    compiled = compile_spec(spec, split=split, device="cpu", epoch=epoch)
                except Exception:
                    break
                loader = compiled.loader(beton, batch_size=8, num_workers=1, order="sequential",
                                         drop_last=False, os_cache=False)
                digests = []
                for images, labels in loader:
                    for op in compiled.batch_ops:
                        images, labels = op(images, labels)
                    digests.append(digest(images) + digest(labels))
                out[f"{spec.name}:{split}:{epoch}"] = digests
    return out


def fused_digests(beton: Path) -> dict:
    from compiler import compile_spec

    out = {}
    for name, ops in FUSED_SPECS.items():
        text = ("version: 1\nseed: 9\nsplits:\n  train:\n    image:\n"
                "      decode: {random_resized_crop: {size: 32}}\n      cpu:\n" +
                "".join(f"        - {op}\n" for op in ops) +
                "      device: {dtype: float32, ops: [normalize]}\n")
        for optimize in (True, False):
            compiled = compile_spec(text, split="train", device="cpu", optimize=optimize)
            loader = compiled.loader(beton, batch_size=8, num_workers=1, order="sequential")
            out[f"{name}:{optimize}"] = [digest(images) for images, _ in loader]
    return out


def current(beton: Path) -> dict:
    return {"ops": op_digests(), "specs": spec_digests(beton), "fused": fused_digests(beton)}


if __name__ == "__main__":
    import tempfile

    import operations  # noqa: F401  (FFCV patches before any Loader)

    with tempfile.TemporaryDirectory() as tmp:
        json.dump(current(photo_beton(Path(tmp) / "photos.beton")), sys.stdout, indent=1, sort_keys=True)
