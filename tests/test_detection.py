"""The model detects what it is for: trained with the default settings on a small generated set with planted
label noise and mismatched sound, its label and mismatch scores rank the planted clips far above chance.

Floors only, with a wide margin (quality figures live in BENCHMARKS.md): average precision at least the base rate
plus LABEL_MARGIN (wrong labels) or MISMATCH_MARGIN (swapped sounds) of the way from the base rate to 1. On 128
clips the label AP of this training moves by a tenth or more with the seed, the threads or one epoch's augmentation
(BENCHMARKS.md, "Test suite"), so its floor asks for a ranking clearly above chance, not a good one.
"""

from __future__ import annotations

import pandas as pd
import pytest

from auditor.data.generate import generate_dataset
from auditor.metrics import flag_metrics
from tests.conftest import run_cli

CLIPS, LABEL_NOISE, MISMATCH = 128, 0.25, 0.15
LABEL_MARGIN, MISMATCH_MARGIN = 0.1, 0.3


@pytest.mark.slow
def test_default_training_detects_planted_noise(tmp_path):
    data = tmp_path / "data"
    generate_dataset(data, clips=CLIPS, label_noise=LABEL_NOISE, mismatch=MISMATCH, seed=23)
    run = tmp_path / "run"
    run_cli("train", "--data", str(data), "--run", str(run), "--quiet", timeout=1500)
    truth = pd.read_csv(data / "truth.csv")
    m = flag_metrics(pd.read_csv(run / "flags.csv"), truth)
    label_base = truth["label_is_noisy"].mean()
    mismatch_base = truth["is_mismatched"].mean()
    assert m["label_ap"] >= label_base + LABEL_MARGIN * (1 - label_base), m
    assert m["mismatch_ap"] >= mismatch_base + MISMATCH_MARGIN * (1 - mismatch_base), m
