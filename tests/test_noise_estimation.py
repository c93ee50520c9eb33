"""The Gaussian-mixture estimate separates planted clean and noisy losses, invents no noisy component in one
population, normalises per class; correction recovers planted labels and fills small classes' neighbourhoods."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auditor.model.correction import (
    class_prototypes,
    corrected_labels,
    fused_features,
    knn_distribution,
    prototype_distribution,
)
from auditor.model.losses import sce_constants
from auditor.model.noise_estimation import (
    CENTRE_QUANTILE,
    MIN_CLIP_EVIDENCE,
    MIN_EVIDENCE_GAP,
    SOUND_MIN_CLIP_EVIDENCE,
    TIE_BREAK,
    class_normalise,
    clean_posterior,
    min_max,
    mixture_posterior,
)


def test_gmm_separates_planted_bimodal_losses():
    rng = np.random.default_rng(0)
    # in nats, as the label evidence is: clean labels near 0, wrong ones several nats
    clean = rng.normal(0.3, 0.1, 800).clip(0)
    noisy = rng.normal(6.0, 1.0, 200)
    losses = np.concatenate([clean, noisy])
    post = clean_posterior(losses)
    assert post.shape == (1000,) and post.min() >= 0 and post.max() <= 1
    assert (post[:800] > 0.5).mean() > 0.98
    assert (post[800:] < 0.5).mean() > 0.98
    # monotone: a higher loss is never judged cleaner
    order = np.argsort(losses)
    assert np.all(np.diff(post[order]) <= 1e-12)


def test_gmm_respects_mask_and_constant_input():
    losses = np.array([0.1, 0.1, 0.2, 0.15, 0.12, 0.18, 0.11, 0.14, 0.16, 0.13, 6.0, 6.2, 5.8, 19.0])
    mask = np.ones(14, bool)
    mask[-1] = False  # not fitted on, still scored
    post = clean_posterior(losses, mask=mask)
    assert post[:10].min() > 0.5 and post[10:].max() < 0.5
    assert np.all(clean_posterior(np.ones(10)) == 1.0)
    assert np.allclose(min_max(np.array([2.0, 4.0, 3.0])), [0, 1, 0.5])


def test_prototypes_and_distributions_hand_values():
    u = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 0, 1])
    c = class_prototypes(u, labels, torch.ones(3), 2)
    assert torch.allclose(c[1], torch.tensor([0.0, 1.0]))
    q = prototype_distribution(u, labels, torch.ones(3), 2, tau_p=0.1)
    assert torch.allclose(q.sum(1), torch.ones(3))
    # leave-one-out: clip 0's own-class prototype is clip 1 alone, clip 2's class has no other clip (cosine 0)
    expected0 = torch.softmax(torch.tensor([u[0] @ u[1], u[0] @ c[1]]) / 0.1, 0)
    assert torch.allclose(q[0], expected0, atol=1e-6)
    expected2 = torch.softmax(torch.tensor([u[2] @ c[0], 0.0]) / 0.1, 0)
    assert torch.allclose(q[2], expected2, atol=1e-6)
    knn = knn_distribution(u, labels, torch.tensor([1.0, 1.0, 1.0]), 2, k=1)
    # nearest other clip of clip 0 is clip 1 (label 0); of clip 2 it is clip 1 (label 0)
    assert knn.tolist() == [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]


def test_fused_features_replace_a_mismatched_sound_by_the_picture():
    z_v = F.normalize(torch.randn(4, 3), dim=1)
    z_a = F.normalize(torch.randn(4, 3), dim=1)
    u = fused_features(z_v, z_a, torch.zeros(4))
    assert torch.allclose(u, torch.cat([z_v, z_v], 1) / 2 ** 0.5, atol=1e-6)
    u1 = fused_features(z_v, z_a, torch.ones(4))
    assert torch.allclose(u1, torch.cat([z_v, z_a], 1) / 2 ** 0.5, atol=1e-6)


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


def test_one_population_gets_no_invented_noisy_component():
    rng = np.random.default_rng(3)
    for losses in (rng.normal(1.0, 0.2, 600), rng.exponential(0.3, 600), rng.lognormal(-1.5, 0.6, 600)):
        fit = mixture_posterior(losses)
        assert not fit.two_populations, fit.summary()
        assert fit.clean.min() >= 1 - TIE_BREAK
        # the order of the evidence is kept for ranking
        order = np.argsort(losses)
        assert np.all(np.diff(fit.clean[order]) <= 1e-12)


def test_two_populations_are_found_and_reported():
    rng = np.random.default_rng(4)
    losses = np.concatenate([rng.normal(0.3, 0.1, 900), rng.normal(6.0, 1.0, 100)])
    fit = mixture_posterior(losses)
    assert fit.two_populations and fit.evidence_gap > MIN_EVIDENCE_GAP and 0.85 < fit.clean_share < 0.95
    assert (fit.clean[900:] < 0.5).mean() > 0.95 and (fit.clean[:900] > 0.5).mean() > 0.98


def test_class_normalisation_keeps_a_hard_class_and_finds_an_easy_class_noise():
    rng = np.random.default_rng(5)
    # class 0 is hard (all its clean losses high), class 1 easy with 10% planted noise at the hard class's level
    hard = rng.normal(4.0, 0.3, 300)
    easy = rng.normal(0.2, 0.05, 300)
    noisy = np.arange(600) % 10 == 0
    noisy[:300] = False
    easy[noisy[300:]] = rng.normal(4.0, 0.3, noisy[300:].sum())
    losses = np.concatenate([hard, easy])
    labels = np.repeat([0, 1], 300)
    fit = mixture_posterior(losses, labels=labels)
    assert (fit.clean[:300] > 0.5).mean() > 0.97  # the hard class is not flagged wholesale
    assert (fit.clean[noisy] < 0.5).mean() > 0.9
    z = class_normalise(losses, labels)
    assert abs(np.quantile(z[:300], CENTRE_QUANTILE)) < 0.3  # its low quantile, shrunk toward the pool by 20/320


def test_knn_fills_a_small_class_neighbourhood():
    # a class of 4 tight clips among 40 clips of another class: each small-class clip has 3 same-class neighbours
    g = torch.Generator().manual_seed(0)
    big = F.normalize(torch.tensor([1.0, 0.0]) + 0.05 * torch.randn(40, 2, generator=g), dim=1)
    small = F.normalize(torch.tensor([0.0, 1.0]) + 0.05 * torch.randn(4, 2, generator=g), dim=1)
    u = torch.cat([big, small])
    labels = torch.tensor([0] * 40 + [1] * 4)
    knn = knn_distribution(u, labels, torch.ones(44), 2, k=10)
    assert torch.allclose(knn[40:, 1], torch.ones(4))


def test_sce_constants_follow_the_number_of_classes():
    assert sce_constants(8) == (0.1, 1.0)
    assert sce_constants(100) == pytest.approx((6.0, 0.1))
    a32, b32 = sce_constants(32)
    assert 0.1 < a32 < 6.0 and 0.1 < b32 < 1.0


def test_the_wide_component_does_not_claim_the_low_tail():
    # a narrow clean component and a wide noisy one: at the far left the wide one's density wins, which must not
    # make the cleanest clips (and, by monotonicity, every clip) noisy
    rng = np.random.default_rng(6)
    losses = np.concatenate([rng.normal(3.0, 0.9, 460), rng.normal(7.0, 3.0, 120), [0.0, 0.1]])
    fit = mixture_posterior(losses)
    assert fit.two_populations
    assert fit.clean[-2:].min() > 0.99 and (fit.clean < 0.5).mean() < 0.3


def test_a_clip_needs_clear_evidence_of_its_own_to_be_flagged():
    # sound evidence as measured: clean pairs around 3 nats with a long right tail, 5% mismatched near 8 nats;
    # the clean tail (below the clean mean + MIN_CLIP_EVIDENCE) must stay unflagged however wide the noisy component is
    rng = np.random.default_rng(8)
    clean = 3.0 + rng.gamma(2.0, 0.5, 950)
    noisy = rng.normal(8.5, 0.8, 50)
    fit = mixture_posterior(np.concatenate([clean, noisy]))
    assert fit.two_populations
    flagged = fit.clean < 0.5
    threshold = clean[clean < np.percentile(clean, 95)].mean() + MIN_CLIP_EVIDENCE
    assert not flagged[:950][clean < threshold - 0.3].any()
    assert flagged[950:].mean() > 0.9


def test_swapped_sounds_two_nats_above_the_clean_ones_are_flagged():
    # sound evidence of real recordings: swapped sounds sit 1-3 nats above the clean pairs (a gap of about 2 nats),
    # not many nats as wrong labels do; a per-clip bar above the gap itself would leave most of them unflagged
    rng = np.random.default_rng(9)
    clean, swapped = rng.normal(0.0, 0.4, 900), rng.normal(2.2, 0.5, 100)
    fit = mixture_posterior(np.concatenate([clean, swapped]), min_clip_evidence=SOUND_MIN_CLIP_EVIDENCE)
    assert fit.two_populations and fit.evidence_gap < 3.0
    flagged = fit.clean < 0.5
    assert flagged[900:].mean() > 0.8
    assert flagged[:900].mean() < 0.01


def test_a_class_with_more_noisy_than_clean_clips_keeps_its_noise_flagged():
    # class 0 holds 65% wrongly labelled clips, classes 1 and 2 hold 20%: the median of class 0 lies among its
    # noisy clips, so centring on it would shift them down to where the other classes' clean clips are
    rng = np.random.default_rng(7)
    labels = np.repeat([0, 1, 2], 200)
    noisy = np.zeros(600, bool)
    for k, share in ((0, 0.65), (1, 0.2), (2, 0.2)):
        noisy[k * 200:k * 200 + int(share * 200)] = True
    losses = np.where(noisy, rng.normal(9.0, 1.5, 600), rng.gamma(1.0, 0.15, 600))
    fit = mixture_posterior(losses, labels=labels)
    assert fit.two_populations
    assert (fit.clean[noisy] < 0.5).mean() > 0.97
    assert (fit.clean[~noisy] > 0.5).mean() > 0.98
