"""The training loop's state between epochs (train.NoiseState), what a resumed run may change, and the phase-1
classification loss before and after label noise is found."""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auditor.errors import UserError
from auditor.model.config import TrainConfig
from auditor.model.losses import sce
from auditor.model.network import Outputs
from auditor.model.noise_estimation import MixtureFit
from auditor.train import GATE_STREAK, Batch, NoiseState, Objective, _check_resumable, _loss_terms

N, K = 6, 3


def _estimates(w: list[float], r: list[float], two_populations: bool = True, agreement: float = 0.9) -> dict:
    fit = MixtureFit(clean=np.ones(N), two_populations=two_populations, evidence_gap=3.0, bic_gain=0.1,
                     clean_share=0.8)
    return {"w": torch.tensor(w), "r": torch.tensor(r), "w_fit": fit, "r_fit": fit,
            "q": torch.full((N, K), 1 / K), "y_hat": torch.zeros(N, dtype=torch.long), "agreement": agreement,
            "sound_evidence": torch.zeros(N)}


def test_an_opening_gate_takes_the_estimate_as_it_is_then_moves_with_momentum():
    cfg = TrainConfig(warmup_epochs=2, estimate_momentum=0.5)
    state = NoiseState.initial(torch.ones(N, dtype=torch.bool), K, 4)
    first = _estimates([1, 1, 1, 1, 0.1, 0.0], [1, 0.2, 1, 1, 1, 0.0])
    for epoch in range(GATE_STREAK - 1):  # the streak is not long enough yet: w, r stay 1
        state.update_estimates(first, epoch, cfg, state.earlier_sound())
        assert not state.gate_open.any() and torch.equal(state.w, torch.ones(N))
    state.update_estimates(first, GATE_STREAK - 1, cfg, state.earlier_sound())
    assert state.gate_open.all()
    # The epoch the gate opens: a clip the mixture calls noisy is below the flag threshold at once.
    assert torch.equal(state.w, first["w"]) and torch.equal(state.r, first["r"])
    second = _estimates([1, 1, 1, 1, 0.9, 1.0], [1, 1, 1, 1, 1, 1.0])
    state.update_estimates(second, GATE_STREAK, cfg, state.earlier_sound())
    assert torch.allclose(state.w, 0.5 * first["w"] + 0.5 * second["w"])
    assert torch.allclose(state.r, 0.5 * first["r"] + 0.5 * second["r"])


def test_the_state_keeps_every_epoch_ends_sound_evidence_for_its_mean():
    cfg = TrainConfig(warmup_epochs=1)
    state = NoiseState.initial(torch.ones(N, dtype=torch.bool), K, 4)
    assert state.last_earlier_sound() is None and state.earlier_sound().ends == 0
    sounds = [torch.arange(N, dtype=torch.float32) * (e + 1) + 0.25 for e in range(3)]
    for epoch, sound in enumerate(sounds):
        earlier = state.earlier_sound()
        assert earlier.ends == epoch and torch.allclose(earlier.total, sum(sounds[:epoch], torch.zeros(N)).double())
        state.update_estimates(_estimates([1.0] * N, [1.0] * N) | {"sound_evidence": sound}, epoch, cfg, earlier)
        # what the latest epoch end was given: with its own evidence, the mean of every epoch end so far
        last = state.last_earlier_sound()
        assert last.ends == epoch and torch.equal(last.total, earlier.total)
        assert torch.allclose(last.mean_with(sound), torch.stack(sounds[:epoch + 1]).mean(0))
    assert state.earlier_sound().ends == 3
    saved = NoiseState.from_checkpoint(state.as_dict(), torch.ones(N, dtype=torch.bool))
    assert torch.equal(saved.earlier_sound().total, state.earlier_sound().total)


def test_no_gate_opens_while_the_model_is_still_learning_the_given_labels():
    cfg = TrainConfig(warmup_epochs=1)
    state = NoiseState.initial(torch.ones(N, dtype=torch.bool), K, 4)
    rising = [0.30, 0.45, 0.52, 0.60, 0.605, 0.61]
    for epoch, agreement in enumerate(rising):
        state.update_estimates(_estimates([0.0] * N, [0.0] * N, agreement=agreement), epoch, cfg, state.earlier_sound())
        # two populations at every epoch end, but the gates wait for the agreement's plateau (epoch 4: +0.005)
        assert state.gate_open.all() == (epoch >= 4), epoch
    assert float(state.best_agreement) == pytest.approx(0.61)


def test_a_gate_that_is_open_stays_open_without_two_populations():
    cfg = TrainConfig(warmup_epochs=1, estimate_momentum=0.5)
    state = NoiseState.initial(torch.ones(N, dtype=torch.bool), K, 4)
    for epoch in range(GATE_STREAK):
        state.update_estimates(_estimates([0.0] * N, [0.0] * N), epoch, cfg, state.earlier_sound())
    state.update_estimates(_estimates([1.0] * N, [1.0] * N, two_populations=False), GATE_STREAK, cfg, state.earlier_sound())
    assert state.gate_open.all() and torch.allclose(state.w, torch.full((N,), 0.5))


def _run_config(cfg: TrainConfig) -> dict:
    return {"train": asdict(cfg), "classes": ["a", "b"]}


def test_resume_refuses_every_changed_hyper_parameter_naming_it(tmp_path):
    cfg = TrainConfig(epochs_phase1=4, epochs_phase2=2, warmup_epochs=2)
    _check_resumable(_run_config(cfg), cfg, ["a", "b"], tmp_path)  # the same values: resumable
    for change in ({"lambda_cat": 2.0}, {"lr": 1e-3}, {"label_evidence": "classifier"}, {"use_w": False},
                   {"seed": 3}):
        with pytest.raises(UserError) as err:
            _check_resumable(_run_config(cfg), replace(cfg, **change), ["a", "b"], tmp_path)
        (key, value), = change.items()
        assert f"{key}={value!r}" in str(err.value) and "config.json" in str(err.value)


def test_a_run_started_before_a_field_existed_resumes_with_its_default(tmp_path):
    cfg = TrainConfig(epochs_phase1=4, epochs_phase2=2, warmup_epochs=2)
    old = _run_config(cfg)
    del old["train"]["flip_frames"]
    _check_resumable(old, cfg, ["a", "b"], tmp_path)
    with pytest.raises(UserError, match="flip_frames='never'"):
        _check_resumable(old, replace(cfg, flip_frames="never"), ["a", "b"], tmp_path)


def test_resume_may_change_where_the_run_runs(tmp_path):
    cfg = TrainConfig(epochs_phase1=4, epochs_phase2=2, warmup_epochs=2)
    _check_resumable(_run_config(cfg), replace(cfg, device="cpu", loader_workers=2), ["a", "b"], tmp_path)
    with pytest.raises(UserError, match="classes changed"):
        _check_resumable(_run_config(cfg), cfg, ["a", "c"], tmp_path)


def _outputs(b: int, k: int, d: int = 4) -> Outputs:
    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1)
    logits = [torch.randn(b, k, generator=g) for _ in range(3)]
    return Outputs(h_v=torch.zeros(b, 1), h_a=torch.zeros(b, 1), z_v=z, z_a=z.flip(0), logits_v=logits[0],
                   logits_a=logits[1], logits_av=logits[2])


def test_phase_one_fits_with_plain_ce_until_label_noise_is_found_then_with_sce():
    b = 8
    out, y = _outputs(b, K), torch.arange(b) % K
    batch = Batch(idx=torch.arange(b), given=y, target=y, w=torch.ones(b), r=torch.ones(b), target_weight=torch.ones(b))
    state = NoiseState.initial(torch.ones(b, dtype=torch.bool), K, 4)
    cfg = TrainConfig(use_cat=False)
    objective = Objective.for_labels(y, K, cfg, torch.device("cpu"))
    heads = [out.logits_av, out.logits_v, out.logits_a]
    ce = [F.cross_entropy(h + objective.logit_adjust, y, reduction="none") for h in heads]
    closed = _loss_terms(out, batch, state, 1, cfg, objective)["cls"]
    assert torch.allclose(closed, (ce[0] + 0.5 * (ce[1] + ce[2])).mean())
    state.gate_open[1] = True
    robust = [sce(h + objective.logit_adjust, y, objective.sce_alpha, objective.sce_beta) for h in heads]
    opened = _loss_terms(out, batch, state, 1, cfg, objective)["cls"]
    assert torch.allclose(opened, (robust[0] + 0.5 * (robust[1] + robust[2])).mean())
    state.gate_open[1] = False
    paper = _loss_terms(out, batch, state, 1, replace(cfg, ce_until_label_noise=False), objective)["cls"]
    assert torch.allclose(paper, opened)


def test_the_automatic_schedule_warms_up_for_half_of_phase_one():
    from auditor.model.config import resolve_schedule

    cfg = resolve_schedule(TrainConfig(), 600)  # 9 steps per epoch: the cpu preset's 32 epochs (216 steps need 24)
    assert (cfg.epochs_phase1, cfg.epochs_phase2, cfg.warmup_epochs) == (19, 13, 10)
    small = resolve_schedule(TrainConfig(), 240)  # 3 steps per epoch: 72 epochs for 216 steps
    assert (small.epochs_phase1, small.epochs_phase2, small.warmup_epochs) == (42, 30, 21)
    features = resolve_schedule(TrainConfig(preset="features"), 6_000)  # batches of 256: the features preset's 24
    assert (features.epochs_phase1, features.epochs_phase2) == (14, 10)
    assert resolve_schedule(TrainConfig(epochs_phase1=3, epochs_phase2=1), 600).warmup_epochs == 2
    assert resolve_schedule(TrainConfig(warmup_epochs=5), 600).warmup_epochs == 5
    assert resolve_schedule(TrainConfig(method="ce"), 600).epochs_phase2 == 0


def test_the_automatic_schedule_shows_a_large_data_set_as_many_clips_not_as_many_epochs():
    from auditor.model.config import MAX_AUTO_PASSES, MIN_LARGE_EPOCHS, auto_epochs, resolve_schedule

    features = TrainConfig(preset="features")  # batches of 256, at least 24 epochs
    assert auto_epochs(MAX_AUTO_PASSES // 24, 256, 24) == 24
    assert auto_epochs(MAX_AUTO_PASSES // 24 + 1, 256, 24) == 23
    assert auto_epochs(MAX_AUTO_PASSES // 32, 64, 32) == 32 and auto_epochs(MAX_AUTO_PASSES // 32 + 1, 64, 32) == 31
    for n in (60_000, 100_000, 120_000, 149_999):
        epochs = auto_epochs(n, 256, 24)
        assert MIN_LARGE_EPOCHS <= epochs < 24 and epochs * n <= MAX_AUTO_PASSES < (epochs + 1) * n
    assert auto_epochs(200_000, 256, 24) == auto_epochs(10_000_000, 64, 32) == MIN_LARGE_EPOCHS
    big = resolve_schedule(features, 200_000)
    assert (big.epochs_phase1, big.epochs_phase2, big.warmup_epochs) == (5, 3, 2)
    assert resolve_schedule(replace(features, epochs_phase1=20), 200_000).epochs_phase1 == 20  # asked for: kept
    assert resolve_schedule(replace(features, method="ce"), 200_000).epochs_phase1 == MIN_LARGE_EPOCHS


def test_a_small_features_set_gets_its_updates_from_smaller_batches_not_from_more_passes():
    from auditor.model.config import MIN_FEATURE_BATCH, MIN_UPDATES, resolve_schedule, training_batch

    features = TrainConfig(preset="features")
    assert training_batch(features, 600) == 600 * 24 // MIN_UPDATES == 66  # 9 updates an epoch
    small = resolve_schedule(features, 600)
    assert (small.epochs_phase1, small.epochs_phase2, small.batch_size) == (14, 10, 0)  # 24 epochs, 216 updates
    assert training_batch(features, 240) == MIN_FEATURE_BATCH  # no smaller: 3 updates an epoch, 72 epochs
    assert resolve_schedule(features, 240).epochs_phase1 + resolve_schedule(features, 240).epochs_phase2 == 72
    assert training_batch(features, 2_303) == 255 and training_batch(features, 2_304) == 256
    assert training_batch(features, 200_000) == 256
    assert training_batch(replace(features, batch_size=32), 600) == 32  # asked for: kept
    assert training_batch(TrainConfig(), 600) == training_batch(TrainConfig(), 200_000) == 64  # the cpu preset's


def test_the_features_preset_trains_its_steps_on_one_cpu_thread_and_gives_the_threads_back(tmp_path, monkeypatch):
    from auditor import train as training
    from tests.features_data import make_feature_set

    before = torch.get_num_threads()
    vectors, cpu = TrainConfig(preset="features"), torch.device("cpu")
    with training.step_threads(vectors, cpu):
        assert torch.get_num_threads() == min(before, training.FEATURES_STEP_THREADS)
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), training.step_threads(vectors, cpu):
        raise RuntimeError("a failed step")
    assert torch.get_num_threads() == before
    with training.step_threads(TrainConfig(preset="cpu"), cpu):
        assert torch.get_num_threads() == before  # the frame presets' convolutions keep every thread

    seen = []  # the threads of each step of a real features training
    step = training.forward_backward
    monkeypatch.setattr(training, "forward_backward",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or step(*a, **k))
    fs = make_feature_set(tmp_path, n=64)
    cfg = TrainConfig(preset="features", features=str(fs.features), epochs_phase1=1, epochs_phase2=1, batch_size=32,
                      device="cpu")
    training.train(fs.data, tmp_path / "run", cfg, quiet=True)
    assert seen == [min(before, training.FEATURES_STEP_THREADS)] * 4 and torch.get_num_threads() == before
