"""model/estimate.py: the per-clip InfoNCE sees equally many negatives for every clip (also at N = 4,097), leaves
out of them the clips of its given label and of its picture's class, the label evidence is judged by the picture
where the sound does not belong, and on a features file the evidence heads read the file's vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auditor.data.feature_file import load_features
from auditor.model import cross_fit, estimate
from auditor.model.config import TrainConfig
from auditor.model.cross_fit import out_of_fold_probabilities
from auditor.model.estimate import label_evidence_ce, per_clip_infonce
from auditor.model.losses import cross_modal_infonce
from auditor.model.network import AudioVisualNet
from auditor.model.presets import get_preset
from tests.features_data import make_feature_set


def _aligned(n: int, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z_v = F.normalize(torch.randn(n, d, generator=g), dim=1)
    z_a = F.normalize(z_v + 0.1 * torch.randn(n, d, generator=g), dim=1)
    return z_v, z_a


def test_a_planted_mismatch_in_the_last_of_4097_clips_is_the_worst(monkeypatch):
    n = estimate.EVAL_NEGATIVES_CHUNK + 1
    z_v, z_a = _aligned(n)
    z_a[-1] = F.normalize(torch.randn(16, generator=torch.Generator().manual_seed(9)), dim=0)
    ell = per_clip_infonce(z_v, z_a, tau=0.1, seed=0)
    assert int(ell.argmax()) == n - 1
    assert float(ell[-1]) > 1.0  # with a chunk of one it would be exactly 0


def test_chunks_are_equal_in_size(monkeypatch):
    monkeypatch.setattr(estimate, "EVAL_NEGATIVES_CHUNK", 10)
    sizes = []
    real = estimate.cross_modal_infonce

    def spy(z_v, z_a, tau, labels=None):
        sizes.append(len(z_v))
        return real(z_v, z_a, tau, labels)

    monkeypatch.setattr(estimate, "cross_modal_infonce", spy)
    per_clip_infonce(*_aligned(31), tau=0.1, seed=0)
    assert sorted(sizes) == [7, 8, 8, 8]


def test_same_label_clips_are_not_negatives():
    z_v, z_a = _aligned(6)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    ell = cross_modal_infonce(z_v, z_a, 0.1, labels)
    # clip 0's negatives are clips 3, 4, 5 only: the same as the loss on that sub-set
    sub = torch.tensor([0, 3, 4, 5])
    assert torch.allclose(ell[0], cross_modal_infonce(z_v[sub], z_a[sub], 0.1)[0], atol=1e-6)


def test_clips_sharing_any_class_are_not_negatives():
    z_v, z_a = _aligned(6)
    # clip 0: given label 0, its picture shows class 1; clip 3 is labelled 1, clip 5 shows 0
    sets = torch.tensor([[0, 1], [0, 0], [2, 2], [1, 1], [2, 2], [3, 0]])
    ell = cross_modal_infonce(z_v, z_a, 0.1, sets)
    sub = torch.tensor([0, 2, 4])  # clip 0's negatives: the clips that share none of {0, 1}
    assert torch.allclose(ell[0], cross_modal_infonce(z_v[sub], z_a[sub], 0.1)[0], atol=1e-6)
    same = cross_modal_infonce(z_v, z_a, 0.1, sets[:, 0])  # one column: the given labels alone, as before
    assert torch.allclose(same, cross_modal_infonce(z_v, z_a, 0.1, sets[:, [0, 0]]), atol=1e-6)


def test_a_wrong_label_is_not_read_as_a_foreign_sound():
    """A clip whose picture and sound are class 1's but whose label is 0: with class 1's clips as negatives its
    own sound looks foreign (a false sound-mismatch flag); negative_classes leaves them out."""
    z_v, z_a = _aligned(18, seed=3)
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 6)
    centres = F.normalize(torch.randn(3, 16, generator=torch.Generator().manual_seed(2)), dim=1)
    z_v = F.normalize(centres[labels] + 0.3 * z_v, dim=1)  # clips cluster by class, sound with picture
    z_a = F.normalize(z_v + 0.1 * z_a, dim=1)
    z_v[0], z_a[0] = z_v[6], F.normalize(z_a[6] + 0.05 * z_a[0], dim=0)  # clip 0: class 1's, labelled 0
    logits_v = torch.zeros(18, 3)
    logits_v[torch.arange(18), labels] = 5.0
    logits_v[0] = torch.tensor([0.0, 5.0, 0.0])  # its picture shows class 1
    classes = estimate.negative_classes({"logits_v": logits_v}, labels)
    assert classes.shape == (18, 3) and classes[0, :2].tolist() == [0, 1] and classes[6, :2].tolist() == [1, 1]
    by_label = cross_modal_infonce(z_v, z_a, 0.1, labels)
    by_both = cross_modal_infonce(z_v, z_a, 0.1, classes[:, :2])
    assert int(by_label.argmax()) == 0  # the worst clip: it would be flagged
    assert float(by_both[0]) < float(by_label[0]) / 4
    assert torch.allclose(by_both[12:], by_label[12:])  # class 2's clips keep their negatives
    # a visual head that learnt the flip ranks the given label first and the picture's class second
    logits_v[0] = torch.tensor([5.0, 3.0, 0.0])
    learnt = estimate.negative_classes({"logits_v": logits_v}, labels)
    assert learnt[0].tolist() == [0, 0, 1]
    assert float(cross_modal_infonce(z_v, z_a, 0.1, learnt)[0]) < float(by_label[0]) / 4


def test_label_evidence_uses_the_picture_where_the_sound_does_not_belong():
    ev = {"logits_av": torch.tensor([[0.0, 5.0], [0.0, 5.0]]), "logits_v": torch.tensor([[5.0, 0.0], [5.0, 0.0]])}
    labels = torch.tensor([0, 0])
    ce = label_evidence_ce(ev, labels, torch.tensor([1.0, 0.0]))
    assert ce[0] > 4.0 and ce[1] < 0.01  # w = 1: the fused head decides; w = 0: the picture's head


def test_a_hard_sound_heard_as_its_class_is_not_a_foreign_sound():
    """sound_evidence = (l + c) / 2: a high InfoNCE alone (a hard clip whose sound the sound head hears as its
    label, or as the class its picture shows) and a foreign class alone (a pair the embedding fits) are weaker
    evidence than both together."""
    from auditor.model.estimate import sound_evidence, uniform_prior

    labels = torch.tensor([0, 0, 0, 0])
    has_audio = torch.ones(4, dtype=torch.bool)
    ell = torch.tensor([9.0, 9.0, 9.0, 0.01])
    heads = {"p_a": torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9], [0.05, 0.05, 0.9]]),
             "p_v": torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]])}
    e = sound_evidence(ell, heads, labels, has_audio)
    # clip 0: heard as its label; clip 1: heard as the class its picture shows (a wrong label, its own sound);
    # clip 2: heard as a class neither the label nor the picture names; clip 3: the same, but the pair fits
    p_a = uniform_prior(heads["p_a"], labels, has_audio)
    heard = torch.maximum(p_a[:, 0], (p_a * heads["p_v"]).sum(1))
    assert torch.allclose(e, (ell - torch.log(heard)) / 2, atol=1e-6)
    assert int(e.argmax()) == 2 and float(e[2]) > 1.2 * max(float(e[0]), float(e[1]), float(e[3]))


def test_uniform_prior_divides_by_the_given_labels_frequencies_over_the_mask():
    from auditor.model.estimate import uniform_prior

    p = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    balanced = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.allclose(uniform_prior(p, balanced, torch.ones(6, dtype=torch.bool)), p)
    # counts over the mask: class 0 three times, class 1 once, class 2 none (floored at 1): pi = (3, 1, 1) / 5
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    mask = torch.tensor([True, True, True, True, False, False])
    scaled = p / torch.tensor([0.6, 0.2, 0.2])
    assert torch.allclose(uniform_prior(p, labels, mask), scaled / scaled.sum(1, keepdim=True))


def test_a_small_class_s_sound_is_not_foreign_for_being_rare():
    """A head fitted on a 9:1 long tail gives the small class's own sound a posterior shrunk by its prior (0.3
    here), and a large class's clip heard mostly as the small class the same 0.3 for its own class: equal evidence
    from the raw posteriors. Under a uniform prior the small class's sound is likely under its class, the other's
    is not. A clip without sound keeps its uniform row (its sound evidence is not fitted on)."""
    from auditor.model.estimate import sound_evidence

    labels = torch.tensor([0] * 9 + [1] + [0])
    has_audio = torch.tensor([True] * 10 + [False])
    ell = torch.full((11,), 4.0)
    p_a = torch.tensor([[0.9, 0.1]] * 8 + [[0.3, 0.7], [0.7, 0.3], [0.5, 0.5]])
    p_v = torch.tensor([[0.9, 0.1]] * 9 + [[0.1, 0.9], [0.9, 0.1]])  # the picture head sees the given label
    raw = sound_evidence(ell, {"p_a": p_a, "p_v": p_v}, labels, torch.zeros(11, dtype=torch.bool))
    assert float(raw[8]) == pytest.approx(float(raw[9]), rel=1e-6)  # no clip with sound: no prior to remove
    e = sound_evidence(ell, {"p_a": p_a, "p_v": p_v}, labels, has_audio)
    pi = torch.tensor([0.9, 0.1])
    small = p_a[9] / pi / (p_a[9] / pi).sum()  # clip 9 under a uniform prior: its own class 0.794
    big = p_a[8] / pi / (p_a[8] / pi).sum()
    heard_9 = max(float(small[1]), float((small * p_v[9]).sum()))
    heard_8 = max(float(big[0]), float((big * p_v[8]).sum()))
    assert float(e[9]) == pytest.approx((4 - math.log(heard_9)) / 2, rel=1e-5)
    assert float(e[8]) == pytest.approx((4 - math.log(heard_8)) / 2, rel=1e-5)
    assert float(e[8]) - float(e[9]) > 0.5  # the same InfoNCE: the small class's own sound is the less foreign
    assert float(e[10]) == pytest.approx((4 + math.log(2)) / 2, rel=1e-5)


def test_on_features_the_evidence_heads_read_the_file_s_vectors_not_what_the_network_fitted(tmp_path):
    """The features preset's MLPs can memorise every given label; heads fitted on their output h would then find
    the wrong labels right. The cross-fitted heads read the file's vectors: the same for any network weights."""
    fs = make_feature_set(tmp_path, n=60, classes=3, dims=(6, 4), seed=1, windows=5)
    _, arrays = load_features(fs.data, fs.features)
    classes = sorted(set(arrays.labels))
    labels = torch.tensor([classes.index(c) for c in arrays.labels])
    has_audio = torch.from_numpy(arrays.has_audio.copy())
    cfg = TrainConfig(preset="features", features=str(fs.features), visual_dim=6, audio_dim=4)
    heads = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = AudioVisualNet(get_preset("features"), 3, cfg.embed_dim, input_dims=(6, 4)).eval()
        ev = estimate.evaluate(model, arrays, np.arange(60), cfg, torch.device("cpu"))
        assert ev["x_v"].shape == (60, 6) and ev["x_a"].shape == (60, 4)
        heads.append(estimate.out_of_fold_heads(ev, labels, has_audio, 3, cfg))
    visual, _ = arrays.clip_vectors(np.arange(60))
    expected = out_of_fold_probabilities(torch.from_numpy(visual), labels, 3, folds=cfg.evidence_folds, seed=cfg.seed,
                                         penalties=cross_fit.PENALTIES)
    for key in ("p_v", "p_a", "p_av"):
        assert torch.equal(heads[0][key], heads[1][key]), key
    assert torch.equal(heads[0]["p_v"], expected)  # a linear probe whose ridge weight the held-out fold chose


def test_heads_on_the_network_s_own_features_keep_the_fixed_ridge_weight(monkeypatch):
    chosen = []
    monkeypatch.setattr(cross_fit, "choose_penalty", lambda *a: chosen.append(a) or cross_fit.L2_PENALTY)
    n = 60
    ev = {"h_v": torch.randn(n, 5, generator=torch.Generator().manual_seed(0)),
          "h_a": torch.randn(n, 4, generator=torch.Generator().manual_seed(1))}
    labels, has_audio = torch.arange(n) % 3, torch.ones(n, dtype=torch.bool)
    heads = estimate.out_of_fold_heads(ev, labels, has_audio, 3, TrainConfig())
    assert not chosen
    assert torch.equal(heads["p_v"], out_of_fold_probabilities(ev["h_v"], labels, 3, folds=5, seed=0,
                                                               penalties=(cross_fit.L2_PENALTY,)))
    estimate.out_of_fold_heads({"x_v": ev["h_v"], "x_a": ev["h_a"]}, labels, has_audio, 3, TrainConfig())
    assert len(chosen) == 3 and all(a[-1] == cross_fit.PENALTIES for a in chosen)  # p_v, p_a, p_av


def test_w_is_fitted_on_the_mean_of_the_epoch_ends_sound_evidence():
    """A pair the network has fitted by the last epoch end (its sound evidence now as low as the others') is still
    judged foreign when its evidence at the earlier epoch ends was large: w comes from the mean over them."""
    n, k = 60, 3
    z_v, z_a = _aligned(n, seed=4)
    labels = torch.arange(n) % k
    logits = torch.zeros(n, k)
    logits[torch.arange(n), labels] = 4.0
    ev = {"z_v": z_v, "z_a": z_a, "logits_v": logits, "logits_a": logits, "logits_av": logits}
    cfg = TrainConfig(evidence_folds=0)
    has_audio = torch.ones(n, dtype=torch.bool)
    now = estimate.estimate_noise(ev, labels, has_audio, cfg, k)
    assert not now["w_fit"].two_populations and (now["w"] > 0.5).all()
    total = torch.zeros(n, dtype=torch.float64)
    total[:6] = 3 * 20.0  # clips 0-5: 20 nats at each of three earlier epoch ends
    earlier = estimate.EarlierSound(total, 3)
    est = estimate.estimate_noise(ev, labels, has_audio, cfg, k, earlier_sound=earlier)
    assert torch.equal(est["sound_evidence"], now["sound_evidence"])  # this epoch end's own evidence
    assert torch.allclose(est["mean_sound_evidence"], earlier.mean_with(now["sound_evidence"]))
    assert est["w_fit"].two_populations
    assert (est["w"][:6] < 0.5).all() and (est["w"][6:] >= 0.5).all()


def test_the_training_s_sound_evidence_is_used_only_for_its_own_clips_and_labels():
    total = torch.tensor([1.0, 2.0], dtype=torch.float64)
    ckpt = {"clips": ["a.mp4", "b.mp4"], "labels": ["x", "y"],
            "state": {"sound_total": total, "sound_ends": torch.tensor(3)}}
    same = estimate.training_earlier_sound(ckpt, ["a.mp4", "b.mp4"], ["x", "y"])
    assert same.ends == 2 and torch.equal(same.total, total)  # the latest epoch end was given two earlier ones
    assert estimate.training_earlier_sound(ckpt, ["b.mp4", "a.mp4"], ["y", "x"]) is None  # another order
    assert estimate.training_earlier_sound(ckpt, ["a.mp4", "b.mp4"], ["x", "x"]) is None  # a label changed since
    assert estimate.training_earlier_sound(ckpt, ["a.mp4"], ["x"]) is None
    assert estimate.training_earlier_sound({**ckpt, "state": {}}, ["a.mp4", "b.mp4"], ["x", "y"]) is None  # ce
    no_end = {**ckpt, "state": {"sound_total": total, "sound_ends": torch.tensor(0)}}
    assert estimate.training_earlier_sound(no_end, ["a.mp4", "b.mp4"], ["x", "y"]) is None
