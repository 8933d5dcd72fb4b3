"""``pureffcv bench --compare dali``: NVIDIA DALI's CPU pipeline doing the hybrid policy's work
on the same JPEG bytes (measurement only; DALI is not a dependency).

The .beton's JPEG bytes are read in Python (``pipelines.stats``' reading of FFCV's layout) and
fed in random order through ``fn.external_source``; DALI's pipeline on the CPU
(``device_id=None``) then does what ``specs/hybrid_policy.yaml`` does per image: a
random-resized crop fused with the decode (``fn.decoders.image_random_crop``, the split's
scale and ratio, then ``fn.resize`` to the output size), a horizontal flip (p 0.5), DALI's own
TrivialAugmentWide (``nvidia.dali.auto_aug.trivial_augment``, 31 bins), ImageNet normalization
to float32 (``fn.crop_mirror_normalize``, CHW) and random erasing (``fn.erase``, p 0.5, area
0.02-0.33 of the image, log-uniform aspect 0.3-3.3, value 0). Batches come back as torch
tensors (one copy, as DALI's PyTorch iterator makes). Mixup/cutmix have no DALI operator:
the pureffcv side does more work than this one.
"""
import math
from typing import Callable, Iterator

import numpy as np

from operations.normalization import MEAN, STD


class DaliMissing(RuntimeError):
    """``--compare dali`` without an importable ``nvidia.dali``."""


def available() -> bool:
    """Whether ``nvidia.dali`` imports here."""
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


def jpeg_samples(beton: str, field: str = "image", label_field: str = "label"):
    """(list of uint8 arrays of each sample's stored bytes, int64 labels) of a .beton whose
    images are stored as JPEG."""
    from ffcv.fields.rgb_image import IMAGE_MODES

    from .beton import open_beton

    reader = open_beton(beton, ())
    images = reader.metadata[f"f{reader.field_names.index(field)}"]
    labels = reader.metadata[f"f{reader.field_names.index(label_field)}"]
    sizes = {int(p): int(s) for p, s in zip(reader.alloc_table["ptr"], reader.alloc_table["size"])}
    if (images["mode"] != IMAGE_MODES["jpg"]).any():
        raise ValueError(f"--compare dali needs every image of {beton} stored as JPEG "
                         f"(pureffcv convert --write-mode jpg)")
    data = np.memmap(beton, np.uint8, mode="r")
    blobs = [np.array(data[int(p):int(p) + sizes[int(p)]]) for p in images["data_ptr"]]
    return blobs, np.asarray(labels, dtype=np.int64)


def dali_batches(beton: str, size: int, scale, ratio, batch_size: int,
                 num_workers: int, seed: int = 0) -> Callable[[int], Iterator]:
    """``make_batches(epoch)`` for ``bench.Variant``: one epoch of DALI's CPU pipeline."""
    try:
        from nvidia.dali import fn, pipeline_def, types
        from nvidia.dali import math as dali_math
        from nvidia.dali.auto_aug import trivial_augment
    except ImportError:
        raise DaliMissing("--compare dali needs NVIDIA DALI (pip install "
                          "nvidia-dali-cuda130; it runs CPU pipelines without a GPU)") from None
    import torch

    blobs, labels = jpeg_samples(beton)
    state = {"order": np.arange(len(blobs))}

    def source(info):
        start = info.iteration * batch_size
        if start >= len(blobs):
            raise StopIteration
        chosen = state["order"][start:start + batch_size]
        return [blobs[i] for i in chosen], [labels[i:i + 1] for i in chosen]

    @pipeline_def(batch_size=batch_size, num_threads=num_workers, device_id=None, seed=seed,
                  enable_conditionals=True, exec_dynamic=True)
    def pipeline():
        jpegs, label = fn.external_source(source=source, num_outputs=2, batch=True,
                                          batch_info=True, dtype=[types.UINT8, types.INT64])
        images = fn.decoders.image_random_crop(jpegs, device="cpu", output_type=types.RGB,
                                               random_area=list(scale),
                                               random_aspect_ratio=list(ratio))
        images = fn.resize(images, resize_x=size, resize_y=size)
        images = fn.flip(images, horizontal=fn.random.coin_flip(probability=0.5))
        images = trivial_augment.trivial_augment_wide(images, num_magnitude_bins=31)
        images = fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                          mean=list(MEAN["imagenet"]), std=list(STD["imagenet"]))
        area = fn.random.uniform(range=[0.02, 0.33])
        aspect = fn.random.uniform(range=[math.log(0.3), math.log(3.3)])
        aspect = dali_math.exp(aspect)
        height = dali_math.min(dali_math.sqrt(area * aspect), 1.0)  # fractions of the image
        width = dali_math.min(dali_math.sqrt(area / aspect), 1.0)
        erase = fn.random.coin_flip(probability=0.5)
        y = fn.random.uniform(range=[0.0, 1.0]) * (1.0 - height)
        x = fn.random.uniform(range=[0.0, 1.0]) * (1.0 - width)
        images = fn.erase(images, anchor=fn.stack(y, x), shape=fn.stack(height, width) * erase,
                          normalized_anchor=True, normalized_shape=True, axis_names="HW",
                          fill_value=0.0)
        return images, label

    pipe = pipeline()
    pipe.build()
    generator = np.random.default_rng(seed)

    def batches(epoch: int):
        state["order"] = generator.permutation(len(blobs))
        pipe.reset()
        while True:
            try:
                images, label = pipe.run()
            except StopIteration:
                return
            yield (torch.from_numpy(np.array(images.as_tensor())),
                   torch.from_numpy(np.array(label.as_tensor())).reshape(-1))

    return batches
