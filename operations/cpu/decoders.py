"""Image decoders: the first step of an image pipeline (JPEG/raw -> fixed-size uint8 HWC)."""
from typing import Optional

from ffcv.fields.rgb_image import CenterCropRGBImageDecoder, RandomResizedCropRGBImageDecoder

from ..base import PureOperation
from ..params import FloatRange, Probability, Size
from ..registry import register_op
from ..types import ImageType


def _hw(size) -> tuple:
    return (size, size) if isinstance(size, int) else tuple(size)


class _CropDecoder(PureOperation):
    stage = "decoder"

    def output_type(self, image: Optional[ImageType]) -> ImageType:
        h, w = self.output_size
        return ImageType(height=h, width=w)


@register_op("random_resized_crop")
class RandomResizedCrop(RandomResizedCropRGBImageDecoder, _CropDecoder):
    """Decode, crop a random area and aspect ratio, resize to ``size``.

    - ``size``: output size, int (square) or [height, width].
    - ``scale``: [min, max] fraction of the image area, default [0.08, 1.0].
    - ``ratio``: [min, max] aspect ratio (w/h), default [3/4, 4/3].
    """

    def __init__(self, size: Size, scale: FloatRange = (0.08, 1.0),
                 ratio: FloatRange = (3 / 4, 4 / 3)):
        super().__init__(_hw(size), tuple(scale), tuple(ratio))


@register_op("center_crop")
class CenterCrop(CenterCropRGBImageDecoder, _CropDecoder):
    """Decode, crop the centre square of side ``ratio`` x the shorter side, resize to ``size``.

    - ``size``: output size, int or [height, width].
    - ``ratio``: crop side / shorter image side, default 224/256 = 0.875.
    """

    def __init__(self, size: Size, ratio: Probability = 224 / 256):
        super().__init__(_hw(size), ratio)
