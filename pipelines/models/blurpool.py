"""BlurPool (Zhang 2019) as ffcv-imagenet applies it: a fixed 3x3 binomial blur before every
strided convolution with at least 16 input channels.

ffcv-imagenet wraps such a conv in a new module, which renames its weight (``conv.weight``).
Here the blurring conv *is* an ``nn.Conv2d`` and its filter a non-persistent buffer, so a model
with BlurPool keeps torchvision's state_dict keys and loads the same checkpoints.
"""
import torch
import torch.nn.functional as F
from torch import nn

#: the 3x3 binomial filter [1 2 1]^T [1 2 1] / 16
_BINOMIAL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0


class BlurConv2d(nn.Conv2d):
    """A Conv2d that first blurs each input channel with the binomial filter (stride 1,
    padding 1), then convolves as usual."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        filt = _BINOMIAL.to(self.weight.dtype).expand(self.in_channels, 1, 3, 3).contiguous()
        self.register_buffer("blur_filter", filt, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blurred = F.conv2d(x, self.blur_filter.to(x.dtype), padding=1, groups=self.in_channels)
        return super().forward(blurred)


def apply_blurpool(module: nn.Module) -> nn.Module:
    """Replace, in place, every strided Conv2d with >= 16 input channels by a BlurConv2d
    carrying the same weights (ffcv-imagenet's rule). Returns ``module``."""
    for name, child in module.named_children():
        if (type(child) is nn.Conv2d and max(child.stride) > 1 and child.in_channels >= 16):
            blur = BlurConv2d(child.in_channels, child.out_channels, child.kernel_size,
                              stride=child.stride, padding=child.padding, dilation=child.dilation,
                              groups=child.groups, bias=child.bias is not None,
                              padding_mode=child.padding_mode)
            blur.load_state_dict(child.state_dict())
            setattr(module, name, blur.to(child.weight.device))
        else:
            apply_blurpool(child)
    return module
