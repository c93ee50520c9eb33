"""The Gaussian-mixture estimate separates planted clean and noisy losses; correction recovers planted labels."""

import numpy as np
import torch
import torch.nn.functional as F

from auditor.model.correction import (
    class_prototypes,
    corrected_labels,
    fused_features,
    knn_distribution,
    prototype_distribution,
)
from auditor.model.noise_estimation import clean_posterior, min_max


def test_gmm_separates_planted_bimodal_losses():
    rng = np.random.default_rng(0)
    clean = rng.normal(0.3, 0.1, 800).clip(0)
    noisy = rng.normal(2.5, 0.4, 200)
    losses = np.concatenate([clean, noisy])
    post = clean_posterior(losses)
    assert post.shape == (1000,) and post.min() >= 0 and post.max() <= 1
    assert (post[:800] > 0.5).mean() > 0.98
    assert (post[800:] < 0.5).mean() > 0.98
    # monotone: a higher loss is never judged cleaner
    order = np.argsort(losses)
    assert np.all(np.diff(post[order]) <= 1e-12)


def test_gmm_respects_mask_and_constant_input():
    losses = np.array([0.1, 0.1, 0.2, 0.15, 3.0, 3.1, 9.0])
    mask = np.array([1, 1, 1, 1, 1, 1, 0], bool)
    post = clean_posterior(losses, mask=mask)
    assert post[:4].min() > 0.5 and post[4:].max() < 0.5
    assert np.all(clean_posterior(np.ones(10)) == 1.0)
    assert np.allclose(min_max(np.array([2.0, 4.0, 3.0])), [0, 1, 0.5])


def test_prototypes_and_distributions_hand_values():
    u = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 0, 1])
    c = class_prototypes(u, labels, torch.ones(3), 2)
    assert torch.allclose(c[1], torch.tensor([0.0, 1.0]))
    q = prototype_distribution(u, c, tau_p=0.1)
    assert torch.allclose(q.sum(1), torch.ones(3))
    assert q.argmax(1).tolist() == [0, 0, 1]
    knn = knn_distribution(u, labels, torch.tensor([1.0, 1.0, 1.0]), 2, k=1)
    # nearest other clip of clip 0 is clip 1 (label 0); of clip 2 it is clip 1 (label 0)
    assert knn.tolist() == [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]


def test_fused_features_drop_audio_when_w_is_zero():
    z_v = F.normalize(torch.randn(4, 3), dim=1)
    z_a = F.normalize(torch.randn(4, 3), dim=1)
    u = fused_features(z_v, z_a, torch.zeros(4))
    assert torch.allclose(u[:, :3], z_v, atol=1e-6) and torch.all(u[:, 3:] == 0)


def test_correction_recovers_planted_labels():
    rng = np.random.default_rng(1)
    k, per = 5, 60
    centres = F.normalize(torch.randn(k, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    true = torch.arange(k).repeat_interleave(per)
    u = F.normalize(centres[true] + 0.15 * torch.randn(k * per, 16, generator=torch.Generator().manual_seed(1)), dim=1)
    given = true.clone()
    flip = torch.from_numpy(rng.random(len(true)) < 0.3)
    given[flip] = (true[flip] + torch.from_numpy(rng.integers(1, k, int(flip.sum())))) % k
    r = torch.where(flip, 0.1, 0.9)
    q, y_hat = corrected_labels(u, given, r, k)
    assert torch.allclose(q.sum(1), torch.ones(len(true)), atol=1e-5)
    assert (y_hat[flip] == true[flip]).float().mean() > 0.95
    assert (y_hat == true).float().mean() > 0.95
