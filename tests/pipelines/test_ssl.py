"""The simclr task's pieces (``pipelines.ssl``) against hand-written references: NT-Xent as
SimCLR's paper writes it (numpy, float64), the weighted kNN monitor on cases computed by hand,
the feature bank."""
import math

import numpy as np
import pytest
import torch

from pipelines.ssl import (FeatureBank, SimCLRNetwork, knn_predict, nt_xent_loss,
                           projection_head, resnet_backbone, views_features)


def nt_xent_reference(z: np.ndarray, copies: int, temperature: float) -> float:
    """Every row against every other, written out: rows k * N + i are sample i's copies."""
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    rows = len(z)
    n = rows // copies
    total = 0.0
    for a in range(rows):
        denominator = sum(math.exp(z[a] @ z[b] / temperature) for b in range(rows) if b != a)
        positives = [b for b in range(rows) if b != a and b % n == a % n]
        total += np.mean([-math.log(math.exp(z[a] @ z[p] / temperature) / denominator)
                          for p in positives])
    return total / rows


def simclr_paper_loss(z: np.ndarray, temperature: float) -> float:
    """SimCLR's Algorithm 1: views 2k and 2k + 1 of sample k, L = 1/2N sum_k [l(2k, 2k+1) +
    l(2k+1, 2k)], l(i, j) = -log exp(s_ij / t) / sum_{m != i} exp(s_im / t)."""
    n = len(z) // 2
    paired = np.empty_like(z)  # interleaved: x_0 view a, x_0 view b, x_1 view a, ...
    paired[0::2], paired[1::2] = z[:n], z[n:]
    s = paired @ paired.T / np.outer(np.linalg.norm(paired, axis=1),
                                     np.linalg.norm(paired, axis=1))

    def pair_loss(i, j):
        return -math.log(math.exp(s[i, j] / temperature) /
                         sum(math.exp(s[i, m] / temperature) for m in range(2 * n) if m != i))

    return sum(pair_loss(2 * k, 2 * k + 1) + pair_loss(2 * k + 1, 2 * k)
               for k in range(n)) / (2 * n)


@pytest.mark.parametrize("copies,n,temperature", [(2, 5, 0.5), (2, 8, 0.1), (3, 4, 0.5),
                                                  (6, 3, 0.2)])
def test_nt_xent_matches_the_reference(copies, n, temperature):
    rng = np.random.default_rng(copies * 100 + n)
    z = rng.normal(size=(copies * n, 7))
    got = nt_xent_loss(torch.tensor(z, dtype=torch.float32), copies, temperature).item()
    assert got == pytest.approx(nt_xent_reference(z, copies, temperature), rel=1e-5)
    if copies == 2:
        assert got == pytest.approx(simclr_paper_loss(z, temperature), rel=1e-5)


def test_nt_xent_ignores_scale_and_rewards_agreeing_copies():
    rng = np.random.default_rng(0)
    z = torch.tensor(rng.normal(size=(8, 16)), dtype=torch.float32)
    assert nt_xent_loss(z, 2).item() == pytest.approx(nt_xent_loss(3 * z, 2).item(), rel=1e-5)
    agreeing = torch.cat([z[:4], z[:4] + 0.01 * z[4:]])
    assert nt_xent_loss(agreeing, 2).item() < nt_xent_loss(z, 2).item()
    # perfect agreement over orthogonal samples: -log(e^(1/t) / (e^(1/t) + 2(n-1)))
    eye = torch.eye(4)
    expected = -math.log(math.exp(2) / (math.exp(2) + 6))
    assert nt_xent_loss(torch.cat([eye, eye]), 2, 0.5).item() == pytest.approx(expected, rel=1e-5)


def test_nt_xent_refuses_fewer_than_two_copies_and_ragged_batches():
    with pytest.raises(ValueError, match="at least two copies"):
        nt_xent_loss(torch.ones(4, 3), 1)
    with pytest.raises(ValueError, match="5 embeddings are not 2 copies"):
        nt_xent_loss(torch.ones(5, 3), 2)


def test_knn_separates_two_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0]])
    bank = np.concatenate([centres[c] + 0.2 * rng.normal(size=(30, 4)) for c in (0, 1)])
    labels = np.repeat([0, 1], 30)
    queries = np.concatenate([centres[c] + 0.2 * rng.normal(size=(10, 4)) for c in (0, 1)])
    got = knn_predict(torch.tensor(queries), torch.tensor(bank), torch.tensor(labels), 2)
    assert got.tolist() == [0] * 10 + [1] * 10
    assert got.dtype == torch.int64


def test_knn_weights_votes_by_exp_similarity_over_temperature():
    # three neighbours of the query (1, 0): class 0 at cos 0.9, class 1 at cos 0.8 and 0.79;
    # exp(0.9 / 0.07) = 3.8e5 outweighs exp(0.8 / 0.07) + exp(0.79 / 0.07) = 1.7e5
    def at(cos):
        return [cos, math.sqrt(1 - cos ** 2)]

    bank = torch.tensor([at(0.9), at(0.8), at(0.79), at(-0.5)])
    labels = torch.tensor([0, 1, 1, 0])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_predict(query, bank, labels, 2, k=3).item() == 0
    # at temperature 1 the weights are nearly equal: two votes beat one
    assert knn_predict(query, bank, labels, 2, k=3, temperature=1.0).item() == 1
    # k = 1 is the nearest neighbour; k beyond the bank uses the whole bank
    assert knn_predict(query, bank[1:], labels[1:], 2, k=1).item() == 1
    assert knn_predict(query, bank, labels, 3, k=20).item() == 0
    with pytest.raises(ValueError, match="empty"):
        knn_predict(query, bank[:0], labels[:0], 2)


def test_the_bank_keeps_copies_up_to_its_size():
    bank = FeatureBank(size=5)
    assert bank.tensors() is None
    labels = torch.tensor([1, 2, 3])
    bank.add(torch.ones(3, 2), labels)
    labels[0] = 9  # the loader refills its buffer: the bank kept a copy
    bank.add(torch.zeros(3, 2), torch.tensor([[4], [5], [6]]))
    features, kept = bank.tensors()
    assert features.shape == (5, 2) and kept.tolist() == [1, 2, 3, 4, 5]
    bank.reset()
    assert bank.tensors() is None and bank.count == 0


def test_the_network_is_the_backbone_with_a_projection_head():
    backbone, features = resnet_backbone("resnet18", width=8)
    assert features == 64 and "fc.weight" not in dict(backbone.named_parameters())
    network = SimCLRNetwork(backbone, features, proj_dim=16)
    head = projection_head(64, 16)
    assert [type(m).__name__ for m in head] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[3].out_features) == (64, 64, 16)
    views = {"global": [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)],
             "local": [torch.randn(2, 3, 16, 16)]}
    out = views_features(network, views)
    assert out.shape == (6, 64)
    network.eval()
    with torch.no_grad():
        torch.testing.assert_close(views_features(network, views)[4:],
                                   network(views["local"][0]))
