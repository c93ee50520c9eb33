"""Unit tests of auditor/progress_view.py: a run's progress.jsonl as the Model page shows it."""

from __future__ import annotations

import pytest

from auditor.progress_view import progress_view
from auditor.run_folder import read_progress
from tests.fakerun import make_fake_run


def test_progress_view_of_a_finished_and_a_running_run(tmp_path):
    run = make_fake_run(tmp_path / "run", n_clips=20, n_classes=3, seed=3)
    events = read_progress(run)
    done = progress_view(events)
    assert done.fraction == 1.0 and done.caption == "all epochs done" and done.eta_s == 0.0
    assert set(done.losses["term"]) >= {"cls", "hyb", "inst", "cat", "total"}
    assert done.losses.groupby("term")["step"].apply(lambda s: s.is_monotonic_increasing).all()
    assert done.est_label_noise is not None and done.est_mismatch is not None
    # Cut after the second step of epoch index 2 (the first phase-2 epoch) of 4 epochs, 3 steps each.
    cut = next(i for i, e in enumerate(events) if e.get("event") == "step" and e["epoch"] == 2 and e["step"] == 2)
    partial = progress_view(events[:cut + 1], now=events[cut]["time"] + 1.0)
    assert partial.fraction == pytest.approx((2 + 2 / 3) / 4)
    assert partial.caption == "phase 2 · epoch 3 of 4 · step 2/3"
    assert partial.eta_s == pytest.approx(9.0 - 1.0 - 3.0)  # last ETA 9 s, written 3 s before the cut, +1 s
    empty = progress_view([])
    assert empty.fraction == 0.0 and empty.losses.empty and empty.eta_s is None


def test_the_view_says_what_the_mirror_test_decided():
    def epoch(n: int, decided: bool, keeps: bool, learnt: bool = True) -> dict:
        test = {"accuracy": 0.52, "mirrored_accuracy": 0.18, "trivial_accuracy": 0.1, "clips": 600,
                "decided": decided, "learnt": learnt, "keeps_class": keeps}
        return {"event": "epoch", "epoch": n, "epochs_total": 8, "mirror_test": test, "mirrored_frames": False}

    assert progress_view([{"event": "epoch", "epoch": 1, "epochs_total": 8}]).mirroring == ""
    figures = "held-out accuracy 52% on the clips, 18% on their mirror images, 10% answering the largest class"
    undecided = progress_view([epoch(1, False, False)]).mirroring
    assert undecided == f"Frames not mirrored: the mirror test has not decided yet (epoch 1: {figures})."
    never = progress_view([epoch(1, False, False), epoch(2, True, False), {"event": "epoch", "epoch": 3}]).mirroring
    assert never == f"Frames never mirrored: mirror images do not keep their class ({figures})."
    assert progress_view([epoch(2, True, True)]).mirroring.startswith("Frames mirrored at random from epoch 3 on:")
    unlearnt = progress_view([epoch(4, True, False, learnt=False)]).mirroring
    assert unlearnt == ("Frames never mirrored: the heads had learnt too little of the pictures to tell "
                        f"whether mirror images keep their class ({figures}).")
