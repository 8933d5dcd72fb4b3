"""The planner: stages, RNG positions, dtype filling, fusion, type tracking, refusals."""
import numpy as np
import pytest
import torch
from ffcv.transforms import ToDevice, ToTensor, ToTorchImage

from compiler import SpecError, compile_spec, load_spec, resolve_device
from operations import register_op
from operations.cpu.geometry import HorizontalFlipOnDevice as Flip
from operations.device.normalize import Normalize, NormalizeFlip

SPEC = """\
version: 1
seed: 11
splits:
  train:
    image:
      decode: {random_resized_crop: {size: [24, 32]}}
      cpu:
        - grayscale: {p: 0.5}  # not geometric: rotate stays its own step (no fusion)
        - rotate: {degrees: 10}
      device:
        dtype: float16
        ops: [{normalize: {mean: cifar10, std: cifar10}}, {flip: {p: 0.25}}]
"""


@pytest.fixture(scope="module")
def compiled():
    """The plan for a GPU (planning needs none); on the CPU the normalize moves into the JIT
    stage (test_on_the_cpu_normalize_runs_in_the_jit_stage_without_to_device)."""
    return compile_spec(SPEC, device="cuda")


def test_stages_in_order_with_the_boundary_between(compiled):
    ops = compiled.pipelines["image"]
    assert [type(op).__name__ for op in ops] == [
        "RandomResizedCrop", "Grayscale", "Rotate", "ToTensor", "ToDevice", "ToTorchImage",
        "NormalizeFlip"]
    assert ops[4].device == torch.device("cuda") and ops[4].non_blocking
    assert ops[5].channels_last


def test_rng_positions_and_clock_follow_the_flat_op_list(compiled):
    steps = compiled.plan.steps
    assert [s.position for s in steps] == [0, 1, 2, None, None, None, 4]  # flip was 4
    assert all(s.op.clock is compiled.clock for s in steps if s.position is not None)
    assert [s.op.position for s in steps if s.position is not None] == [0, 1, 2, 4]
    assert compiled.clock.seed == 11
    compiled.set_epoch(5)
    assert compiled.clock.epoch == 5 and steps[1].op.clock.epoch == 5


def test_normalize_and_flip_fuse_with_the_sections_dtype(compiled):
    fused = compiled.plan.steps[-1].op
    assert isinstance(fused, NormalizeFlip)
    assert (fused.params["dtype"], fused.params["p"]) == ("float16", 0.25)
    assert fused.params["mean"] == pytest.approx((0.4914 * 255, 0.4822 * 255, 0.4465 * 255))


def test_types_are_tracked_through_every_step(compiled):
    described = [s.output.describe() for s in compiled.plan.steps]
    assert described == ["24x32x3 uint8 HWC cpu"] * 4 + [
        "24x32x3 uint8 HWC cuda", "24x32x3 uint8 channels_last cuda",
        "24x32x3 float16 channels_last cuda"]
    assert [s.jit for s in compiled.plan.steps] == [True, True, True, False, False, False, False]


def test_unfused_when_not_adjacent():
    text = SPEC.replace("ops: [{normalize: {mean: cifar10, std: cifar10}}, {flip: {p: 0.25}}]",
                        "ops: [flip, {normalize: {dtype: float32}}]")
    text = text.replace("dtype: float16\n", "dtype: bfloat16\n")
    ops = compile_spec(text, device="cuda").pipelines["image"]
    assert isinstance(ops[-1], NormalizeFlip) and ops[-1].params["dtype"] == "float32"  # set explicitly
    single = compile_spec(SPEC.replace(", {flip: {p: 0.25}}", ""), device="cuda")
    assert type(single.pipelines["image"][-1]) is Normalize
    assert single.pipelines["image"][-1].params["dtype"] == "float16"


def test_on_the_cpu_normalize_runs_in_the_jit_stage_without_to_device():
    steps = compile_spec(SPEC, device="cpu").plan.steps
    assert [(s.name, type(s.op).__name__, s.stage) for s in steps[3:]] == [
        ("normalize+flip", "JitNormalizeFlip", "cpu"), ("to_tensor", "ToTensor", "boundary"),
        ("float16_from_bits", "Float16FromBits", "boundary"),
        ("to_torch_image", "ToTorchImage", "boundary")]
    moved = steps[3].op
    assert (moved.params["dtype"], moved.params["p"], moved.position) == ("float16", 0.25, 4)  # the flip's draws
    assert moved.table.dtype == np.uint16 and moved.table.shape == (3, 256)  # float16 bits
    assert steps[-1].output.describe() == "24x32x3 float16 channels_last cpu"
    bf16 = compile_spec(SPEC.replace("dtype: float16", "dtype: bfloat16"), device="cpu")
    assert type(bf16.plan.steps[-1].op) is NormalizeFlip  # Numba has no bfloat16: stays
    assert [s.name for s in bf16.plan.stage("boundary")] == ["to_tensor", "to_torch_image"]


UINT8_DEVICE_OPS = """\
version: 1
seed: 5
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 16}}
      device:
        dtype: float32
        ops: [{flip: {p: 0.5}}, {device_random_erasing: {p: 0.5, value: random}}]
"""


def test_on_the_cpu_a_flip_and_erasing_on_uint8_run_in_the_jit_stage_with_the_same_bytes():
    """No normalize to fuse with: the flip becomes the CPU horizontal_flip, the erasing the
    CPU random_erasing, each making the device op's decisions (checked against the device
    ops on one batch)."""
    on_cpu = compile_spec(UINT8_DEVICE_OPS, device="cpu").plan.steps
    assert [(s.name, type(s.op).__name__, s.stage) for s in on_cpu[1:3]] == [
        ("flip", "HorizontalFlip", "cpu"), ("device_random_erasing", "RandomErasing", "cpu")]
    assert all(s.note.startswith("device backend: written in image.device.ops; lowered:")
               for s in on_cpu[1:3])
    on_gpu = compile_spec(UINT8_DEVICE_OPS, device="cuda").plan.stage("device")
    images = np.random.default_rng(0).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    indices = np.arange(200, 224)
    jit = on_cpu[2].op.apply(on_cpu[1].op.apply(images, indices), indices)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
    device = on_gpu[1].op.apply(on_gpu[0].op.apply(batch, indices), indices)
    assert np.array_equal(jit, device.permute(0, 2, 3, 1).numpy())
    assert 0 < (jit != images).any(axis=(1, 2, 3)).sum() < len(images)  # some changed, not all


@pytest.mark.parametrize("value, in_place", [("random", True), ("zero", True), ("mean", False)])
def test_lowered_erasing_writes_the_batch_in_place_with_the_same_bytes(tmp_path, value,
                                                                         in_place):
    """The lowered erasing writes only its boxes into the batch it is given (no buffer, no
    copy of the rest; "mean" re-reads the image per rectangle, so it keeps a buffer): a
    Loader gives the bytes of the same op with a buffer of its own, explain says so, and
    ``apply`` leaves the caller's array alone."""
    from tests.conftest import structured_image, write_beton

    text = UINT8_DEVICE_OPS.replace("value: random", f"value: {value}, count: 2")
    path = write_beton(tmp_path / "data.beton",
                       [structured_image(20 + i % 5, 18 + i % 3, i) for i in range(40)],
                       list(range(40)))

    def images(compiled):
        loader = compiled.loader(str(path), batch_size=16, num_workers=2, order="sequential",
                                 drop_last=False)
        return torch.cat([batch[0].clone() for batch in loader]).numpy()

    lowered = compile_spec(text, device="cpu")
    step = lowered.plan.steps[2]
    assert step.op.in_place is in_place
    assert step.note.endswith(", in place (no buffer, no copy)") is in_place
    with_buffer = compile_spec(text, device="cpu")
    with_buffer.plan.steps[2].op.in_place = False
    got, want = images(lowered), images(with_buffer)
    np.testing.assert_array_equal(got, want)
    unflipped = compile_spec(text.replace("{flip: {p: 0.5}}, ", ""), device="cpu")
    erased = (images(unflipped) != images(compile_spec(
        text.replace("{flip: {p: 0.5}}, ", "").replace("p: 0.5, value", "p: 0.0, value"),
        device="cpu"))).any(axis=(1, 2, 3))
    assert 0 < erased.sum() < len(erased)  # some samples erased, not all
    batch = np.random.default_rng(1).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    kept = batch.copy()
    out = step.op.apply(batch, np.arange(8))
    assert np.array_equal(batch, kept) and (out != batch).any()


def test_explain_says_why_device_ops_stay_on_the_batch():
    text = UINT8_DEVICE_OPS.replace(
        "ops: [{flip: {p: 0.5}}, {device_random_erasing: {p: 0.5, value: random}}]",
        "ops: [{normalize: {}}, {device_random_erasing: {value: mean}}, {flip: {}}]")
    steps = compile_spec(text, device="cpu").plan.steps
    staying = [(s.name, s.stage, s.note) for s in steps if s.stage == "device"]
    backend = "device backend: written in image.device.ops; "
    assert staying == [
        ("device_random_erasing", "device", backend + "not lowered: no per-image equivalent with "
                                            "the same bytes on float32 images, so it runs on the "
                                            "batch"),
        ("flip", "device", backend + "not lowered: after device_random_erasing, which runs on "
                                     "the batch")]


def test_label_pipeline():
    label = compile_spec(SPEC, device="cpu").pipelines["label"]
    assert [type(op).__name__ for op in label] == ["IntDecoder", "ToTensor", "Squeeze", "ToDevice"]


def test_hang_order_is_refused_before_any_loader_exists():
    """A JIT op after a non-JIT op makes ffcv.Loader loop forever (ffcv #113, #350)."""
    register_op("test_plan_non_jit_step")(type("NonJitStep", (ToTensor,), {}))
    text = SPEC.replace("        - rotate: {degrees: 10}\n",
                        "        - test_plan_non_jit_step\n        - rotate: {degrees: 10}\n")
    with pytest.raises(SpecError) as info:
        compile_spec(text, device="cpu")
    assert str(info.value) == (
        "<string>:10:11: 'rotate' is a JIT (Numba) op after the non-JIT step "
        "'test_plan_non_jit_step (line 9)'; FFCV's Loader would hang forever building this "
        "pipeline (ffcv #113, #350): put every JIT op before it")


def test_raw_ffcv_op_is_typed_from_its_declared_state():
    text = SPEC.replace("- rotate: {degrees: 10}", "- ffcv.transforms:RandomHorizontalFlip")
    step = compile_spec(text, device="cpu").plan.steps[2]
    assert step.jit and step.output.describe() == "24x32x3 uint8 HWC cpu"


def test_constructor_error_is_a_spec_error_at_the_op():
    @register_op("test_plan_picky")
    def picky(image_in, image_out, rng, k: int = 1):
        image_out[:] = image_in

    original = picky.__init__

    def init(self, **values):
        if values.get("k") == 3:
            raise ValueError("k=3 is unlucky\nreally")
        original(self, **values)

    picky.__init__ = init  # its parameters stay the declaration's (picky.signature())
    text = SPEC.replace("- rotate: {degrees: 10}", "- test_plan_picky: {k: 3}")
    with pytest.raises(SpecError) as info:
        compile_spec(text, device="cpu")
    assert str(info.value) == "<string>:9:11: 'test_plan_picky': k=3 is unlucky really"


def test_unknown_split_and_device():
    with pytest.raises(SpecError, match=r"<string>:1:1: no split named 'trian'; did you mean 'train'\?"):
        compile_spec(SPEC, split="trian", device="cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        compile_spec(SPEC, device="gpu0")


def test_device_names():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert (resolve_device("cpu"), resolve_device("cuda:1")) == ("cpu", "cuda:1")


def test_batch_ops_get_num_classes_from_the_label():
    text = SPEC + "    label: {num_classes: 7}\n    batch: [{mixup: {alpha: 0.2}}]\n"
    compiled = compile_spec(text, device="cpu")
    (mix,) = compiled.batch_ops
    assert (type(mix).__name__, mix.params["alpha"], mix.params["num_classes"]) == ("Mixup", 0.2, 7)
    assert compiled.plan.batch[0].position == 5 and mix.position == 5
    with pytest.raises(SpecError, match=r"<string>:14:14: 'mixup' needs label.num_classes"):
        load_spec(text.replace("label: {num_classes: 7}", "label: int"))
    own = load_spec(text.replace("{alpha: 0.2}", "{num_classes: 3}"))
    assert own.splits["train"].batch[0].params["num_classes"] == 3


def test_batch_op_on_uint8_images_is_refused():
    text = SPEC.replace(", {flip: {p: 0.25}}", "").replace("{normalize: {mean: cifar10, std: cifar10}}", "flip")
    text += "    label: {num_classes: 7}\n    batch: [cutmix]\n"
    with pytest.raises(SpecError, match=r"<string>:14:13: 'cutmix' mixes normalized float images "
                                        r"but gets uint8"):
        compile_spec(text, device="cpu")


def test_boundary_classes_are_ffcvs_own(compiled):
    kinds = [type(s.op) for s in compiled.plan.stage("boundary")]
    assert kinds == [ToTensor, ToDevice, ToTorchImage]
    assert isinstance(compiled.decoder.op, type(compiled.pipelines["image"][0]))
    assert [s.name for s in compiled.cpu_steps] == ["grayscale", "rotate"]
    assert Flip.stage == "device"


MIXING = """\
version: 1
seed: 7
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 16}}
      device: {dtype: float32, ops: [{flip: {p: 0.5}}, normalize]}
    label: {num_classes: 4}
    batch: [{mixup_cutmix: {switch_prob: 0.5}}]
    loader: {batch_size: 6, num_workers: 2, order: random, drop_last: false}
"""


@pytest.mark.parametrize("device_ops, batch_size", [
    ("[{flip: {p: 0.5}}, normalize]", 6),
    ("[{flip: {p: 0.5}}, normalize, {random_erasing: {p: 0.5, value: zero, count: 2}}]", 7),
    ("[{flip: {p: 1.0}}, normalize, {random_erasing: {p: 1.0, value: 3}}]", 5),
])
def test_on_the_cpu_mixing_runs_in_the_jit_stage_with_the_batch_ops_bytes(small_beton,
                                                                          device_ops,
                                                                          batch_size):
    """mixup_cutmix's pairs move into the JIT stage (its targets stay after the loader), and
    take the lowered normalize (and in-place erasing) before them, per pair: the batches
    equal those of the unoptimized plan, which runs each op on the whole batch and mixes
    after the loader. An odd batch size leaves a middle image without a partner."""
    text = MIXING.replace("[{flip: {p: 0.5}}, normalize]", device_ops) \
        .replace("batch_size: 6", f"batch_size: {batch_size}")
    lowered = compile_spec(text, device="cpu")
    steps = [(s.name, s.stage, s.note) for s in lowered.plan.steps + lowered.plan.batch]
    chained = [s.name for s in lowered.plan.steps[1].parts]
    assert chained[0] == "flip+normalize" and chained[-1] == "mixup_cutmix_pairs"
    assert steps[1][1:] == ("cpu", f"chained: per pair of images, {', '.join(chained[:-1])} "
                                   f"then the mixing, while both are in cache (one pass over "
                                   f"the batch)")
    assert steps[-1] == ("mixup_cutmix", "batch", "only its targets after the loader: the "
                                                  "images were mixed in the JIT stage")
    on_batch = compile_spec(text, device="cpu", optimize=False)
    assert [s.stage for s in on_batch.plan.steps].count("cpu") == 0
    assert_same_mixed_epochs(lowered, on_batch, small_beton, batch_size)


CPU_NORMALIZE_CUTMIX = """\
version: 1
seed: 3
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 16}}
      cpu: [{horizontal_flip: {p: 0.5}}, normalize]
    label: {num_classes: 4}
    batch: [{cutmix: {}}]
    loader: {batch_size: 5, num_workers: 2, order: random, drop_last: false}
"""


def test_a_cpu_normalize_chains_into_the_pairs_with_the_same_bytes(small_beton):
    """Any per-sample op writing the float batch chains, not only the lowered normalize: a
    normalize written in image.cpu before cutmix, with the flip before it (it keeps the
    image's type: it writes scratch)."""
    lowered = compile_spec(CPU_NORMALIZE_CUTMIX, device="cpu")
    assert [s.name for s in lowered.plan.steps[:2]] == [
        "random_resized_crop", "horizontal_flip+normalize+cutmix_pairs"]
    assert_same_mixed_epochs(lowered, compile_spec(CPU_NORMALIZE_CUTMIX, device="cpu",
                                                   optimize=False), small_beton, 5)


SCRATCH_CHAIN = """\
version: 1
seed: 11
splits:
  train:
    image:
      decode: {random_resized_crop: {size: 16}}
      cpu:
        - {brightness: {strength: 0.4}}
        - {contrast: {strength: 0.4}}
        - {gaussian_blur: {kernel_size: 3, p: 0.5}}
        - trivial_augment_wide
        - {grayscale: {p: 0.5}}
      device:
        dtype: float32
        ops: [{flip: {p: 0.5}}, normalize, {random_erasing: {p: 0.5, value: zero}}]
    label: {num_classes: 4}
    batch: [{mixup_cutmix: {switch_prob: 0.5}}]
    loader: {batch_size: 7, num_workers: 2, order: random, drop_last: false}
"""


def test_the_ops_before_the_normalize_chain_through_scratch_with_the_same_bytes(small_beton):
    """The type-keeping CPU ops before the lowered normalize (fused point maps, a blur, a
    policy, a gated grayscale) join the chain, writing two scratch buffers in turn (one read
    while the other is written). Same batches as the unoptimized plan, with an odd batch."""
    lowered = compile_spec(SCRATCH_CHAIN, device="cpu")
    assert [s.name for s in lowered.plan.steps[:2]] == [
        "random_resized_crop", "brightness+contrast+gaussian_blur+trivial_augment_wide+"
                               "grayscale+flip+normalize+random_erasing+mixup_cutmix_pairs"]
    assert_same_mixed_epochs(lowered, compile_spec(SCRATCH_CHAIN, device="cpu",
                                                   optimize=False), small_beton, 7)


def assert_same_mixed_epochs(compiled, reference, beton, batch_size: int) -> None:
    """Two epochs of ``compiled`` (batch ops applied after the loader) equal
    ``reference``'s, images and labels, batch for batch (the 40-image ``small_beton``)."""
    def epochs(pipeline):
        loader, out = pipeline.loader(beton), []
        for epoch in (0, 1):
            pipeline.set_epoch(epoch)
            for images, labels in loader:
                for op in pipeline.batch_ops:
                    images, labels = op(images, labels)
                out.append((images.clone(), labels.clone()))
        return out

    batches = epochs(compiled)
    assert len(batches) == 2 * -(-40 // batch_size)  # 40 images, twice
    for (a, la), (b, lb) in zip(batches, epochs(reference)):
        assert torch.equal(a, b) and torch.equal(la, lb)
