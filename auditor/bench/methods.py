"""One method on one data set: train it (cleanlab: K folds) and measure its flags against the injected truth.

The measures are auditor.metrics.flag_metrics of flags.csv against truth.csv, the clean-test accuracy and the
training timings (the keys of auditor.bench.results.METRICS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from auditor.bench.baselines import issue_f1, run_cleanlab
from auditor.bench.settings import BenchConfig
from auditor.bench.training import derived_dir, train_config, train_run
from auditor.data.manifest import load_manifest
from auditor.metrics import accuracy, flag_metrics
from auditor.scoring import predict_labels


def run_method(method: str, cfg: BenchConfig, data_dir: Path, truth: pd.DataFrame, test_dir: Path | None,
               run_dir: Path, seed: int, cache_root: Path) -> dict:
    """Train ``method`` on ``data_dir`` into ``run_dir`` (flags.csv) and measure it against ``truth``.

    Returns clips, the METRICS that apply (NaN for those that do not) and epochs, all as float."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tc = train_config(method, cfg, seed, len(truth))
    if method == "cleanlab":
        flags, (seconds, wall), clip_epochs = run_cleanlab(cfg, data_dir, run_dir, seed, cache_root)
    else:
        train_dir = _true_label_dir(data_dir, truth, run_dir / "data") if method == "ce_clean" else data_dir
        seconds, wall = train_run(train_dir, run_dir, tc, cache_root, cfg.workers)
        flags = pd.read_csv(run_dir / "flags.csv", keep_default_na=False, na_values=[""])
        clip_epochs = int(flags["label_noise_score"].notna().sum()) * tc.epochs_total
    metrics = flag_metrics(flags, truth)
    if method == "cleanlab":
        metrics["label_f1"] = issue_f1(flags, truth)
    if method == "ce_clean":  # its scores judge the true labels: nothing to detect
        metrics = {"clips": metrics["clips"]} | {k: np.nan for k in metrics if k != "clips"}
    metrics["test_acc"] = _test_accuracy(method, run_dir, test_dir, cache_root, cfg.device)
    metrics["train_seconds"] = round(seconds, 2)
    metrics["wall_seconds"] = round(wall, 2)
    metrics["train_throughput"] = clip_epochs / seconds if seconds > 0 else np.nan
    metrics["epochs"] = tc.epochs_total
    return {k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in metrics.items()}


def _true_label_dir(data_dir: Path, truth: pd.DataFrame, out_dir: Path) -> Path:
    """``data_dir``'s clips labelled with truth's true_label (ce_clean's training data)."""
    clips = load_manifest(data_dir).rows[["clip"]]
    labels = clips.merge(truth[["clip", "true_label"]], on="clip").rename(columns={"true_label": "label"})
    return derived_dir(data_dir, out_dir, labels)


def _test_accuracy(method: str, run_dir: Path, test_dir: Path | None, cache_root: Path, device: str) -> float:
    """Accuracy of the classifier's argmax p^av on the clean held-out split (NaN: no split, or cleanlab, which
    has no classifier of its own)."""
    if test_dir is None or method == "cleanlab":
        return np.nan
    pred = predict_labels(run_dir, test_dir, device=device, cache_root=cache_root)
    return accuracy(pred, pd.read_csv(test_dir / "truth.csv"), "predicted_label")
