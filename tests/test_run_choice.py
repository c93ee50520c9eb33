"""Which run the app opens and how the run picker describes each run (auditor.run_choice)."""

from __future__ import annotations

import json
from pathlib import Path

from auditor.run_choice import RunSummary, choose, details, label, schedule

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "sample" / "config.json"


def test_the_shipped_model_is_not_a_short_training_and_a_scoring_run_is_not_judged():
    config = json.loads(SHIPPED.read_text())
    epochs, auto = schedule(config)
    assert epochs == config["train"]["epochs_phase1"] + config["train"]["epochs_phase2"]
    assert not RunSummary("shipped", 3, 0, None, epochs, auto).short
    assert schedule(config | {"model_run": "/models/sample"}) is None and schedule({}) is None


def test_choose_prefers_the_decided_run_then_the_picked_one_then_the_newest_scored():
    runs = [RunSummary("running", None, 0, None), RunSummary("quick", 0, 0, 2.0), RunSummary("old", 9, 4, 1.0)]
    assert choose(runs, "old", "quick") == "old"
    assert choose(runs, None, "old") == "old"
    assert choose(runs, "running", "gone") == "quick"  # neither is scored: the newest scored run
    assert choose([RunSummary("running", None, 0, None)], None, None) == "running" and choose([], None, None) is None


def test_label_says_flagged_decided_finished_and_short():
    assert label(RunSummary("r", 1200, 3, 0.0)) == "r · 1,200 flagged · 3 decided · finished 1970-01-01 00:00 UTC"
    assert label(RunSummary("q", 0, 0, None, 2, 100)) == "q · 0 flagged · 0 decided · short training (2 of 100 epochs)"
    assert label(RunSummary("p", None, 0, None)) == "p"


def test_details_are_the_label_after_the_name():
    run = RunSummary("r", 1200, 3, 0.0, 2, 100)
    assert details(run) == "1,200 flagged · 3 decided · finished 1970-01-01 00:00 UTC · short training (2 of 100 epochs)"
    assert label(run) == "r · " + details(run) and details(RunSummary("p", None, 0, None)) == ""
