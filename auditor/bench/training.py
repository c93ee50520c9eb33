"""One training of a method for the bench, resumable: its TrainConfig, the run, its timings, derived data sets.

A run folder is trained (``auditor.pipeline.train_and_score``: train, then flags.csv) unless it holds a finished
run of the same config and data; a run killed part-way continues from its checkpoint. Every method gets ntl's
total number of epochs, but cleanlab's folds (at least as many gradient updates each as ntl makes on all clips):
:func:`train_config`. The warm-up baselines train as long and read an earlier epoch (auditor.bench.early_stopping).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.atomic import atomic_write_text
from auditor.bench.settings import METHOD_SPECS, BenchConfig
from auditor.model.config import TrainConfig, resolve_schedule, training_batch
from auditor.pipeline import train_and_score
from auditor.run_folder import read_progress
from auditor.train import EpochEnd


def train_config(method: str, cfg: BenchConfig, seed: int, n_clips: int,
                 train_clips: int | None = None) -> TrainConfig:
    """The method's TrainConfig for a data set of ``n_clips`` clips, its epochs from ntl's schedule there
    (MethodSpec.schedule, see SCHEDULES); ``train_clips`` = the clips one training sees (a cleanlab fold's), by
    default all."""
    ntl = resolve_schedule(TrainConfig(preset=cfg.preset, epochs_phase1=cfg.epochs_phase1,
                                       epochs_phase2=cfg.epochs_phase2, warmup_epochs=cfg.warmup_epochs,
                                       batch_size=cfg.batch_size), n_clips)
    spec = METHOD_SPECS[method]
    e1, e2 = SCHEDULES[spec.schedule](ntl, n_clips, n_clips if train_clips is None else train_clips)
    return TrainConfig(preset=cfg.preset, epochs_phase1=e1, epochs_phase2=e2, batch_size=cfg.batch_size,
                       warmup_epochs=min(ntl.warmup_epochs, e1), seed=seed, device=cfg.device, **spec.train)


def updates_per_epoch(tc: TrainConfig, n_clips: int) -> int:
    """Gradient updates of one epoch on ``n_clips`` clips (the training drops the last partial batch)."""
    return max(1, n_clips // training_batch(tc, n_clips))


def _fold_epochs(ntl: TrainConfig, n_clips: int, train_clips: int) -> tuple[int, int]:
    """At least ntl's epochs and at least as many gradient updates on ``train_clips`` clips as ntl makes on all
    ``n_clips``: a fold with fewer clips per epoch gets more epochs."""
    ntl_updates = ntl.epochs_total * updates_per_epoch(ntl, n_clips)
    return max(ntl.epochs_total, math.ceil(ntl_updates / updates_per_epoch(ntl, train_clips))), 0


# MethodSpec.schedule -> (ntl's resolved schedule, clips, clips one training sees) -> (E1, E2): ntl's two phases;
# its total in one phase (so every full method trains as many epochs); a cleanlab fold.
SCHEDULES: dict[str, Callable[[TrainConfig, int, int], tuple[int, int]]] = {
    "two_phase": lambda ntl, n, m: (ntl.epochs_phase1, ntl.epochs_phase2),
    "total": lambda ntl, n, m: (ntl.epochs_total, 0),
    "folds": _fold_epochs,
}


def train_run(data_dir: Path, run_dir: Path, tc: TrainConfig, cache_root: Path, workers: int | None,
              epoch_end: EpochEnd | None = None) -> tuple[float, float]:
    """Train and score unless ``run_dir`` holds a finished run of the same config; continue a run killed part-way.
    ``epoch_end``: called after every epoch the training makes (auditor.train.train).

    Returns (training-loop seconds, training + scoring wall seconds), both from progress.jsonl."""
    state = run_state(run_dir, tc, data_dir)
    if state != "done":
        train_and_score(data_dir, run_dir, tc, resume=state == "partial", overwrite=True, quiet=True,
                        workers=workers, cache_root=cache_root, epoch_end=epoch_end)
    return _train_seconds(run_dir)


def run_state(run_dir: Path, tc: TrainConfig, data_dir: Path) -> str:
    """'done' (flags.csv of this config and data) | 'partial' (a checkpoint of them) | 'none'."""
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
    for event in read_progress(run_dir):
        kind = event.get("event")
        if kind == "epoch":
            seconds = float(event["elapsed_s"])
        elif kind == "start" and math.isnan(start):
            start = float(event["time"])
        elif kind == "done":
            end = float(event["time"])
    return seconds, end - start


def derived_dir(data_dir: Path, out_dir: Path, labels: pd.DataFrame) -> Path:
    """A data set folder ``out_dir`` with its own labels.csv (clip, label) whose clips are the files of
    ``data_dir``, reached through symbolic links of their top-level folders (so clip paths and cache keys stay the
    same and the shared cache decodes nothing again). Returns ``out_dir``."""
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
