"""Benchmark: every method on the same encoders, preset and data with injected, known noise, side by side.

Data: the sample generator at a grid of :class:`Setting` (noise type, label-noise rate r, mismatch rate m), or a
data set folder with ``truth.csv`` (``--data DIR``). Methods (:data:`METHODS`), all trained for the same total
number of epochs E = E1 + E2:

  ntl            the two-phase noise-tolerant model (E1 phase-1 + E2 phase-2 epochs)
  ce             plain cross-entropy; label score = 1 - p^av(given label), suggestion = argmax p^av
  cleanlab       cleanlab's label-quality score (1 - score) and ``find_label_issues`` (the F1 flag) on K-fold
                 out-of-sample probabilities of ``ce``; suggestion = argmax of those probabilities; no mismatch
  cosine         mismatch score = (1 - cos(z^v, z^a)) / 2 of an unweighted contrastive model (CE + InfoNCE)
  ntl_no_cat     ntl without the category-level loss
  ntl_no_w       ntl without w re-weighting
  ntl_no_phase2  ntl with E2 = 0 and E1 = E (same budget)
  ce_clean       ce trained on the TRUE labels: the clean reference for ntl's clean-test accuracy; it has no
                 label or mismatch scores (NaN), only the clean-test accuracy and its timings

Per (setting, seed, method) the run folder ``OUT/runs/<data>/<method>/`` holds flags.csv and metrics.json; a run
folder holding both (with the same bench settings) is not recomputed, so a killed bench continues where it stopped.
Outputs in OUT: results.csv (one row per method x setting x seed), speed.csv, targets.csv, results.md, and the
plots label_ap.html / mismatch_ap.html (+ .png when kaleido is installed).

Settings syntax (:func:`parse_settings`): comma-separated items ``[sym|asym]R[+mmM]`` or ``mmM``, e.g.
``sym0.4+mm0.2,asym0.2,mm0.2``; R = label-noise rate in [0, 1), M = mismatch rate in [0, 1] (default 0);
``grid`` = the full grid, ``quick`` = sym0.4+mm0.2.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.atomic import atomic_write_text
from auditor.errors import UserError

METHODS = ("ntl", "ce", "cleanlab", "cosine", "ntl_no_cat", "ntl_no_w", "ntl_no_phase2", "ce_clean")
# TrainConfig fields per method (epochs are filled in by _train_config so that every method gets E1 + E2).
_METHOD_TRAIN: dict[str, dict] = {
    "ntl": {"method": "ntl"},
    "ce": {"method": "ce"},
    "cleanlab": {"method": "ce"},
    "cosine": {"method": "cosine"},
    "ntl_no_cat": {"method": "ntl", "use_cat": False},
    "ntl_no_w": {"method": "ntl", "use_w": False},
    "ntl_no_phase2": {"method": "ntl"},
    "ce_clean": {"method": "ce"},
}
# Metric columns of results.csv, in order, with the header results.md gives them and the digits shown.
METRICS: dict[str, tuple[str, int]] = {
    "label_ap": ("label AP", 3), "label_auroc": ("label AUROC", 3), "label_f1": ("label F1", 3),
    "mismatch_ap": ("mismatch AP", 3), "mismatch_auroc": ("mismatch AUROC", 3), "mismatch_f1": ("mismatch F1", 3),
    "suggestion_acc_noisy": ("suggestion acc (noisy)", 3), "test_acc": ("clean-test acc", 3),
    "train_seconds": ("train s", 1), "train_throughput": ("clips·epochs/s", 1),
    "wall_seconds": ("train+score wall s", 1),
}
ID_COLUMNS = ["setting", "noise_type", "label_noise", "mismatch", "seed", "clips", "method"]
NOISE_SHORT = {"symmetric": "sym", "asymmetric": "asym"}
UMAP_DIM, UMAP_CENTRES = 128, 50  # the UMAP timing input: random unit vectors clustered around 50 centres
UMAP_SPREAD = 0.5  # per-coordinate noise around a centre, in units of 1/sqrt(dim)
UMAP_WARMUP_POINTS = 5000  # > umap's 4096-point exact-neighbours limit, so NNDescent is compiled too
FFMPEG = "ffmpeg"
TOLERANCE = 1e-6  # rates (picking a target's settings) and a target's bound are compared with this slack


@dataclass(frozen=True)
class Setting:
    """One noise setting of the generated data: noise_type in {symmetric, asymmetric}, rates in [0, 1]."""

    noise_type: str = "symmetric"
    label_noise: float = 0.0
    mismatch: float = 0.0

    @property
    def name(self) -> str:
        return f"{NOISE_SHORT.get(self.noise_type, self.noise_type)}{self.label_noise:g}+mm{self.mismatch:g}"


GRID: tuple[Setting, ...] = tuple(Setting(nt, r, m) for nt, r in (("symmetric", 0.2), ("symmetric", 0.4),
                                                                   ("symmetric", 0.6), ("asymmetric", 0.2),
                                                                   ("asymmetric", 0.4)) for m in (0.0, 0.2))
QUICK_SETTING = Setting("symmetric", 0.4, 0.2)
_ITEM = re.compile(r"^(?:(?P<type>sym|asym|symmetric|asymmetric)(?P<r>\d*\.?\d+))?"
                   r"(?:\+?mm(?P<m>\d*\.?\d+))?$")


def parse_settings(text: str) -> list[Setting]:
    """``"sym0.4+mm0.2,asym0.2,mm0.2,grid"`` -> settings in order, duplicates dropped (see the module docstring).

    Raises UserError naming the item that does not parse or whose rate is out of range."""
    out: list[Setting] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        if item == "grid":
            found = list(GRID)
        elif item == "quick":
            found = [QUICK_SETTING]
        else:
            m = _ITEM.match(item)
            if m is None or not (m["type"] or m["m"]) or (item.startswith("+")):
                raise UserError(f"--settings: cannot parse {raw.strip()!r}; expected items like sym0.4+mm0.2, "
                                "asym0.2, mm0.2, grid or quick")
            noise_type = {"sym": "symmetric", "asym": "asymmetric"}.get(m["type"] or "sym", m["type"])
            rate, mism = float(m["r"] or 0.0), float(m["m"] or 0.0)
            if not 0.0 <= rate < 1.0:
                raise UserError(f"--settings: {raw.strip()!r}: label-noise rate must be in [0, 1), got {rate:g}")
            if not 0.0 <= mism <= 1.0:
                raise UserError(f"--settings: {raw.strip()!r}: mismatch rate must be in [0, 1], got {mism:g}")
            found = [Setting(noise_type, rate, mism)]
        out += [s for s in found if s not in out]
    if not out:
        raise UserError("--settings: no setting given")
    return out


def parse_methods(text: str) -> tuple[str, ...]:
    """``"ntl,ce"`` -> ("ntl", "ce") in :data:`METHODS` order; raises UserError listing the valid names."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise UserError(f"--methods: unknown method(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from: {', '.join(METHODS)}")
    return tuple(m for m in METHODS if m in names)


@dataclass
class BenchConfig:
    """Everything a bench run depends on. ``data`` set = benchmark that data set instead of generating."""

    out: Path
    settings: list[Setting] = field(default_factory=lambda: list(GRID))
    data: Path | None = None
    methods: tuple[str, ...] = METHODS
    seeds: int = 1
    clips: int = 480
    test_clips: int = 160
    # 0 / -1 = the training's automatic schedule for the data size (auditor.train.resolve_schedule); every method
    # gets the same total number of epochs as ntl.
    epochs_phase1: int = 0
    epochs_phase2: int = -1
    batch_size: int = 0  # 0 = the preset's
    warmup_epochs: int = -1  # ntl: w and r stay 1 for this many epochs; -1 = auto
    preset: str = "cpu"
    folds: int = 3  # K of cleanlab's out-of-sample probabilities
    speed: bool = True
    umap_points: tuple[int, ...] = (10_000, 50_000)
    workers: int | None = None  # decode / render processes (default: all cores)
    device: str = "auto"

    def validate(self) -> None:
        if self.seeds < 1:
            raise UserError(f"--seeds must be >= 1, got {self.seeds}")
        if self.epochs_phase1 < 0 or self.epochs_phase2 < -1 or self.warmup_epochs < -1:
            raise UserError("--epochs-phase1 must be >= 0 (0 = auto), --epochs-phase2 and --warmup-epochs >= -1 "
                            "(-1 = auto)")
        if self.folds < 2:
            raise UserError(f"--folds must be >= 2, got {self.folds}")
        if self.data is None and (self.clips < 2 * self.folds or self.test_clips < 0):
            raise UserError(f"--clips must be >= {2 * self.folds} and --test-clips >= 0")
        if self.data is not None:
            for name in ("labels.csv", "truth.csv"):
                if not (Path(self.data) / name).is_file():
                    raise UserError(f"{Path(self.data) / name}: --data needs a data set with labels.csv and "
                                    "truth.csv (the injected truth)")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UserError(f"unknown method(s) {', '.join(unknown)}; choose from: {', '.join(METHODS)}")

    def key(self) -> dict:
        """What a finished run folder must match to be reused."""
        return {"preset": self.preset, "epochs_phase1": self.epochs_phase1, "epochs_phase2": self.epochs_phase2,
                "batch_size": self.batch_size, "warmup_epochs": self.warmup_epochs, "folds": self.folds}


# --quick: small enough for a few minutes on 2 CPU cores (10 trainings: 7 methods + cleanlab's 3 folds); the
# numbers are a smoke check of the pipeline, not evidence. UMAP timing is skipped (its compile alone is minutes).
QUICK = {"settings": [QUICK_SETTING], "clips": 64, "test_clips": 32, "epochs_phase1": 1, "epochs_phase2": 1,
         "warmup_epochs": 1, "batch_size": 16, "umap_points": ()}


def quick_config(out: str | Path, **overrides) -> BenchConfig:
    """The ``--quick`` bench (one setting, small data, few epochs), with ``overrides`` applied."""
    return BenchConfig(out=Path(out), **(QUICK | overrides))


@dataclass
class BenchResult:
    results: pd.DataFrame  # one row per method x setting x seed (ID_COLUMNS + METRICS)
    speed: pd.DataFrame  # measure, value, detail
    targets: pd.DataFrame  # target, status, ntl, reference, detail
    files: list[Path]


# ================================================================================================================
# the run


def run_benchmark(cfg: BenchConfig, log: Callable[[str], None] | None = None) -> BenchResult:
    """Run every (setting, seed, method) not yet done, the speed measurements, and write the reports."""
    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "bench_config.json", json.dumps(asdict(cfg), indent=2, default=str))
    started = time.perf_counter()
    log = log or _stderr_log(started)
    cache_root = out / "cache"
    plan = _plan(cfg)
    rows: list[dict] = []
    data_dirs: dict[str, tuple[Setting, Path]] = {}
    total, done = len(plan) * len(cfg.methods), 0
    for setting, seed in plan:
        data_dir, truth, test_dir = _setting_data(cfg, setting, seed, log)
        data_dirs.setdefault(setting.name, (setting, data_dir))
        info = {"setting": setting.name, "noise_type": setting.noise_type, "label_noise": setting.label_noise,
                "mismatch": setting.mismatch, "seed": seed}
        for method in cfg.methods:
            done += 1
            run_dir = out / "runs" / f"{_data_name(cfg, setting, seed)}" / method
            metrics = _finished(run_dir, cfg)
            if metrics is None:
                log(f"[{done}/{total}] {setting.name} seed {seed} {method}: running")
                metrics = run_method(method, cfg, data_dir, truth, test_dir, run_dir, seed, cache_root)
                stored = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in metrics.items()}
                atomic_write_text(run_dir / "metrics.json", json.dumps({"key": cfg.key(), "metrics": stored},
                                                                       indent=2))
                log(f"[{done}/{total}] {setting.name} seed {seed} {method}: {_summary(metrics)}")
            else:
                log(f"[{done}/{total}] {setting.name} seed {seed} {method}: done before, reused")
            rows.append(info | {"clips": int(metrics.get("clips", 0)), "method": method}
                        | {k: metrics.get(k, np.nan) for k in METRICS})
    results = pd.DataFrame(rows, columns=ID_COLUMNS + list(METRICS))
    speed = (measure_speed(cfg, results, data_dirs, log) if cfg.speed
             else pd.DataFrame(_train_speed_rows(results), columns=["measure", "value", "detail"]))
    targets = evaluate_targets(results)
    files = write_reports(out, results, speed, targets, seeds=cfg.seeds)
    log(f"bench done in {time.perf_counter() - started:.0f} s; wrote {out / 'results.md'}")
    return BenchResult(results=results, speed=speed, targets=targets, files=files)


def _stderr_log(started: float) -> Callable[[str], None]:
    def log(message: str) -> None:
        print(f"[bench {time.perf_counter() - started:6.0f}s] {message}", file=sys.stderr, flush=True)

    return log


def _summary(m: dict) -> str:
    shown = [f"{METRICS[k][0]} {m[k]:.3f}" for k in ("label_ap", "mismatch_ap", "test_acc")
             if isinstance(m.get(k), float) and not math.isnan(m[k])]
    return ", ".join(shown + [f"train {m.get('train_seconds', float('nan')):.1f} s"])


def _plan(cfg: BenchConfig) -> list[tuple[Setting, int]]:
    if cfg.data is not None:
        truth = pd.read_csv(Path(cfg.data) / "truth.csv")
        setting = Setting("data", round(float(truth["label_is_noisy"].mean()), 4),
                          round(float(truth["is_mismatched"].mean()), 4))
        return [(setting, seed) for seed in range(cfg.seeds)]
    return [(s, seed) for s in cfg.settings for seed in range(cfg.seeds)]


def _data_name(cfg: BenchConfig, setting: Setting, seed: int) -> str:
    if cfg.data is not None:
        return f"data-{Path(cfg.data).resolve().name}-s{seed}"
    return f"{setting.name}-n{cfg.clips}-t{cfg.test_clips}-s{seed}"


def _setting_data(cfg: BenchConfig, setting: Setting, seed: int,
                  log: Callable[[str], None]) -> tuple[Path, pd.DataFrame, Path | None]:
    """(data dir, its truth table, clean test dir or None); generates the data unless it is there already."""
    if cfg.data is not None:
        data_dir = Path(cfg.data).resolve()
    else:
        from auditor.data.synth import generate_dataset

        data_dir = (Path(cfg.out) / "data" / _data_name(cfg, setting, seed)).resolve()
        marker = data_dir / "bench_data.json"
        args = {"clips": cfg.clips, "label_noise": setting.label_noise, "noise_type": setting.noise_type,
                "mismatch": setting.mismatch, "seed": seed, "test_clips": cfg.test_clips}
        if not marker.is_file() or json.loads(marker.read_text()) != args:
            log(f"generating {data_dir.name} ({cfg.clips} + {cfg.test_clips} test clips)")
            summary = generate_dataset(data_dir, workers=cfg.workers, **args)
            log(f"generated {data_dir.name} in {summary['seconds']:.0f} s")
            atomic_write_text(marker, json.dumps(args))
    truth = pd.read_csv(data_dir / "truth.csv")
    test_dir = data_dir / "test"
    return data_dir, truth, test_dir if (test_dir / "truth.csv").is_file() else None


def _finished(run_dir: Path, cfg: BenchConfig) -> dict | None:
    """The stored metrics of a finished run folder of the same bench settings, else None."""
    path = run_dir / "metrics.json"
    if not (run_dir / "flags.csv").is_file() or not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if stored.get("key") != cfg.key():
        return None
    return {k: (np.nan if v is None else v) for k, v in stored["metrics"].items()}


# ================================================================================================================
# one method on one data set


def run_method(method: str, cfg: BenchConfig, data_dir: Path, truth: pd.DataFrame, test_dir: Path | None,
               run_dir: Path, seed: int, cache_root: Path) -> dict:
    """Train ``method`` on ``data_dir`` into ``run_dir`` (flags.csv) and measure it against ``truth``.

    Returns clips, the METRICS that apply (NaN for those that do not) and epochs."""
    from auditor.metrics import flag_metrics

    run_dir.mkdir(parents=True, exist_ok=True)
    tc = _train_config(method, cfg, seed, len(truth))
    if method == "cleanlab":
        flags, (seconds, wall), clip_epochs = _run_cleanlab(cfg, data_dir, run_dir, seed, cache_root)
    else:
        train_dir = _true_label_dir(data_dir, truth, run_dir / "data") if method == "ce_clean" else data_dir
        seconds, wall = _train(train_dir, run_dir, tc, cache_root, cfg.workers)
        flags = pd.read_csv(run_dir / "flags.csv", keep_default_na=False, na_values=[""])
        clip_epochs = int(flags["label_noise_score"].notna().sum()) * tc.epochs_total
    metrics = flag_metrics(flags, truth)
    if method == "cleanlab":
        metrics["label_f1"] = _issue_f1(flags, truth)
    if method == "ce_clean":  # its scores judge the true labels: nothing to detect
        metrics = {"clips": metrics["clips"]} | {k: np.nan for k in metrics if k != "clips"}
    metrics["test_acc"] = _test_accuracy(method, run_dir, test_dir, cache_root, cfg.device)
    metrics["train_seconds"] = round(seconds, 2)
    metrics["wall_seconds"] = round(wall, 2)
    metrics["train_throughput"] = clip_epochs / seconds if seconds > 0 else np.nan
    metrics["epochs"] = tc.epochs_total
    return {k: (float(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in metrics.items()}


def _train_config(method: str, cfg: BenchConfig, seed: int, n_clips: int):
    """The method's TrainConfig with ntl's schedule for ``n_clips`` clips; one-phase methods get its total."""
    from auditor.model.config import TrainConfig, resolve_schedule

    ntl = resolve_schedule(TrainConfig(preset=cfg.preset, epochs_phase1=cfg.epochs_phase1,
                                       epochs_phase2=cfg.epochs_phase2, warmup_epochs=cfg.warmup_epochs,
                                       batch_size=cfg.batch_size), n_clips)
    fields = _METHOD_TRAIN[method]
    if fields["method"] == "ntl" and method != "ntl_no_phase2":
        e1, e2 = ntl.epochs_phase1, ntl.epochs_phase2
    else:  # the same total budget in one phase
        e1, e2 = ntl.epochs_total, 0
    return TrainConfig(preset=cfg.preset, epochs_phase1=e1, epochs_phase2=e2, batch_size=cfg.batch_size,
                       warmup_epochs=ntl.warmup_epochs, seed=seed, device=cfg.device, **fields)


def _train(data_dir: Path, run_dir: Path, tc, cache_root: Path, workers: int | None) -> tuple[float, float]:
    """Train unless ``run_dir`` holds a finished run of the same config; continue a run killed part-way.

    Returns (training-loop seconds, training + scoring wall seconds), both from progress.jsonl."""
    from auditor.pipeline import train_and_score as train

    state = _run_state(run_dir, tc, data_dir)
    if state != "done":
        train(data_dir, run_dir, tc, resume=state == "partial", overwrite=True, quiet=True, workers=workers,
              cache_root=cache_root)
    return _train_seconds(run_dir)


def _run_state(run_dir: Path, tc, data_dir: Path) -> str:
    """'done' | 'partial' (a checkpoint of this config and data) | 'none'."""
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return "none"
    if config.get("train") != asdict(tc) or config.get("data_dir") != str(Path(data_dir).resolve()):
        return "none"
    if (run_dir / "flags.csv").is_file():
        return "done"
    return "partial" if (run_dir / "checkpoint.pt").is_file() else "none"


def _train_seconds(run_dir: Path) -> tuple[float, float]:
    """(elapsed_s of the last epoch event, time from the first start event to the last done event)."""
    seconds, start, end = np.nan, np.nan, np.nan
    for line in (run_dir / "progress.jsonl").read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        kind = event.get("event")
        if kind == "epoch":
            seconds = float(event["elapsed_s"])
        elif kind == "start" and math.isnan(start):
            start = float(event["time"])
        elif kind == "done":
            end = float(event["time"])
    return seconds, end - start


def _derived_dir(data_dir: Path, out_dir: Path, labels: pd.DataFrame) -> Path:
    """A data set folder ``out_dir`` with its own labels.csv (clip, label) whose clips are the files of
    ``data_dir``, reached through symbolic links of their top-level folders (so clip paths and cache keys stay the
    same and the shared cache decodes nothing again)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for top in sorted({str(c).split("/")[0] for c in labels["clip"]}):
        link, target = out_dir / top, (data_dir / top).resolve()
        if link.is_symlink() and link.resolve() == target:
            continue
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.exists():
            shutil.rmtree(link)
        link.symlink_to(target, target_is_directory=target.is_dir())
    atomic_write_text(out_dir / "labels.csv", labels[["clip", "label"]].to_csv(index=False, lineterminator="\n"))
    return out_dir


def _true_label_dir(data_dir: Path, truth: pd.DataFrame, out_dir: Path) -> Path:
    from auditor.data.manifest import load_manifest

    clips = load_manifest(data_dir).rows[["clip"]]
    labels = clips.merge(truth[["clip", "true_label"]], on="clip").rename(columns={"true_label": "label"})
    return _derived_dir(data_dir, out_dir, labels)


def _test_accuracy(method: str, run_dir: Path, test_dir: Path | None, cache_root: Path, device: str) -> float:
    """Accuracy of the classifier's argmax p^av on the clean held-out split (NaN: no split, or cleanlab, which
    has no classifier of its own)."""
    if test_dir is None or method == "cleanlab":
        return np.nan
    from auditor.metrics import accuracy
    from auditor.scoring import predict_labels

    pred = predict_labels(run_dir, test_dir, device=device, cache_root=cache_root)
    return accuracy(pred, pd.read_csv(test_dir / "truth.csv"), "predicted_label")


# ================================================================================================================
# cleanlab on K-fold out-of-sample probabilities of ce


def _run_cleanlab(cfg: BenchConfig, data_dir: Path, run_dir: Path, seed: int,
                  cache_root: Path) -> tuple[pd.DataFrame, tuple[float, float], int]:
    """Writes run_dir/flags.csv (label_noise_score = 1 - cleanlab's label quality, is_label_issue from
    find_label_issues, suggestion = argmax of the out-of-sample p^av). Returns (flags, the folds' summed
    (train, wall) seconds, their summed clips x epochs)."""
    import torch
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from auditor.data.cache import prepare_data
    from auditor.flags import FLAGS_COLUMNS
    from auditor.model.checkpoint import load_trained
    from auditor.model.distributed import resolve_device
    from auditor.model.estimate import evaluate
    from auditor.model.presets import preprocess_params

    result, arrays = prepare_data(data_dir, preprocess_params(cfg.preset), workers=cfg.workers, show_bar=False, cache_root=cache_root)
    classes = result.classes
    labels = np.array([classes.index(c) for c in arrays.labels])
    n, k = len(labels), len(classes)
    probs = np.zeros((n, k))
    logits_a, logits_v = np.zeros((n, k)), np.zeros((n, k))
    device = resolve_device(cfg.device)
    tc = _train_config("cleanlab", cfg, seed, n)
    seconds, wall, clip_epochs = 0.0, 0.0, 0
    for fold, (train_idx, held_idx) in enumerate(_folds(labels, cfg.folds, seed)):
        fold_dir = run_dir / "folds" / f"f{fold}"
        table = pd.DataFrame({"clip": [arrays.clips[i] for i in train_idx],
                              "label": [arrays.labels[i] for i in train_idx]})
        fold_data = _derived_dir(data_dir, fold_dir / "data", table)
        fold_seconds, fold_wall = _train(fold_data, fold_dir / "run", tc, cache_root, cfg.workers)
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


def _folds(labels: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train, held-out) index pairs, stratified by label when every class has at least K clips."""
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.bincount(labels)
    splitter = (StratifiedKFold(k, shuffle=True, random_state=seed) if counts[counts > 0].min() >= k
                else KFold(k, shuffle=True, random_state=seed))
    return list(splitter.split(np.zeros(len(labels)), labels))


def _issue_f1(flags: pd.DataFrame, truth: pd.DataFrame) -> float:
    from sklearn.metrics import f1_score

    df = flags.merge(truth, on="clip")
    y = df["label_is_noisy"].astype(bool).to_numpy()
    return float(f1_score(y, df["is_label_issue"].astype(bool))) if y.any() and not y.all() else np.nan


# ================================================================================================================
# speed


def measure_speed(cfg: BenchConfig, results: pd.DataFrame, data_dirs: dict[str, tuple[Setting, Path]],
                  log: Callable[[str], None]) -> pd.DataFrame:
    """The speed table (measure, value, detail): ingest vs ffmpeg decode, training throughput ntl vs ce, UMAP
    seconds, scoring seconds per setting. Measured now, in this process, one after another."""
    rows: list[dict] = []
    first = next(iter(data_dirs.values()))[1]
    rows += _decode_speed(cfg, first, log)
    rows += _train_speed_rows(results)
    rows += _umap_speed(cfg.umap_points, log)
    for setting, data_dir in data_dirs.values():
        rows += _scoring_speed(cfg, setting, data_dir, log)
    return pd.DataFrame(rows, columns=["measure", "value", "detail"])


def _decode_speed(cfg: BenchConfig, data_dir: Path, log: Callable[[str], None]) -> list[dict]:
    """Ingest into an emptied cache. For generated data that cache is the data folder's own (which only
    score_run reads: the timed scoring then decodes nothing); a user's --data keeps its cache, we use OUT's."""
    from auditor.data.cache import default_cache_root, ingest
    from auditor.model.presets import preprocess_params

    params = preprocess_params(cfg.preset)
    workers = cfg.workers or os.cpu_count() or 1
    root = default_cache_root(data_dir) if cfg.data is None else Path(cfg.out) / "speed" / "ingest-cache"
    shutil.rmtree(root / params.digest(), ignore_errors=True)
    log(f"speed: ingest decode of {data_dir.name} with {workers} workers")
    t0 = time.perf_counter()
    result = ingest(data_dir, params, cache_root=root, workers=workers)
    ingest_s = time.perf_counter() - t0
    if cfg.data is not None:
        shutil.rmtree(root, ignore_errors=True)
    n = int(result.decoded_now)
    paths = [result.manifest.path_of(c) for c in result.manifest.rows["clip"]]
    ingest_cps = n / ingest_s if ingest_s > 0 else np.nan
    rows = [{"measure": "ingest decode throughput (clips/s)", "value": ingest_cps,
             "detail": f"{n} clips of {data_dir.name}, {workers} workers, {ingest_s:.1f} s wall (fresh cache; "
                       "includes starting the worker processes)"}]
    ffmpeg = shutil.which(FFMPEG) or ("/usr/bin/ffmpeg" if Path("/usr/bin/ffmpeg").is_file() else None)
    if ffmpeg is None:
        return rows + [{"measure": "ffmpeg raw decode throughput (clips/s)", "value": np.nan,
                        "detail": "ffmpeg not found"}]
    log(f"speed: ffmpeg raw decode of the same {len(paths)} clips, {workers} parallel processes")
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(workers) as pool:
        codes = list(pool.map(lambda p: subprocess.run([ffmpeg, "-v", "error", "-threads", "1", "-i", str(p),
                                                        "-f", "null", "-"], capture_output=True).returncode, paths))
    ffmpeg_s = time.perf_counter() - t0
    ffmpeg_cps = len(paths) / ffmpeg_s if ffmpeg_s > 0 else np.nan
    failed = sum(c != 0 for c in codes)
    return rows + [
        {"measure": "ffmpeg raw decode throughput (clips/s)", "value": ffmpeg_cps,
         "detail": f"`ffmpeg -v error -threads 1 -i CLIP -f null -`, {workers} in parallel, {ffmpeg_s:.1f} s wall"
                   + (f", {failed} failed" if failed else "")},
        {"measure": "ingest / ffmpeg throughput ratio", "value": ingest_cps / ffmpeg_cps,
         "detail": "same clips, same number of processes, this run"}]


def _train_speed_rows(results: pd.DataFrame) -> list[dict]:
    """clips x epochs per training-loop second of ntl and ce over all their runs, and the ratio."""
    rows, rate = [], {}
    for method in ("ntl", "ce"):
        sub = results[(results["method"] == method) & results["train_seconds"].notna()]
        if sub.empty:
            continue
        rate[method] = float((sub["train_throughput"] * sub["train_seconds"]).sum() / sub["train_seconds"].sum())
        rows.append({"measure": f"training throughput {method} (clips·epochs/s)", "value": rate[method],
                     "detail": f"{len(sub)} run(s), {sub['train_seconds'].sum():.1f} training s in all"})
    if len(rate) == 2:
        rows.append({"measure": "training throughput ratio ntl / ce", "value": rate["ntl"] / rate["ce"],
                     "detail": "same data, encoders and total epochs"})
    return rows


def clustered_unit_vectors(n: int, dim: int = UMAP_DIM, centres: int = UMAP_CENTRES, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 unit vectors, each a random centre (of ``centres``) plus Gaussian noise, renormalised."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = c[rng.integers(0, centres, n)] + rng.standard_normal((n, dim)) * (UMAP_SPREAD / math.sqrt(dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _umap_speed(sizes: tuple[int, ...], log: Callable[[str], None]) -> list[dict]:
    from auditor.scoring import umap_2d

    if not sizes:
        return [{"measure": "UMAP seconds", "value": np.nan,
                 "detail": "not measured (no --umap-points sizes; --quick has none: pass --umap-points 10000,50000)"}]
    # Compile numba first (a size above umap's exact-neighbours limit also compiles NNDescent): the timings
    # below are steady-state; the one-off compile is reported on its own.
    log("speed: UMAP warm-up (numba compile)")
    t0 = time.perf_counter()
    umap_2d(clustered_unit_vectors(UMAP_WARMUP_POINTS, seed=1))
    rows = [{"measure": f"UMAP first call in a process, {UMAP_WARMUP_POINTS:,} points (s)",
             "value": time.perf_counter() - t0, "detail": "includes numba's one-off compile (partly done already "
                                                            "by the trainings' scoring in this process)"}]
    for n in sizes:
        log(f"speed: UMAP of {n:,} points")
        t0 = time.perf_counter()
        umap_2d(clustered_unit_vectors(n), seed=0)
        rows.append({"measure": f"UMAP seconds, {n:,} points", "value": time.perf_counter() - t0,
                     "detail": f"auditor.scoring.umap_2d, {UMAP_DIM}-d unit vectors around {UMAP_CENTRES} centres"})
    return rows


def _scoring_speed(cfg: BenchConfig, setting: Setting, data_dir: Path, log: Callable[[str], None]) -> list[dict]:
    from auditor.data.cache import ingest
    from auditor.model.presets import preprocess_params
    from auditor.scoring import score_run, umap_2d

    seed = 0
    model_run = next((Path(cfg.out) / "runs" / _data_name(cfg, setting, seed) / m
                      for m in ("ntl", "ntl_no_cat", "ntl_no_w", "ntl_no_phase2", "cosine", "ce")
                      if (Path(cfg.out) / "runs" / _data_name(cfg, setting, seed) / m / "checkpoint.pt").is_file()),
                     None)
    if model_run is None:
        return []
    # score_run reads the data folder's own cache: fill it first (no-op after _decode_speed), and compile UMAP
    # (already done when this process trained): the timing is scoring only.
    ingest(data_dir, preprocess_params(cfg.preset), workers=cfg.workers)
    umap_2d(clustered_unit_vectors(300, seed=1))
    log(f"speed: score_run of {model_run.name} on {setting.name}")
    t0 = time.perf_counter()
    score_run(model_run, data_dir, Path(cfg.out) / "speed" / f"score-{setting.name}", device=cfg.device,
              workers=cfg.workers)
    seconds = time.perf_counter() - t0
    n = len(pd.read_csv(data_dir / "labels.csv"))
    return [{"measure": f"scoring seconds ({setting.name})", "value": seconds,
             "detail": f"auditor.scoring.score_run with the {model_run.name} model, {n} clips (cached decode)"}]


# ================================================================================================================
# targets


@dataclass(frozen=True)
class Target:
    """ntl's ``metric`` against ``reference``'s on the selected settings: met when
    mean(ntl) >= mean(ref) + margin (kind "diff") or mean(ntl) <= factor * mean(ref) (kind "ratio")."""

    name: str
    metric: str
    reference: str
    kind: str  # "diff" | "ratio"
    amount: float
    noise_type: str | None = None  # None = any
    label_noise: float | None = None
    mismatch: float | None = None


TARGETS: tuple[Target, ...] = (
    Target("ntl label AP ≥ cleanlab + 0.05 at 40% symmetric noise", "label_ap", "cleanlab", "diff", 0.05,
           noise_type="symmetric", label_noise=0.4),
    Target("ntl mismatch AP ≥ cosine + 0.10 at 20% mismatch", "mismatch_ap", "cosine", "diff", 0.10,
           mismatch=0.2),
    Target("ntl clean-test accuracy within 3 points of ce_clean at 40% symmetric noise", "test_acc", "ce_clean",
           "diff", -0.03, noise_type="symmetric", label_noise=0.4),
    Target("ntl train seconds ≤ 1.5 × ce", "train_seconds", "ce", "ratio", 1.5),
)


def evaluate_targets(results: pd.DataFrame, targets: tuple[Target, ...] = TARGETS) -> pd.DataFrame:
    """One row per target: target, status ('met' | 'not met' | 'not run'), ntl, reference (means over the
    (setting, seed) pairs where both methods have the metric), detail (pairs used and per-setting values)."""
    rows = []
    for t in targets:
        sel = results
        if t.noise_type is not None:
            sel = sel[sel["noise_type"] == t.noise_type]
        if t.label_noise is not None:
            sel = sel[(sel["label_noise"] - t.label_noise).abs() < TOLERANCE]
        if t.mismatch is not None:
            sel = sel[(sel["mismatch"] - t.mismatch).abs() < TOLERANCE]
        pair = _paired(sel, t.metric, t.reference)
        row = {"target": t.name, "status": "not run", "ntl": np.nan, "reference": np.nan, "detail": ""}
        if not pair.empty:
            ntl, ref = float(pair["ntl"].mean()), float(pair["ref"].mean())
            ok = ntl >= ref + t.amount - TOLERANCE if t.kind == "diff" else ntl <= t.amount * ref + TOLERANCE
            per = pair.groupby("setting")[["ntl", "ref"]].mean()
            detail = "; ".join(f"{s}: {a:.3f} vs {b:.3f}" for s, (a, b) in per.iterrows())
            row |= {"status": "met" if ok else "not met", "ntl": ntl, "reference": ref,
                    "detail": f"{len(pair)} setting×seed run(s); {detail}"}
            if t.kind == "ratio":
                row["detail"] = f"ratio {ntl / ref:.2f}; " + row["detail"]
        rows.append(row)
    return pd.DataFrame(rows, columns=["target", "status", "ntl", "reference", "detail"])


def _paired(sel: pd.DataFrame, metric: str, reference: str) -> pd.DataFrame:
    keys = ["setting", "seed"]
    a = sel.loc[sel["method"] == "ntl", keys + [metric]].rename(columns={metric: "ntl"})
    b = sel.loc[sel["method"] == reference, keys + [metric]].rename(columns={metric: "ref"})
    return a.merge(b, on=keys).dropna(subset=["ntl", "ref"])


# ================================================================================================================
# reports


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (setting, method): columns ``<metric>`` (mean), ``<metric>_std``, ``seeds``."""
    keys = ["setting", "noise_type", "label_noise", "mismatch", "method"]
    grouped = results.groupby(keys, sort=False)
    mean = grouped[list(METRICS)].mean()
    std = grouped[list(METRICS)].std(ddof=1).add_suffix("_std")
    out = pd.concat([mean, std, grouped.size().rename("seeds")], axis=1).reset_index()
    return out


def write_reports(out: Path, results: pd.DataFrame, speed: pd.DataFrame, targets: pd.DataFrame, *,
                  seeds: int = 1) -> list[Path]:
    """results.csv, speed.csv, targets.csv, results.md and the plots; returns the paths written."""
    out = Path(out)
    files = [out / "results.csv", out / "speed.csv", out / "targets.csv"]
    atomic_write_text(files[0], results.to_csv(index=False))
    atomic_write_text(files[1], speed.to_csv(index=False))
    atomic_write_text(files[2], targets.to_csv(index=False))
    plots, png_note = write_plots(out, results)
    files += plots
    atomic_write_text(out / "results.md", render_markdown(results, speed, targets, seeds=seeds, plots=plots,
                                                          png_note=png_note))
    return [out / "results.md", *files]


def render_markdown(results: pd.DataFrame, speed: pd.DataFrame, targets: pd.DataFrame, *, seeds: int = 1,
                    plots: list[Path] = (), png_note: str = "") -> str:
    summary = summarise(results)
    lines = ["# AV Auditor benchmark", ""]
    lines += [f"Methods on the same encoders, preset and data; {'mean ± std over ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}. "
              "Label scores: AP / AUROC against truth's label_is_noisy; mismatch: against is_mismatched; "
              "F1 at the flag threshold (cleanlab: its find_label_issues); suggestion accuracy on truly-noisy "
              "clips; clean-test accuracy on the clean held-out split. `–` = not applicable. Seconds are wall clock "
              "on whatever else the machine was running: compare timings of one run only.", ""]
    lines += ["## Targets", "", _md_table(["target", "status", "ntl", "reference", "detail"],
                                          [[r.target, r.status, _num(r.ntl, 3), _num(r.reference, 3), r.detail]
                                           for r in targets.itertuples(index=False)]), ""]
    lines += ["## Quality per setting", ""]
    shown = [k for k in METRICS if k != "wall_seconds"]
    for name, sub in summary.groupby("setting", sort=False):
        first = sub.iloc[0]
        clips = results.loc[results["setting"] == name, "clips"].max()
        kind = "given data set, measured" if first["noise_type"] == "data" else first["noise_type"]
        lines += [f"### {name} ({kind} label noise {first['label_noise']:g}, mismatch "
                  f"{first['mismatch']:g}, {_num(clips, 0)} clips)", ""]
        body = [[r["method"]] + [_pm(r[k], r[f"{k}_std"], METRICS[k][1], seeds > 1) for k in shown]
                for _, r in sub.iterrows()]
        lines += [_md_table(["method"] + [METRICS[k][0] for k in shown], body), ""]
    lines += ["## Speed", ""]
    if speed.empty:
        lines += ["Not measured (`--no-speed`).", ""]
    else:
        lines += [_md_table(["measure", "value", "detail"],
                            [[r.measure, _num(r.value, 3 if "ratio" in r.measure else 1), r.detail]
                             for r in speed.itertuples(index=False)]), ""]
    if plots:
        lines += ["## Plots", ""] + [f"- [{p.name}]({p.name})" for p in plots]
        lines += (["", png_note] if png_note else []) + [""]
    return "\n".join(lines)


def _num(value, digits: int) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "–" if math.isnan(v) else f"{v:.{digits}f}"


def _pm(mean: float, std: float, digits: int, with_std: bool) -> str:
    text = _num(mean, digits)
    if with_std and text != "–" and not math.isnan(std):
        text += f" ± {std:.{digits}f}"
    return text


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows])


def write_plots(out: Path, results: pd.DataFrame) -> tuple[list[Path], str]:
    """label_ap.html (label AP vs label-noise rate per method) and mismatch_ap.html (mismatch AP vs label-noise
    rate per method, settings with mismatch), plus PNGs when kaleido is installed. Returns (paths, note)."""
    import plotly.express as px

    summary = summarise(results)
    summary["mismatch rate"] = summary["mismatch"].map(lambda m: f"mismatch {m:g}")
    written: list[Path] = []
    note = ""
    try:
        import kaleido  # noqa: F401

        png = True
    except ImportError:
        png, note = False, "PNG files skipped: kaleido is not installed."
    for metric, title, rows in (
            ("label_ap", "Label-noise AP vs label-noise rate", summary),
            ("mismatch_ap", "Mismatch AP vs label-noise rate (settings with mismatch)",
             summary[summary["mismatch"] > 0])):
        data = rows[rows[metric].notna()].sort_values(["method", "label_noise"])
        if data.empty:
            data = rows.head(0)
        fig = px.line(data, x="label_noise", y=metric, color="method", facet_col="noise_type",
                      facet_row="mismatch rate" if metric == "label_ap" else None, error_y=f"{metric}_std",
                      markers=True, title=title, category_orders={"method": list(METHODS)},
                      labels={"label_noise": "label-noise rate", metric: METRICS[metric][0]})
        fig.update_yaxes(range=[0, 1.02])
        fig.update_xaxes(range=[-0.02, max(0.7, float(rows["label_noise"].max() if len(rows) else 0) + 0.05)])
        fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))  # "noise_type=symmetric" -> value
        path = out / f"{metric}.html"
        fig.write_html(path, include_plotlyjs="directory")
        written.append(path)
        if png:
            try:
                fig.write_image(out / f"{metric}.png")
                written.append(out / f"{metric}.png")
            except Exception as err:  # kaleido present but no browser to render with
                note = f"PNG files skipped: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
    return written, note


def with_overrides(cfg: BenchConfig, **values) -> BenchConfig:
    """``cfg`` with the given fields replaced where the value is not None."""
    return replace(cfg, **{k: v for k, v in values.items() if v is not None})
