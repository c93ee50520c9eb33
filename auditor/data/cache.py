"""Decode every clip of a data set once, in parallel, into a keyed on-disk cache; report what failed.

The unit of decoding (and of resuming a killed ingest) is one entry per clip, in ``<cache root>/<params
digest>/<key[:2]>/<key>.npz`` with ``frames`` (T, S, S, 3) uint8, ``mel`` (64, L) float16, ``duration``, ``audio``
("present", "silent" or "none": see features.is_silent), ``audio_dbfs``, ``warning``, and for a long clip cut into W
aligned windows (decode.window_spans) ``frames_w``/``mel_w`` of windows w = 1..W-1 beside window 0's ``frames``/
``mel``, ``spans`` (W, 2) seconds, ``window_audio`` and ``window_dbfs`` (W,); a clip that cannot be
decoded gets ``<key>.problem.json`` instead, so a re-run does not retry it either. ``key`` = sha1 of (relative
path, file size, mtime in ns, preprocessing digest): a re-run decodes nothing, a changed file gets a new key and is
decoded again. Every entry is written to a temporary name and renamed, so a killed ingest never leaves a
half-written entry that a later run would trust. Every PACK_EVERY decoded clips and at the end, the entries are
packed into the data set's memory-mapped store (data/store.py) and deleted: the store is what training and
scoring read (:func:`load_arrays`), one row per window (window w > 0 of clip ``key`` is row ``key@w``). One
ingest at a time holds a parameters' folder (``.ingest.lock``), so torchrun's ranks decode once. The cache root is ``DIR/.auditor/cache`` or, when DIR is read-only,
``~/.cache/av-auditor/<sha1 of DIR>`` (data/cache_location.py).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fcntl
import hashlib
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from auditor.atomic import atomic_write as _atomic_write
from auditor.data.cache_location import default_cache_root
from auditor.data.decode import DecodeError, decode_clip
from auditor.data.features import SILENT_BELOW_DBFS, audio_level_dbfs, log_mel
from auditor.data.manifest import Manifest, Problem, load_manifest
from auditor.data.params import PreprocessParams
from auditor.data.store import (
    ClipArrays,
    Store,
    open_store,
    open_stores,
    pack,
    store_dir,
    stored_meta,
    window_key,
    window_rows,
)
from auditor.errors import UserError

REPORT_COLUMNS = ["clip", "problem", "detail", "kept"]
# Decoded clips between two packings into the store: bounds the entries waiting on disk (5,000 x 226 KB = 1.1 GB
# with the cpu preset and 10 s clips) while the store grows.
PACK_EVERY = 5000


class CacheWriteError(UserError):
    """The cache folder cannot be written (disk full, read-only, quota); the message names the folder and why."""


def _write_error(cache: Path, err: OSError) -> CacheWriteError:
    return CacheWriteError(f"{cache}: cannot write the decode cache ({err.strerror or err}); free some space or "
                           "choose another cache folder (--cache)")


@dataclass
class IngestResult:
    """``clips``: one row per usable clip (clip, label, key, duration, has_audio, audio, warning) in manifest
    order; ``has_audio`` = the clip has a sound track that is not silent (``audio == "present"``).
    ``report``: one row per clip with a problem (REPORT_COLUMNS); ``kept`` is False for skipped clips.
    ``store_dir``: the data set's array store, holding every clip of ``clips``."""

    manifest: Manifest
    params: PreprocessParams
    cache_dir: Path
    clips: pd.DataFrame
    report: pd.DataFrame
    decoded_now: int = 0
    problems: list[Problem] = field(default_factory=list)
    store_dir: Path | None = None

    @property
    def classes(self) -> list[str]:
        return sorted(self.clips["label"].unique().tolist())


def entry_key(clip: str, path: Path, params: PreprocessParams) -> str:
    st = path.stat()
    return hashlib.sha1(f"{clip}|{st.st_size}|{st.st_mtime_ns}|{params.digest()}".encode()).hexdigest()


def _entry_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.npz"


def _problem_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.problem.json"


def decode_to_cache(path: str, cache_dir: str, key: str, params: PreprocessParams) -> dict:
    """Decode one clip and write its cache entry (or problem record). Runs in a worker process."""
    cache = Path(cache_dir)
    try:
        dec = decode_clip(path, num_frames=params.num_frames, size=params.frame_size,
                          max_audio_seconds=params.max_audio_seconds, sample_rate=params.sample_rate,
                          max_windows=params.max_windows)
    except DecodeError as err:
        record = {"problem": err.kind, "detail": str(err)}
    except Exception as err:  # a decoder bug on one hostile file must not stop the other clips
        record = {"problem": "corrupt", "detail": f"{type(err).__name__}: {str(err)[:200]}"}
    else:
        arrays, windows = {}, []
        for w, win in enumerate(dec.windows):
            level = audio_level_dbfs(win.audio, params.sample_rate) if dec.has_audio else None
            windows.append({"start": win.start, "end": win.end, "audio_dbfs": level,
                            "audio": "none" if level is None else "silent" if level < SILENT_BELOW_DBFS else "present"})
            suffix = f"_{w}" if w else ""
            arrays[f"frames{suffix}"] = win.frames
            arrays[f"mel{suffix}"] = log_mel(win.audio, params.sample_rate).astype(np.float16)
        meta = _clip_meta(dec.duration, dec.warning, windows)
        try:
            _atomic_write(_entry_path(cache, key), lambda fh: np.savez(
                fh, **arrays, duration=np.float32(dec.duration), audio=np.str_(meta["audio"]),
                audio_dbfs=np.float32(np.nan if meta["audio_dbfs"] is None else meta["audio_dbfs"]),
                warning=np.str_(dec.warning), spans=np.array([[x["start"], x["end"]] for x in windows], np.float32),
                window_audio=np.array([x["audio"] for x in windows]),
                window_dbfs=np.array([np.nan if x["audio_dbfs"] is None else x["audio_dbfs"] for x in windows],
                                     np.float32)))
        except OSError as err:  # disk full, read-only: the same for every clip, so stop with one clear line
            raise _write_error(cache, err) from None
        return meta
    try:
        _atomic_write(_problem_path(cache, key), lambda fh: fh.write(json.dumps(record).encode()))
    except OSError as err:
        raise _write_error(cache, err) from None
    return record


def _clip_meta(duration: float, warning: str, windows: list[dict]) -> dict:
    """The ingest's record of a usable clip from its windows' ({start, end, audio, audio_dbfs}): its sound is
    "none" without a track, "present" when any window's is, else "silent"; its level the loudest window's."""
    levels = [x["audio_dbfs"] for x in windows if x["audio_dbfs"] is not None]
    audio = "none" if not levels else "present" if any(x["audio"] == "present" for x in windows) else "silent"
    return {"duration": float(duration), "audio": audio, "audio_dbfs": max(levels) if levels else None,
            "warning": warning, "windows": windows}


def _read_entry_meta(cache: Path, key: str) -> dict | None:
    entry = _entry_path(cache, key)
    if entry.is_file():
        try:
            with np.load(entry) as z:
                windows = [{"start": float(span[0]), "end": float(span[1]), "audio": str(audio),
                            "audio_dbfs": None if np.isnan(dbfs) else float(dbfs)}
                           for span, audio, dbfs in zip(z["spans"], z["window_audio"], z["window_dbfs"], strict=True)]
                return _clip_meta(float(z["duration"]), str(z["warning"]), windows)
        except (OSError, ValueError, KeyError):
            entry.unlink(missing_ok=True)  # unreadable entry: decode again
            return None
    problem = _problem_path(cache, key)
    if problem.is_file():
        try:
            return json.loads(problem.read_text())
        except (OSError, ValueError):
            problem.unlink(missing_ok=True)
    return None


def _worker_init() -> None:
    torch.set_num_threads(1)


def ingest(data_dir: str | os.PathLike[str], params: PreprocessParams | None = None, *,
           cache_root: str | os.PathLike[str] | None = None, workers: int | None = None,
           progress: Callable[[int, int], None] | None = None, show_bar: bool = False) -> IngestResult:
    """Validate the data set, decode every clip not yet cached (in ``workers`` processes, default all cores)
    and return the usable clips and the decode report. Also writes ``decode_report.csv`` and
    ``ingest.json`` (summary) into the cache folder. ``progress(done, total)`` is called as clips finish."""
    params = params or PreprocessParams()
    manifest = load_manifest(data_dir)
    root = Path(cache_root) if cache_root else default_cache_root(manifest.root)
    cache = root / params.digest()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(cache, err) from None

    with _ingest_lock(cache):
        stores = open_stores(cache)
        keys = [entry_key(c, manifest.path_of(c), params) for c in manifest.rows["clip"]]
        stored = _stored_clip_meta(stored_meta(stores))
        metas: list[dict | None] = [stored.get(k) or _read_entry_meta(cache, k) for k in keys]
        todo = [i for i, m in enumerate(metas) if m is None]
        packer = _Packer(cache, store_dir(cache, manifest.root), params, stores, keys, metas,
                         unpacked={k for k in keys if k not in stored})
        _decode(manifest, params, cache, keys, metas, todo, workers, progress, show_bar, packer.decoded)
        store = packer.pack()
    return _assemble(manifest, params, cache, keys, metas, decoded_now=len(todo), store=store.path)


def _stored_clip_meta(rows: dict[str, dict]) -> dict[str, dict]:
    """Clip key -> the ingest's record of the clip, from the store's records of its window rows (``key@w``)."""
    clips: dict[str, list[tuple[int, dict]]] = {}
    for row_key, meta in rows.items():
        key, _, w = row_key.partition("@")
        clips.setdefault(key, []).append((int(w or 0), meta))
    out = {}
    for key, wins in clips.items():
        wins.sort(key=lambda x: x[0])
        if [w for w, _ in wins] != list(range(len(wins))):
            continue  # a window missing: decode the clip again
        first = wins[0][1]
        windows = [{"start": m["start_s"], "end": m["end_s"], "audio": m["audio"], "audio_dbfs": m["audio_dbfs"]}
                   for _, m in wins]
        out[key] = _clip_meta(first["duration"], first["warning"], windows)
    return out


class _Packer:
    """Packs the usable clips decoded so far (``metas`` filled in) into the data set's store and deletes their
    entries: after every PACK_EVERY decoded clips, so that few entries wait on disk, and once at the end."""

    def __init__(self, cache: Path, path: Path, params: PreprocessParams, stores: dict[Path, Store],
                 keys: list[str], metas: list[dict | None], unpacked: set[str]):
        self.cache, self.path, self.stores, self.keys, self.metas = cache, path, stores, keys, metas
        self.frame_shape = (params.num_frames, params.frame_size, params.frame_size, 3)
        self.unpacked = unpacked  # keys whose entry may be on disk
        self.since = 0

    def decoded(self) -> None:
        self.since += 1
        if self.since >= PACK_EVERY:
            self.pack()

    def pack(self) -> Store:
        usable = [i for i, m in enumerate(self.metas) if m is not None and "problem" not in m]
        keys = [self.keys[i] for i in usable]
        rows = [row for i in usable for row in window_rows(self.keys[i], self.metas[i])]
        try:
            store = pack(self.path, [k for k, _ in rows], [m for _, m in rows], self.frame_shape, self.stores,
                         lambda key: _entry_path(self.cache, key))
        except OSError as err:
            raise _write_error(self.cache, err) from None
        self.stores[self.path], self.since = store, 0
        packed = self.unpacked.intersection(keys)
        self.unpacked -= packed
        for key in packed:
            entry = _entry_path(self.cache, key)
            entry.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # not empty: other clips' entries or problem records
                entry.parent.rmdir()
        return store


@contextlib.contextmanager
def _ingest_lock(cache: Path):
    """Exclusive, blocking flock on ``cache/.ingest.lock``: a second ingest of the same folder (another torchrun
    rank) waits, then finds every clip decoded."""
    try:
        fd = os.open(cache / ".ingest.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise _write_error(cache, err) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _decode(manifest: Manifest, params: PreprocessParams, cache: Path, keys: list[str], metas: list[dict | None],
            todo: list[int], workers: int | None, progress: Callable[[int, int], None] | None,
            show_bar: bool, after_each: Callable[[], None]) -> None:
    """Decode the clips ``todo`` into their cache entries, filling in their ``metas``; ``after_each()`` runs in
    this process after each one."""
    total = len(keys)
    done = total - len(todo)
    bar = _progress_bar(total, done) if show_bar else None
    if progress:
        progress(done, total)
    try:
        workers = max(1, min(workers or os.cpu_count() or 1, len(todo))) if todo else 0
        if todo and workers == 1:
            for i in todo:
                metas[i] = decode_to_cache(str(manifest.path_of(manifest.rows["clip"].iat[i])), str(cache), keys[i],
                                           params)
                done += 1
                _tick(bar, progress, done, total)
                after_each()
        elif todo:
            ctx = mp.get_context("spawn")  # torch in the parent: fork is not safe
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
                futures = {pool.submit(decode_to_cache, str(manifest.path_of(manifest.rows["clip"].iat[i])),
                                       str(cache), keys[i], params): i for i in todo}
                try:
                    for fut in cf.as_completed(futures):
                        metas[futures[fut]] = fut.result()
                        done += 1
                        _tick(bar, progress, done, total)
                        after_each()
                except BaseException:  # a full disk (or Ctrl-C): do not decode the clips still queued
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:  # also on an error: the message must not be glued to the bar's line
        if bar is not None:
            bar.close()


def _progress_bar(total: int, initial: int):
    return tqdm(total=total, initial=initial, unit="clip", desc="ingest", file=sys.stderr)


def _tick(bar, progress, done: int, total: int) -> None:
    if bar is not None:
        bar.update(1)
    if progress:
        progress(done, total)


def _assemble(manifest: Manifest, params: PreprocessParams, cache: Path, keys: list[str],
              metas: list[dict], decoded_now: int, store: Path) -> IngestResult:
    rows, report = [], []
    for (clip, label), key, meta in zip(manifest.rows[["clip", "label"]].itertuples(index=False), keys, metas,
                                        strict=True):
        if "problem" in meta:
            report.append({"clip": clip, "problem": meta["problem"], "detail": meta["detail"], "kept": False})
            continue
        rows.append({"clip": clip, "label": label, "key": key, "duration": meta["duration"],
                     "has_audio": meta["audio"] == "present", "audio": meta["audio"], "warning": meta["warning"]})
        if meta["audio"] == "none":
            report.append({"clip": clip, "problem": "no_audio", "detail": "no audio stream; silent audio used",
                           "kept": True})
        elif meta["audio"] == "silent":
            report.append({"clip": clip, "problem": "silent_audio", "kept": True,
                           "detail": f"sound track at {meta['audio_dbfs']:.0f} dBFS (below {SILENT_BELOW_DBFS:.0f}): "
                                     "treated as no sound"})
        elif meta["warning"]:
            report.append({"clip": clip, "problem": "damaged", "detail": meta["warning"], "kept": True})
    clips = pd.DataFrame(rows, columns=["clip", "label", "key", "duration", "has_audio", "audio", "warning"])
    extra = [c for c in manifest.rows.columns if c not in ("clip", "label")]
    if extra:
        clips = clips.merge(manifest.rows[["clip", *extra]], on="clip", how="left")
    report_df = pd.DataFrame(report, columns=REPORT_COLUMNS)
    result = IngestResult(manifest=manifest, params=params, cache_dir=cache, clips=clips, report=report_df,
                          decoded_now=decoded_now, problems=list(manifest.problems), store_dir=store)
    _write_report(result)
    return result


def _write_report(result: IngestResult) -> None:
    try:
        _atomic_write(result.cache_dir / "decode_report.csv",
                      lambda fh: fh.write(result.report.to_csv(index=False).encode()))
        _atomic_write(result.cache_dir / "ingest.json", lambda fh: fh.write(json.dumps(summary(result)).encode()))
    except OSError:
        pass  # the report is also returned; a read-only cache must not fail the ingest


def summary(result: IngestResult) -> dict:
    """Counts a person wants first: clips, classes, clips per class, total duration, problems."""
    per_class = result.clips["label"].value_counts().sort_index()
    return {
        "data_dir": str(result.manifest.root),
        "clips": int(len(result.clips)),
        "classes": int(per_class.size),
        "clips_per_class": {str(k): int(v) for k, v in per_class.items()},
        "total_duration_s": float(result.clips["duration"].sum()),
        "decode_problems": int((~result.report["kept"]).sum()),
        "clips_without_audio": int((result.clips["audio"] == "none").sum()),
        "clips_with_silent_audio": int((result.clips["audio"] == "silent").sum()),
        "label_problems": int(sum(p.kind == "error" for p in result.problems)),
        "decoded_now": int(result.decoded_now),
    }


def load_arrays(result: IngestResult, indices: np.ndarray | None = None) -> ClipArrays:
    """The cached tensors of ``result.clips`` (or the given row indices), memory-mapped from the data set's store."""
    table = result.clips if indices is None else result.clips.iloc[indices]
    store = open_store(result.store_dir)
    if store is None:
        raise UserError(f"{result.store_dir}: the data set's array store is missing or damaged; run ingest again")
    rows = store.rows_of(table["key"])
    where = dict(zip(store.index["key"], range(len(store.index)), strict=True))
    windows = [[rows[i]] for i in range(len(rows))]
    for i, key in enumerate(table["key"]):
        while window_key(key, len(windows[i])) in where:
            windows[i].append(where[window_key(key, len(windows[i]))])
    longest = max((len(w) for w in windows), default=1)
    window_matrix = None
    if longest > 1:
        window_matrix = np.full((len(rows), longest), -1, np.int64)
        for i, w in enumerate(windows):
            window_matrix[i, :len(w)] = w
    return ClipArrays(clips=table["clip"].tolist(), labels=table["label"].tolist(), frames=store.frames,
                      mel=store.mel, mel_lengths=store.index["mel_length"].to_numpy(np.int64)[rows],
                      has_audio=table["has_audio"].to_numpy(bool), rows=rows, store=store, windows=window_matrix)


def prepare_data(data_dir: str | os.PathLike[str], params: PreprocessParams, *, workers: int | None = None,
                 show_bar: bool = True, cache_root: str | os.PathLike[str] | None = None
                 ) -> tuple[IngestResult, ClipArrays]:
    """Ingest (decodes only what is not cached yet) and load the cached arrays; UserError when no clip is usable."""
    result = ingest(data_dir, params, workers=workers, show_bar=show_bar, cache_root=cache_root)
    if len(result.clips) == 0:
        raise UserError(f"{data_dir}: no usable clips (see {result.cache_dir / 'decode_report.csv'})")
    return result, load_arrays(result)
