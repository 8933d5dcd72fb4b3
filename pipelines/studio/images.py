"""The studio's images as PNG bytes, zoomed so that small images show at a readable size."""
import io
import math

import numpy as np


def png(image: np.ndarray, zoom: int = 1, overlay=None, names=None, offset: int = 0) -> bytes:
    """One uint8 HWC image as PNG bytes, enlarged ``zoom`` times (nearest neighbour), with
    its boxes and keypoints (``preview.Overlay``; None: none) drawn at that size as
    ``preview.draw_overlay`` draws them (``names`` and ``offset`` its)."""
    from PIL import Image

    from ..preview import draw_overlay

    if overlay is not None:
        image = draw_overlay(image, overlay, zoom, names, offset)
    elif zoom > 1:
        image = image.repeat(zoom, axis=0).repeat(zoom, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def zoom_for(size) -> int:
    """Integer zoom that shows small images at 96 px or more on the page."""
    return max(1, math.ceil(96 / max(1, min(size))))
