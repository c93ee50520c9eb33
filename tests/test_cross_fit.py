"""Cross-fitted linear heads (model/cross_fit.py) and the out-of-fold label evidence (model/estimate.py)."""

from __future__ import annotations

import numpy as np
import torch

from auditor.model import cross_fit
from auditor.model.cross_fit import fit_sample, fold_count, out_of_fold_probabilities, stratified_folds
from auditor.model.estimate import label_evidence_out_of_fold


def test_stratified_folds_spread_every_class_over_the_folds():
    labels = np.array([0] * 12 + [1] * 3 + [2] * 7)
    fold = stratified_folds(labels, 5, seed=3)
    for k, n in ((0, 12), (1, 3), (2, 7)):
        counts = np.bincount(fold[labels == k], minlength=5)
        assert counts.max() - counts.min() <= 1 and counts.sum() == n and (counts > 0).sum() == min(n, 5)
    assert np.array_equal(fold, stratified_folds(labels, 5, seed=3))
    assert not np.array_equal(fold, stratified_folds(labels, 5, seed=4))


def _clusters(n_per_class: int = 40, k: int = 3, dim: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = 4.0 * torch.eye(k, dim)
    labels = torch.arange(k).repeat_interleave(n_per_class)
    x = centres[labels] + torch.randn(len(labels), dim, generator=g)
    return x, labels


def test_a_wrong_label_is_judged_by_heads_that_did_not_fit_it():
    x, true = _clusters()
    given = true.clone()
    wrong = torch.arange(0, len(given), 10)  # 12 of 120 labels moved to the next class
    given[wrong] = (given[wrong] + 1) % 3
    p = out_of_fold_probabilities(x, given, 3, folds=5, seed=0)
    assert p.shape == (120, 3) and torch.allclose(p.sum(1), torch.ones(120), atol=1e-5)
    rows = torch.arange(120)
    assert (p[wrong, given[wrong]] < 0.5).all()  # the given, wrong label is unlikely
    assert (p[wrong].argmax(1) == true[wrong]).all()  # the true class is the likeliest
    right = torch.ones(120, dtype=torch.bool)
    right[wrong] = False
    assert (p[rows, given][right] > 0.5).float().mean() > 0.9


def test_clips_outside_the_mask_are_neither_fitted_nor_predicted():
    x, labels = _clusters()
    mask = torch.ones(120, dtype=torch.bool)
    mask[::7] = False
    p = out_of_fold_probabilities(x, labels, 3, mask=mask)
    assert torch.equal(p[~mask], torch.full((int((~mask).sum()), 3), 1 / 3))
    noisy_x = x.clone()
    noisy_x[~mask] = 1e6  # what is outside the mask does not reach the fit
    assert torch.allclose(out_of_fold_probabilities(noisy_x, labels, 3, mask=mask), p)
    assert torch.equal(out_of_fold_probabilities(x[:6], labels[:6], 3), torch.full((6, 3), 1 / 3))


def test_the_label_evidence_takes_the_most_confident_head_the_sound_as_far_as_it_belongs():
    labels = torch.tensor([0, 0, 0])
    heads = {"p_v": torch.tensor([[0.1, 0.9], [0.1, 0.9], [0.8, 0.2]]),
             "p_a": torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9]]),
             "p_av": torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])}
    w = torch.tensor([1.0, 0.0, 1.0])
    ce = label_evidence_out_of_fold(heads, labels, w)
    # clip 0: a hard picture whose sound (which belongs) agrees; clip 1: the same sound does not belong
    assert torch.allclose(ce, -torch.log(torch.tensor([0.9, 0.1, 0.8])))


def test_fit_sample_keeps_every_class_in_proportion():
    labels = np.array([0] * 500 + [1] * 300 + [2] * 200 + [3] * 7)
    rows = fit_sample(labels, 100, seed=1)
    assert len(rows) == 100 and np.array_equal(rows, np.unique(rows))
    counts = np.bincount(labels[rows], minlength=4)
    expected = 100 * np.bincount(labels) / len(labels)
    assert (np.abs(counts - expected) <= 1).all()
    assert np.array_equal(rows, fit_sample(labels, 100, seed=1))
    assert not np.array_equal(rows, fit_sample(labels, 100, seed=2))
    assert np.array_equal(fit_sample(labels, len(labels), seed=1), np.arange(len(labels)))


def test_heads_fitted_on_a_sample_still_predict_every_clip(monkeypatch):
    x, labels = _clusters(n_per_class=60)
    whole = out_of_fold_probabilities(x, labels, 3, folds=5, seed=0)
    monkeypatch.setattr(cross_fit, "FIT_ROWS_MAX", 144)  # the 144 training clips of a fold of 180: all of them
    assert torch.equal(out_of_fold_probabilities(x, labels, 3, folds=5, seed=0), whole)
    monkeypatch.setattr(cross_fit, "FIT_ROWS_MAX", 30)
    sampled = out_of_fold_probabilities(x, labels, 3, folds=5, seed=0)
    assert sampled.shape == (180, 3) and torch.allclose(sampled.sum(1), torch.ones(180), atol=1e-5)
    assert not torch.equal(sampled, whole)


def test_fewer_folds_when_every_fold_s_training_part_holds_a_full_sample(monkeypatch):
    assert fold_count(20_000, 5) == 5  # 16,000 training clips a fold at 5 folds, fewer at 2-4
    assert fold_count(25_000, 5) == 3 and fold_count(32_000, 5) == 2 and fold_count(200_000, 5) == 2
    assert fold_count(1_000, 5) == 5 and fold_count(10**6, 2) == 2
    x, labels = _clusters(n_per_class=60)
    fits = []
    fit = cross_fit._fit_linear
    monkeypatch.setattr(cross_fit, "_fit_linear", lambda *a: fits.append(len(a[0])) or fit(*a))
    out_of_fold_probabilities(x, labels, 3, folds=5, seed=0)
    assert fits == [144] * 5
    fits.clear()
    monkeypatch.setattr(cross_fit, "FIT_ROWS_MAX", 60)  # 90 training clips at 2 folds: a full sample of 60
    p = out_of_fold_probabilities(x, labels, 3, folds=5, seed=0)
    assert fits == [60, 60] and p.shape == (180, 3)
    assert (p.argmax(1) == labels).float().mean() > 0.9  # every clip still judged, by the other half's head


def test_column_blocks_give_the_heads_of_the_whole_features_in_any_prediction_chunks(monkeypatch):
    x, labels = _clusters(n_per_class=60)
    mask = torch.ones(180, dtype=torch.bool)
    mask[::9] = False
    whole = out_of_fold_probabilities(x, labels, 3, folds=5, seed=1, mask=mask)
    assert torch.allclose(out_of_fold_probabilities((x[:, :3], x[:, 3:]), labels, 3, folds=5, seed=1, mask=mask),
                          whole, atol=1e-6)
    monkeypatch.setattr(cross_fit, "PREDICT_ROWS", 7)
    assert torch.allclose(out_of_fold_probabilities((x[:, :5], x[:, 5:]), labels, 3, folds=5, seed=1, mask=mask),
                          whole, atol=1e-6)


def _noisy_separable(seed: int = 0):
    """4 classes, 50 clips each, in 64 dimensions of which 4 tell the classes; 40% of the labels moved at random."""
    g = torch.Generator().manual_seed(seed)
    true = torch.arange(4).repeat_interleave(50)
    x = 5.0 * torch.eye(4, 64)[true] + torch.randn(len(true), 64, generator=g)
    given = true.clone()
    moved = torch.rand(len(true), generator=g) < 0.4
    given[moved] = (given[moved] + torch.randint(1, 4, (int(moved.sum()),), generator=g)) % 4
    return x, given, true


def test_the_chosen_penalty_keeps_the_heads_from_following_the_wrong_labels():
    x, given, true = _noisy_separable()
    chosen = out_of_fold_probabilities(x, given, 4, folds=5, seed=0, penalties=cross_fit.PENALTIES)
    weakest = out_of_fold_probabilities(x, given, 4, folds=5, seed=0)  # the one ridge weight L2_PENALTY
    right = [float((p.argmax(1) == true).float().mean()) for p in (chosen, weakest)]
    assert right[0] > right[1] + 0.15  # measured 0.745 against 0.47


def test_the_penalty_is_the_one_whose_head_predicts_fold_0_s_held_out_labels_best(monkeypatch):
    x, given, _ = _noisy_separable(seed=1)
    fold = torch.from_numpy(stratified_folds(given.numpy(), 5, 0))
    chosen = cross_fit.choose_penalty(lambda rows: x[rows], given, fold, 4, 0, torch.device("cpu"))
    held, train = fold == 0, fold != 0
    mean, std = x[train].mean(0), x[train].std(0)
    losses = {}
    for penalty in cross_fit.PENALTIES:  # each fitted from zero weights: the same minimum of a convex loss
        w, b = cross_fit._fit_linear((x[train] - mean) / std, given[train], 4, penalty)
        losses[penalty] = float(torch.nn.functional.cross_entropy((x[held] - mean) / std @ w + b, given[held]))
    assert chosen == min(losses, key=losses.get) and chosen > min(cross_fit.PENALTIES)
    assert cross_fit.choose_penalty(lambda rows: x[rows], given, fold, 4, 0, torch.device("cpu"), (0.5,)) == 0.5
    sizes = []
    fit = cross_fit._fit_linear
    monkeypatch.setattr(cross_fit, "_fit_linear", lambda *a: sizes.append(len(a[0])) or fit(*a))
    monkeypatch.setattr(cross_fit, "SELECT_ROWS", 40)  # fold 0's 160 training clips: a sample of 40
    cross_fit.choose_penalty(lambda rows: x[rows], given, fold, 4, 0, torch.device("cpu"))
    assert sizes == [40] * len(cross_fit.PENALTIES)
