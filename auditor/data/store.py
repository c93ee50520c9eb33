"""The memory-mapped array store of one data set: the cached tensors of all its usable clips in two flat files,
read through memory maps, so that training, evaluation and scoring never hold the data set in memory.

One store per (data set, preprocessing parameters), in ``<cache>/stores/<data set id>/`` (``<cache>`` = the
parameters' folder of the ingest cache; the id = 12 hex digits of sha1 of the data set's resolved folder):

* ``frames-<c>.u8``: raw (M, T, S, S, 3) uint8, C order;
* ``mel-<c>.f16``: raw (M, n_mels, L) float16, each clip padded with features.SILENCE to L = the longest clip;
* ``index-<c>.parquet``: one line per row (INDEX_COLUMNS): the row's key and what the ingest knows of it; a clip
  cut into W aligned windows has W rows, keys ``key``, ``key@1`` .. ``key@W-1`` (:func:`window_key`), each with its
  window's span (start_s, end_s) and sound (audio, audio_dbfs);
* ``store.json``: written last, atomically; names the three files and M. A reader trusts nothing else.

Raw files with their shapes in ``store.json`` rather than ``.npy``: appending writes past the end and touches no
header. ``<c>`` is the commit that created a file. Between rewrites rows never move: clips new to the data set are
appended (bytes past row M, left by a killed append, are cut off by the next one) and a clip that left the data
set, or changed and so got a new key, leaves a dead row. The files are rewritten (a new commit) when a new clip
is longer than L or dead rows outnumber live ones; the old files are deleted after the new ``store.json`` is in
place (a process that has them mapped keeps reading them). Writers must hold the ingest lock (data/cache.py);
readers take no lock.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.atomic import atomic_write, atomic_write_text
from auditor.data.features import N_MELS, SILENCE

STORE_FORMAT = 1
STORES_DIR = "stores"
MANIFEST_FILE = "store.json"
INDEX_COLUMNS = ["key", "mel_length", "audio", "duration", "audio_dbfs", "warning", "start_s", "end_s"]
# Bytes a process reads through a store's memory maps before it hands the mapped pages back to the page cache
# (madvise DONTNEED): a pass over a large store keeps a bounded resident set (20,000 clips: 1.3 GB peak instead of
# 4.1 GB), and a page read again comes from the page cache as long as the kernel keeps it there.
RESIDENT_BYTES = 256 * 2**20


@dataclass
class Store:
    """A committed store, opened read-only: ``index`` has one line per row (INDEX_COLUMNS), ``frames``
    (M, T, S, S, 3) uint8 and ``mel`` (M, n_mels, L) float16 are read-only memory maps."""

    path: Path
    manifest: dict
    index: pd.DataFrame
    frames: np.ndarray
    mel: np.ndarray
    maps: list[mmap.mmap] = field(default_factory=list, repr=False)

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    def rows_of(self, keys) -> np.ndarray:
        """(len(keys),) int64 row of each key; KeyError names a key the store does not hold."""
        where = dict(zip(self.index["key"], range(len(self.index)), strict=True))
        return np.array([where[k] for k in keys], dtype=np.int64)

    def release(self) -> None:
        """Drop this process's mapped pages (they stay in the page cache); later reads fault them in again."""
        for m in self.maps:
            m.madvise(mmap.MADV_DONTNEED)

    def __reduce__(self):  # memory maps do not pickle: the other process maps the same files
        return _reopen, (self.path, self.manifest)


@dataclass
class ClipArrays:
    """The cached tensors of N clips. ``frames`` (M, T, S, S, 3) uint8 and ``mel`` (M, n_mels, L) float16 have
    M >= N rows (a store's memory maps, or arrays in memory with M = N) and clip i is row ``rows[i]`` (default
    0..N-1); ``mel_lengths`` (N,) are the clips' valid mel frames (the rest is features.SILENCE), ``has_audio`` (N,)
    bool a usable, not silent, sound track. Read through :meth:`read_frames` and :meth:`read_mel`: they hand the
    store's pages back every RESIDENT_BYTES, so a pass over a store larger than memory stays small.
    ``windows`` (N, W) int: the rows of each clip's aligned windows (-1 past a clip's last; column 0 = ``rows``),
    None when every clip is one window; :meth:`at_windows` and :meth:`window_items` view windows as clips."""

    clips: list[str]
    labels: list[str]
    frames: np.ndarray
    mel: np.ndarray
    mel_lengths: np.ndarray
    has_audio: np.ndarray
    rows: np.ndarray | None = None
    store: Store | None = None
    windows: np.ndarray | None = None
    _read: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = np.arange(len(self.clips))

    def take(self, idx: np.ndarray) -> ClipArrays:
        """The clips ``idx`` (indices into 0..N-1), reading the same rows (nothing is copied)."""
        return ClipArrays([self.clips[i] for i in idx], [self.labels[i] for i in idx], self.frames, self.mel,
                          self.mel_lengths[idx], self.has_audio[idx], self.rows[idx], self.store,
                          None if self.windows is None else self.windows[idx])

    def window_counts(self) -> np.ndarray:
        """(N,) int: each clip's number of aligned windows."""
        return np.ones(len(self.clips), np.int64) if self.windows is None else (self.windows >= 0).sum(1)

    def at_windows(self, idx: np.ndarray, window: np.ndarray) -> ClipArrays:
        """Window ``window[j]`` of clip ``idx[j]`` as item j (a view: clip name and label of the clip; mel length
        and ``has_audio`` of the window, whose sound must be present in a clip that has sound)."""
        idx = np.asarray(idx, np.int64)
        if self.windows is None:
            return self.take(idx)
        rows = self.windows[idx, np.asarray(window, np.int64)]
        index = self.store.index if self.store is not None else None
        lengths = index["mel_length"].to_numpy(np.int64)[rows] if index is not None else self.mel_lengths[idx]
        present = (index["audio"].to_numpy()[rows] == "present") if index is not None else True
        return ClipArrays([self.clips[i] for i in idx], [self.labels[i] for i in idx], self.frames, self.mel,
                          lengths, self.has_audio[idx] & present, rows, self.store)

    def window_levels(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), W) float: the sound level (dBFS, features.audio_level_dbfs) of each window of the clips
        ``idx``; NaN for a window of a clip without a sound track, -inf past a clip's last window."""
        idx = np.asarray(idx, np.int64)
        if self.windows is None or self.store is None:
            return np.zeros((len(idx), 1))
        rows = self.windows[idx]
        levels = self.store.index["audio_dbfs"].to_numpy(np.float64)[np.maximum(rows, 0)]
        return np.where(rows >= 0, levels, -np.inf)

    def window_items(self, idx: np.ndarray) -> tuple[ClipArrays, np.ndarray, np.ndarray]:
        """Every window of the clips ``idx`` as one item: (the view, owner (n,) = position in ``idx`` of each item's
        clip, window (n,) = its window number), clip by clip in window order."""
        idx = np.asarray(idx, np.int64)
        owner, window = window_positions(self.window_counts()[idx])
        return self.at_windows(idx[owner], window), owner, window

    def row_table(self, rows: np.ndarray) -> pd.DataFrame:
        """start_s, end_s and audio ("present" / "silent" / "none") of the store's ``rows`` (windows.csv)."""
        return self.store.index.iloc[rows][["start_s", "end_s", "audio"]].reset_index(drop=True)

    def read_frames(self, idx: np.ndarray, picks: np.ndarray) -> np.ndarray:
        """Frames ``picks`` (B, T) of clips ``idx`` (B,): (B, T, S, S, 3) uint8, a copy."""
        self._touched(len(idx) * self.frames[0].nbytes if len(self.frames) else 0)
        return self.frames[self.rows[idx][:, None], picks]

    def read_mel(self, i: int) -> np.ndarray:
        """The valid mel frames of clip ``i`` (at least one): (n_mels, mel_lengths[i]) float16, a copy."""
        self._touched(self.mel[0].nbytes)
        return np.array(self.mel[self.rows[i], :, :max(1, int(self.mel_lengths[i]))])

    def _touched(self, nbytes: int) -> None:
        """Count whole rows (what the page faults and read-ahead bring in, not just the bytes used)."""
        self._read += nbytes
        if self._read >= RESIDENT_BYTES and self.store is not None:
            self.store.release()
            self._read = 0

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.store is not None:  # the other process maps the store's files instead of receiving a copy
            state["frames"] = state["mel"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.store is not None:
            self.frames, self.mel = self.store.frames, self.store.mel


def window_positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For clips of ``counts`` (N,) windows each, every window as an item, clip by clip in window order:
    (owner (n,) = the clip's position, window (n,) = the window's number), n = counts.sum()."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)


def store_dir(cache: Path, data_root: Path) -> Path:
    """The store folder of the data set at ``data_root`` in the parameters' folder ``cache``."""
    return cache / STORES_DIR / hashlib.sha1(str(Path(data_root).resolve()).encode()).hexdigest()[:12]


def open_store(path: str | os.PathLike[str]) -> Store | None:
    """The store committed in ``path``, or None when there is none or it is inconsistent (a file shorter than its
    manifest says, an index of the wrong length): such a store is rebuilt by the next ingest."""
    try:
        manifest = json.loads((Path(path) / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return _open(Path(path), manifest)


def _open(path: Path, manifest: dict) -> Store | None:
    try:
        if manifest.get("format") != STORE_FORMAT:
            return None
        index = pd.read_parquet(path / manifest["index"])
        rows, mel_len = int(manifest["rows"]), int(manifest["mel_length"])
        frames, frames_map = _map(path / manifest["frames"], np.uint8, (rows, *manifest["frame_shape"]))
        mel, mel_map = _map(path / manifest["mel"], np.float16, (rows, int(manifest["n_mels"]), mel_len))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if len(index) != rows or list(index.columns) != INDEX_COLUMNS:
        return None
    return Store(path, manifest, index, frames, mel, [m for m in (frames_map, mel_map) if m is not None])


def _reopen(path: Path, manifest: dict) -> Store:
    """The files of one commit, opened again (after pickling: a process started by spawn)."""
    store = _open(path, manifest)
    if store is None:
        raise OSError(f"{path}: commit {manifest.get('commit')} of the store is gone (rewritten by a later ingest)")
    return store


def open_stores(cache: Path) -> dict[Path, Store]:
    """Every consistent store of the parameters' folder ``cache``, by folder."""
    stores = {}
    for sub in sorted((cache / STORES_DIR).glob("*/")):
        store = open_store(sub)
        if store is not None:
            stores[sub] = store
    return stores


def window_key(key: str, window: int) -> str:
    """The store key of window ``window`` of the clip ``key``: ``key`` itself for window 0, else ``key@window``."""
    return f"{key}@{window}" if window else key


def window_rows(key: str, meta: dict) -> list[tuple[str, dict]]:
    """(row key, row record) of each window of the clip ``key`` whose ingest record is ``meta`` (with ``windows``:
    [{start, end, audio, audio_dbfs}], else one window spanning the clip)."""
    windows = meta.get("windows") or [{"start": 0.0, "end": meta["duration"], "audio": meta["audio"],
                                       "audio_dbfs": meta.get("audio_dbfs")}]
    return [(window_key(key, w), {"duration": meta["duration"], "warning": meta["warning"], "audio": x["audio"],
                                  "audio_dbfs": x["audio_dbfs"], "start_s": x["start"], "end_s": x["end"]})
            for w, x in enumerate(windows)]


def stored_meta(stores: dict[Path, Store]) -> dict[str, dict]:
    """Row key -> the ingest's record of the row (duration, audio, audio_dbfs, warning, start_s, end_s) over all
    ``stores``."""
    meta = {}
    for store in stores.values():
        for rec in store.index.itertuples(index=False):
            meta[rec.key] = {"duration": float(rec.duration), "audio": rec.audio, "warning": rec.warning,
                             "audio_dbfs": None if pd.isna(rec.audio_dbfs) else float(rec.audio_dbfs),
                             "start_s": float(rec.start_s), "end_s": float(rec.end_s)}
    return meta


def _map(path: Path, dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, mmap.mmap | None]:
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype), None
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size < nbytes:
            raise ValueError(f"{path}: shorter than {nbytes} bytes")
        m = mmap.mmap(fh.fileno(), nbytes, access=mmap.ACCESS_READ)
    return np.frombuffer(m, dtype=dtype).reshape(shape), m


@dataclass
class _Source:
    """Where the tensors of one clip are read from while packing: a row of a store or an ingest entry (.npz)."""

    mel_length: int
    store: Store | None = None
    row: int = -1
    entry: Path | None = None
    window: int = 0  # which window of the entry

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(frames (T, S, S, 3) uint8, mel (n_mels, mel_length) float16)."""
        if self.store is not None:
            return self.store.frames[self.row], self.store.mel[self.row, :, :self.mel_length]
        suffix = f"_{self.window}" if self.window else ""
        with np.load(self.entry) as z:
            return z[f"frames{suffix}"], z[f"mel{suffix}"].astype(np.float16, copy=False)


def pack(path: Path, keys: list[str], metas: list[dict], frame_shape: tuple[int, ...], stores: dict[Path, Store],
         entry_of: Callable[[str], Path]) -> Store:
    """Make the store in ``path`` hold the clips ``keys`` (the data set's usable clips, with their ingest ``metas``)
    and return it, opened. A clip it lacks is copied from any of ``stores`` that holds it, else read from its
    ingest entry ``entry_of(key)``. An OSError (disk full) leaves the last committed store as it was."""
    current = stores.get(path)
    held = set(current.index["key"]) if current is not None else set()
    new = [i for i, k in enumerate(keys) if k not in held]
    dead = current.rows - (len(keys) - len(new)) if current is not None else 0
    if new or current is None or dead > len(keys):
        found = {k: (s, r) for s in stores.values() for r, k in enumerate(s.index["key"])}
        added = {keys[i]: _source(keys[i], found, entry_of) for i in new}
        longest = max((s.mel_length for s in added.values()), default=1)
        if current is None or dead > len(keys) or longest > int(current.manifest["mel_length"]):
            rows = [added.get(k) or _source(k, found, entry_of) for k in keys]
            lines = [_index_line(k, m, s.mel_length) for k, m, s in zip(keys, metas, rows, strict=True)]
            commit = int(current.manifest["commit"]) + 1 if current is not None else 1
            manifest = {"format": STORE_FORMAT, "commit": commit, "rows": 0, "frame_shape": list(frame_shape),
                        "n_mels": N_MELS, "mel_length": max([s.mel_length for s in rows], default=1),
                        "frames": f"frames-{commit}.u8", "mel": f"mel-{commit}.f16"}
        else:
            rows = list(added.values())
            lines = current.index.to_dict("records") + [_index_line(keys[i], metas[i], added[keys[i]].mel_length)
                                                        for i in new]
            manifest = current.manifest | {"commit": int(current.manifest["commit"]) + 1}
        manifest |= {"rows": _append_rows(path, manifest, rows), "index": f"index-{manifest['commit']}.parquet"}
        atomic_write(path / manifest["index"],
                     lambda fh: pd.DataFrame(lines, columns=INDEX_COLUMNS).to_parquet(fh, index=False))
        atomic_write_text(path / MANIFEST_FILE, json.dumps(manifest, indent=1))
        _remove_unreferenced(path, manifest)
        current = open_store(path)
        assert current is not None, f"{path}: the store just committed does not open"
    return current


def _source(key: str, found: dict[str, tuple[Store, int]], entry_of: Callable[[str], Path]) -> _Source:
    if key in found:
        store, row = found[key]
        return _Source(int(store.index["mel_length"].iat[row]), store, row)
    clip_key, _, window = key.partition("@")
    entry = entry_of(clip_key)
    with np.load(entry) as z:
        return _Source(int(_npz_shape(z, f"mel_{window}" if window else "mel")[-1]), entry=entry,
                       window=int(window or 0))


def _npz_shape(z: np.lib.npyio.NpzFile, name: str) -> tuple[int, ...]:
    """The shape of one array of an .npz, read from its header (the data is not read)."""
    with z.zip.open(f"{name}.npy") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return read(fh)[0]


def _index_line(key: str, meta: dict, mel_length: int) -> dict:
    dbfs = meta.get("audio_dbfs")
    return {"key": key, "mel_length": mel_length, "audio": meta["audio"], "duration": float(meta["duration"]),
            "audio_dbfs": np.nan if dbfs is None else float(dbfs), "warning": meta["warning"],
            "start_s": float(meta.get("start_s", 0.0)), "end_s": float(meta.get("end_s", meta["duration"]))}


def _append_rows(path: Path, manifest: dict, sources: list[_Source]) -> int:
    """Write the clips of ``sources`` after row ``manifest["rows"]`` of its two files (created when that is 0; bytes
    past that row, left by a killed append, are cut off first), flushed to disk. Returns the new row count."""
    start, frame_shape = int(manifest["rows"]), tuple(manifest["frame_shape"])
    mel_row = np.empty((int(manifest["n_mels"]), int(manifest["mel_length"])), np.float16)
    path.mkdir(parents=True, exist_ok=True)
    mode = "r+b" if start else "wb"
    with open(path / manifest["frames"], mode) as ff, open(path / manifest["mel"], mode) as mf:
        for fh, row_bytes in ((ff, int(np.prod(frame_shape))), (mf, mel_row.nbytes)):
            fh.truncate(start * row_bytes)
            fh.seek(start * row_bytes)
        for source in sources:
            frames, mel = source.read()
            if frames.shape != frame_shape:
                raise ValueError(f"cached frames of shape {frames.shape}, expected {frame_shape}")
            ff.write(np.ascontiguousarray(frames, dtype=np.uint8).data)
            mel_row.fill(SILENCE)
            mel_row[:, :mel.shape[-1]] = mel
            mf.write(mel_row.data)
        for fh in (ff, mf):
            fh.flush()
            os.fsync(fh.fileno())
    return start + len(sources)


def _remove_unreferenced(path: Path, manifest: dict) -> None:
    """Delete the files of earlier commits and the temporary files of killed writes (under the ingest lock)."""
    keep = {manifest["frames"], manifest["mel"], manifest["index"], MANIFEST_FILE}
    for f in path.iterdir():
        if f.name not in keep and (f.name.startswith(".tmp-") or f.suffix in (".u8", ".f16", ".parquet")):
            f.unlink(missing_ok=True)
