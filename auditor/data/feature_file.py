"""A features file: per-clip vectors computed by a pretrained model elsewhere, read and checked against labels.csv.

Format (Parquet or ``.npz``), one row per clip, or several rows per clip for a long clip's windows (in file order,
window 0 first):

* ``clip``: the clip's path relative to the data set folder, as in labels.csv (str);
* ``visual``: the picture's vector, D_v numbers; ``audio``: the sound's vector, D_a numbers (Parquet: list columns of
  floats or integers; .npz: 2-D arrays (M, D_v), (M, D_a));
* optional ``has_audio`` (bool): False = the row has no sound (its audio vector is not read);
* optional ``start_s``, ``end_s`` (float): the row's time span, reported in windows.csv.

An audio vector that is all NaN means the same as ``has_audio`` False: the clip (window) has no sound track, and is
never flagged as mismatched. Refused, each with the file and the row named: NaN or inf in a visual vector, an audio
vector only partly NaN or holding inf, vectors of differing lengths or of a non-numeric type, a missing column; and
clips of labels.csv that the file lacks (the first few named, and the count). Clips of the file that labels.csv lacks
are left out and named in the check's notes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from auditor.data.cache import REPORT_COLUMNS, IngestResult
from auditor.data.manifest import Manifest, load_manifest, normalise_relative
from auditor.data.params import PreprocessParams
from auditor.data.store import window_positions
from auditor.errors import UserError

FEATURE_SUFFIXES = (".parquet", ".npz")
# Clip names shown in a message before "and N more".
SHOWN_CLIPS = 5
# Rows of a Parquet file's vectors decoded at a time (Arrow holds one batch beside the numpy arrays; a batch of
# 4,096 rows of 512 floats is 8 MB, one of 16,384 decoded at half the speed: BENCHMARKS.md).
VECTOR_BATCH_ROWS = 4096


@dataclass
class FeatureArrays:
    """The precomputed vectors of N clips, the features-file twin of data/store.ClipArrays (same clip-level
    interface: take, window_counts, at_windows, window_levels, window_items, row_table).

    ``visual`` (M, D_v) and ``audio`` (M, D_a) float32 hold one row per clip or window (M >= N); ``row_audio`` (M,)
    bool: the row has a sound vector (where it has not, its audio row is zeros); ``spans`` (M, 2) float seconds
    (NaN: not given). Clip i is row ``rows[i]``; ``has_audio`` (N,) = its row has sound (for a view of windows:
    the window's row). ``windows`` (N, W): the rows of each clip's windows (-1 past a clip's last; column 0 =
    ``rows``), None when every clip is one row."""

    clips: list[str]
    labels: list[str]
    visual: np.ndarray
    audio: np.ndarray
    row_audio: np.ndarray
    spans: np.ndarray
    rows: np.ndarray
    has_audio: np.ndarray
    windows: np.ndarray | None = None
    store = None  # no memory-mapped store behind these arrays

    def take(self, idx: np.ndarray) -> FeatureArrays:
        """The clips ``idx`` (indices into 0..N-1), sharing the rows (nothing is copied)."""
        return FeatureArrays([self.clips[i] for i in idx], [self.labels[i] for i in idx], self.visual, self.audio,
                             self.row_audio, self.spans, self.rows[idx], self.has_audio[idx],
                             None if self.windows is None else self.windows[idx])

    def window_counts(self) -> np.ndarray:
        """(N,) int: each clip's number of windows (rows)."""
        return np.ones(len(self.clips), np.int64) if self.windows is None else (self.windows >= 0).sum(1)

    def at_windows(self, idx: np.ndarray, window: np.ndarray) -> FeatureArrays:
        """Window ``window[j]`` of clip ``idx[j]`` as item j, with the window's own ``has_audio``."""
        idx = np.asarray(idx, np.int64)
        if self.windows is None:
            return self.take(idx)
        rows = self.windows[idx, np.asarray(window, np.int64)]
        return FeatureArrays([self.clips[i] for i in idx], [self.labels[i] for i in idx], self.visual, self.audio,
                             self.row_audio, self.spans, rows, self.row_audio[rows])

    def clip_vectors(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(visual (n, D_v), audio (n, D_a)) float32 of the clips ``idx``: each clip's row, or with windows the mean
        of its windows' rows (audio: of those with sound; zeros when none has). Views of ``visual`` and ``audio``,
        nothing copied, when the clips are rows 0..n-1 in order."""
        idx = np.asarray(idx, np.int64)
        if self.windows is None:
            rows = self.rows[idx]
            if np.array_equal(rows, np.arange(len(rows))):
                return self.visual[:len(rows)], self.audio[:len(rows)]
            return self.visual[rows], self.audio[rows]
        windows = self.windows[idx]
        present = windows >= 0
        sounding = present & self.row_audio[np.maximum(windows, 0)]
        return _row_means(self.visual, windows, present), _row_means(self.audio, windows, sounding)

    def window_levels(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), W): 0 for each window of the clips ``idx`` (a vector carries no sound level: every window
        with sound is audible and equally likely drawn), -inf past a clip's last window."""
        idx = np.asarray(idx, np.int64)
        if self.windows is None:
            return np.zeros((len(idx), 1))
        return np.where(self.windows[idx] >= 0, 0.0, -np.inf)

    def window_items(self, idx: np.ndarray) -> tuple[FeatureArrays, np.ndarray, np.ndarray]:
        """Every window of the clips ``idx`` as one item: (the view, owner (n,), window (n,)), as ClipArrays'."""
        idx = np.asarray(idx, np.int64)
        owner, window = window_positions(self.window_counts()[idx])
        return self.at_windows(idx[owner], window), owner, window

    def row_table(self, rows: np.ndarray) -> pd.DataFrame:
        """start_s, end_s and audio ("present" / "none") of ``rows`` (windows.csv)."""
        return pd.DataFrame({"start_s": self.spans[rows, 0], "end_s": self.spans[rows, 1],
                             "audio": np.where(self.row_audio[rows], "present", "none")})


@dataclass
class FeatureCheck:
    """What :func:`check_features` found: ``clips`` of labels.csv matched, ``rows`` read, the vector sizes, clips
    without sound, the most windows of a clip, and ``notes`` (e.g. clips of the file that labels.csv lacks)."""

    path: Path
    clips: int
    rows: int
    visual_dim: int
    audio_dim: int
    no_audio: int
    max_windows: int
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        windows = f", up to {self.max_windows} windows a clip" if self.max_windows > 1 else ""
        return (f"{self.path.name}: {self.clips} clips ({self.rows} rows{windows}), visual vectors of "
                f"{self.visual_dim}, audio vectors of {self.audio_dim}; {self.no_audio} clips without sound")


def check_features(data_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> FeatureCheck:
    """Read and check the features file ``path`` against the data set ``data_dir``; UserError naming the file
    and the problem (module docstring) when it cannot be used."""
    return _load(load_manifest(data_dir), Path(path))[1]


def load_features(data_dir: str | os.PathLike[str], path: str | os.PathLike[str]
                  ) -> tuple[IngestResult, FeatureArrays]:
    """The data set's usable clips (manifest order) with their vectors from the features file ``path``: an
    IngestResult as the ingest makes (``clips`` with audio "present" / "none"; ``report`` lists the clips without
    sound) and the FeatureArrays. UserError when the file cannot be used."""
    manifest = load_manifest(data_dir)
    arrays, check = _load(manifest, Path(path))
    table = pd.DataFrame({"clip": arrays.clips, "label": arrays.labels, "key": arrays.clips, "duration": np.nan,
                          "has_audio": arrays.has_audio, "warning": ""})
    table.insert(5, "audio", np.where(arrays.has_audio, "present", "none"))
    extra = [c for c in manifest.rows.columns if c not in ("clip", "label")]
    if extra:
        table = table.merge(manifest.rows[["clip", *extra]], on="clip", how="left")
    report = pd.DataFrame([{"clip": c, "problem": "no_audio", "detail": f"no audio vector in {check.path.name}",
                            "kept": True} for c in table.loc[~arrays.has_audio, "clip"]], columns=REPORT_COLUMNS)
    result = IngestResult(manifest=manifest, params=PreprocessParams(), cache_dir=check.path.parent, clips=table,
                          report=report, problems=list(manifest.problems))
    return result, arrays


def _load(manifest: Manifest, path: Path) -> tuple[FeatureArrays, FeatureCheck]:
    columns = _read_columns(path)
    clip, visual, audio = columns["clip"], columns["visual"], columns["audio"]
    if visual.shape[1] == 0 or audio.shape[1] == 0:
        raise UserError(f"{path}: empty vectors (visual {visual.shape[1]}, audio {audio.shape[1]} numbers a row)")
    row_audio = _row_audio(path, clip, audio, columns.get("has_audio"))
    _refuse_rows(path, clip, ~np.isfinite(visual).all(1), "the visual vector holds NaN or inf")
    audio[~row_audio] = 0.0  # in place: no second copy of the vectors
    spans = np.stack([columns.get(k, np.full(len(clip), np.nan)) for k in ("start_s", "end_s")], 1)

    first: dict[str, list[int]] = {}
    for row, name in enumerate(clip):
        first.setdefault(name, []).append(row)
    wanted = manifest.rows["clip"].tolist()
    missing = [c for c in wanted if c not in first]
    if missing:
        raise UserError(f"{path}: no vectors for {len(missing)} of the {len(wanted)} clips of labels.csv: "
                        f"{_some(missing)}")
    labelled = set(wanted)
    extra = [c for c in first if c not in labelled]
    notes = [f"{len(extra)} clips of the file are not in labels.csv and are left out: {_some(extra)}"] if extra else []
    windows = [first[c] for c in wanted]
    longest = max(len(w) for w in windows)
    matrix = np.full((len(wanted), longest), -1, np.int64)
    for i, w in enumerate(windows):
        matrix[i, :len(w)] = w
    rows = matrix[:, 0].copy()
    has_audio = (np.where(matrix >= 0, row_audio[np.maximum(matrix, 0)], False)).any(1)
    arrays = FeatureArrays(wanted, manifest.rows["label"].tolist(), visual, audio, row_audio, spans, rows,
                           has_audio, matrix if longest > 1 else None)
    check = FeatureCheck(path, len(wanted), sum(len(w) for w in windows), visual.shape[1], audio.shape[1],
                         int((~has_audio).sum()), longest, notes)
    return arrays, check


def _read_columns(path: Path) -> dict[str, np.ndarray]:
    """clip (M,) str, visual (M, D_v) and audio (M, D_a) float32, and the optional columns, from either format."""
    if not path.is_file():
        raise UserError(f"{path}: no such features file")
    if path.suffix.lower() not in FEATURE_SUFFIXES:
        raise UserError(f"{path}: a features file must be {' or '.join(FEATURE_SUFFIXES)}")
    reader = _read_parquet if path.suffix.lower() == ".parquet" else _read_npz
    try:
        columns = reader(path)
    except (OSError, ValueError, pa.ArrowException) as err:
        if isinstance(err, UserError):
            raise
        raise UserError(f"{path}: cannot read it ({str(err).splitlines()[0][:200]})") from None
    n = len(columns["clip"])
    if n == 0:
        raise UserError(f"{path}: holds no rows")
    for name, value in columns.items():
        if len(value) != n:
            raise UserError(f"{path}: column {name!r} has {len(value)} rows, 'clip' has {n}")
    clip = []
    for row, c in enumerate(columns["clip"]):
        normal = normalise_relative(str(c).strip()) if isinstance(c, str) else None
        if normal is None:
            raise UserError(f"{path}: row {row}: clip {c!r} is not a path relative to the data set folder")
        clip.append(normal)
    columns["clip"] = np.asarray(clip, dtype=object)
    return columns


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    """The columns of a Parquet file; the vectors in batches of VECTOR_BATCH_ROWS rows straight into their numpy
    arrays (a 200,000-row file of 512 + 512 floats holds 800 MB of vectors: no whole Arrow copy beside them)."""
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    _require(path, names)
    out = {"clip": np.asarray(parquet.read(columns=["clip"]).column("clip").to_pylist(), dtype=object)}
    for name in ("visual", "audio"):
        out[name] = _parquet_vectors(path, name, parquet)
    for name in ("has_audio", "start_s", "end_s"):
        if name in names:
            out[name] = _optional(path, name, parquet.read(columns=[name]).column(name).to_numpy())
    return out


def _parquet_vectors(path: Path, name: str, parquet: pq.ParquetFile) -> np.ndarray:
    """(M, D) float32 from a list column; UserError naming the column and the first bad row."""
    kind = parquet.schema_arrow.field(name).type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
        raise UserError(f"{path}: column {name!r} must hold a list of numbers per row, not {kind}")
    if not (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)):
        raise UserError(f"{path}: column {name!r} must hold numbers, not {kind.value_type}")
    out, start = None, 0
    for batch in parquet.iter_batches(batch_size=VECTOR_BATCH_ROWS, columns=[name]):
        col = batch.column(0)
        if col.null_count:
            raise UserError(f"{path}: row {start + col.is_null().to_numpy(zero_copy_only=False).argmax()}: no "
                            f"{name} vector (null)")
        lengths = np.full(len(col), kind.list_size) if pa.types.is_fixed_size_list(kind) else \
            np.diff(col.offsets.to_numpy())
        if out is None and len(col):
            out = np.empty((parquet.metadata.num_rows, int(lengths[0])), np.float32)
        if (lengths != out.shape[1]).any():
            row = int(np.argmax(lengths != out.shape[1]))
            raise UserError(f"{path}: row {start + row}: the {name} vector has {lengths[row]} numbers, row 0's has "
                            f"{out.shape[1]}")
        out[start:start + len(col)] = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), out.shape[1])
        start += len(col)
    return out if out is not None else np.zeros((0, 0), np.float32)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        _require(path, z.files)
        try:
            out = {name: z[name] for name in z.files}
        except ValueError:
            raise UserError(f"{path}: holds Python objects; store 'clip' as a string array (dtype str), the vectors "
                            "as numbers") from None
    if out["clip"].dtype.kind != "U" or out["clip"].ndim != 1:
        raise UserError(f"{path}: 'clip' must be a 1-D array of strings, not {out['clip'].dtype} {out['clip'].shape}")
    out["clip"] = out["clip"].astype(object)
    for name in ("visual", "audio"):
        value = out[name]
        if value.ndim != 2 or value.dtype.kind not in "fiu":
            raise UserError(f"{path}: {name!r} must be a 2-D array of numbers (one row per clip), not "
                            f"{value.dtype} {value.shape}")
        out[name] = value.astype(np.float32, copy=False)
    for name in ("has_audio", "start_s", "end_s"):
        if name in out:
            out[name] = _optional(path, name, out[name])
    return {k: v for k, v in out.items() if k in ("clip", "visual", "audio", "has_audio", "start_s", "end_s")}


def _require(path: Path, names: list[str]) -> None:
    missing = [c for c in ("clip", "visual", "audio") if c not in names]
    if missing:
        raise UserError(f"{path}: missing {', '.join(repr(m) for m in missing)} (found: "
                        f"{', '.join(repr(c) for c in names)}); a features file has 'clip', 'visual', 'audio'")


def _optional(path: Path, name: str, value: np.ndarray) -> np.ndarray:
    """has_audio as bool, start_s / end_s as float64; UserError for another type."""
    if name == "has_audio":
        if value.dtype != bool:
            raise UserError(f"{path}: 'has_audio' must be true/false, not {value.dtype}")
        return value
    if value.dtype.kind not in "fiu":
        raise UserError(f"{path}: {name!r} must be seconds (numbers), not {value.dtype}")
    return value.astype(np.float64)


def _row_audio(path: Path, clip: np.ndarray, audio: np.ndarray, has_audio: np.ndarray | None) -> np.ndarray:
    """(M,) bool: the row has a sound vector (has_audio, and the vector not all NaN); refuses a vector of a row
    with sound that is partly NaN or holds inf."""
    row_audio = ~np.isnan(audio).all(1) if audio.shape[1] else np.zeros(len(audio), bool)
    if has_audio is not None:
        row_audio &= has_audio
    _refuse_rows(path, clip, row_audio & ~np.isfinite(audio).all(1),
                 "the audio vector holds inf or is partly NaN (all NaN, or has_audio false, = no sound)")
    return row_audio


def _refuse_rows(path: Path, clip: np.ndarray, bad: np.ndarray, problem: str) -> None:
    if bad.any():
        row = int(np.argmax(bad))
        more = f" ({int(bad.sum()) - 1} more rows like it)" if bad.sum() > 1 else ""
        raise UserError(f"{path}: row {row} (clip {clip[row]!r}): {problem}{more}")


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_CLIPS])
    return shown + (f" and {len(names) - SHOWN_CLIPS} more" if len(names) > SHOWN_CLIPS else "")


def _row_means(matrix: np.ndarray, rows: np.ndarray, use: np.ndarray) -> np.ndarray:
    """(n, D) float32: row i = the mean of matrix[rows[i, j]] over the j with use[i, j] (zeros when there is none)."""
    out = np.zeros((rows.shape[0], matrix.shape[1]), np.float32)
    for j in range(rows.shape[1]):
        out[use[:, j]] += matrix[rows[use[:, j], j]]
    return out / np.maximum(use.sum(1), 1)[:, None].astype(np.float32)
