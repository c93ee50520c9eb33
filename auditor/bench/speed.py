"""The speed table (speed.csv: measure, value, detail): ingest vs ffmpeg decode, training throughput ntl vs ce,
UMAP seconds and scoring seconds, measured in this process one after another on whatever else the machine runs.

Seconds are wall clock; a throughput is clips (x epochs) per second; a ratio compares two measures of this run."""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.bench.results import SPEED_COLUMNS
from auditor.bench.settings import BenchConfig, Setting
from auditor.data.cache import default_cache_root, ingest
from auditor.model.presets import preprocess_params
from auditor.scoring import score_run, umap_2d

UMAP_DIM, UMAP_CENTRES = 128, 50  # the UMAP timing input: random unit vectors clustered around 50 centres
UMAP_SPREAD = 0.5  # per-coordinate noise around a centre, in units of 1/sqrt(dim)
UMAP_WARMUP_POINTS = 5000  # > umap's 4096-point exact-neighbours limit, so NNDescent is compiled too
FFMPEG = "ffmpeg"
# The run whose model the scoring timing uses: the first of these a setting's first-seed runs trained.
SCORING_MODELS = ("ntl", "ntl_no_cat", "ntl_no_w", "ntl_no_phase2", "cosine", "ce")


def speed_table(cfg: BenchConfig, results: pd.DataFrame, data_dirs: dict[str, tuple[Setting, Path]],
                log: Callable[[str], None]) -> pd.DataFrame:
    """The speed table: the training throughputs of ``results``; unless ``cfg.speed`` is off, first the decode
    speed of the first data set, then after them UMAP seconds and the scoring seconds of every data set."""
    if not cfg.speed:
        return pd.DataFrame(_train_speed_rows(results), columns=SPEED_COLUMNS)
    rows: list[dict] = []
    first = next(iter(data_dirs.values()))[1]
    rows += _decode_speed(cfg, first, log)
    rows += _train_speed_rows(results)
    rows += _umap_speed(cfg.umap_points, log)
    for setting, data_dir in data_dirs.values():
        rows += _scoring_speed(cfg, setting, data_dir, log)
    return pd.DataFrame(rows, columns=SPEED_COLUMNS)


def _decode_speed(cfg: BenchConfig, data_dir: Path, log: Callable[[str], None]) -> list[dict]:
    """Ingest into an emptied cache. For generated data that cache is the data folder's own (which only
    score_run reads: the timed scoring then decodes nothing); a user's --data keeps its cache, we use OUT's."""
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
    """The first (compiling) call on UMAP_WARMUP_POINTS points, then one row per size."""
    if not sizes:
        return [{"measure": "UMAP seconds", "value": np.nan,
                 "detail": "not measured (no --umap-points sizes; --quick has none: pass --umap-points "
                           f"{','.join(map(str, BenchConfig.umap_points))})"}]
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
    """score_run of the setting's first SCORING_MODELS run of the split's first seed (none trained: no row)."""
    seed = cfg.seed_list()[0]
    model_run = next((run for run in (cfg.run_dir(setting, seed, m) for m in SCORING_MODELS)
                      if (run / "checkpoint.pt").is_file()), None)
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
