"""Loss terms of method.md against values computed by hand on tiny tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from auditor.model.losses import (
    category_contrastive,
    cross_modal_infonce,
    hybrid_loss,
    sce,
    soft_cross_entropy,
)


def test_sce_matches_hand_computed_value():
    logits = torch.tensor([[math.log(0.7), math.log(0.2), math.log(0.1)]])
    # CE = -log 0.7; RCE = -A (1 - p_y) = 4 * 0.3
    want = 0.1 * -math.log(0.7) + 1.0 * 4.0 * 0.3
    assert sce(logits, torch.tensor([0])).item() == pytest.approx(want, rel=1e-5)
    # wrong label y = 2: CE = -log 0.1, RCE = 4 * 0.9
    assert sce(logits, torch.tensor([2])).item() == pytest.approx(0.1 * -math.log(0.1) + 4 * 0.9, rel=1e-5)


def test_sce_soft_target_equals_hard_for_one_hot():
    logits = torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 3, 0])
    assert torch.allclose(sce(logits, y), sce(logits, torch.nn.functional.one_hot(y, 4).float()), atol=1e-6)


def test_cross_modal_infonce_two_pairs():
    z_v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_a = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    tau = 0.5
    # visual 0 vs sounds: sims [1, 0.6]; visual 1: [0, 0.8]; sound 0 vs pictures: [1, 0]; sound 1: [0.6, 0.8]
    def nll(row, i):
        row = [s / tau for s in row]
        return -(row[i] - math.log(sum(math.exp(s) for s in row)))

    want0 = 0.5 * (nll([1, 0.6], 0) + nll([1, 0], 0))
    want1 = 0.5 * (nll([0, 0.8], 1) + nll([0.6, 0.8], 1))
    got = cross_modal_infonce(z_v, z_a, tau)
    assert got.tolist() == pytest.approx([want0, want1], rel=1e-5)


def test_category_contrastive_hand_value_and_weights():
    z_v = torch.tensor([[1.0, 0.0]])
    z_a = torch.tensor([[0.0, 1.0]])
    mu_v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mu_a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([0])
    tau = 1.0
    v_term = -(1 - math.log(math.exp(1) + math.exp(0)))  # z_v . mu_a = [1, 0], target 0
    a_term = -(0 - math.log(math.exp(0) + math.exp(1)))  # z_a . mu_v = [0, 1], target 0
    r = torch.tensor([0.5])
    got = category_contrastive(z_v, z_a, mu_v, mu_a, t, r, tau_c=tau)
    assert got.item() == pytest.approx(0.5 * 0.5 * (v_term + a_term), rel=1e-5)
    # w = 0 removes the audio-side term
    got_w0 = category_contrastive(z_v, z_a, mu_v, mu_a, t, r, torch.tensor([0.0]), tau_c=tau)
    assert got_w0.item() == pytest.approx(0.5 * 0.5 * v_term, rel=1e-5)


def test_hybrid_loss_interpolates_between_sce_and_soft_ce():
    logits = torch.randn(3, 4)
    y = torch.tensor([0, 1, 2])
    q = torch.softmax(torch.randn(3, 4), dim=1)
    assert torch.allclose(hybrid_loss(logits, y, q, torch.ones(3)), sce(logits, y))
    assert torch.allclose(hybrid_loss(logits, y, q, torch.zeros(3)), soft_cross_entropy(logits, q))
    half = hybrid_loss(logits, y, q, torch.full((3,), 0.5))
    assert torch.allclose(half, 0.5 * sce(logits, y) + 0.5 * soft_cross_entropy(logits, q))


def test_phase_two_fits_kept_labels_with_the_full_cross_entropy():
    from auditor.model.config import TrainConfig
    from auditor.model.losses import SCE_ALPHA, sce_constants
    from auditor.train import Objective

    labels = torch.tensor([0, 0, 0, 1, 2, 3, 4, 5, 6, 7])
    cpu = torch.device("cpu")
    objective = Objective.for_labels(labels, 8, TrainConfig(), cpu)
    assert (objective.sce_alpha, objective.hybrid_alpha) == (SCE_ALPHA, 1.0)
    paper = Objective.for_labels(labels, 8, TrainConfig(hybrid_alpha=SCE_ALPHA), cpu)
    assert paper.hybrid_alpha == paper.sce_alpha == SCE_ALPHA  # method.md's hybrid loss exactly
    many = Objective.for_labels(torch.arange(100), 100, TrainConfig(), cpu)
    assert many.hybrid_alpha == many.sce_alpha == sce_constants(100)[0] == pytest.approx(6.0)  # never below SCE's


def test_cross_modal_infonce_leaves_out_exactly_the_clips_sharing_a_class():
    """Per row, the loss with class sets equals the loss over the negatives listed by hand."""
    g = torch.Generator().manual_seed(0)
    z_v = F.normalize(torch.randn(30, 8, generator=g), dim=1)
    z_a = F.normalize(torch.randn(30, 8, generator=g), dim=1)
    sets = torch.randint(0, 6, (30, 3), generator=g)
    got = cross_modal_infonce(z_v, z_a, 0.1, sets)
    for i in range(30):
        keep = [j for j in range(30) if j == i or not set(sets[i].tolist()) & set(sets[j].tolist())]
        pos = keep.index(i)
        v2a = -torch.log_softmax(z_v[i] @ z_a[keep].T / 0.1, 0)[pos]
        a2v = -torch.log_softmax(z_a[i] @ z_v[keep].T / 0.1, 0)[pos]
        assert torch.allclose(got[i], 0.5 * (v2a + a2v), atol=1e-5)
