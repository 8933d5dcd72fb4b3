"""Image models written in the project (torchvision is not a dependency): ResNet-18/34/50
with torchvision's parameter names, ffcv-imagenet's BlurPool, and a segmentation network on
the ResNet (a light U-Net/FPN decoder)."""
from .blurpool import BlurConv2d, apply_blurpool
from .resnet import ARCHITECTURES, ResNet, build_resnet
from .segmentation import SegmentationResNet, build_segmentation_resnet

__all__ = ["ARCHITECTURES", "BlurConv2d", "ResNet", "SegmentationResNet", "apply_blurpool",
           "build_resnet", "build_segmentation_resnet"]
