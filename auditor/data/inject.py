"""``python -m auditor inject``: a noisy copy of a data set, by the protocols of :mod:`auditor.data.noise`.

:func:`inject_dataset` writes a copy of a data set (``labels.csv`` + clips) with injected noise and the truth
(``truth.csv``) beside it. Untouched clips are hard-linked, mismatched clips are remuxed without re-encoding.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import av
import pandas as pd

from auditor.data.mux import clear_destination, swap_audio
from auditor.data.noise import (
    NOISE_TYPES,
    TRUTH_COLUMNS,
    check_rate,
    choose_label_noise,
    choose_mismatch,
    mismatch_rng,
    noise_rng,
    write_tables,
)
from auditor.errors import UserError

# truth.csv columns beyond TRUTH_COLUMNS that describe a clip's sound track (the generator's is_muted, long clips'
# sound event, the sound's media columns): a clip given another clip's sound takes them from that clip.
SOUND_COLUMNS = ("is_muted", "event_start_s", "event_end_s", "sample_rate", "channels", "audio_codec")
EVENT_COLUMNS = ("event_start_s", "event_end_s")


def _read_labels(data_dir: Path) -> pd.DataFrame:
    path = data_dir / "labels.csv"
    if not path.is_file():
        raise UserError(f"{path}: no labels.csv (needs a header 'clip,label')")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("clip", "label") if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing}; header must be 'clip,label'")
    frame = frame[["clip", "label"]].copy()
    if frame.empty:
        raise UserError(f"{path}: no rows")
    if frame["clip"].duplicated().any():
        dup = frame.loc[frame["clip"].duplicated(), "clip"].iloc[0]
        raise UserError(f"{path}: clip {dup!r} is listed twice")
    if (frame["label"].str.strip() == "").any():
        bad = frame.loc[frame["label"].str.strip() == "", "clip"].iloc[0]
        raise UserError(f"{path}: clip {bad!r} has an empty label")
    for clip in frame["clip"]:
        rel = Path(clip)
        if rel.is_absolute() or ".." in rel.parts:
            raise UserError(f"{path}: clip path {clip!r} must be relative to the data folder, without '..'")
        if not (data_dir / rel).is_file():
            raise UserError(f"{data_dir / rel}: clip listed in labels.csv does not exist")
    return frame.reset_index(drop=True)


def _read_truth(data_dir: Path, clips: pd.Series) -> pd.DataFrame | None:
    path = data_dir / "truth.csv"
    if not path.is_file():
        return None
    truth = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing}; expected {TRUTH_COLUMNS}")
    truth = truth.set_index("clip")
    absent = [c for c in clips if c not in truth.index]
    if absent:
        raise UserError(f"{path}: clip {absent[0]!r} of labels.csv has no row ({len(absent)} missing)")
    return truth.loc[list(clips)]


def _link_or_copy(src: Path, dst: Path) -> str:
    clear_destination(dst)
    try:
        os.link(src, dst)
        return "linked"
    except OSError:
        shutil.copy2(src, dst)
        return "copied"


def inject_dataset(data_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, label_noise: float,
                   noise_type: str = "symmetric", mismatch: float = 0.0, seed: int = 0,
                   confusion_map: Mapping[str, str] | None = None) -> dict:
    """Write a copy of the data set in ``data_dir`` to ``out_dir`` with injected label noise and sound mismatch.

    Reads ``data_dir/labels.csv`` (header ``clip,label``; ``clip`` relative to ``data_dir``). Writes
    ``out_dir/labels.csv`` (same clips and order, given labels after noise), ``out_dir/truth.csv`` with columns
    ``clip,true_label,given_label,label_is_noisy,audio_label,is_mismatched`` (0/1 ints) and the input truth's
    further columns (``is_muted``, sound events, media; those of the sound follow it: SOUND_COLUMNS), and every
    clip at the same relative path under ``out_dir``: untouched clips are hard-linked (copied when linking fails,
    e.g. across devices); a mismatched clip keeps its own video packets and gets the audio packets of its donor,
    trimmed to the video's end (no re-encoding; if remuxing fails the donor's audio is re-encoded, as AAC or, in
    WebM, as Opus: mux.REENCODE_INSTEAD_OF_AAC; a donor without audio leaves the clip silent, ``audio_label``
    empty). A clean ``data_dir/test`` split (its own labels.csv) is hard-linked unchanged.

    If ``data_dir/truth.csv`` exists the new truth composes with it: ``true_label`` stays the original truth's,
    noise is applied to the labels of labels.csv, ``label_is_noisy`` = given != true, and a clip's
    ``audio_label`` is the original ``audio_label`` of the clip whose sound it now carries; ``is_mismatched`` is
    1 when the clip carried another clip's sound before or now. Donors are chosen by true label, so a donor's
    class differs from the clip's true class. Label noise is drawn with ``noise_rng(seed)``, the mismatch with
    ``mismatch_rng(seed)``: same arguments -> same output.

    Returns a summary dict: ``clips``, ``classes`` (count), ``noisy``, ``mismatched``, ``linked``, ``copied``,
    ``remuxed``, ``reencoded``, ``seconds``. Raises ``ValueError`` (``UserError``) for bad rates, noise type,
    confusion map, a missing/invalid labels.csv, a listed clip that does not exist, or ``out_dir`` = ``data_dir``.
    """
    started = time.perf_counter()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not data_dir.is_dir():
        raise UserError(f"{data_dir}: no such data set folder")
    if out_dir.resolve() == data_dir.resolve():
        raise UserError(f"{out_dir}: the output folder must differ from the data folder")
    if noise_type not in NOISE_TYPES:
        raise UserError(f"unknown noise type {noise_type!r}; valid: {', '.join(NOISE_TYPES)}")
    check_rate("label noise rate", label_noise, allow_one=False)
    check_rate("mismatch rate", mismatch, allow_one=True)

    frame = _read_labels(data_dir)
    truth = _read_truth(data_dir, frame["clip"])
    clips = list(frame["clip"])
    labels_in = list(frame["label"])
    if truth is not None:
        true_labels = list(truth["true_label"])
        audio_in = list(truth["audio_label"])
        mismatched_in = [int(float(v or 0)) for v in truth["is_mismatched"]]
    else:
        true_labels = list(labels_in)
        audio_in = list(labels_in)
        mismatched_in = [0] * len(clips)
    classes = sorted(set(labels_in) | set(true_labels))

    given = choose_label_noise(labels_in, classes, label_noise, noise_type, noise_rng(seed), confusion_map)
    donors = choose_mismatch(true_labels, mismatch, mismatch_rng(seed))

    counts = {"linked": 0, "copied": 0, "remuxed": 0, "reencoded": 0, "no_audio": 0}
    audio_out: list[str] = []
    mismatched_out: list[int] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    hows: list[str] = []
    for i, clip in enumerate(clips):
        src = data_dir / clip
        dst = out_dir / clip
        donor = donors[i]
        if donor is None:
            how = _link_or_copy(src, dst)
            counts[how] += 1
            hows.append(how)
            audio_out.append(audio_in[i])
            mismatched_out.append(mismatched_in[i])
        else:
            how = swap_audio(src, data_dir / clips[donor], dst)
            counts[how] += 1
            hows.append(how)
            audio_out.append("" if how == "no_audio" else audio_in[donor])
            mismatched_out.append(1)

    extra = _extra_columns(truth, out_dir, clips, donors, hows) if truth is not None else {}
    muted = extra.pop("is_muted", None)
    write_tables(out_dir, clips, true_labels, given, audio_out, mismatched_out,
                 None if muted is None else [int(float(v or 0)) for v in muted], extra)
    _link_test_split(data_dir, out_dir)

    summary = {
        "clips": len(clips),
        "classes": len(classes),
        "noisy": int(sum(g != t for g, t in zip(given, true_labels, strict=True))),
        "mismatched": int(sum(d is not None for d in donors)),
        "linked": counts["linked"],
        "copied": counts["copied"],
        "remuxed": counts["remuxed"],
        "reencoded": counts["reencoded"],
    }
    if counts["no_audio"]:
        summary["donors_without_audio"] = counts["no_audio"]
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _extra_columns(truth: pd.DataFrame, out_dir: Path, clips: list[str], donors: list[int | None],
                   hows: list[str]) -> dict[str, list[str]]:
    """The input truth's columns beyond TRUTH_COLUMNS for the output clips, as text: a clip's own values, but a
    clip given a donor's sound takes the donor's SOUND_COLUMNS (empty when the donor had no sound; the codec,
    sample rate and channels of the written sound when it was re-encoded; the event empty when it starts after the
    clip's picture ends, where the sound was cut)."""
    out = {}
    for column in (c for c in truth.columns if c not in TRUTH_COLUMNS):
        values = truth[column].astype(str).tolist()
        out[column] = [values[i] if d is None or column not in SOUND_COLUMNS else values[d]
                       for i, d in enumerate(donors)]
    for i, (donor, how) in enumerate(zip(donors, hows, strict=True)):
        if donor is None:
            continue
        if how == "no_audio":
            for column in set(out) & set(SOUND_COLUMNS):
                out[column][i] = ""
        elif how == "reencoded":  # the sound's media columns as written
            for column, value in _sound_format(out_dir / clips[i]).items():
                if column in out:
                    out[column][i] = value
        start = out.get("event_start_s", [""] * len(clips))[i]
        if start and float(start) >= _picture_seconds(out_dir / clips[i]):
            for column in set(out) & set(EVENT_COLUMNS):
                out[column][i] = ""
    return out


def _sound_format(path: Path) -> dict[str, str]:
    """audio_codec (FFmpeg's decoder name), sample_rate and channels of the sound track of ``path``."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return {"audio_codec": stream.codec_context.name, "sample_rate": str(stream.sample_rate),
                "channels": str(stream.channels)}


def _picture_seconds(path: Path) -> float:
    """The length of the video stream of ``path`` in seconds (the container's duration when the stream has none)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration or 0) / av.time_base


def _link_test_split(data_dir: Path, out_dir: Path) -> None:
    """Hard-link a clean ``data_dir/test`` split (labels.csv, truth.csv and its clips) unchanged, if present."""
    test_dir = data_dir / "test"
    labels = test_dir / "labels.csv"
    if not labels.is_file():
        return
    frame = pd.read_csv(labels, dtype=str, keep_default_na=False)
    if "clip" not in frame.columns:
        return
    for name in ("labels.csv", "truth.csv"):
        if (test_dir / name).is_file():
            _link_or_copy(test_dir / name, out_dir / "test" / name)
    for clip in frame["clip"]:
        src = test_dir / clip
        if src.is_file() and not Path(clip).is_absolute() and ".." not in Path(clip).parts:
            _link_or_copy(src, out_dir / "test" / clip)
