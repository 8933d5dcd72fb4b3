"""A custom kernel op that raises on some samples (those whose pixel (16, 20) has red above
``limit``; of conftest's ``small_beton``, samples 9, 10, 11, ...), for the kernel-error tests:
imported by their specs as ``tests.pipelines.raising_kernel``."""
from operations import register_op


@register_op("probe")
def probe(image_in, image_out, rng, limit: int = 200):
    if image_in[16, 20, 0] > limit:
        raise ValueError("probe: bad image")
    image_out[:] = image_in


#: a spec whose train split runs it over the images as stored, in order
SPEC = """\
version: 1
imports: [tests.pipelines.raising_kernel]
splits:
  train:
    image:
      decode: decode
      cpu: [probe]
    loader: {batch_size: 8, num_workers: 1, order: sequential, drop_last: false}
"""


def message(file: str, first_failing: int) -> str:
    """The line a kernel error is: the op's position in ``SPEC``, the sample, the message."""
    return f"{file}:7:13: op 'probe' failed on sample {first_failing}: ValueError: probe: bad image"

#: for ``pureffcv fit``: a decoder with an output size (the DataModule needs one; the centre
#: 32x32 crop puts the stored pixel (16, 24) at (16, 20)), a device stage and a val split
FIT_SPEC = """\
version: 1
imports: [tests.pipelines.raising_kernel]
splits:
  train:
    image:
      decode: {center_crop: {size: 32, ratio: 1.0}}
      cpu: [probe]
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    loader: {batch_size: 8, num_workers: 1, order: sequential, drop_last: false}
  val:
    image:
      decode: {center_crop: {size: 32, ratio: 1.0}}
      device: {dtype: float32, ops: [{normalize: {mean: imagenet, std: imagenet}}]}
    loader: {batch_size: 8, num_workers: 1}
"""
