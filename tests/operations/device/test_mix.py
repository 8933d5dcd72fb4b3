"""mixup, cutmix, mixup_cutmix and temporal_repeat: lambda distribution, box geometry,
soft targets, exact label smoothing, per-batch keyed randomness."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from operations import EpochClock, ImageType, OpTypeError, get_op
from operations.device import mix
from operations.device.batch import BatchHandoffError
from operations.device.mix import Cutmix, Mixup, MixupCutmix, beta, cutmix_box, mixed_targets

B = 8  # labels 0..7, each paired with 7 - i: lam is readable from the targets


def batch(height=12, width=16):
    """Sample i is constant i + 1 (float32, channels_last): every pair differs everywhere."""
    values = torch.arange(1, B + 1, dtype=torch.float32).view(B, 1, 1, 1)
    return values.expand(B, 3, height, width).contiguous(memory_format=torch.channels_last)


def bound(op, seed=3, epoch=0, position=9):
    op.bind(EpochClock(seed, epoch), position)
    return op


@pytest.mark.parametrize("alpha", [0.4, 2.0])
def test_beta_draws_have_beta_moments(alpha):
    draws = np.array([beta(np.uint64(k), alpha) for k in range(4000)])
    assert ((draws >= 0) & (draws <= 1)).all()
    variance = 1 / (4 * (2 * alpha + 1))
    assert abs(draws.mean() - 0.5) < 4 * np.sqrt(variance / 4000)
    assert abs(draws.var() - variance) < 0.1 * variance


@pytest.mark.parametrize("alpha", [0.2, 1.0, 3.0])
def test_beta_draws_pass_a_ks_test(alpha):
    stats = pytest.importorskip("scipy.stats", reason="the KS test needs scipy (demo extra)")
    draws = [beta(np.uint64(k + 10 ** 6), alpha) for k in range(3000)]
    assert stats.kstest(draws, stats.beta(alpha, alpha).cdf).pvalue > 1e-3


def test_mixup_blends_each_image_with_its_mirror_pair():
    images, labels = batch(), torch.arange(B)
    op = bound(Mixup(num_classes=B, alpha=1.0, label_smoothing=0.0))
    lams = []
    for _ in range(5):
        mixed, targets = op(images.clone(), labels)
        lam = targets[0, 0].item()
        lams.append(lam)
        assert targets[0, B - 1].item() == pytest.approx(1 - lam, abs=1e-6)
        ref = lam * images.double() + (1 - lam) * images.double().flip(0)
        assert torch.allclose(mixed.double(), ref, rtol=1e-6, atol=1e-6)
        assert mixed.is_contiguous(memory_format=torch.channels_last)
    assert len(set(lams)) == 5  # one new lambda per batch


def test_cutmix_pastes_one_box_and_lambda_is_the_kept_area():
    height, width = 12, 16
    images, labels = batch(height, width), torch.arange(B)
    op = bound(Cutmix(num_classes=B, alpha=1.0, label_smoothing=0.0))
    areas = []
    for _ in range(40):
        mixed, targets = op(images.clone(), labels)
        pasted = (mixed != images).all(1)  # (B, H, W): where the partner's pixels are
        assert torch.equal(pasted, pasted[:1].expand_as(pasted))  # the same box for all
        rows, cols = pasted[0].any(1).nonzero(), pasted[0].any(0).nonzero()
        area = int(pasted[0].sum())
        if area:
            y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            assert area == (y1 - y0) * (x1 - x0)  # a filled rectangle inside the image
            assert torch.equal(mixed[..., y0:y1, x0:x1], images.flip(0)[..., y0:y1, x0:x1])
        assert targets[0, 0].item() == pytest.approx(1 - area / (height * width), abs=1e-6)
        areas.append(area)
    assert len(set(areas)) > 10


@settings(max_examples=200, deadline=None)
@given(key=st.integers(0, 2 ** 64 - 1), lam=st.floats(0.0, 1.0), height=st.integers(1, 300),
       width=st.integers(1, 300))
def test_cutmix_box_is_inside_the_image(key, lam, height, width):
    y0, y1, x0, x1 = cutmix_box(np.uint64(key), lam, height, width)
    assert 0 <= y0 <= y1 <= height and 0 <= x0 <= x1 <= width
    assert y1 - y0 <= int(height * np.sqrt(1 - lam)) and x1 - x0 <= int(width * np.sqrt(1 - lam))


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.25])
def test_label_smoothing_values_are_exact(smoothing):
    k = 10
    labels = torch.tensor([3, 7, 2, 3])  # partners: 3, 2, 7, 3
    targets = mixed_targets(labels, 1.0, k, smoothing)
    off, on = np.float32(smoothing / k), np.float32(1 - smoothing + smoothing / k)
    expected = np.full((4, k), off, np.float32)
    expected[np.arange(4), labels.numpy()] = on
    assert np.array_equal(targets.numpy(), expected)
    lam = 0.3
    mixed = mixed_targets(labels, lam, k, smoothing).numpy()
    assert mixed[1, 7] == pytest.approx(lam * on + (1 - lam) * off, abs=1e-7)
    assert mixed[1, 2] == pytest.approx(lam * off + (1 - lam) * on, abs=1e-7)
    assert mixed[0, 3] == pytest.approx(on, abs=1e-7)  # partner has the same label


def test_mixup_cutmix_targets_sum_to_one_and_both_kinds_occur():
    images, labels = batch(), torch.tensor([0, 5, 2, 2, 9, 1, 4, 7])
    op = bound(MixupCutmix(num_classes=10, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5,
                           label_smoothing=0.1))
    kinds = set()
    for _ in range(30):
        mixed, targets = op(images.clone(), labels)
        assert targets.shape == (B, 10) and targets.dtype == torch.float32
        assert torch.allclose(targets.sum(1), torch.ones(B), atol=1e-6)
        differs = (mixed != images).all(1)[0]
        kinds.add("cutmix" if 0 < differs.sum() < differs.numel() else "mixup")
    assert kinds == {"cutmix", "mixup"}


def test_mixup_cutmix_prob_zero_keeps_images_and_smooths_labels():
    images, labels = batch(), torch.arange(B)
    mixed, targets = bound(MixupCutmix(num_classes=B, prob=0.0, label_smoothing=0.2))(images, labels)
    assert mixed is images
    assert torch.allclose(targets, torch.eye(B) * 0.8 + 0.2 / B)


def test_batch_counter_restarts_with_each_epoch():
    images, labels = batch(), torch.arange(B)
    op = bound(Mixup(num_classes=B, label_smoothing=0.0))
    first, second = op(images, labels)[1], op(images, labels)[1]
    assert not torch.equal(first, second)
    op.clock.epoch = 1
    new_epoch = op(images, labels)[1]
    op.clock.epoch = 0
    assert torch.equal(op(images, labels)[1], first)  # epoch 0 again: batch 0 again
    fresh = bound(Mixup(num_classes=B, label_smoothing=0.0), epoch=1)
    assert torch.equal(fresh(images, labels)[1], new_epoch)
    assert not torch.equal(new_epoch, first)


def test_refusals():
    with pytest.raises(ValueError, match="^mixup_cutmix needs mixup_alpha > 0 or cutmix_alpha > 0$"):
        MixupCutmix(num_classes=3, mixup_alpha=0.0, cutmix_alpha=0.0)
    image = ImageType(8, 8, dtype="uint8", layout="channels_last", jit=False)
    with pytest.raises(OpTypeError) as error:
        get_op("cutmix")(num_classes=3).output_type(image)
    assert str(error.value) == ("'cutmix' mixes normalized float images but gets uint8; add "
                                "normalize to the device stage")
    assert get_op("mixup")(num_classes=3).output_type(image.but(dtype="float16")).dtype == "float16"
    assert list(get_op("mixup").parameters()) == ["num_classes", "alpha", "label_smoothing"]
    assert get_op("mixup_cutmix").stage == "batch"


@pytest.mark.parametrize("size", [1, 2, 9, 16])
def test_all_pairs_at_once_gives_the_bytes_of_one_pair_at_a_time(size, monkeypatch):
    images = torch.rand(size, 3, 8, 12, generator=torch.Generator().manual_seed(size))
    images = images.to(torch.float16).contiguous(memory_format=torch.channels_last)
    results = {}
    for at_once in (False, True):
        monkeypatch.setattr(mix, "all_pairs_at_once", lambda images: at_once)
        blended, swapped = images.clone(), images.clone()
        mix.mixup_in_place(blended, 0.37)
        mix.swap_with_partners(swapped[..., 2:7, 3:11])
        results[at_once] = blended, swapped
    assert all(torch.equal(a, b) for a, b in zip(results[False], results[True]))
    assert torch.equal(results[True][1][..., 2:7, 3:11], images.flip(0)[..., 2:7, 3:11])


def test_temporal_repeat_is_an_expand_view():
    images, labels = batch(), torch.arange(B)
    op = get_op("temporal_repeat")(steps=4)
    repeated, same_labels = op(images, labels)
    assert repeated.shape == (B, 4, 3, 12, 16) and same_labels is labels
    assert repeated.data_ptr() == images.data_ptr() and repeated.stride(1) == 0
    for t in range(4):
        assert torch.equal(repeated[:, t], images)



@pytest.mark.parametrize("at_once", [False, True])  # the CPU's way, a GPU's way
@pytest.mark.parametrize("size", [1, 7, 8, 37, 40])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_mixing_is_in_place_and_equals_the_out_of_place_maths(size, dtype, at_once, monkeypatch):
    """Odd and even batches, pair by pair or all pairs at once: the values of the out-of-place
    maths (float64 here), written into the images' own memory, in their own dtype."""
    monkeypatch.setattr(mix, "all_pairs_at_once", lambda images: at_once)
    generator = torch.Generator().manual_seed(size)
    images = torch.rand(size, 3, 6, 10, generator=generator).to(dtype)
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.arange(size)
    for op in (Mixup(num_classes=size, label_smoothing=0.0),
               Cutmix(num_classes=size, label_smoothing=0.0)):
        bound(op)
        for _ in range(3):
            before, pointer = images.clone(), images.data_ptr()
            mixed, targets = op(images, labels)
            assert mixed.data_ptr() == pointer and mixed.dtype == dtype
            assert mixed.is_contiguous(memory_format=torch.channels_last)
            if isinstance(op, Mixup):
                lam = targets[0, 0].item() if size > 1 else 1.0
                ref = lam * before.double() + (1 - lam) * before.double().flip(0)
                tol = 1e-6 if dtype == torch.float32 else 2e-3
                assert torch.allclose(mixed.double(), ref, atol=tol, rtol=0)
            else:
                pasted = (mixed != before).any(1, keepdim=True).expand_as(before)
                assert torch.equal(mixed[pasted], before.flip(0)[pasted])
                assert torch.equal(mixed[~pasted], before[~pasted])
            images = mixed


FLOAT32 = ImageType(12, 16, 3, "float32", "HWC", "cpu", True)


def split(op):
    """``op`` bound, and its image half for the JIT stage (``split_for_jit``)."""
    return bound(op), op.split_for_jit(FLOAT32)


@pytest.mark.parametrize("make", [lambda: Mixup(num_classes=10, alpha=0.7),
                                  lambda: Cutmix(num_classes=10),
                                  lambda: MixupCutmix(num_classes=10, prob=0.8)])
@pytest.mark.parametrize("shape", [(8, 12, 16, 3), (7, 13, 11, 3), (1, 5, 4, 3), (6, 32, 24, 3)])
def test_pairs_in_the_jit_stage_give_the_batch_ops_bytes(make, shape):
    """The JIT stage's pairs then the op after the loader equal the op on the batch alone
    (torch.lerp's arithmetic, odd batches and odd sizes, several batches in a row)."""
    reference = bound(make())
    op, pairs = split(make())
    generator = torch.Generator().manual_seed(shape[0] * shape[1])
    labels = torch.arange(shape[0]) % 10
    for _ in range(6):
        images = torch.randn(*shape, generator=generator)  # (B, H, W, C): the JIT stage's
        expected, expected_targets = reference(images.clone().permute(0, 3, 1, 2), labels)
        mixed = torch.from_numpy(pairs.apply(images.numpy().copy())).permute(0, 3, 1, 2)
        same_images, targets = op(mixed, labels)
        assert same_images is mixed
        assert torch.equal(mixed, expected) and torch.equal(targets, expected_targets)


def test_a_new_loader_thread_continues_from_the_batches_consumed():
    """A thread that stopped early prefetched batches nobody took: the next epoch's thread
    draws from the batches consumed on, as the op after the loader would; each batch's
    targets come from the decision taken for its own images."""
    import threading

    reference = bound(Mixup(num_classes=B))
    op, _ = split(Mixup(num_classes=B))
    expected = [reference.decide(reference.next_key(), 4, 4) for _ in range(4)]
    slots = [torch.zeros(B, 3, 4, 4) for _ in range(3)]  # FFCV's batch buffers

    def produce(count):
        thread = threading.Thread(target=lambda: [op.produce(slot.data_ptr(), 4, 4)
                                                  for slot in slots[:count]])
        thread.start()
        thread.join()

    produce(3)
    assert np.array_equal(op.consume(slots[0]), expected[0])  # one consumed, two prefetched
    produce(3)
    assert [list(op.consume(slot)) for slot in (slots[1], slots[0], slots[2])] == \
        [list(expected[2]), list(expected[1]), list(expected[3])]
    op.restart()  # set_epoch: batch 0 again
    produce(1)
    assert np.array_equal(op.consume(slots[0]), expected[0])


def test_targets_without_mixed_images_is_one_line():
    op, _ = split(Cutmix(num_classes=3))
    with pytest.raises(BatchHandoffError) as error:
        op(torch.zeros(2, 3, 4, 4), torch.arange(2))
    assert str(error.value) == ("'cutmix': no batch was mixed in the JIT stage for these "
                                "targets (build the loader from the same CompiledPipeline)")


def test_only_float32_and_pairwise_ops_split():
    assert bound(Mixup(num_classes=3)).split_for_jit(FLOAT32.but(dtype="float16")) is None
    assert get_op("temporal_repeat")(steps=2).split_for_jit(FLOAT32) is None
