"""The documented BYOL and DINO LightningModules (``pipelines.ssl_examples``) train a few
steps on ``FFCVDataModule`` batches of specs/byol.yaml and specs/dino_multicrop.yaml scaled
down: the loss is finite, the online/student and the EMA target/teacher both move."""
import math

import lightning.pytorch as pl
import pytest
import torch

from pipelines.datamodule import FFCVDataModule
from pipelines.ssl_examples import (BYOLModule, DINOModule, byol_loss, dino_loss,
                                    ema_momentum, ema_update)
from tests.pipelines.train_helpers import tinted_beton

#: specs/byol.yaml at 32 px (blur kernel 3), batches of 8
BYOL_VIEWS = """\
        view1:
          decode: *crop
          cpu:
            - *colour
            - grayscale: {p: 0.2}
            - gaussian_blur: {kernel_size: 3, sigma: [0.1, 2.0], p: 1.0}
          device: *device
        view2:
          decode: *crop
          cpu:
            - *colour
            - grayscale: {p: 0.2}
            - gaussian_blur: {kernel_size: 3, sigma: [0.1, 2.0], p: 0.1}
            - solarize: {threshold: 128, p: 0.2}
          device: *device
"""

#: specs/dino_multicrop.yaml at 32 px globals and two 16 px locals
DINO_VIEWS = """\
        global1:
          decode: *crop
          cpu: [*colour, {gaussian_blur: {kernel_size: 3, sigma: [0.1, 2.0], p: 1.0}}]
          device: *device
        global2:
          decode: *crop
          cpu: [*colour, {solarize: {threshold: 128, p: 0.2}}]
          device: *device
        local:
          count: 2
          decode: {random_resized_crop: {size: 16, scale: [0.05, 0.4]}}
          cpu: [*colour]
          device: *device
"""

SPEC = """\
version: 1
seed: 0
x-crop: &crop {{random_resized_crop: {{size: 32, scale: [0.08, 1.0]}}}}
x-colour: &colour {{color_jitter: {{brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8}}}}
x-device: &device {{dtype: float32, ops: [{{horizontal_flip: {{p: 0.5}}}}, {{normalize: {{mean: imagenet, std: imagenet}}}}]}}
splits:
  train:
    image:
      views:
{views}    label: int
    loader: {{batch_size: 8, order: random, drop_last: true, num_workers: 2}}
"""


@pytest.fixture(scope="module")
def beton(tmp_path_factory):
    return str(tinted_beton(tmp_path_factory.mktemp("ssl_examples") / "train.beton", 32))


def parameters(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


class Losses(pl.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def fit_a_few_steps(module, spec_path, beton, root):
    losses = Losses()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=3,
                         logger=False, enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, default_root_dir=root, callbacks=[losses])
    trainer.fit(module, FFCVDataModule(str(spec_path), beton))
    return losses.losses


@pytest.mark.parametrize("name", ["byol", "dino"])
def test_the_example_trains_a_few_steps(name, beton, tmp_path):
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(SPEC.format(views=BYOL_VIEWS if name == "byol" else DINO_VIEWS))
    torch.manual_seed(0)
    if name == "byol":
        module = BYOLModule(arch="resnet18", width=8, proj_dim=16, hidden=32,
                            base_momentum=0.9)
        learner, follower = module.online, module.target
    else:
        module = DINOModule(arch="resnet18", width=8, out_dim=32, hidden=32, bottleneck=16,
                            base_momentum=0.9)
        learner, follower = module.student, module.teacher
    before, before_follower = parameters(learner), parameters(follower)
    losses = fit_a_few_steps(module, spec, beton, tmp_path)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    changed = [n for n, p in parameters(learner).items() if not torch.equal(p, before[n])]
    assert len(changed) > 0.9 * len(before)  # gradients reach (nearly) every parameter
    followed = [n for n, p in parameters(follower).items()
                if not torch.equal(p, before_follower[n])]
    assert followed  # the EMA network moved too
    assert all(not p.requires_grad for p in follower.parameters())
    if name == "dino":
        assert module.center.abs().sum() > 0


def test_the_losses_and_the_ema_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    assert byol_loss(a, b).item() == pytest.approx(((2 - 2 / math.sqrt(2)) + 4) / 2)
    assert ema_momentum(0.996, 0, 100) == pytest.approx(0.996)
    assert ema_momentum(0.996, 50, 100) == pytest.approx(0.998)
    assert ema_momentum(0.996, 100, 100) == pytest.approx(1.0)
    target, online = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    target.weight.data.fill_(1.0)
    online.weight.data.fill_(3.0)
    ema_update(target, online, 0.75)
    assert target.weight.item() == pytest.approx(1.5)
    # DINO: a student equal to the sharpened teacher's distribution scores its entropy, and
    # the pair (crop, same crop) is left out
    teacher = [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])]
    student = [torch.tensor([[5.0, 0.0]]), torch.tensor([[0.0, 5.0]])]
    p = torch.softmax(torch.tensor([2.0, 0.0]) / 1.0, 0)
    q = torch.log_softmax(torch.tensor([0.0, 5.0]) / 1.0, 0)
    expected = -(p * q).sum().item()  # both pairs are mirror images: the same value
    got = dino_loss(student, teacher, torch.zeros(1, 2), 1.0, 1.0).item()
    assert got == pytest.approx(expected, rel=1e-6)
