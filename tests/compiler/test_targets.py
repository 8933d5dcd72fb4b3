"""Targets in the spec and the plan: ``targets:`` keys and their located errors, which steps
move a mask (from each op's declaration), the ops that refuse masks, ``explain``."""
import textwrap

import numpy as np
import pytest

from compiler import SpecError, compile_spec, load_spec
from operations import IMAGE_ONLY, Target, cpu_op, register_op
from operations.cpu.mask_decoders import MaskCropDecoder
from operations.cpu.warp import mask_warp
from operations.declared import TargetStep
from operations.device.stage import TargetBatch


def spec(cpu: str = "[]", device: str = "[]", targets: str = "{mask: {num_classes: 4}}",
         extra: str = "", decode: str = "{random_resized_crop: {size: 32}}") -> str:
    return textwrap.dedent(f"""\
        version: 1
        splits:
          train:
            image:
              decode: {decode}
              cpu: {cpu}
              device: {{ops: {device}}}
            targets: {targets}
        """) + extra


def error_lines(text: str, device: str = "cpu") -> list:
    with pytest.raises(SpecError) as caught:
        compile_spec(load_spec(text), device=device)
    return str(caught.value).splitlines()


def test_a_mask_target_with_defaults_reads_its_own_field_and_no_label():
    compiled = compile_spec(load_spec(spec(targets="{mask: }")), device="cpu")
    assert compiled.targets == (Target("mask", "mask", "mask", 255, None),)
    assert compiled.outputs == ("image", "mask") and not compiled.split.has_label


def test_a_label_next_to_a_target_comes_before_it_in_a_batch():
    text = spec(targets="{seg: {field: masks, ignore_index: 9}}", extra="    label: int\n")
    compiled = compile_spec(load_spec(text), device="cpu")
    assert compiled.outputs == ("image", "label", "seg")
    assert compiled.targets == (Target("seg", "mask", "masks", 9, None),)


@pytest.mark.parametrize("targets, position, message", [
    ("{mask: {kind: polygons}}", "8:28", "kind"),
    ("{mask: {ignore_index: 70000}}", "8:36", "ignore_index"),
    ("{mask: {num_classes: 21, ignore_index: 3}}", "8:53",
     "target 'mask': ignore_index 3 is a class id (num_classes is 21); use a value >= "
     "num_classes, e.g. 255"),
    ("{image: {}}", "8:15", "a target cannot be named 'image'"),
    ("{mask: {field: image}}", "8:29", "target 'mask' reads field 'image', the image's field"),
    ("{a: {field: m}, b: {field: m}}", "8:41", "targets 'a' and 'b' both read field 'm'"),
    ("{mask: {colour: 3}}", "8:22", "unknown key 'colour' in target 'mask'"),
    ("[mask]", "8:14", "targets must be a mapping"),
    ("{}", "8:14", "targets is empty"),
])
def test_target_mistakes_are_located(targets, position, message):
    lines = error_lines(spec(targets=targets))
    assert len(lines) == 1 and lines[0].startswith(f"<string>:{position}: ") and message in lines[0]


def test_steps_move_the_mask_as_their_declarations_say():
    compiled = compile_spec(spec(cpu="[rotate: {degrees: 20}, shear: {degrees: 5}, "
                                     "brightness: {strength: 0.2}, trivial_augment_wide, "
                                     "random_erasing]", device="[horizontal_flip, normalize]"),
                            device="cpu")
    moved = {step.name: step.moves for step in compiled.plan.steps}
    assert moved == {"random_resized_crop": ("mask",), "rotate+shear": ("mask",),
                     "brightness": (), "trivial_augment_wide": ("mask",),
                     "random_erasing": (), "horizontal_flip+normalize": ("mask",),
                     "to_tensor": (), "to_torch_image": ()}
    ops = [step.op for step in compiled.plan.targets["mask"]]
    assert isinstance(ops[0], MaskCropDecoder) and isinstance(ops[-1], TargetBatch)
    assert ops[1].warp is mask_warp and ops[1].fill == 255  # one fused warp, the mask's fill
    assert [type(op).__name__ for op in ops[2:4]] == ["TargetStep", "TargetStep"]
    assert compiled.outputs == ("image", "mask")


def test_explain_names_the_moved_targets_and_the_target_pipeline():
    text = compile_spec(spec(cpu="[rotate: {degrees: 20}, invert]"), device="cpu").explain()
    assert "moves" in text.splitlines()[2]
    assert "mask (mask, fill 255): random_resized_crop -> rotate -> to_tensor -> target_batch" in text
    assert "fields: image from 'image', mask from 'mask'" in text and "label: none" in text


@pytest.mark.parametrize("batch, position", [("mixup", "10:9"), ("cutmix", "10:9"),
                                             ("mixup_cutmix", "10:9")])
def test_batch_ops_that_mix_images_refuse_masks(batch, position):
    lines = error_lines(spec(device="[normalize]", extra=f"    batch:\n      - {batch}: {{num_classes: 4}}\n"))
    assert lines == [f"<string>:{position}: '{batch}' mixes pairs of images; mask targets cannot "
                     f"follow it (target 'mask'): remove it from this split, or the target"]


def test_a_device_warp_on_a_gpu_refuses_masks_but_lowers_on_a_cpu_device():
    text = spec(device="[rotate: {degrees: 10}, normalize]")
    assert error_lines(text, device="cuda") == [
        "<string>:7:22: 'rotate' in image.device.ops cannot move mask targets yet; write it "
        "under image.cpu, where it moves them"]
    assert "mask" in compile_spec(load_spec(text), device="cpu").plan.steps[1].moves


def test_a_kernel_op_that_does_not_declare_its_targets_is_refused_with_masks():
    @register_op("test_targets_undeclared")
    @cpu_op
    def undeclared(image_in, image_out, rng):
        """Copies (a test op)."""
        image_out[:] = image_in

    lines = error_lines(spec(cpu="[test_targets_undeclared]"))
    assert lines == ["<string>:6:13: 'test_targets_undeclared' does not declare what it does "
                     "to mask targets (target 'mask'); remove the target or the op, or declare "
                     "it (docs/targets.md, 'Custom ops and targets')"]
    assert compile_spec(load_spec(spec(cpu="[test_targets_undeclared]", targets="null")),
                        device="cpu").outputs == ("image", "label")


def test_a_custom_kernel_declares_its_mask_kernel_once():
    def transpose_mask(mask_in, mask_out, rng, fill):
        for y in range(mask_in.shape[0]):
            for x in range(mask_in.shape[1]):
                mask_out[y, x, 0] = mask_in[x, y, 0]

    @register_op("test_targets_transpose")
    @cpu_op(targets={"mask": transpose_mask})
    def transpose(image_in, image_out, rng):
        """Transposes a square image (a test op)."""
        for y in range(image_in.shape[0]):
            for x in range(image_in.shape[1]):
                image_out[y, x] = image_in[x, y]

    @register_op("test_targets_image_only")
    @cpu_op(targets=IMAGE_ONLY)
    def darken(image_in, image_out, rng):
        """Halves every value (a test op)."""
        image_out[:] = image_in // 2

    compiled = compile_spec(load_spec(spec(cpu="[test_targets_transpose, test_targets_image_only]")),
                            device="cpu")
    transposed, = [s for s in compiled.plan.targets["mask"] if s.name == "test_targets_transpose"]
    assert isinstance(transposed.op, TargetStep)
    assert all(s.name != "test_targets_image_only" for s in compiled.plan.targets["mask"])
    mask = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    assert np.array_equal(transposed.op.apply(mask)[0, :, :, 0], mask[0, :, :, 0].T)
