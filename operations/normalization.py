"""Named per-channel statistics for normalize ops, in 0-255 pixel units (like FFCV's
NormalizeImage), so ``mean: imagenet`` works in a spec."""
from typing import Annotated, Tuple, Union

import torch

from .params import Named, PixelUnits, Range

MEAN = {
    "imagenet": (0.485 * 255, 0.456 * 255, 0.406 * 255),
    "cifar10": (0.4914 * 255, 0.4822 * 255, 0.4465 * 255),
    "cifar100": (0.5071 * 255, 0.4865 * 255, 0.4409 * 255),
    "none": (0.0, 0.0, 0.0),
}
STD = {
    "imagenet": (0.229 * 255, 0.224 * 255, 0.225 * 255),
    "cifar10": (0.2470 * 255, 0.2435 * 255, 0.2616 * 255),
    "cifar100": (0.2673 * 255, 0.2564 * 255, 0.2762 * 255),
    "none": (1.0, 1.0, 1.0),
}

#: a per-channel mean: a name from MEAN or three numbers in 0-255 units
MeanParam = Annotated[Union[str, Tuple[float, float, float]], Named(MEAN), Range(0.0, 255.0),
                      PixelUnits(strict=True)]
#: a per-channel standard deviation: a name from STD or three positive numbers in 0-255 units
StdParam = Annotated[Union[str, Tuple[float, float, float]], Named(STD),
                     Range(0.0, 255.0, low_open=True), PixelUnits()]


def lookup_table(mean, std, dtype: torch.dtype) -> torch.Tensor:
    """(256, C) table: entry [v, c] = (v - mean[c]) / std[c] in float64, rounded once to
    ``dtype``: every normalize path (device kernel, torch, the JIT stage) reads it, so all
    give the same bits."""
    values = torch.arange(256, dtype=torch.float64)[:, None]
    return ((values - torch.tensor(mean, dtype=torch.float64)) /
            torch.tensor(std, dtype=torch.float64)).to(dtype)
