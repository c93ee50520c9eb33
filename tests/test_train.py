"""End-to-end training on a few generated clips: outputs, resume after kill -9, DDP, refusing pickled checkpoints."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from auditor.cli_model import add_train_arguments, config_from_args
from auditor.errors import UserError
from auditor.flags import FLAGS_COLUMNS
from auditor.model.checkpoint import load_checkpoint
from auditor.model.config import TrainConfig
from tests.conftest import REPO, run_cli

FAST = ["--epochs-phase1", "2", "--epochs-phase2", "1", "--warmup-epochs", "1", "--batch-size", "16", "--quiet"]


@pytest.fixture(scope="module")
def trained_run(small_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "r"
    run_cli("train", "--data", str(small_dataset), "--run", str(run), *FAST)
    return run


def test_train_writes_every_output_with_valid_columns(trained_run, small_dataset):
    flags = pd.read_csv(trained_run / "flags.csv", keep_default_na=False)
    assert list(flags.columns) == FLAGS_COLUMNS
    truth = pd.read_csv(small_dataset / "truth.csv")
    assert sorted(flags["clip"]) == sorted(truth["clip"])
    for col in ("label_noise_score", "mismatch_score", "suggested_confidence", "label_noise_rank", "mismatch_rank"):
        values = flags[col].astype(float)
        assert values.between(0, 1).all(), col
    # ranks order the clips exactly as the scores do, with resolution where the posteriors saturate
    ordered = flags.astype({"label_noise_score": float, "label_noise_rank": float}).sort_values(
        ["label_noise_score", "label_noise_rank"])
    assert ordered["label_noise_rank"].is_monotonic_increasing and ordered["label_noise_rank"].max() == 1.0
    classes = set(truth["true_label"])
    for col in ("given_label", "suggested_label", "audio_pred", "visual_pred"):
        assert set(flags[col]) <= classes, col

    emb = pd.read_parquet(trained_run / "embeddings.parquet")
    for name in ("audio", "visual", "fused"):
        assert np.isfinite(emb[[f"umap_{name}_x", f"umap_{name}_y"]].to_numpy()).all()
        vec = np.stack(emb[name].to_numpy())
        assert np.allclose(np.linalg.norm(vec, axis=1), 1, atol=1e-3)
    assert len(emb) == len(flags)

    report = pd.read_csv(trained_run / "class_report.csv")
    assert list(report.columns) == ["class", "clips", "estimated_noise_rate", "top_suggested_replacement",
                                    "estimated_mismatch_rate"]
    assert report["clips"].sum() == len(flags)
    assert report["estimated_noise_rate"].between(0, 1).all()

    events = [__import__("json").loads(line) for line in (trained_run / "progress.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3] and [e["phase"] for e in epochs] == [1, 1, 2]
    assert {"cls", "inst", "cat", "total"} <= set(epochs[0]["losses"])
    ckpt = load_checkpoint(trained_run / "checkpoint.pt")
    assert ckpt["epoch"] == 3 and ckpt["classes"] == sorted(classes)


def test_auto_mirroring_trains_unmirrored_until_the_mirror_test_decides(trained_run):
    """flip_frames auto (the default): the first epoch mirrors no frame and its end runs the mirror test, which
    decides by the warm-up's end (FAST: one epoch); every later epoch mirrors as it decided, and the checkpoint
    keeps the decision for a resumed run."""
    events = [__import__("json").loads(line) for line in (trained_run / "progress.jsonl").read_text().splitlines()]
    epochs = [e for e in events if e["event"] == "epoch"]
    test = epochs[0]["mirror_test"]
    assert epochs[0]["mirrored_frames"] is False and test["decided"] and test["clips"] == 40
    assert 0 <= test["trivial_accuracy"] <= 1 and 0 <= test["accuracy"] <= 1 and 0 <= test["mirrored_accuracy"] <= 1
    assert all("mirror_test" not in e and e["mirrored_frames"] is test["keeps_class"] for e in epochs[1:])
    assert int(load_checkpoint(trained_run / "checkpoint.pt")["state"]["mirror"]) == int(test["keeps_class"])


def test_a_baseline_takes_the_mirror_test_on_an_evaluation_of_its_own(small_dataset, tmp_path):
    """ce estimates nothing at its epoch ends, so the mirror test evaluates the clips as well as their mirror
    images; it decides as ntl's does."""
    run = tmp_path / "ce"
    run_cli("train", "--data", str(small_dataset), "--run", str(run), "--method", "ce", *FAST)
    events = [__import__("json").loads(line) for line in (run / "progress.jsonl").read_text().splitlines()]
    epochs = [e for e in events if e["event"] == "epoch"]
    test = epochs[0]["mirror_test"]
    assert epochs[0]["mirrored_frames"] is False and test["decided"] and test["clips"] == 40
    assert "est_label_noise" not in epochs[0]
    assert all(e["mirrored_frames"] is test["keeps_class"] for e in epochs[1:])


def test_score_reproduces_train_outputs(trained_run, small_dataset, tmp_path):
    out = tmp_path / "scored"
    run_cli("score", "--run", str(trained_run), "--data", str(small_dataset), "--out", str(out))
    # the training's sound evidence of its three epoch ends, kept for its own clips and labels (method.md 24)
    ckpt = load_checkpoint(trained_run / "checkpoint.pt")
    given = pd.read_csv(small_dataset / "labels.csv").set_index("clip")["label"]
    assert int(ckpt["state"]["sound_ends"]) == 3 and ckpt["labels"] == given.loc[ckpt["clips"]].tolist()
    a = pd.read_csv(trained_run / "flags.csv").set_index("clip").sort_index()
    b = pd.read_csv(out / "flags.csv").set_index("clip").sort_index()
    pd.testing.assert_frame_equal(a, b, atol=1e-4)


def test_run_dir_of_another_data_set_is_refused(trained_run, tmp_path):
    import json
    import shutil

    other = tmp_path / "other"
    (other / "clips").mkdir(parents=True)
    data = Path(json.loads((trained_run / "config.json").read_text())["data_dir"])
    for clip in sorted((data / "clips").iterdir())[:4]:
        shutil.copy(clip, other / "clips" / clip.name)
    (other / "labels.csv").write_text("clip,label\n" + "".join(f"clips/{c.name},x{i % 2}\n"
                                                              for i, c in enumerate(sorted((other / "clips").iterdir()))))
    proc = run_cli("train", "--data", str(other), "--run", str(trained_run), *FAST, check=False)
    assert proc.returncode == 2
    assert "holds a run of another data set" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_data_set_is_one_line_error(tmp_path):
    proc = run_cli("train", "--data", str(tmp_path / "nope"), "--run", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2 and "not a folder" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(small_dataset, trained_run, tmp_path):
    run = tmp_path / "killed"
    args = [sys.executable, "-m", "auditor", "train", "--data", str(small_dataset), "--run", str(run), *FAST]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run / "checkpoint.pt").exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "flags.csv").exists()
    run_cli("train", "--data", str(small_dataset), "--run", str(run), *FAST, "--resume")
    a = pd.read_csv(trained_run / "flags.csv").set_index("clip").sort_index()
    b = pd.read_csv(run / "flags.csv").set_index("clip").sort_index()
    pd.testing.assert_frame_equal(a, b, atol=1e-4)
    events = (run / "progress.jsonl").read_text()
    assert '"resumed": true' in events


def _torchrun(data: Path, run: Path, *args: str) -> subprocess.CompletedProcess:
    """``train`` under torchrun with 2 CPU processes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "auditor",
           "train", "--data", str(data), "--run-dir", str(run), *args, "--device", "cpu"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu_writes_a_complete_run(small_dataset, trained_run, tmp_path):
    """The whole command under torchrun (gradient equality of DDP itself: tests/test_ddp.py)."""
    run = tmp_path / "ddp"
    proc = _torchrun(small_dataset, run, *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = pd.read_csv(trained_run / "flags.csv")
    ddp = pd.read_csv(run / "flags.csv")
    assert list(ddp.columns) == FLAGS_COLUMNS and sorted(ddp["clip"]) == sorted(single["clip"])
    events = [e["event"] for e in map(__import__("json").loads, (run / "progress.jsonl").read_text().splitlines())]
    assert events[0] == "start" and events[-1] == "done" and events.count("epoch") == 3


@pytest.mark.slow
def test_torchrun_trains_the_ce_baseline_whose_projection_heads_are_unused(small_dataset, tmp_path):
    run = tmp_path / "ce"
    proc = _torchrun(small_dataset, run, "--method", "ce", "--epochs-phase1", "2", "--epochs-phase2", "0",
                     "--batch-size", "16", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    flags = pd.read_csv(run / "flags.csv")
    assert list(flags.columns) == FLAGS_COLUMNS and flags["label_noise_score"].notna().any()
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2


def test_a_checkpoint_of_the_encoders_before_max_mean_pooling_is_refused_with_what_to_do(tmp_path):
    old = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "epoch": 3, "model": {"w": torch.zeros(2)}}, old)
    with pytest.raises(UserError, match="train the run again"):
        load_checkpoint(old)


def test_checkpoint_with_pickled_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "model": Payload()}, bad)
    with pytest.raises(UserError, match="refused"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_training_into_a_scored_folder_is_refused(trained_run, small_dataset, tmp_path):
    scored = tmp_path / "scored"
    run_cli("score", "--run", str(trained_run), "--data", str(small_dataset), "--out", str(scored))
    proc = run_cli("train", "--data", str(small_dataset), "--run", str(scored), *FAST, check=False)
    assert proc.returncode == 2 and "already holds scored results" in proc.stderr
    assert (scored / "flags.csv").is_file() and (scored / "embeddings.parquet").is_file()


def test_the_frames_are_mirrored_as_flip_frames_says_auto_by_default(capsys):
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    assert config_from_args(p.parse_args(["--data", "d", "--run", "r"])).flip_frames == "auto"
    for choice in ("always", "never", "auto"):
        args = p.parse_args(["--data", "d", "--run", "r", "--flip-frames", choice])
        assert config_from_args(args).flip_frames == choice
    with pytest.raises(SystemExit):
        p.parse_args(["--data", "d", "--run", "r", "--flip-frames", "yes"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(UserError, match="flip-frames"):
        TrainConfig(flip_frames="yes").validate()
