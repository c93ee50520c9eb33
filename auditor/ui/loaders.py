"""Cached readers: a data set's manifest, a run's outputs (flags, UMAP points, the fused embedding), the review
store, and a clip's decoded frames and sound for the Review page.

Each cached reader is keyed by its file's modification time, so a new flags.csv or labels.csv is read again on
the next rerun. ``st.cache_resource`` results are shared by every session: never mutate them. Decoding a clip
needs PyAV and torch (seconds to import): :func:`clip_media` imports them when first called, not when a page
loads.
"""

from __future__ import annotations

import contextlib
import io
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from auditor import clip_windows, explore_maps, review_queue, run_folder, workspace
from auditor.data.manifest import LABELS_FILE, Manifest, load_manifest
from auditor.errors import UserError
from auditor.flags import FLAG_THRESHOLD, FLAGGED_KINDS
from auditor.reviews import COLUMNS, FINAL_DECISIONS, ReviewStore, store_path
from auditor.run_choice import RunSummary, schedule

REVIEW_FRAMES = 8  # frames in the Review page's strip
REVIEW_FRAME_SIZE = 128
# Seconds of sound the Review page plays alone and draws as a spectrogram: the whole track of a clip up to this
# long, else its middle (as decode_clip reads it).
REVIEW_SOUND_SECONDS = 120.0
# The largest clip file a grid tile previews: Streamlit reads a shown video whole at every rerun, and a grid page
# shows up to 24 of them.
PREVIEW_MAX_BYTES = 4 * 2**20
# Converts the next clips of the queue for playback while the curator looks at this one (never calls st.*).
_PLAYBACK_PREFETCH = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playback")


def _mtime(path: Path) -> int:
    """Modification time of ``path`` in ns (0 when it is missing): the cache key of what was read from it."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


# ------------------------------------------------------------------------------------------------ data set
@st.cache_data(show_spinner=False, max_entries=4, ttl=300)
def _manifest(path: str, mtime: int) -> Manifest:
    return load_manifest(path)


def manifest(data: Path) -> Manifest:
    """The data set's validated manifest (auditor.data.manifest.load_manifest), cached per labels.csv version.
    Raises ManifestError (a UserError) for an unusable folder."""
    return _manifest(str(data), _mtime(data / LABELS_FILE) or _mtime(data))


# ---------------------------------------------------------------------------------------------- run outputs
@st.cache_data(show_spinner=False, max_entries=8)
def _flags(path: str, mtime: int, threshold: float) -> pd.DataFrame:
    return review_queue.read_flags(path, threshold)


@st.cache_data(show_spinner=False, max_entries=8)
def _umap(path: str, mtime: int) -> pd.DataFrame:
    return explore_maps.read_umap(path)


@st.cache_resource(show_spinner=False, max_entries=4)
def _embedding_matrix(path: str, mtime: int) -> tuple[list[str], np.ndarray]:
    return review_queue.read_embedding_matrix(path, "fused")  # shared across sessions: never mutate


def flags(run: Path) -> pd.DataFrame:
    """The run's flags.csv, annotated (review_queue.read_flags)."""
    path = run / run_folder.FLAGS_FILE
    return _flags(str(path), _mtime(path), FLAG_THRESHOLD)


def umap(run: Path) -> pd.DataFrame:
    """The run's UMAP coordinates (explore_maps.read_umap)."""
    path = run / run_folder.EMBEDDINGS_FILE
    return _umap(str(path), _mtime(path))


def embedding_matrix(run: Path) -> tuple[list[str], np.ndarray]:
    """(clips, unit-length fused embeddings) of the run (review_queue.read_embedding_matrix); shared: read only."""
    path = run / run_folder.EMBEDDINGS_FILE
    return _embedding_matrix(str(path), _mtime(path))


@st.cache_data(show_spinner=False, max_entries=8)
def _class_report(path: str, mtime: int) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, dtype={"class": str, "top_suggested_replacement": str}, keep_default_na=False,
                           na_values={"estimated_noise_rate": [""], "estimated_mismatch_rate": [""]})
    except (OSError, ValueError):
        return None


def class_report(run: Path) -> pd.DataFrame | None:
    """The run's class_report.csv (labels as text), or None when it has none."""
    path = run / run_folder.CLASS_REPORT_FILE
    return _class_report(str(path), _mtime(path))


@st.cache_resource(show_spinner=False, max_entries=4)
def _windows(path: str, mtime: int, flags_mtime: int) -> tuple[pd.DataFrame | None, dict[str, float]]:
    run = Path(path).parent
    windows = clip_windows.read_windows(run)
    if windows is None:
        return None, {}
    return windows, clip_windows.reference_losses(windows, review_queue.read_flags(run / run_folder.FLAGS_FILE,
                                                                                      FLAG_THRESHOLD))


def windows(run: Path) -> tuple[pd.DataFrame | None, dict[str, float]]:
    """(the run's windows.csv or None, its per-class reference losses: clip_windows.reference_losses); shared
    across sessions (up to 8 rows a clip: not copied per rerun): read only."""
    path = run / run_folder.WINDOWS_FILE
    return _windows(str(path), _mtime(path), _mtime(run / run_folder.FLAGS_FILE))


def run_id(run: Path) -> str:
    """The run id in the run's config.json (the folder name when it has none): what decisions are stamped with."""
    return str((run_folder.read_config(run) or {}).get("run_id", run.name))


# -------------------------------------------------------------------------------------------------- reviews
def review_store(data: Path) -> ReviewStore:
    """The data set's ReviewStore (created on first use); use as a context manager
    (``with loaders.review_store(data) as store``)."""
    return ReviewStore(data)


def latest_reviews(data: Path) -> pd.DataFrame:
    """Every clip's current decision (an empty frame, and no store file, before the first decision)."""
    if not store_path(data).is_file():
        return pd.DataFrame(columns=list(COLUMNS))
    with review_store(data) as store:
        return store.latest()


def run_summaries(data: Path, names: list[str]) -> tuple[list[RunSummary], str | None]:
    """The runs ``names`` of ``data`` as the run picker describes them (auditor.run_choice.RunSummary: flagged
    and decided clips, when it finished, epochs against the automatic schedule), and the run of the data set's
    latest decision (None when no decision names one of them)."""
    latest = latest_reviews(data)
    decided = latest.loc[latest["decision"].isin(FINAL_DECISIONS), "run_id"].value_counts().to_dict()
    newest_id = str(latest.loc[latest["id"].idxmax(), "run_id"]) if not latest.empty else None
    summaries, decided_run = [], None
    for name in names:
        run = workspace.runs_root(data) / name
        config = run_folder.read_config(run) or {}
        rid = str(config.get("run_id", name))
        try:
            table = flags(run) if run_folder.run_outputs_ready(run) else None
        except (OSError, ValueError, UserError):  # unreadable results: listed as a run without results
            table = None
        epochs, auto = schedule(config) or (None, None)
        summaries.append(RunSummary(
            name, None if table is None else int(table["flag_kind"].isin(FLAGGED_KINDS).sum()),
            int(decided.get(rid, 0)), _mtime(run / run_folder.FLAGS_FILE) / 1e9 or None, epochs, auto))
        if rid == newest_id and decided_run is None:
            decided_run = name
    return summaries, decided_run


def undoable_decisions(data: Path, curator: str, limit: int) -> list[dict]:
    """``curator``'s decisions that undo can take back, newest first (ReviewStore.undoable: from the decision
    log, so a reload or another tab of the same curator sees them too); [] without a name or a store file."""
    if not curator.strip() or not store_path(data).is_file():
        return []
    with review_store(data) as store:
        return store.undoable(curator, limit)


def latest_decision(data: Path, clip: str) -> dict | None:
    """The clip's current decision, or None (no store file is created to find out)."""
    if not store_path(data).is_file():
        return None
    with review_store(data) as store:
        return store.latest_for(clip)


def scored_clips(data: Path, run: Path) -> pd.DataFrame:
    """flags + current review status, one row per clip of flags.csv."""
    table = flags(run)
    table["review_status"] = review_queue.review_status(table["clip"], latest_reviews(data)).to_numpy()
    return table


def points(data: Path, run: Path) -> pd.DataFrame:
    """Scored clips with UMAP coordinates and review status (explore_maps.points_table)."""
    return explore_maps.points_table(flags(run), umap(run), latest_reviews(data))


# ----------------------------------------------------------------------------------------------- clip media
@st.cache_data(show_spinner=False, max_entries=16)
def _clip_media(path: str, mtime: int) -> dict:
    # PyAV and torch: seconds to import, and only the Review page's media need them.
    from auditor.data.decode import SAMPLE_RATE, decode_clip
    from auditor.data.features import log_mel

    clip = decode_clip(path, num_frames=REVIEW_FRAMES, size=REVIEW_FRAME_SIZE, max_audio_seconds=REVIEW_SOUND_SECONDS)
    return {"frames": clip.frames, "wav": _wav_bytes(clip.audio, SAMPLE_RATE), "mel": log_mel(clip.audio),
            "duration": clip.duration, "has_audio": clip.has_audio,
            "sound_start_s": max(0.0, (clip.duration - REVIEW_SOUND_SECONDS) / 2.0)}


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono float audio in [-1, 1] -> 16-bit PCM WAV bytes, at the level the model heard (not normalised)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


def clip_media(path: Path) -> dict:
    """Decoded frames (T, S, S, 3), the sound as WAV bytes, log-mel (64, L) and where that sound starts in the clip
    (``sound_start_s``; REVIEW_SOUND_SECONDS) of a clip file (already checked to be inside the data set with
    review_queue.clip_path)."""
    return _clip_media(str(path), _mtime(path))


def playable_video(data: Path, path: Path) -> tuple[Path, str]:
    """(file, MIME type) the browser plays for clip file ``path``: the clip, or its converted copy
    (auditor.playback.playback_file; raises its PlaybackError, a UserError)."""
    from auditor.playback import playback_file  # PyAV: only when a clip is shown

    return playback_file(data, path)


def preview_video(data: Path, path: Path) -> tuple[Path, str] | None:
    """(file, MIME type) the browser plays for clip file ``path`` when no conversion is needed now
    (auditor.playback.playback_file_ready) and the file is at most PREVIEW_MAX_BYTES, else None: a clip that
    needs converting is converted in the background (a later rerun has it), one that cannot be opened or is
    larger has no preview."""
    from auditor.playback import playback_file_ready  # PyAV: only when a clip is shown

    try:
        ready = playback_file_ready(data, path)
        if ready is None:
            prefetch_playback(data, [path])
            return None
        return ready if ready[0].stat().st_size <= PREVIEW_MAX_BYTES else None
    except (UserError, OSError):
        return None


def thumbnail(data: Path, path: Path) -> bytes | None:
    """A JPEG of the clip's middle frame (auditor.playback.thumbnail), or None when it has no picture."""
    from auditor.playback import thumbnail as make_thumbnail  # PyAV: only when a clip is shown

    try:
        return make_thumbnail(data, path)
    except (UserError, OSError):
        return None


def cached_thumbnail(data: Path, path: Path) -> bytes | None:
    """The clip's thumbnail when it was made already (auditor.playback.cached_thumbnail), else None (nothing is
    decoded: :func:`prefetch_thumbnails` makes it)."""
    from auditor.playback import cached_thumbnail as read_thumbnail  # PyAV: only when a clip is shown

    try:
        return read_thumbnail(data, path)
    except OSError:
        return None


def prefetch_playback(data: Path, paths: list[Path]) -> None:
    """Convert ``paths`` for playback in the background (those that need it), so the next clip plays at once."""
    for path in paths:
        _PLAYBACK_PREFETCH.submit(_prefetch_one, data, path)


def prefetch_thumbnails(data: Path, paths: list[Path]) -> None:
    """Make the thumbnails of ``paths`` in the background (the neighbours of the next clips)."""
    for path in paths:
        _PLAYBACK_PREFETCH.submit(thumbnail, data, path)


def _prefetch_one(data: Path, path: Path) -> None:
    with contextlib.suppress(UserError, OSError):  # the page shows the error when the clip comes up
        playable_video(data, path)
