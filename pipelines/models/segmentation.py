"""A ResNet encoder with a light U-Net/FPN decoder for semantic segmentation.

The encoder is the project's ResNet (``pipelines.models.resnet``) without its classifier
(``avgpool`` and ``fc`` are identities, so DDP finds no unused parameter, and a torchvision
ImageNet checkpoint loads into ``backbone`` with ``strict=False``). The decoder takes the four
stages' outputs (strides 4, 8, 16, 32), projects each to ``decoder_channels`` with a 1x1 conv,
and from the coarsest up adds each upsampled map to the next finer one and fuses the sum with a
3x3 conv, BN and ReLU (FPN's top-down path with U-Net's fusing conv). A 1x1 conv gives
``num_classes`` logits at stride 4, upsampled bilinearly to the input's height and width.

Parameter names: ``backbone.*`` (torchvision's ResNet names), ``decoder.lateral.N``,
``decoder.fuse.N``, ``decoder.classifier``.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blurpool import apply_blurpool
from .resnet import ARCHITECTURES, ResNet


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SegmentationDecoder(nn.Module):
    """Stage outputs (finest first) -> logits at the finest stage's resolution."""

    def __init__(self, in_channels: List[int], channels: int, num_classes: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        # one fusing conv per level below the coarsest, and one on the coarsest itself
        self.fuse = nn.ModuleList(_conv_bn_relu(channels, channels) for _ in in_channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        levels = len(features)
        x = self.fuse[levels - 1](self.lateral[levels - 1](features[-1]))
        for level in range(levels - 2, -1, -1):
            skip = self.lateral[level](features[level])
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.fuse[level](x + skip)
        return self.classifier(x)


class SegmentationResNet(nn.Module):
    """``backbone`` (a ResNet) + ``decoder``; ``forward`` gives (N, num_classes, H, W) logits
    for (N, 3, H, W) images."""

    def __init__(self, backbone: ResNet, num_classes: int, decoder_channels: int):
        super().__init__()
        self.backbone = backbone
        self.backbone.avgpool = nn.Identity()
        self.backbone.fc = nn.Identity()
        self.decoder = SegmentationDecoder(backbone.stage_channels, decoder_channels, num_classes)
        # the fusing convs (each followed by BN) as the backbone's; the 1x1 projections keep
        # PyTorch's default; the classifier starts small, so the first logits are near uniform
        for block in self.decoder.fuse:
            nn.init.kaiming_normal_(block[0].weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.decoder.classifier.weight, std=0.01)
        nn.init.zeros_(self.decoder.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(self.backbone.stages(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_segmentation_resnet(arch: str = "resnet50", num_classes: int = 21, width: int = 64,
                              blurpool: bool = False,
                              decoder_channels: Optional[int] = None) -> SegmentationResNet:
    """A ``SegmentationResNet`` on a ResNet by name; ``decoder_channels`` defaults to twice
    the first stage's ``width`` (128 for the standard network)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture '{arch}'; choose one of {', '.join(ARCHITECTURES)}")
    block, layers = ARCHITECTURES[arch]
    backbone = ResNet(block, layers, num_classes=1, width=width)
    if blurpool:
        backbone = apply_blurpool(backbone)
    return SegmentationResNet(backbone, num_classes, decoder_channels or 2 * width)
