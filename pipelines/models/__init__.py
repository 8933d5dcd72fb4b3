"""Image classification models written in the project (torchvision is not a dependency):
ResNet-18/34/50 with torchvision's parameter names, and ffcv-imagenet's BlurPool."""
from .blurpool import BlurConv2d, apply_blurpool
from .resnet import ARCHITECTURES, ResNet, build_resnet

__all__ = ["ARCHITECTURES", "BlurConv2d", "ResNet", "apply_blurpool", "build_resnet"]
