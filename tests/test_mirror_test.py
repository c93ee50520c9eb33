"""The mirror test (model/mirror_test.py) and the training state that applies its decision (TrainConfig.flip_frames)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from auditor.model.config import TrainConfig
from auditor.model.cross_fit import out_of_fold_probabilities, out_of_fold_transfer
from auditor.model.mirror_test import MirrorTest, mirror_test
from auditor.train import MIRROR_UNDECIDED, NoiseState

K, N, C = 5, 300, 8


def _features(labels: torch.Tensor, seed: int, spread: float = 0.5) -> torch.Tensor:
    """(N, C): class k's clips around centre k (fixed), with Gaussian spread."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(K, C, generator=torch.Generator().manual_seed(0)) * 2
    return centres[labels] + spread * torch.randn(len(labels), C, generator=g)


@pytest.fixture
def labels() -> torch.Tensor:
    return torch.arange(N) % K


def test_a_view_equal_to_the_features_gets_their_out_of_fold_probabilities_exactly(labels):
    x = _features(labels, 1, spread=2.0)
    p, p_other = out_of_fold_transfer(x, x.clone(), labels, K, seed=3)
    want = out_of_fold_probabilities(x, labels, K, seed=3)
    assert torch.equal(p, want) and torch.equal(p_other, want)
    assert not torch.allclose(p, torch.full_like(p, 1 / K))


def test_mirror_images_that_look_like_their_class_keep_it_and_ones_like_another_class_do_not(labels):
    h = _features(labels, 1)
    kept = mirror_test(h, _features(labels, 2), labels, K)
    assert kept.learnt and kept.keeps_class and kept.accuracy > 0.9 and kept.mirrored_accuracy > 0.9
    swapped = mirror_test(h, _features((labels + 1) % K, 2), labels, K)  # each mirror image looks like the next class
    assert swapped.learnt and not swapped.keeps_class and swapped.mirrored_accuracy < 0.1
    assert swapped.accuracy == kept.accuracy and swapped.trivial_accuracy == kept.trivial_accuracy == 1 / K
    noise = torch.randn(N, C, generator=torch.Generator().manual_seed(4))  # the heads learnt nothing
    blind = mirror_test(noise, noise.flip(0), labels, K)
    assert not blind.learnt and not blind.keeps_class


def test_the_test_counts_as_learnt_only_well_above_the_trivial_head_and_decides_only_far_from_its_threshold():
    # learnt: a - a0 against 4 standard errors sqrt(a (1 - a) / N) of a
    assert MirrorTest(0.40, 0.40, 0.30, 1000, 0.01).learnt  # 0.10 >= 4 * 0.0155
    assert not MirrorTest(0.35, 0.35, 0.30, 1000, 0.01).learnt  # 0.05 < 4 * 0.0151
    assert not MirrorTest(0.40, 0.40, 0.30, 100, 0.01).learnt  # 0.10 < 4 * 0.049
    # keeps the class: D = (a' - a0) - (a - a0) / 2 >= 0; decisive: |D| >= 3 standard errors of D
    kept, lost = MirrorTest(0.60, 0.46, 0.30, 1000, 0.005), MirrorTest(0.60, 0.44, 0.30, 1000, 0.005)
    assert kept.margin == pytest.approx(0.01) and kept.keeps_class and not kept.decisive
    assert lost.margin == pytest.approx(-0.01) and not lost.keeps_class and not lost.decisive
    assert MirrorTest(0.60, 0.46, 0.30, 1000, 0.003).decisive and MirrorTest(0.60, 0.44, 0.30, 1000, 0.003).decisive
    assert not MirrorTest(0.35, 0.40, 0.30, 1000, 0.003).keeps_class  # not learnt: nothing shows the class is kept
    assert lost.summary() == {"accuracy": 0.6, "mirrored_accuracy": 0.44, "trivial_accuracy": 0.3, "clips": 1000,
                              "margin": -0.01, "margin_se": 0.005, "learnt": True, "decisive": False,
                              "keeps_class": False}


def test_the_margins_standard_error_is_that_of_the_paired_per_clip_terms(labels):
    h = _features(labels, 1, spread=3.0)
    test = mirror_test(h, _features(labels, 2, spread=3.0), labels, K)
    p, p_m = out_of_fold_transfer(h, _features(labels, 2, spread=3.0), labels, K)
    d = (p_m.argmax(1) == labels).double() - 0.5 * (p.argmax(1) == labels).double()
    assert test.margin == pytest.approx(float(d.mean()) - 0.5 / K)
    assert test.margin_se == pytest.approx(float(d.std(unbiased=False)) / N ** 0.5)
    assert 0 < test.margin_se < 0.05


def test_auto_trains_unmirrored_until_a_test_is_decisive_and_then_as_it_decided():
    cfg = TrainConfig(epochs_phase1=6, epochs_phase2=2, warmup_epochs=3)
    unclear = MirrorTest(0.6, 0.46, 0.3, 500, 0.02)  # keeps the class, but within 3 standard errors of the threshold
    kept, swapped = MirrorTest(0.8, 0.8, 0.3, 500, 0.02), MirrorTest(0.8, 0.3, 0.3, 500, 0.02)
    state = NoiseState.initial(torch.ones(4, dtype=torch.bool), 2, 3)
    assert int(state.mirror) == MIRROR_UNDECIDED and not state.mirrors_frames(cfg) and state.mirror_test_due(cfg)
    for epoch in (0, 1):  # not decisive before the warm-up's last epoch: still undecided, not mirrored
        state.take_mirror_test(unclear, epoch, cfg)
        assert int(state.mirror) == MIRROR_UNDECIDED and not state.mirrors_frames(cfg)
    state.take_mirror_test(unclear, 2, cfg)  # the warm-up's last epoch decides as the test says
    assert int(state.mirror) == 1 and state.mirrors_frames(cfg) and not state.mirror_test_due(cfg)
    for test, mirrors in ((kept, True), (swapped, False)):
        state = NoiseState.initial(torch.ones(4, dtype=torch.bool), 2, 3)
        state.take_mirror_test(test, 0, cfg)
        assert state.mirrors_frames(cfg) is mirrors and not state.mirror_test_due(cfg)
        restored = NoiseState.from_checkpoint(state.as_dict(), torch.ones(4, dtype=torch.bool))
        assert restored.mirrors_frames(cfg) is mirrors


def test_always_and_never_need_no_test_and_features_have_no_frames_to_mirror():
    state = NoiseState.initial(torch.ones(4, dtype=torch.bool), 2, 3)
    for flip, mirrors in (("always", True), ("never", False)):
        cfg = TrainConfig(flip_frames=flip)
        assert state.mirrors_frames(cfg) is mirrors and not state.mirror_test_due(cfg)
    assert not state.mirror_test_due(replace(TrainConfig(), preset="features", features="f.parquet"))
