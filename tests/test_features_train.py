"""``train --features`` and ``score --features``: the two-phase method on precomputed vectors writes every output
of a run, finds planted wrong labels and swapped sounds well above their base rates, and scores another features
file with the trained model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score

from auditor.__main__ import main
from auditor.model.checkpoint import load_trained
from tests.features_data import make_feature_set

pytestmark = pytest.mark.slow
EPOCHS = ("--epochs-phase1", "6", "--epochs-phase2", "4", "--batch-size", "64")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    fs = make_feature_set(root, n=200, seed=3, windows=10, silent=6)
    run = root / "run"
    assert main(["train", "--data", str(fs.data), "--run", str(run), "--features", str(fs.features), "--quiet",
                 "--device", "cpu", *EPOCHS]) == 0
    return fs, run


def test_a_features_run_writes_every_output(trained):
    fs, run = trained
    for name in ("flags.csv", "embeddings.parquet", "class_report.csv", "progress.jsonl", "checkpoint.pt",
                 "config.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "features" and config["train"]["features"] == str(fs.features)
    assert (config["train"]["visual_dim"], config["train"]["audio_dim"]) == (24, 16)
    events = [json.loads(line)["event"] for line in (run / "progress.jsonl").read_text().splitlines()]
    assert events.count("epoch") == 10 and events[-1] == "done"
    flags = pd.read_csv(run / "flags.csv")
    assert len(flags) == 200
    silent = flags.tail(6)
    assert (silent["problem"] == "no_audio").all() and (silent["mismatch_score"] == 0).all()
    windows = pd.read_csv(run / "windows.csv")
    assert windows["clip"].nunique() == 200 and len(windows) == 210
    long = windows[windows["clip"] == "clips/c0000.mp4"]
    assert long[["start_s", "end_s"]].values.tolist() == [[0, 10], [10, 20]] and long["best_aligned"].sum() == 1


def test_planted_errors_rank_well_above_base_rate(trained):
    fs, run = trained
    flags = pd.read_csv(run / "flags.csv")
    # Floors with a wide margin (seen: label AP 1.0, mismatch AP 0.7 at base rates 0.13-0.15).
    assert average_precision_score(fs.wrong_label, flags["label_noise_score"]) > 3 * fs.wrong_label.mean()
    assert average_precision_score(fs.swapped, flags["mismatch_score"]) > 2 * fs.swapped.mean()


def test_score_takes_another_features_file(trained, tmp_path):
    fs, run = trained
    other = make_feature_set(tmp_path, n=40, seed=3)  # same class centres (seed), other clips
    out = tmp_path / "scored"
    assert main(["score", "--run", str(run), "--data", str(other.data), "--features", str(other.features),
                 "--out", str(out), "--device", "cpu"]) == 0
    assert len(pd.read_csv(out / "flags.csv")) == 40 and (out / "embeddings.parquet").is_file()


def test_the_run_s_flags_are_what_scoring_its_training_set_gives(trained, tmp_path):
    """train scores its training set from the last epoch end's evaluation: a new evaluation of the same clips
    by the saved model must give the same verdicts, windows and embeddings."""
    fs, run = trained
    out = tmp_path / "again"
    assert main(["score", "--run", str(run), "--data", str(fs.data), "--features", str(fs.features), "--out",
                 str(out), "--device", "cpu"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "flags.csv"), pd.read_csv(run / "flags.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(out / "windows.csv"), pd.read_csv(run / "windows.csv"))
    again, own = pd.read_parquet(out / "embeddings.parquet"), pd.read_parquet(run / "embeddings.parquet")
    for col in ("audio", "visual", "fused"):
        np.testing.assert_array_equal(np.stack(again[col]), np.stack(own[col]))


def test_score_refuses_a_missing_or_misfit_features_file(trained, tmp_path, capsys):
    fs, run = trained
    other = make_feature_set(tmp_path, n=20, dims=(8, 16))
    assert main(["score", "--run", str(run), "--data", str(other.data), "--out", str(tmp_path / "a")]) == 2
    assert "give this data set's features file (--features FILE)" in capsys.readouterr().err
    assert main(["score", "--run", str(run), "--data", str(other.data), "--features", str(other.features),
                 "--out", str(tmp_path / "b")]) == 2
    assert f"{other.features}: visual and audio vectors of 8 and 16 numbers; the model takes 24 and 16" in \
        capsys.readouterr().err


def test_the_checkpoint_rebuilds_the_vector_model(trained):
    _, run = trained
    model, _ = load_trained(run)
    out = model(torch.zeros(3, 24), torch.zeros(3, 16))
    assert out.logits_av.shape == (3, 4) and np.allclose(out.z_v.norm(dim=1).detach().numpy(), 1.0, atol=1e-5)


def test_a_features_run_has_no_encoders_to_export(trained, tmp_path, capsys):
    _, run = trained
    assert main(["export-encoders", "--run", str(run), "--out", str(tmp_path / "enc")]) == 2
    assert "trained on precomputed features; its encoders take vectors" in capsys.readouterr().err
