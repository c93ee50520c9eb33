"""Per-clip verdicts of a trained model -> flags.csv, embeddings.parquet (with UMAP), class_report.csv.

windows.csv, when clips were cut into aligned windows (long clips, data/decode.window_spans): one row per window,
  clip, window, start_s, end_s, audio ("present"/"silent"/"none"), infonce_loss (l of the window), cosine
  (z^v . z^a), level_dbfs (the window's sound level), audible (1: sound present and within
  estimate.AUDIBLE_WITHIN_DB of the clip's loudest window: the windows the judged one is chosen from),
  best_aligned (the window the clip's mismatch score is judged by: model/estimate.evaluate).

flags.csv, one row per ingested clip (method.md "What the auditor reports"):
  clip, given_label, suggested_label, suggested_confidence (= max_k q_i), label_noise_score (= 1 - r_i),
  mismatch_score (= 1 - w_i), audio_pred (argmax p^a), visual_pred (argmax p^v), problem; for ntl with
  cross-fitted label evidence (TrainConfig.evidence_folds > 0) p^a and p^v are the out-of-fold heads'
  (model/estimate.out_of_fold_heads; p^a only for clips with sound), so what the sound alone and the picture alone
  say is what the label evidence weighed.
Scores are in [0, 1], higher = more suspicious. Clips the decoder rejected are listed with empty scores and their
problem; a clip with no sound track gets mismatch_score 0 and problem "no_audio", one whose sound track is silent
(data/features.is_silent) likewise with problem "silent_audio" (silence is not a mismatch).
For the baselines (bench): ``ce``/``cosine`` give label_noise_score = 1 - p^av(given label), suggestion = argmax
p^av; ``cosine`` gives mismatch_score = (1 - cos(z^v, z^a)) / 2; ``ce`` has no mismatch score (empty).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import importlib
import json
import os
import time
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from auditor.atomic import atomic_write, atomic_write_text
from auditor.data.cache import IngestResult
from auditor.errors import UserError
from auditor.flags import FLAGS_COLUMNS, percentile_rank
from auditor.model.checkpoint import load_trained
from auditor.model.config import TrainConfig
from auditor.model.distributed import resolve_device
from auditor.model.estimate import EarlierSound, Evaluation, estimate_noise, evaluate, training_earlier_sound
from auditor.model.loader import loader_workers
from auditor.model.neighbours import nearest_neighbours
from auditor.model.sources import Arrays, prepare_inputs
from auditor.run_folder import (
    CHECKPOINT_FILE,
    CLASS_REPORT_FILE,
    EMBEDDINGS_FILE,
    FLAGS_FILE,
    WINDOWS_FILE,
    RunLock,
    append_progress,
    read_config,
    write_config,
)

UMAP_NEIGHBOURS = 15
# Fewer points than this get the first two PCA axes instead of a UMAP map (umap_2d).
UMAP_MIN_POINTS = 2 * UMAP_NEIGHBOURS // 3 + 2
# The maps show at most this many clips: above it, the same seeded random sample of them on all three maps
# (umap_maps; the other clips' coordinates are NaN and the Explore page leaves them out). A fit costs about 0.5 s
# per 1,000 points on one core (2-core machine, 128-d); placing the other clips by UMAP's transform cost about
# 0.25 s per 1,000 more, and no browser draws 200,000 points per map at a glance.
MAP_POINTS_MAX = 50_000
# From this many points on umap-learn would find the neighbours by NN-descent (below it, from all pairwise
# distances); there umap_2d hands it map_neighbours instead, which needs no numba compilation.
UMAP_SEARCH_MIN = 4096
# Rows of map_neighbours' distance computation at once.
MAP_DISTANCE_BLOCK = 4096
# Values (rows x dims) in one list array of embeddings.parquet's vector columns: their offsets are int32.
LIST_VALUES_MAX = 2**30
# umap-learn's numba kernels on the maps' path that it declares without a disk cache, so that every process
# compiled them again (_cache_umap_kernels).
UMAP_UNCACHED_KERNELS = (("umap.umap_", "smooth_knn_dist"), ("umap.umap_", "compute_membership_strengths"),
                         ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"))


def evaluate_all(model, cfg, arrays: Arrays, labels: torch.Tensor, num_classes: int,
                 device: torch.device, earlier_sound: EarlierSound | None = None) -> Evaluation:
    """The evaluation pass over every clip of ``arrays`` and its estimate (what a training epoch end computes;
    ``earlier_sound``: see estimate_noise)."""
    windows: dict[str, np.ndarray] = {}
    ev = evaluate(model, arrays, np.arange(len(arrays.clips)), cfg, device, windows_out=windows,
                  workers=loader_workers(-1, device, 1))
    est = estimate_noise(ev, labels, torch.from_numpy(arrays.has_audio.copy()), cfg, num_classes, device,
                         earlier_sound=earlier_sound)
    return Evaluation(ev, est, windows)


def compute_scores(model, cfg, arrays: Arrays, labels: torch.Tensor, classes: list[str],
                   device: torch.device, evaluation: Evaluation | None = None,
                   earlier_sound: EarlierSound | None = None) -> dict[str, np.ndarray]:
    """The method's per-clip verdicts, as numpy arrays of length N, from ``evaluation`` (the model's evaluation
    of exactly these clips and labels, e.g. the training's last epoch end) or from a new evaluate_all (with
    ``earlier_sound``)."""
    n = len(arrays.clips)
    evaluation = evaluation or evaluate_all(model, cfg, arrays, labels, len(classes), device, earlier_sound)
    ev, est, windows = evaluation.ev, evaluation.est, evaluation.windows
    has_audio = torch.from_numpy(arrays.has_audio.copy())
    p_av = torch.softmax(ev["logits_av"], dim=1)
    audio_pred, visual_pred = ev["logits_a"].argmax(1), ev["logits_v"].argmax(1)
    if est["heads"]:  # what the sound alone and the picture alone say, from heads that did not fit the clip
        audio_pred = torch.where(has_audio, est["heads"]["p_a"].argmax(1), audio_pred)
        visual_pred = est["heads"]["p_v"].argmax(1)
    out = {"audio_pred": audio_pred.numpy(), "visual_pred": visual_pred.numpy(),
           "z_a": ev["z_a"].numpy(), "z_v": ev["z_v"].numpy(), "u": est["u"].numpy(), "p_av": p_av.numpy(),
           "windows": windows}
    if cfg.method == "ntl":
        out |= {"label_noise_score": 1.0 - est["r"].numpy(), "suggested": est["y_hat"].numpy(),
                "confidence": est["q"].max(1).values.numpy(), "mismatch_score": 1.0 - est["w"].numpy()}
    else:
        out |= {"label_noise_score": 1.0 - p_av[torch.arange(n), labels].numpy(),
                "suggested": p_av.argmax(1).numpy(), "confidence": p_av.max(1).values.numpy(),
                "mismatch_score": (1.0 - (ev["z_v"] * ev["z_a"]).sum(1).numpy()) / 2.0 if cfg.method == "cosine"
                else np.full(n, np.nan)}
    out["mismatch_score"] = np.where(arrays.has_audio, out["mismatch_score"], 0.0)
    out["label_noise_rank"] = percentile_rank(out["label_noise_score"])
    out["mismatch_rank"] = np.zeros(n)
    if arrays.has_audio.any() and not np.isnan(out["mismatch_score"]).all():
        out["mismatch_rank"][arrays.has_audio] = percentile_rank(out["mismatch_score"][arrays.has_audio])
    return out



def score_and_write(model, train_config: dict, result: IngestResult, arrays: Arrays, out_dir: str | Path, *,
                    classes: list[str], device: torch.device | str = "cpu", run_config: dict | None = None,
                    umap: bool = True, evaluation: Evaluation | None = None,
                    earlier_sound: EarlierSound | None = None) -> pd.DataFrame:
    """Score every usable clip whose label the model knows and write the three output files into ``out_dir``.
    ``evaluation``: the model's evaluation of every clip of ``arrays`` (train's last epoch end), used instead of a
    new one when the model knows every label; ``earlier_sound``: the training's sound evidence of exactly these
    clips (estimate.training_earlier_sound), for a new evaluation of the training set."""
    cfg = TrainConfig(**train_config)
    out_dir = Path(out_dir)
    known = np.array([lab in classes for lab in arrays.labels], dtype=bool)
    if not known.any():
        raise UserError(f"{result.manifest.root}: none of the data set's labels is among the model's classes "
                        f"({', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''})")
    if not known.all():
        arrays, evaluation, earlier_sound = arrays.take(np.flatnonzero(known)), None, None
    labels = torch.tensor([classes.index(c) for c in arrays.labels])
    s = compute_scores(model, cfg, arrays, labels, classes, torch.device(device), evaluation, earlier_sound)
    names = np.asarray(classes, dtype=object)
    flags = pd.DataFrame({
        "clip": arrays.clips, "given_label": arrays.labels, "suggested_label": names[s["suggested"]],
        "suggested_confidence": s["confidence"], "label_noise_score": s["label_noise_score"],
        "mismatch_score": s["mismatch_score"], "audio_pred": names[s["audio_pred"]],
        "visual_pred": names[s["visual_pred"]], "problem": _audio_problems(result, arrays),
        "label_noise_rank": s["label_noise_rank"], "mismatch_rank": s["mismatch_rank"]})
    flags = pd.concat([flags, _problem_rows(result, classes)], ignore_index=True)[FLAGS_COLUMNS]
    for col in ("suggested_confidence", "label_noise_score", "mismatch_score", "label_noise_rank", "mismatch_rank"):
        flags[col] = flags[col].astype(float).clip(0.0, 1.0).round(6)
    atomic_write_text(out_dir / FLAGS_FILE, flags.to_csv(index=False))
    if s["windows"]:
        atomic_write_text(out_dir / WINDOWS_FILE, window_table(arrays, s["windows"]).to_csv(index=False))
    else:
        (out_dir / WINDOWS_FILE).unlink(missing_ok=True)  # an earlier scoring's, of other clips

    vectors = {"audio": s["z_a"], "visual": s["z_v"], "fused": s["u"]}
    emb = pd.DataFrame({"clip": arrays.clips, "given_label": arrays.labels})
    t0 = time.time()
    maps = umap_maps(vectors, seed=cfg.seed) if umap else {k: np.zeros((len(emb), 2), np.float32) for k in vectors}
    for name, xy in maps.items():
        emb[f"umap_{name}_x"], emb[f"umap_{name}_y"] = xy[:, 0], xy[:, 1]
    umap_seconds = time.time() - t0
    table = embeddings_table(emb, vectors)
    atomic_write(out_dir / EMBEDDINGS_FILE, lambda fh: pq.write_table(table, fh))
    scored = flags[flags["label_noise_score"].notna()]
    atomic_write_text(out_dir / CLASS_REPORT_FILE, class_report(scored, classes).to_csv(index=False))
    atomic_write_text(out_dir / "confusion.csv", pd.crosstab(scored["given_label"], scored["suggested_label"]).to_csv())
    if run_config is not None:
        info = {"scored_clips": int(len(scored)), "umap_seconds": round(umap_seconds, 2),
                "scored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_text(out_dir / "scoring.json", json.dumps(info, indent=2))
    return flags


def embeddings_table(emb: pd.DataFrame, vectors: dict[str, np.ndarray]) -> pa.Table:
    """The table of embeddings.parquet: ``emb``'s first two columns (clip, given_label), then each named (N, d)
    array of ``vectors`` as a list<float> column (its rows as lists; the values are not copied when already
    float32), then ``emb``'s other columns."""
    table = pa.Table.from_pandas(emb, preserve_index=False)
    for i, (name, x) in enumerate(vectors.items()):
        x = np.ascontiguousarray(x, dtype=np.float32)
        rows = max(1, LIST_VALUES_MAX // max(1, x.shape[1]))  # a list array's offsets are int32
        chunks = [pa.ListArray.from_arrays(pa.array(np.arange(len(part) + 1, dtype=np.int32) * x.shape[1]),
                                           pa.array(part.reshape(-1)))
                  for part in (x[s:s + rows] for s in range(0, max(1, len(x)), rows))]
        table = table.add_column(2 + i, name, pa.chunked_array(chunks, pa.list_(pa.float32())))
    return table


def window_table(arrays: Arrays, windows: dict[str, np.ndarray]) -> pd.DataFrame:
    """The rows of windows.csv (module docstring) from evaluate's ``windows_out`` over all clips of ``arrays``."""
    owner, window = windows["owner"], windows["window"]
    index = arrays.row_table(arrays.windows[owner, window])
    return pd.DataFrame({"clip": np.asarray(arrays.clips, dtype=object)[owner], "window": window,
                         "start_s": index["start_s"].to_numpy().round(3), "end_s": index["end_s"].to_numpy().round(3),
                         "audio": index["audio"].to_numpy(), "infonce_loss": windows["ell"].round(6),
                         "cosine": windows["cosine"].round(6), "level_dbfs": np.round(windows["level"], 2),
                         "audible": windows["audible"].astype(int), "best_aligned": windows["best"].astype(int)})


def _audio_problems(result: IngestResult, arrays: Arrays) -> np.ndarray:
    """"" for clips with usable sound, "no_audio" without a sound track, "silent_audio" for a silent one."""
    status = dict(zip(result.clips["clip"], result.clips["audio"], strict=True))
    return np.array([{"none": "no_audio", "silent": "silent_audio"}.get(status.get(c, "present"), "")
                     for c in arrays.clips], dtype=object)


def _problem_rows(result: IngestResult, classes: list[str]) -> pd.DataFrame:
    rows = []
    labels = dict(zip(result.manifest.rows["clip"], result.manifest.rows["label"], strict=True))
    for rec in result.report.itertuples(index=False):
        if not rec.kept:
            rows.append({"clip": rec.clip, "given_label": labels.get(rec.clip, ""), "problem": f"{rec.problem}: {rec.detail}"})
    for clip, label in zip(result.clips["clip"], result.clips["label"], strict=True):
        if label not in classes:
            rows.append({"clip": clip, "given_label": label, "problem": "label_unknown_to_model: "
                                                                        f"{label!r} is not one of the model's classes"})
    return pd.DataFrame(rows, columns=FLAGS_COLUMNS)


def class_report(flags: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Per class: clips, estimated noise rate (mean label_noise_score), most frequent suggested replacement,
    estimated mismatch rate (mean mismatch_score over clips with sound)."""
    rows = []
    for k in classes:
        sub = flags[flags["given_label"] == k]
        if sub.empty:
            continue
        other = sub.loc[sub["suggested_label"] != k, "suggested_label"]
        with_audio = sub[~sub["problem"].isin(["no_audio", "silent_audio"])]["mismatch_score"].dropna()
        rows.append({"class": k, "clips": len(sub), "estimated_noise_rate": round(float(sub["label_noise_score"].mean()), 4),
                     "top_suggested_replacement": other.value_counts().index[0] if len(other) else "",
                     "estimated_mismatch_rate": round(float(with_audio.mean()), 4) if len(with_audio) else np.nan})
    return pd.DataFrame(rows, columns=["class", "clips", "estimated_noise_rate", "top_suggested_replacement",
                                       "estimated_mismatch_rate"])


def umap_maps(vectors: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """umap_2d of each named (N, D) array, (N, 2) float32 each. Above MAP_POINTS_MAX clips only a seeded random
    sample of MAP_POINTS_MAX of them (map_points: the same clips in every map) gets coordinates, the others NaN.
    The maps are made in threads, as many at a time as there are cores (each map holds its own memory while it is
    made): each is seeded and so optimised serially (umap_2d), and the layout releases the GIL (map_layout), so
    they use the cores and give the coordinates umap_2d gives."""
    n = min(len(x) for x in vectors.values())
    rows = map_points(n, seed)
    vectors = {name: x[rows] for name, x in vectors.items()} if len(rows) < n else vectors
    if n >= UMAP_MIN_POINTS:
        _import_umap()  # once, before the threads
    # the neighbour searches here, one after the other: each uses every core already, and together they would
    # hold the memory of all of them at once
    knn = {name: _umap_neighbours(x) for name, x in vectors.items()}
    with warnings.catch_warnings(), cf.ThreadPoolExecutor(max(1, min(len(vectors), os.cpu_count() or 1))) as pool:
        _ignore_precomputed_knn_warning()
        futures = {name: pool.submit(_fit_map, x, seed, knn[name]) for name, x in vectors.items()}
        maps = {name: fut.result() for name, fut in futures.items()}
    if len(rows) == n:
        return maps
    out = {}
    for name, xy in maps.items():
        out[name] = np.full((n, 2), np.nan, np.float32)
        out[name][rows] = xy
    return out


def map_points(n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of the clips the maps show: all n up to MAP_POINTS_MAX, else a seeded random sample of
    MAP_POINTS_MAX."""
    if n <= MAP_POINTS_MAX:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAP_POINTS_MAX, replace=False))


def umap_2d(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) UMAP coordinates (cosine metric, UMAP_NEIGHBOURS neighbours: map_neighbours' from
    UMAP_SEARCH_MIN points on, else umap-learn's own exact ones); fewer than UMAP_MIN_POINTS points get the first
    two PCA axes.

    Reproducible: ``random_state=seed``, which makes umap-learn (0.5.x) run single-threaded (it overrides n_jobs
    to 1 and optimises the layout serially; unseeded, its parallel layout differs from run to run)."""
    with warnings.catch_warnings():
        _ignore_precomputed_knn_warning()
        return _fit_map(x, seed, _umap_neighbours(x))


@functools.cache
def _import_umap() -> ModuleType:
    """umap-learn, imported (slow: numba) with NUMBA_CACHE_DIR set, its uncached kernels cached on disk
    (_cache_umap_kernels) and its serial layout releasing the GIL (map_layout); set up once a process."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "av-auditor" / "numba"))
    import umap

    from auditor.map_layout import release_gil_in_layouts

    _cache_umap_kernels()
    release_gil_in_layouts()
    return umap


def _ignore_precomputed_knn_warning() -> None:
    """umap-learn's "transform will be unavailable" warning for a precomputed_knn without an index: the maps never
    transform. Call inside warnings.catch_warnings()."""
    warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")


def _umap_neighbours(x: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, None]:
    """The ``precomputed_knn`` umap_2d hands umap-learn for the rows ``x``: map_neighbours' from UMAP_SEARCH_MIN
    points on, else none (umap-learn computes them)."""
    n = x.shape[0]
    if n < UMAP_SEARCH_MIN:
        return None, None, None
    return map_neighbours(x, min(UMAP_NEIGHBOURS, n - 1))


def _fit_map(x: np.ndarray, seed: int, knn: tuple[np.ndarray | None, np.ndarray | None, None]) -> np.ndarray:
    """umap_2d's map of ``x`` with the neighbours ``knn`` (_umap_neighbours), leaving the warnings filters (which
    are not thread-safe) to the caller."""
    n = x.shape[0]
    if n < UMAP_MIN_POINTS:
        return _pca_2d(x)
    reducer = _import_umap().UMAP(n_neighbors=min(UMAP_NEIGHBOURS, n - 1), min_dist=0.1, metric="cosine",
                                  random_state=seed, n_jobs=1, precomputed_knn=knn)
    return reducer.fit_transform(x).astype(np.float32)


def _cache_umap_kernels() -> None:
    """Have numba cache UMAP_UNCACHED_KERNELS on disk (under NUMBA_CACHE_DIR, as umap-learn's cached kernels are)
    instead of compiling them again in every process; what they compute is unchanged."""
    for module, name in UMAP_UNCACHED_KERNELS:
        kernel = getattr(importlib.import_module(module), name, None)
        if hasattr(kernel, "enable_caching"):  # a numba Dispatcher
            kernel.enable_caching()


def map_neighbours(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, None]:
    """umap-learn's ``precomputed_knn`` for the cosine metric of the (N, D) rows ``x``: (N, k) int32 indices, row i
    being i itself and then its k - 1 most cosine-similar other rows, most similar first (model/neighbours
    nearest_neighbours, the approximate search), and (N, k) float32 cosine distances 1 - u_i . u_j of the unit
    rows u (0 for i itself); no search index."""
    u = torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), dim=1)
    n = u.shape[0]
    idx = torch.cat([torch.arange(n)[:, None], nearest_neighbours(u, k - 1, exact=False)], 1)
    sim = torch.cat([torch.einsum("nd,nkd->nk", u[s:s + MAP_DISTANCE_BLOCK], u[idx[s:s + MAP_DISTANCE_BLOCK]])
                     for s in range(0, n, MAP_DISTANCE_BLOCK)])
    dist = (1.0 - sim).clamp_min(0.0)
    dist[:, 0] = 0.0
    return idx.numpy().astype(np.int32), dist.numpy(), None


def _pca_2d(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 2), np.float32)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    out = u[:, :2] * s[:2]
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1]))).astype(np.float32)


def _check_scoring_folder(out: Path, model_run: Path, data_dir: Path, overwrite: bool) -> None:
    """Raise UserError when scoring into ``out`` would replace a trained model's run or, without ``overwrite``,
    another scoring's outputs (score_run)."""
    if (out / CHECKPOINT_FILE).is_file():
        raise UserError(f"{out}: holds a trained model ({CHECKPOINT_FILE}); its outputs belong to that model. "
                        "Score into another --out folder")
    old = read_config(out)
    if overwrite or old is None or not any((out / name).exists() for name in (FLAGS_FILE, EMBEDDINGS_FILE)):
        return
    same = (old.get("model_run") == str(model_run.resolve())
            and Path(old.get("data_dir", "")).resolve() == data_dir.resolve())
    if not same:
        raise UserError(f"{out}: holds the scores of {old.get('data_dir', '?')} by the model in "
                        f"{old.get('model_run', '?')}; choose another --out folder or pass --overwrite to replace them")


def predict_labels(model_run: str | Path, data_dir: str | Path, *, device: str = "auto",
                   cache_root: str | Path | None = None) -> pd.DataFrame:
    """The classifier's own predictions on ``data_dir`` (e.g. a clean held-out split): a DataFrame with clip,
    given_label, predicted_label (argmax p^av), audio_pred, visual_pred. Labels are not used for the prediction."""
    dev = resolve_device(device)
    model, ckpt = load_trained(model_run, dev)
    cfg, _, arrays = prepare_inputs(data_dir, TrainConfig(**ckpt["config"]), None, show_bar=False,
                                    cache_root=cache_root)
    ev = evaluate(model, arrays, np.arange(len(arrays.clips)), cfg, dev, workers=loader_workers(-1, dev, 1))
    names = np.asarray(ckpt["classes"], dtype=object)
    return pd.DataFrame({"clip": arrays.clips, "given_label": arrays.labels,
                         "predicted_label": names[ev["logits_av"].argmax(1).numpy()],
                         "audio_pred": names[ev["logits_a"].argmax(1).numpy()],
                         "visual_pred": names[ev["logits_v"].argmax(1).numpy()]})


def score_run(model_run: str | Path, data_dir: str | Path, out_dir: str | Path | None = None, *,
              device: str = "auto", workers: int | None = None, overwrite: bool = False,
              features: str | None = None) -> Path:
    """Score ``data_dir`` with the model trained in ``model_run``; outputs go to ``out_dir`` (default model_run).
    A model trained on precomputed features scores the vectors of the features file ``features`` (of the clips of
    ``data_dir``; required for such a model, refused for another).

    A separate ``out_dir`` that holds a trained model of its own is refused; one that holds the outputs of
    another scoring (another model or data set, by its config.json) is replaced only with ``overwrite``; scoring
    the same data with the same model again updates it."""
    out = Path(out_dir or model_run)
    dev = resolve_device(device)
    model, ckpt = load_trained(model_run, dev)
    separate = out.resolve() != Path(model_run).resolve()
    if separate:
        _check_scoring_folder(out, Path(model_run), Path(data_dir), overwrite)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        config = {"run_id": f"{out.name}-{int(time.time())}", "classes": ckpt["classes"], "train": ckpt["config"],
                  "model_run": str(Path(model_run).resolve()), "preset": ckpt["config"]["preset"],
                  "data_dir": str(Path(data_dir).resolve())}
        if separate:  # written first, so the app lists the run while it is being scored
            write_config(out, config)
        append_progress(out, {"event": "start", "kind": "score", "message": f"scoring {data_dir}"})
        try:
            _, result, arrays = prepare_inputs(data_dir, TrainConfig(**ckpt["config"]), features, workers=workers)
            config |= {"data_dir": str(result.manifest.root), "clips": int(len(result.clips))}
            if separate:
                write_config(out, config)
            score_and_write(model, ckpt["config"], result, arrays, out, classes=ckpt["classes"], device=dev,
                            run_config=config,
                            earlier_sound=training_earlier_sound(ckpt, arrays.clips, arrays.labels))
        except BaseException as err:
            append_progress(out, {"event": "cancelled" if isinstance(err, KeyboardInterrupt) else "error",
                                  "message": f"{type(err).__name__}: {err}"})
            raise
        append_progress(out, {"event": "done", "kind": "score", "message": f"wrote {out / FLAGS_FILE}"})
    return out
