"""ResNets written from the architecture: torchvision's names and sizes, and BlurPool."""
import pytest
import torch
from torch import nn

from pipelines.models import BlurConv2d, build_resnet

# a few keys of torchvision.models.resnet50().state_dict(), written out by hand
TORCHVISION_RESNET50_KEYS = [
    "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
    "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer1.0.conv3.weight",
    "layer1.0.bn3.weight", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_mean",
    "layer2.3.conv2.weight", "layer3.5.bn2.bias", "layer4.0.downsample.0.weight",
    "layer4.2.bn3.running_var", "fc.weight", "fc.bias",
]


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("blurpool", [False, True])
def test_resnet50_has_torchvision_names_and_size(blurpool):
    model = build_resnet("resnet50", blurpool=blurpool)
    keys = list(model.state_dict())
    assert set(TORCHVISION_RESNET50_KEYS) <= set(keys)
    assert "layer4.3.conv1.weight" not in keys and "layer3.6.conv1.weight" not in keys
    assert len(keys) == 320  # 161 parameters + 53 BN x 3 buffers
    assert n_parameters(model) == 25_557_032
    assert model.state_dict()["fc.weight"].shape == (1000, 2048)
    assert model.state_dict()["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)


@pytest.mark.parametrize("arch,count", [("resnet18", 11_689_512), ("resnet34", 21_797_672)])
def test_basic_block_resnets_match_torchvision_sizes(arch, count):
    assert n_parameters(build_resnet(arch)) == count


def test_resnet50_stride_is_on_the_3x3_conv():  # v1.5, as torchvision
    model = build_resnet("resnet50")
    assert model.layer2[0].conv1.stride == (1, 1) and model.layer2[0].conv2.stride == (2, 2)


def test_small_width_runs_on_small_images():
    model = build_resnet("resnet18", num_classes=7, width=8).eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    with pytest.raises(ValueError, match="unknown architecture 'resnet101'"):
        build_resnet("resnet101")


def test_blurpool_replaces_strided_convs_with_16_or_more_inputs():
    model = build_resnet("resnet50", blurpool=True)
    blurred = sorted(n for n, m in model.named_modules() if isinstance(m, BlurConv2d))
    assert blurred == sorted([f"layer{i}.0.{c}" for i in (2, 3, 4)
                              for c in ("conv2", "downsample.0")])
    assert type(model.conv1) is nn.Conv2d  # 3 input channels: left alone


def test_blurpool_checkpoints_are_interchangeable_with_plain_ones():
    plain = build_resnet("resnet18", num_classes=5, width=16)
    blur = build_resnet("resnet18", num_classes=5, width=16, blurpool=True)
    blur.load_state_dict(plain.state_dict())  # strict
    plain.load_state_dict(blur.state_dict())
    assert torch.equal(blur.layer2[0].conv1.weight, plain.layer2[0].conv1.weight)


def test_blur_conv_blurs_with_the_binomial_filter_first():
    conv = BlurConv2d(1, 1, kernel_size=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(2.0)
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 16.0
    expected = torch.zeros(5, 5)
    expected[1:4, 1:4] = 2.0 * torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]])
    assert torch.allclose(conv(impulse)[0, 0], expected)
