"""The cleanlab baseline: cleanlab's label quality and ``find_label_issues`` on K-fold out-of-sample
probabilities of ``ce`` (N clips, K folds; each fold trains ``ce`` on the other folds' clips, in its own run
folder ``RUN/folds/f<k>/run``, and predicts its held-out clips)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.metrics import f1_score
from sklearn.model_selection import KFold, StratifiedKFold

from auditor.atomic import atomic_write_text
from auditor.bench.settings import BenchConfig
from auditor.bench.training import derived_dir, train_config, train_run
from auditor.data.cache import prepare_data
from auditor.flags import FLAGS_COLUMNS
from auditor.model.checkpoint import load_trained
from auditor.model.distributed import resolve_device
from auditor.model.estimate import evaluate
from auditor.model.presets import preprocess_params


def run_cleanlab(cfg: BenchConfig, data_dir: Path, run_dir: Path, seed: int,
                 cache_root: Path) -> tuple[pd.DataFrame, tuple[float, float], int]:
    """Writes run_dir/flags.csv (label_noise_score = 1 - cleanlab's label quality, is_label_issue from
    find_label_issues, suggestion = argmax of the out-of-sample p^av). Returns (flags, the folds' summed
    (train, wall) seconds, their summed clips x epochs)."""
    result, arrays = prepare_data(data_dir, preprocess_params(cfg.preset), workers=cfg.workers, show_bar=False,
                                  cache_root=cache_root)
    classes = result.classes
    labels = np.array([classes.index(c) for c in arrays.labels])
    n, k = len(labels), len(classes)
    probs = np.zeros((n, k))
    logits_a, logits_v = np.zeros((n, k)), np.zeros((n, k))
    device = resolve_device(cfg.device)
    tc = train_config("cleanlab", cfg, seed, n)
    seconds, wall, clip_epochs = 0.0, 0.0, 0
    for fold, (train_idx, held_idx) in enumerate(stratified_folds(labels, cfg.folds, seed)):
        fold_dir = run_dir / "folds" / f"f{fold}"
        table = pd.DataFrame({"clip": [arrays.clips[i] for i in train_idx],
                              "label": [arrays.labels[i] for i in train_idx]})
        fold_data = derived_dir(data_dir, fold_dir / "data", table)
        fold_seconds, fold_wall = train_run(fold_data, fold_dir / "run", tc, cache_root, cfg.workers)
        seconds, wall = seconds + fold_seconds, wall + fold_wall
        clip_epochs += len(train_idx) * tc.epochs_total
        model, ckpt = load_trained(fold_dir / "run", device)
        ev = evaluate(model, arrays, held_idx, tc, device)
        cols = np.array([classes.index(c) for c in ckpt["classes"]])  # a fold may lack a rare class
        probs[np.ix_(held_idx, cols)] = torch.softmax(ev["logits_av"], 1).numpy()
        logits_a[np.ix_(held_idx, cols)] = ev["logits_a"].numpy()
        logits_v[np.ix_(held_idx, cols)] = ev["logits_v"].numpy()
    probs /= probs.sum(1, keepdims=True)
    quality = get_label_quality_scores(labels, probs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "few examples in class k" on small benches
        issues = find_label_issues(labels, probs, n_jobs=1)
    names = np.asarray(classes, dtype=object)
    flags = pd.DataFrame({"clip": arrays.clips, "given_label": arrays.labels,
                          "suggested_label": names[probs.argmax(1)], "suggested_confidence": probs.max(1).round(6),
                          "label_noise_score": (1.0 - quality).clip(0, 1).round(6), "mismatch_score": np.nan,
                          "audio_pred": names[logits_a.argmax(1)], "visual_pred": names[logits_v.argmax(1)],
                          "problem": ""})[FLAGS_COLUMNS]
    flags["is_label_issue"] = issues.astype(int)
    atomic_write_text(run_dir / "flags.csv", flags.to_csv(index=False))
    return flags, (seconds, wall), clip_epochs


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train, held-out) index pairs whose held-out parts partition range(N), stratified by label when every
    class has at least K clips."""
    counts = np.bincount(labels)
    splitter = (StratifiedKFold(k, shuffle=True, random_state=seed) if counts[counts > 0].min() >= k
                else KFold(k, shuffle=True, random_state=seed))
    return list(splitter.split(np.zeros(len(labels)), labels))


def issue_f1(flags: pd.DataFrame, truth: pd.DataFrame) -> float:
    """F1 of flags' is_label_issue against truth's label_is_noisy; NaN when every or no clip is noisy."""
    df = flags.merge(truth, on="clip")
    y = df["label_is_noisy"].astype(bool).to_numpy()
    return float(f1_score(y, df["is_label_issue"].astype(bool))) if y.any() and not y.all() else np.nan
