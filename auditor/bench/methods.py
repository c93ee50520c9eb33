"""One method on one data set: train it, write its flags.csv, and measure them against the injected truth.

How a method gets its flags (RUNNERS, by method; the rest train and score as ``auditor train`` does):
  cleanlab      K folds of ``ce`` (each in RUN/folds/f<k>/run), out-of-sample probabilities, cleanlab's scores
  small_loss    a ``ce`` run's outputs at the epoch a held-out split picks (early_stopping; the selection run in
                RUN/select/run), re-scored: baselines.small_loss_scores
  infonce_loss  the same with a ``cosine`` run, re-scored: baselines.infonce_loss_scores
  knn           the ``cosine`` method's run (trained there unless done), scored from its embeddings.parquet
The measures are auditor.metrics.flag_metrics of flags.csv against truth.csv, on the scores the method has
(MethodSpec.scores; cleanlab's flag rates from its find_label_issues), the clean-test accuracy (and the smallest
per-class recall there) and the training timings (the keys of auditor.bench.results.METRICS).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from auditor.atomic import atomic_write_text
from auditor.bench.baselines import (
    cleanlab_scores,
    infonce_loss_scores,
    knn_scores,
    small_loss_scores,
    stratified_folds,
)
from auditor.bench.early_stopping import (
    RECORDED_OUTPUTS,
    SELECTION_FOLDS,
    EpochRecorder,
    held_out_criterion,
    keep_records_consistent,
    load_record,
    select_epoch,
)
from auditor.bench.settings import METHOD_SPECS, BenchConfig
from auditor.bench.training import derived_dir, run_state, train_config, train_run
from auditor.data.cache import ClipArrays, prepare_data
from auditor.data.manifest import load_manifest
from auditor.flags import FLAGS_COLUMNS, RANK_COLUMNS, add_missing_ranks
from auditor.metrics import FLAG_RATES, accuracy, class_recall, flag_metrics
from auditor.model.checkpoint import load_trained
from auditor.model.config import TrainConfig
from auditor.model.distributed import resolve_device
from auditor.model.estimate import evaluate
from auditor.model.presets import preprocess_params
from auditor.run_folder import read_config
from auditor.scoring import predict_labels

SCORE_COLUMNS = ("suggested_confidence", "label_noise_score", "mismatch_score", "label_noise_rank", "mismatch_rank")


@dataclass
class Job:
    """One method on one (setting, seed): what a runner needs."""

    method: str
    cfg: BenchConfig
    data_dir: Path
    truth: pd.DataFrame
    run_dir: Path
    seed: int
    cache_root: Path

    def config(self, train_clips: int | None = None, method: str | None = None) -> TrainConfig:
        return train_config(method or self.method, self.cfg, self.seed, len(self.truth), train_clips)

    def train(self, data_dir: Path, run_dir: Path, tc: TrainConfig) -> tuple[float, float]:
        return train_run(data_dir, run_dir, tc, self.cache_root, self.cfg.workers)

    def arrays(self) -> ClipArrays:
        return prepare_data(self.data_dir, preprocess_params(self.cfg.preset), workers=self.cfg.workers,
                            show_bar=False, cache_root=self.cache_root)[1]


@dataclass
class Trained:
    """A runner's result: flags (flags.csv, written), summed training-loop and wall seconds, clips x epochs, and
    the epochs of one training (of a cleanlab fold)."""

    flags: pd.DataFrame
    seconds: float
    wall: float
    clip_epochs: int
    epochs: int


def run_method(method: str, cfg: BenchConfig, data_dir: Path, truth: pd.DataFrame, test_dir: Path | None,
               run_dir: Path, seed: int, cache_root: Path) -> dict:
    """Train ``method`` on ``data_dir`` into ``run_dir`` (flags.csv) and measure it against ``truth``.

    Returns clips, the METRICS that apply (NaN for those that do not) and epochs, all as float."""
    run_dir.mkdir(parents=True, exist_ok=True)
    job = Job(method, cfg, data_dir, truth, run_dir, seed, cache_root)
    done = RUNNERS.get(method, _run_training)(job)
    measured = measured_flags(done.flags, METHOD_SPECS[method].scores)
    metrics = flag_metrics(measured, truth)
    if "is_label_issue" in done.flags:  # cleanlab's own flag rule (find_label_issues) instead of score >= 0.5
        issues = flag_metrics(measured.assign(label_noise_score=done.flags["is_label_issue"].astype(float)), truth)
        metrics |= {f"label_{k}": issues[f"label_{k}"] for k in FLAG_RATES}
    scored = done.flags["label_noise_score"].notna() | done.flags["mismatch_score"].notna()
    metrics["clips"] = float((scored & done.flags["clip"].isin(truth["clip"])).sum())  # whatever it is measured on
    metrics["test_acc"], metrics["test_min_class_recall"] = _test_accuracy(method, run_dir, test_dir, cache_root,
                                                                           cfg.device)
    metrics["train_seconds"] = round(done.seconds, 2)
    metrics["wall_seconds"] = round(done.wall, 2)
    metrics["train_throughput"] = done.clip_epochs / done.seconds if done.seconds > 0 else np.nan
    metrics["epochs"] = done.epochs
    return {k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in metrics.items()}


def measured_flags(flags: pd.DataFrame, scores: tuple[str, ...]) -> pd.DataFrame:
    """``flags`` with the scores a method is not measured on (MethodSpec.scores) emptied; without a label score,
    no suggestion either. (ce's flags.csv has mismatch_score 0 on silent clips, which is not a mismatch score.)"""
    empty = {"label": ["label_noise_score", "suggested_label"], "mismatch": ["mismatch_score"]}
    return flags.assign(**{col: np.nan for s, cols in empty.items() if s not in scores for col in cols})


def _run_training(job: Job) -> Trained:
    """Train (ce_clean: on the true labels) and read the run's own flags.csv."""
    tc = job.config()
    data_dir = job.data_dir
    if job.method == "ce_clean":
        data_dir = _true_label_dir(job.data_dir, job.truth, job.run_dir / "data")
    seconds, wall = job.train(data_dir, job.run_dir, tc)
    flags = read_flags(job.run_dir)
    return Trained(flags, seconds, wall, int(flags["label_noise_score"].notna().sum()) * tc.epochs_total,
                   tc.epochs_total)


def _run_cleanlab(job: Job) -> Trained:
    """K folds of ce, each predicting its held-out clips; cleanlab on the out-of-sample p^av. flags.csv:
    label_noise_score = 1 - label quality, is_label_issue = find_label_issues, suggestion = argmax p^av."""
    arrays = job.arrays()
    classes = sorted(set(arrays.labels))
    labels = np.array([classes.index(c) for c in arrays.labels])
    n, k = len(labels), len(classes)
    out = {name: np.zeros((n, k)) for name in ("logits_av", "logits_a", "logits_v")}
    seconds, wall, clip_epochs = 0.0, 0.0, 0
    for fold, (train_idx, held_idx) in enumerate(stratified_folds(labels, job.cfg.folds, job.seed)):
        fold_dir = job.run_dir / "folds" / f"f{fold}"
        table = pd.DataFrame({"clip": [arrays.clips[i] for i in train_idx],
                              "label": [arrays.labels[i] for i in train_idx]})
        tc = job.config(train_clips=len(train_idx))
        fold_data = derived_dir(job.data_dir, fold_dir / "data", table)
        fold_seconds, fold_wall = job.train(fold_data, fold_dir / "run", tc)
        seconds, wall = seconds + fold_seconds, wall + fold_wall
        clip_epochs += len(train_idx) * tc.epochs_total
        ev, fold_classes = _evaluate_run(fold_dir / "run", arrays, held_idx, job.cfg.device)
        cols = np.array([classes.index(c) for c in fold_classes])  # a fold may lack a rare class
        for name, values in out.items():
            values[np.ix_(held_idx, cols)] = ev[name].numpy()
            if len(cols) < k:  # a class the fold never saw gets no probability
                values[np.ix_(held_idx, np.setdiff1d(np.arange(k), cols))] = -np.inf
    probs = torch.softmax(torch.from_numpy(out["logits_av"]), 1).numpy()
    score, issues = cleanlab_scores(labels, probs)
    names = np.asarray(classes, dtype=object)
    flags = pd.DataFrame({"clip": arrays.clips, "given_label": arrays.labels,
                          "suggested_label": names[probs.argmax(1)], "suggested_confidence": probs.max(1),
                          "label_noise_score": score, "mismatch_score": np.nan,
                          "audio_pred": names[out["logits_a"].argmax(1)],
                          "visual_pred": names[out["logits_v"].argmax(1)], "problem": ""})
    flags = write_flags(job.run_dir, flags.assign(is_label_issue=issues.astype(int)))
    return Trained(flags, seconds, wall, clip_epochs, tc.epochs_total)


def _run_early_stopped(job: Job) -> Trained:
    """small_loss / infonce_loss: the selection run picks the epoch e*, the scored run's outputs at e* give the
    scores (early_stopping's docstring); the flags are the scored run's with the baseline's scores put in
    (small_loss: the label score and the suggestion argmax p^av at e*; infonce_loss: the mismatch score, and no
    label score or suggestion). Its seconds are both runs'."""
    arrays = job.arrays()
    n, tc, keys = len(arrays.clips), job.config(), RECORDED_OUTPUTS[job.method]
    classes = sorted(set(arrays.labels))
    labels = np.array([classes.index(c) for c in arrays.labels])
    train_idx, held_idx = stratified_folds(labels, SELECTION_FOLDS, job.seed)[0]
    select_dir = job.run_dir / "select"
    table = pd.DataFrame({"clip": [arrays.clips[i] for i in train_idx],
                          "label": [arrays.labels[i] for i in train_idx]})
    select_data = derived_dir(job.data_dir, select_dir / "data", table)
    seconds, wall = _recorded_training(job, select_data, select_dir / "run", tc, EpochRecorder(
        select_dir / "run", arrays, held_idx, tc, keys))
    run_classes = read_config(select_dir / "run")["classes"]
    criterion = {e: held_out_criterion(job.method, load_record(select_dir / "run", e), arrays.labels, run_classes,
                                       arrays.has_audio, tc.tau, tc.seed) for e in range(1, tc.epochs_total + 1)}
    best = select_epoch(criterion)
    atomic_write_text(job.run_dir / "early_stopping.json", json.dumps(
        {"epoch": best, "criterion": {str(e): round(c, 6) for e, c in criterion.items()}}, indent=1) + "\n")
    full_seconds, full_wall = _recorded_training(job, job.data_dir, job.run_dir, tc, EpochRecorder(
        job.run_dir, arrays, np.arange(n), tc, keys))
    record = load_record(job.run_dir, best)
    given = torch.from_numpy(labels)
    if job.method == "small_loss":
        probs = torch.softmax(record["logits_av"].float(), 1)
        columns = {"label_noise_score": small_loss_scores(record["logits_av"], given),
                   "suggested_label": np.asarray(classes, dtype=object)[probs.argmax(1).numpy()],
                   "suggested_confidence": probs.max(1).values.numpy()}
    else:
        columns = {"mismatch_score": infonce_loss_scores(record["z_v"], record["z_a"], given, arrays.has_audio,
                                                         tc.tau, tc.seed),
                   "label_noise_score": np.nan, "suggested_label": "", "suggested_confidence": np.nan}
    flags = write_flags(job.run_dir, _replace(read_flags(job.run_dir), arrays.clips, columns))
    return Trained(flags, seconds + full_seconds, wall + full_wall, (len(train_idx) + n) * tc.epochs_total,
                   tc.epochs_total)


def _recorded_training(job: Job, data_dir: Path, run_dir: Path, tc: TrainConfig,
                       recorder: EpochRecorder) -> tuple[float, float]:
    """job.train with ``recorder`` after every epoch; a run without every epoch's record starts again."""
    keep_records_consistent(run_dir, fresh=run_state(run_dir, tc, data_dir) == "none")
    return train_run(data_dir, run_dir, tc, job.cache_root, job.cfg.workers, epoch_end=recorder)


def _run_knn(job: Job) -> Trained:
    """The kNN-disagreement label score on z^v of the method's MethodSpec.run_as run (trained there unless done:
    its seconds are that training's)."""
    source = METHOD_SPECS[job.method].run_as
    source_dir = job.run_dir.parent / source
    tc = job.config(method=source)
    seconds, wall = job.train(job.data_dir, source_dir, tc)
    emb = pd.read_parquet(source_dir / "embeddings.parquet", columns=["clip", "given_label", "visual"])
    classes = sorted(set(emb["given_label"]))
    labels = np.array([classes.index(c) for c in emb["given_label"]])
    share, vote, vote_share = knn_scores(np.stack(emb["visual"].to_numpy()), labels, job.cfg.knn_k)
    columns = {"label_noise_score": share, "suggested_label": np.asarray(classes, dtype=object)[vote],
               "suggested_confidence": vote_share, "mismatch_score": np.nan}
    flags = write_flags(job.run_dir, _replace(read_flags(source_dir), list(emb["clip"]), columns))
    return Trained(flags, seconds, wall, len(emb) * tc.epochs_total, tc.epochs_total)


RUNNERS: dict[str, Callable[[Job], Trained]] = {"cleanlab": _run_cleanlab, "small_loss": _run_early_stopped,
                                               "infonce_loss": _run_early_stopped, "knn": _run_knn}


def _evaluate_run(run_dir: Path, arrays: ClipArrays, idx: np.ndarray,
                  device: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """An evaluation pass of ``run_dir``'s trained model over ``arrays``' clips ``idx``, and its classes."""
    dev = resolve_device(device)
    model, ckpt = load_trained(run_dir, dev)
    return evaluate(model, arrays, idx, TrainConfig(**ckpt["config"]), dev), list(ckpt["classes"])


def read_flags(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "flags.csv", keep_default_na=False, na_values=[""])


def _replace(flags: pd.DataFrame, clips: list[str], columns: dict) -> pd.DataFrame:
    """``flags`` with ``columns`` (a value per clip of ``clips``, in that order, or one value) set on those rows."""
    pos = pd.Series(np.arange(len(clips)), index=clips)
    rows = flags["clip"].isin(pos.index).to_numpy()
    order = pos[flags.loc[rows, "clip"]].to_numpy()
    flags = flags.copy()
    for col, values in columns.items():
        if col in SCORE_COLUMNS:
            flags[col] = flags[col].astype(float)
        else:
            flags[col] = flags[col].astype(object)
        flags.loc[rows, col] = np.asarray(values)[order] if np.ndim(values) else values
    return flags


def write_flags(run_dir: Path, flags: pd.DataFrame) -> pd.DataFrame:
    """Writes run_dir/flags.csv: FLAGS_COLUMNS (+ extra columns after them), the ranks derived again from the
    scores (auditor.flags.add_missing_ranks), scores rounded as scoring rounds them."""
    flags = add_missing_ranks(flags.drop(columns=list(RANK_COLUMNS), errors="ignore"))
    for col in SCORE_COLUMNS:
        flags[col] = flags[col].astype(float).clip(0.0, 1.0).round(6)
    flags = flags[FLAGS_COLUMNS + [c for c in flags.columns if c not in FLAGS_COLUMNS]]
    atomic_write_text(run_dir / "flags.csv", flags.to_csv(index=False))
    return flags


def _true_label_dir(data_dir: Path, truth: pd.DataFrame, out_dir: Path) -> Path:
    """``data_dir``'s clips labelled with truth's true_label (ce_clean's training data)."""
    clips = load_manifest(data_dir).rows[["clip"]]
    labels = clips.merge(truth[["clip", "true_label"]], on="clip").rename(columns={"true_label": "label"})
    return derived_dir(data_dir, out_dir, labels)


def _test_accuracy(method: str, run_dir: Path, test_dir: Path | None, cache_root: Path,
                   device: str) -> tuple[float, float]:
    """(accuracy, smallest per-class recall) of the classifier's argmax p^av on the clean held-out split; NaN
    without a split or for a method with no classifier of its own (MethodSpec.classifier)."""
    if test_dir is None or not METHOD_SPECS[method].classifier:
        return np.nan, np.nan
    pred = predict_labels(run_dir, test_dir, device=device, cache_root=cache_root)
    truth = pd.read_csv(test_dir / "truth.csv")
    return accuracy(pred, truth, "predicted_label"), float(class_recall(pred, truth, "predicted_label").min())
