"""Label-noise and sound-track-mismatch injection, shared by the sample generator and ``python -m auditor inject``.

Noise protocols (see shared/method.md, "Noise protocols"):

- symmetric: with probability ``rate`` a label is replaced by a uniformly drawn *other* class;
- asymmetric: with probability ``rate`` a label is replaced by a fixed confusable class (``confusion_map``);
- mismatch: exactly ``round(rate * N)`` clips get the sound track of a clip of another class.

:func:`inject_dataset` writes a copy of a data set (``labels.csv`` + clips) with injected noise and the truth
(``truth.csv``) beside it. Untouched clips are hard-linked, mismatched clips are remuxed without re-encoding.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import av
import numpy as np
import pandas as pd

from auditor.data.mux import container_format, encode_audio
from auditor.errors import UserError

NOISE_TYPES = ("symmetric", "asymmetric")
TRUTH_COLUMNS = ["clip", "true_label", "given_label", "label_is_noisy", "audio_label", "is_mismatched"]


def write_tables(root: Path, clips: Sequence[str], true_labels: Sequence[str], given: Sequence[str],
                 audio_labels: Sequence[str], is_mismatched: Sequence[int],
                 is_muted: Sequence[int] | None = None) -> None:
    """Write ``root/labels.csv`` (clip,label = the given labels) and ``root/truth.csv`` (TRUTH_COLUMNS, plus
    ``is_muted`` when given: 1 for a clip whose sound track is present but silent)."""
    pd.DataFrame({"clip": clips, "label": given}).to_csv(root / "labels.csv", index=False, lineterminator="\n")
    truth = pd.DataFrame({
        "clip": clips,
        "true_label": true_labels,
        "given_label": given,
        "label_is_noisy": [int(g != t) for g, t in zip(given, true_labels, strict=True)],
        "audio_label": audio_labels,
        "is_mismatched": [int(m) for m in is_mismatched],
    })
    columns = list(TRUTH_COLUMNS)
    if is_muted is not None:
        truth["is_muted"] = [int(m) for m in is_muted]
        columns.append("is_muted")
    truth[columns].to_csv(root / "truth.csv", index=False, lineterminator="\n")
# Tags that separate the random streams of the noise and mismatch choices from each other and from the
# per-clip streams of the generator (np.random.default_rng([seed, index])).
NOISE_STREAM = (0, 0x0A11)
MISMATCH_STREAM = (0, 0x0A12)
MUTED_STREAM = (0, 0x0A14)


def noise_rng(seed: int) -> np.random.Generator:
    """The generator used for label-noise choices for ``seed`` (same in the generator and in inject)."""
    return np.random.default_rng([int(seed), *NOISE_STREAM])


def muted_rng(seed: int) -> np.random.Generator:
    """The generator used to choose the clips whose sound track is muted."""
    return np.random.default_rng([int(seed), *MUTED_STREAM])


def mismatch_rng(seed: int) -> np.random.Generator:
    """The generator used for mismatch choices for ``seed`` (same in the generator and in inject)."""
    return np.random.default_rng([int(seed), *MISMATCH_STREAM])


def default_confusion_map(classes: Sequence[str]) -> dict[str, str]:
    """Each class -> the next class in sorted order (cyclic). Needs at least 2 classes."""
    ordered = sorted(set(classes))
    if len(ordered) < 2:
        raise UserError(f"asymmetric noise needs at least 2 classes, got {ordered}")
    return {c: ordered[(i + 1) % len(ordered)] for i, c in enumerate(ordered)}


def _check_rate(name: str, rate: float, *, allow_one: bool) -> float:
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number in [0, 1{']' if allow_one else ')'}, got {rate!r}") from None
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (value >= 0.0 and upper_ok):
        raise UserError(f"{name} must be in [0, 1{']' if allow_one else ')'}, got {rate!r}")
    return value


def choose_label_noise(labels: Sequence[str], classes: Sequence[str], rate: float, noise_type: str,
                       rng: np.random.Generator, confusion_map: Mapping[str, str] | None = None) -> list[str]:
    """Return the given (possibly flipped) labels, one per entry of ``labels``, in the same order.

    Each label is flipped independently with probability ``rate`` in [0, 1):

    - ``noise_type="symmetric"``: to a uniformly drawn class of ``classes`` other than the label;
    - ``noise_type="asymmetric"``: to ``confusion_map[label]`` (default map: the next class in sorted order,
      cyclic, see :func:`default_confusion_map`).

    The draws come from ``rng`` only, so the same generator state gives the same result. Raises ``ValueError``
    (``UserError``) naming the bad value for a rate outside [0, 1), an unknown ``noise_type``, a label not in
    ``classes``, or a confusion map that misses a class / maps a class to itself or to an unknown class.
    """
    rate = _check_rate("label noise rate", rate, allow_one=False)
    if noise_type not in NOISE_TYPES:
        raise UserError(f"unknown noise type {noise_type!r}; valid: {', '.join(NOISE_TYPES)}")
    class_list = list(dict.fromkeys(str(c) for c in classes))
    class_set = set(class_list)
    labels = [str(label) for label in labels]
    unknown = sorted(set(labels) - class_set)
    if unknown:
        raise UserError(f"labels not among the classes: {unknown[:5]}; classes: {class_list}")
    if rate > 0 and len(class_list) < 2:
        raise UserError(f"label noise needs at least 2 classes, got {class_list}")
    cmap: Mapping[str, str] = {}
    if noise_type == "asymmetric":
        cmap = default_confusion_map(class_list) if confusion_map is None else confusion_map
        for label in sorted(set(labels)):
            if label not in cmap:
                raise UserError(f"confusion map has no entry for class {label!r}")
            target = cmap[label]
            if target not in class_set or target == label:
                raise UserError(f"confusion map sends {label!r} to {target!r}: must be another class of "
                                f"{class_list}")
    flip = rng.random(len(labels)) < rate
    # One draw per clip whether flipped or not keeps the stream aligned with the clip order.
    picks = rng.integers(0, max(len(class_list) - 1, 1), size=len(labels))
    given: list[str] = []
    for label, flipped, pick in zip(labels, flip, picks, strict=True):
        if not flipped:
            given.append(label)
        elif noise_type == "asymmetric":
            given.append(str(cmap[label]))
        else:
            others = [c for c in class_list if c != label]
            given.append(others[int(pick)])
    return given


def choose_mismatch(labels: Sequence[str], rate: float, rng: np.random.Generator) -> list[int | None]:
    """Choose which clips get another clip's sound track.

    Returns a list as long as ``labels``: ``None`` for a clip that keeps its sound, else the index of a donor
    clip whose label differs from the clip's. Exactly ``round(rate * N)`` entries are not ``None``; they are drawn
    uniformly without replacement among the clips that have a clip of another class. A donor is drawn by first
    drawing one of the other classes uniformly, then a clip of that class uniformly. ``rate`` must be in
    [0, 1]; ``ValueError`` (``UserError``) otherwise, or when there are not enough clips with another class.
    """
    rate = _check_rate("mismatch rate", rate, allow_one=True)
    labels = [str(label) for label in labels]
    n = len(labels)
    count = int(round(rate * n))
    result: list[int | None] = [None] * n
    if count == 0:
        return result
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    class_list = sorted(by_class)
    if len(class_list) < 2:
        raise UserError(f"mismatch needs clips of at least 2 classes, got {class_list}")
    chosen = np.sort(rng.choice(n, size=count, replace=False))
    for i in chosen:
        others = [c for c in class_list if c != labels[i]]
        donor_class = others[int(rng.integers(len(others)))]
        pool = by_class[donor_class]
        result[int(i)] = int(pool[int(rng.integers(len(pool)))])
    return result


# ----------------------------------------------------------------------------------------------------------------
# inject_dataset


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
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
        return "linked"
    except OSError:
        shutil.copy2(src, dst)
        return "copied"


def _valid_packets(container, stream) -> list:
    return [p for p in container.demux(stream) if p.dts is not None and p.size > 0]


def _video_end(packets: list, stream) -> float:
    """End time in seconds of the video packets (max pts + duration)."""
    ends = [float((p.pts if p.pts is not None else p.dts) + (p.duration or 0)) * float(stream.time_base)
            for p in packets]
    return max(ends) if ends else 0.0


def _packet_time(packet) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    return float(ts * packet.time_base)


def _remux_copy(video_src: Path, audio_src: Path, dst: Path) -> None:
    """Video packets of ``video_src`` + audio packets of ``audio_src`` (trimmed to the video's end) into ``dst``."""
    with av.open(str(video_src)) as vin, av.open(str(audio_src)) as ain:
        if not vin.streams.video:
            raise UserError(f"{video_src}: no video stream")
        if not ain.streams.audio:
            raise _NoAudio(str(audio_src))
        vin_stream = vin.streams.video[0]
        ain_stream = ain.streams.audio[0]
        vpackets = _valid_packets(vin, vin_stream)
        end = _video_end(vpackets, vin_stream)
        apackets = [p for p in _valid_packets(ain, ain_stream)
                    if float((p.pts if p.pts is not None else p.dts) * ain_stream.time_base) < end]
        tmp = dst.with_name(dst.name + ".part" + dst.suffix)
        try:
            with av.open(str(tmp), "w", format=container_format(dst), options={"fflags": "+bitexact"}) as out:
                ov = out.add_stream_from_template(vin_stream)
                oa = out.add_stream_from_template(ain_stream)
                _mux_sorted(out, [(p, ov) for p in vpackets] + [(p, oa) for p in apackets])
            os.replace(tmp, dst)
        finally:
            if tmp.exists():
                tmp.unlink()


def _remux_reencode(video_src: Path, audio_src: Path, dst: Path) -> None:
    """Video packets of ``video_src`` copied; audio of ``audio_src`` decoded and re-encoded as AAC."""
    with av.open(str(video_src)) as vin:
        if not vin.streams.video:
            raise UserError(f"{video_src}: no video stream")
        vin_stream = vin.streams.video[0]
        vpackets = _valid_packets(vin, vin_stream)
        end = _video_end(vpackets, vin_stream)
        with av.open(str(audio_src)) as ain:
            if not ain.streams.audio:
                raise _NoAudio(str(audio_src))
            ain_stream = ain.streams.audio[0]
            rate = int(ain_stream.sample_rate or 16000)
            layout = "mono" if (ain_stream.channels or 1) == 1 else "stereo"
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            chunks = []
            for frame in ain.decode(ain_stream):
                for out_frame in resampler.resample(frame):
                    chunks.append(out_frame.to_ndarray())
            for out_frame in resampler.resample(None):
                chunks.append(out_frame.to_ndarray())
        channels = 1 if layout == "mono" else 2
        samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
        samples = np.ascontiguousarray(samples[:, : int(round(end * rate))], dtype=np.float32)
        tmp = dst.with_name(dst.name + ".part" + dst.suffix)
        try:
            with av.open(str(tmp), "w", format=container_format(dst), options={"fflags": "+bitexact"}) as out:
                ov = out.add_stream_from_template(vin_stream)
                oa = out.add_stream("aac", rate=rate, layout=layout)
                oa.codec_context.thread_count = 1
                apackets = encode_audio(oa, samples, rate)
                _mux_sorted(out, [(p, ov) for p in vpackets] + [(p, oa) for p in apackets])
            os.replace(tmp, dst)
        finally:
            if tmp.exists():
                tmp.unlink()


def _remux_video_only(video_src: Path, dst: Path) -> None:
    with av.open(str(video_src)) as vin:
        vin_stream = vin.streams.video[0]
        vpackets = _valid_packets(vin, vin_stream)
        with av.open(str(dst), "w", format=container_format(dst), options={"fflags": "+bitexact"}) as out:
            ov = out.add_stream_from_template(vin_stream)
            _mux_sorted(out, [(p, ov) for p in vpackets])


class _NoAudio(Exception):
    """The donor clip has no audio stream."""


def _mux_sorted(out, items: list) -> None:
    items = sorted(items, key=lambda item: (_packet_time(item[0]), item[1].index))
    for packet, stream in items:
        packet.stream = stream
        out.mux(packet)


def swap_audio(video_src: str | os.PathLike[str], audio_src: str | os.PathLike[str],
               dst: str | os.PathLike[str]) -> str:
    """Write ``dst`` = the video packets of ``video_src`` + the sound of ``audio_src``, trimmed to the video.

    Tries a pure remux first (no re-encoding). If that fails, the audio is decoded and re-encoded as AAC while the
    video packets are still copied. If ``audio_src`` has no audio stream, ``dst`` gets the video alone. Returns
    how it was done: ``"remuxed"``, ``"reencoded"`` or ``"no_audio"``.
    """
    video_src, audio_src, dst = Path(video_src), Path(audio_src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        _remux_copy(video_src, audio_src, dst)
        return "remuxed"
    except _NoAudio:
        _remux_video_only(video_src, dst)
        return "no_audio"
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - any remux failure: fall back to re-encoding the audio
        try:
            _remux_reencode(video_src, audio_src, dst)
            return "reencoded"
        except _NoAudio:
            _remux_video_only(video_src, dst)
            return "no_audio"


def inject_dataset(data_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, label_noise: float,
                   noise_type: str = "symmetric", mismatch: float = 0.0, seed: int = 0,
                   confusion_map: Mapping[str, str] | None = None) -> dict:
    """Write a copy of the data set in ``data_dir`` to ``out_dir`` with injected label noise and sound mismatch.

    Reads ``data_dir/labels.csv`` (header ``clip,label``; ``clip`` relative to ``data_dir``). Writes
    ``out_dir/labels.csv`` (same clips and order, given labels after noise), ``out_dir/truth.csv`` with columns
    ``clip,true_label,given_label,label_is_noisy,audio_label,is_mismatched`` (0/1 ints), and every clip at the
    same relative path under ``out_dir``: untouched clips are hard-linked (copied when linking fails, e.g. across
    devices); a mismatched clip keeps its own video packets and gets the audio packets of its donor, trimmed to
    the video's end (no re-encoding; if remuxing fails the donor's audio is re-encoded as AAC; a donor without
    audio leaves the clip silent, ``audio_label`` empty). A clean ``data_dir/test`` split (its own labels.csv) is
    hard-linked unchanged.

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
    _check_rate("label noise rate", label_noise, allow_one=False)
    _check_rate("mismatch rate", mismatch, allow_one=True)

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
    for i, clip in enumerate(clips):
        src = data_dir / clip
        dst = out_dir / clip
        donor = donors[i]
        if donor is None:
            counts[_link_or_copy(src, dst)] += 1
            audio_out.append(audio_in[i])
            mismatched_out.append(mismatched_in[i])
        else:
            how = swap_audio(src, data_dir / clips[donor], dst)
            counts[how] += 1
            audio_out.append("" if how == "no_audio" else audio_in[donor])
            mismatched_out.append(1)

    write_tables(out_dir, clips, true_labels, given, audio_out, mismatched_out)
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
