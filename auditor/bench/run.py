"""The bench run: every (setting, seed, method) not yet done, then the speed table, targets and reports.

Data: the sample generator at each of ``cfg.settings`` with each seed of the split (generated into
``OUT/data/<data name>/`` unless there already), or ``cfg.data``. Per (setting, seed, method) the run folder
``OUT/runs/<data>/<method>/`` holds flags.csv and metrics.json; a run folder holding both (with the same bench
settings, metric names and measuring code: ``_key``) is not measured again, and a training is reused whenever its
run folder holds a finished one of the same config, so a killed bench continues where it stopped. Outputs in OUT:
results.csv (one row per method x setting x seed), speed.csv, targets.csv, results.md, and the plots
(report.write_plots).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.atomic import atomic_write_text
from auditor.bench.methods import run_method
from auditor.bench.report import write_reports
from auditor.bench.results import ID_COLUMNS, METRICS
from auditor.bench.settings import DATA_NOISE_TYPE, MAX_SEEDS, SPLITS, BenchConfig, Setting
from auditor.bench.speed import speed_table
from auditor.bench.targets import evaluate_targets
from auditor.data.generate import generate_dataset


@dataclass
class BenchResult:
    """What run_benchmark wrote: the three tables and the files (results.md first)."""

    results: pd.DataFrame  # one row per method x setting x seed (ID_COLUMNS + METRICS)
    speed: pd.DataFrame  # measure, value, detail
    targets: pd.DataFrame  # target, status, ntl, reference, detail
    files: list[Path]


def run_benchmark(cfg: BenchConfig, log: Callable[[str], None] | None = None) -> BenchResult:
    """Run every (setting, seed, method) not yet done, the speed measurements, and write the reports.

    ``log`` gets one line per step (default: stderr with the seconds since the start). Raises UserError for a
    bad ``cfg`` (BenchConfig.validate) before anything is written."""
    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "bench_config.json", json.dumps(asdict(cfg), indent=2, default=str))
    started = time.perf_counter()
    log = log or _stderr_log(started)
    plan = _plan(cfg)
    rows: list[dict] = []
    data_dirs: dict[str, tuple[Setting, Path]] = {}
    total, done = len(plan) * len(cfg.methods), 0
    for setting, seed in plan:
        data = setting_data(cfg, setting, seed, log)
        data_dirs.setdefault(setting.name, (setting, data[0]))
        info = {"setting": setting.name, "noise_type": setting.noise_type, "label_noise": setting.label_noise,
                "mismatch": setting.mismatch, "imbalance": setting.imbalance, "muted": setting.muted, "seed": seed}
        for method in cfg.methods:
            done += 1
            step = f"[{done}/{total}] {setting.name} seed {seed} {method}"
            metrics = method_metrics(cfg, method, setting, seed, data, step, log)
            rows.append(info | {"clips": int(metrics.get("clips", 0)), "method": method}
                        | {k: metrics.get(k, np.nan) for k in METRICS})
    results = pd.DataFrame(rows, columns=ID_COLUMNS + list(METRICS))
    speed = speed_table(cfg, results, data_dirs, log)
    targets = evaluate_targets(results)
    files = write_reports(out, results, speed, targets, seeds=cfg.seeds, split=describe_split(cfg))
    log(f"bench done in {time.perf_counter() - started:.0f} s; wrote {out / 'results.md'}")
    return BenchResult(results=results, speed=speed, targets=targets, files=files)


def method_metrics(cfg: BenchConfig, method: str, setting: Setting, seed: int,
                   data: tuple[Path, pd.DataFrame, Path | None], step: str, log: Callable[[str], None]) -> dict:
    """The metrics of a finished run folder of the same bench settings, else run the method and store them."""
    run_dir = cfg.run_dir(setting, seed, method)
    metrics = _finished(run_dir, cfg)
    if metrics is not None:
        log(f"{step}: done before, reused")
        return metrics
    log(f"{step}: running")
    data_dir, truth, test_dir = data
    metrics = run_method(method, cfg, data_dir, truth, test_dir, run_dir, seed, Path(cfg.out) / "cache")
    stored = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in metrics.items()}
    atomic_write_text(run_dir / "metrics.json", json.dumps({"key": _key(cfg), "metrics": stored}, indent=2))
    log(f"{step}: {_summary(metrics)}")
    return metrics


def _stderr_log(started: float) -> Callable[[str], None]:
    def log(message: str) -> None:
        print(f"[bench {time.perf_counter() - started:6.0f}s] {message}", file=sys.stderr, flush=True)

    return log


def _summary(m: dict) -> str:
    """The log line of a finished method: its label AP, mismatch AP, clean-test accuracy and training seconds."""
    shown = [f"{METRICS[k][0]} {m[k]:.3f}" for k in ("label_ap", "mismatch_ap", "test_acc")
             if isinstance(m.get(k), float) and not math.isnan(m[k])]
    return ", ".join(shown + [f"train {m.get('train_seconds', float('nan')):.1f} s"])


def _plan(cfg: BenchConfig) -> list[tuple[Setting, int]]:
    """(setting, seed) pairs in order: a --data set's one setting (rates measured from truth.csv) or each of
    cfg.settings, each with the seeds of cfg's split."""
    if cfg.data is not None:
        truth = pd.read_csv(Path(cfg.data) / "truth.csv")
        rates = [round(float(truth[c].mean()), 4) if c in truth else 0.0
                 for c in ("label_is_noisy", "is_mismatched", "is_muted")]
        setting = Setting(DATA_NOISE_TYPE, rates[0], rates[1], muted=rates[2])
        return [(setting, seed) for seed in cfg.seed_list()]
    return [(s, seed) for s in cfg.settings for seed in cfg.seed_list()]


def describe_split(cfg: BenchConfig) -> str:
    """The split line of results.md: which seeds, and what they are for."""
    seeds = cfg.seed_list()
    use = {"dev": "development seeds: for choosing defaults (schedule, label evidence, thresholds, k); do not "
                  "report these numbers as results",
           "report": f"held-out report seeds, disjoint from the development seeds {SPLITS['dev']}–"
                     f"{SPLITS['dev'] + MAX_SEEDS - 1}: nothing was chosen by looking at them"}[cfg.split]
    return f"Split `{cfg.split}`: seeds {seeds[0]}–{seeds[-1]} ({use})."


def _key(cfg: BenchConfig) -> dict:
    """What a finished run folder's metrics.json must match to be reused: the bench settings, the metric names
    and :func:`measuring_code` (a bench with new metrics, or with a changed way of deriving or measuring a
    method's flags, measures old runs again; their trainings are reused when their TrainConfig matches)."""
    return cfg.key() | {"metrics": list(METRICS), "measuring_code": measuring_code()}


# The modules that turn a trained run into a method's flags and its measures (auditor/ relative).
MEASURING_SOURCES = ("bench/methods.py", "bench/baselines.py", "bench/early_stopping.py", "metrics.py")


@functools.cache
def measuring_code() -> str:
    """sha256 (first 16 hex digits) of MEASURING_SOURCES' bytes, in that order: which code measured a run."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for name in MEASURING_SOURCES:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def setting_data(cfg: BenchConfig, setting: Setting, seed: int,
                 log: Callable[[str], None]) -> tuple[Path, pd.DataFrame, Path | None]:
    """(data dir, its truth table, clean test dir or None); generates the data unless it is there already."""
    if cfg.data is not None:
        data_dir = Path(cfg.data).resolve()
    else:
        data_dir = (Path(cfg.out) / "data" / cfg.data_name(setting, seed)).resolve()
        marker = data_dir / "bench_data.json"
        args = {"clips": cfg.clips, **setting.generator_args(), "seed": seed, "test_clips": cfg.test_clips}
        if not marker.is_file() or json.loads(marker.read_text()) != json.loads(json.dumps(args)):  # tuples: lists
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
    if stored.get("key") != _key(cfg):
        return None
    return {k: (np.nan if v is None else v) for k, v in stored["metrics"].items()}
