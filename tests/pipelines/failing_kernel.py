"""A custom kernel op that fails inside FFCV's loader thread: Numba cannot type ``object()``,
which it finds when the Loader first calls the kernel (imported by the loader-error tests'
specs as ``tests.pipelines.failing_kernel``)."""
from operations import register_op


@register_op("failing_kernel")
def failing_kernel(image_in, image_out, rng):
    image_out[:] = image_in + object()


#: a spec whose train split runs it
SPEC = """\
version: 1
imports: [tests.pipelines.failing_kernel]
splits:
  train:
    image:
      decode: {center_crop: {size: 16, ratio: 1.0}}
      cpu: [failing_kernel]
    loader: {batch_size: 8, num_workers: 1}
"""

#: what the commands print (after "pureffcv <command>: "), up to the kernel's line number
MESSAGE = ("FFCV's loader thread failed: KernelTypingError: Untyped global name 'object': Cannot "
           "determine Numba type of <class 'type'> (")
