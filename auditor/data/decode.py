"""Decode one clip with PyAV into evenly sampled RGB frames and mono 16 kHz audio.

Contract of :func:`decode_clip`: returns a :class:`DecodedClip` with ``frames`` of shape (T, S, S, 3) uint8
(T frames at the centres of T equal segments of the clip, shorter side resized to S then centre-cropped,
rotation metadata applied) and ``audio`` float32 (n,) mono at ``sample_rate`` in [-1, 1], at most
``max_audio_seconds`` long (the middle of a longer clip). A clip with no audio stream gets silence and
``has_audio = False``. With ``max_windows`` > 1 a long clip is also cut into aligned windows (:func:`window_spans`):
``windows`` then holds, per window, T frames at the centres of T equal segments of the window and the window's
sound, so that picture and sound of a window come from the same time span (``frames``/``audio`` are the first
window's); a clip of one window has ``windows`` = [the whole clip]. A clip longer than ``SEEK_ABOVE_SECONDS`` is read by seeking, so a 10-minute file costs
T seeks and a few seconds of audio, not a full decode; a file written live (no duration in its header) is
measured from its packets' time stamps first, without decoding. Damage after the first good frame is tolerated:
the T frames are taken from what decoded and ``warning`` says where the video stopped. Anything else raises
:class:`DecodeError` whose ``kind`` is one of ``PROBLEM_KINDS`` and whose message is one line without the file's
path (the caller names the file) or FFmpeg's error number.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 16_000
# Above this duration frames are fetched by seeking instead of decoding the whole stream.
SEEK_ABOVE_SECONDS = 30.0
PROBLEM_KINDS = ("empty_file", "not_media", "no_video_stream", "no_frames", "corrupt")
# A video that stops this much (fraction of the header's duration, and at least 2 frames) before its header says
# was cut short or damaged: its frames are re-sampled from the part that decodes.
ENDS_EARLY_FRACTION = 0.1
# Without a usable duration every frame is kept downscaled until the end; past this many the kept ones are thinned
# to every other frame (memory stays bounded for any length).
MAX_HELD_FRAMES = 256
# A clip becomes several windows only from (1 + WINDOW_TOLERANCE) window lengths on: a 10.02-s clip stays one.
WINDOW_TOLERANCE = 0.25


class DecodeError(Exception):
    """A clip that cannot be used; ``kind`` is one of PROBLEM_KINDS, the message says why in one line."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class DecodedWindow:
    """Picture and sound of one time span of a clip."""

    start: float  # seconds from the clip's start
    end: float
    frames: np.ndarray  # (T, S, S, 3) uint8, at the centres of T equal segments of [start, end]
    audio: np.ndarray  # (n,) float32, mono, SAMPLE_RATE: the sound of [start, end] (at most max_audio_seconds)


@dataclass
class DecodedClip:
    frames: np.ndarray  # (T, S, S, 3) uint8
    audio: np.ndarray  # (n,) float32, mono, SAMPLE_RATE
    duration: float  # seconds of video
    has_audio: bool
    warning: str = ""  # non-fatal damage, e.g. "decoding stopped at 3.2 s: ..."
    windows: list[DecodedWindow] = field(default_factory=list)  # aligned windows (module docstring)


def window_spans(duration: float, window_seconds: float, max_windows: int) -> list[tuple[float, float]]:
    """The aligned windows of a clip of ``duration`` seconds: [(0, duration)] when ``max_windows`` is 1 or the clip
    is at most (1 + WINDOW_TOLERANCE) * ``window_seconds`` long; else W = min(max_windows,
    ceil(duration / window_seconds - WINDOW_TOLERANCE)) equal parts of the clip, window w being the centred
    min(part, window_seconds) seconds of part w (so the windows cover the whole clip when W * window_seconds >=
    duration, and W evenly spread excerpts of a longer one)."""
    count = math.ceil(duration / window_seconds - WINDOW_TOLERANCE) if duration > 0 else 1
    count = max(1, min(max_windows, count))
    if count == 1:
        return [(0.0, float(duration))]
    part = duration / count
    length = min(part, window_seconds)
    return [(w * part + (part - length) / 2, w * part + (part + length) / 2) for w in range(count)]


def decode_clip(path: str | os.PathLike[str], *, num_frames: int = 8, size: int = 64,
                max_audio_seconds: float = 10.0, sample_rate: int = SAMPLE_RATE, max_windows: int = 1) -> DecodedClip:
    """Decode ``path`` (see the module docstring for the contract)."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise DecodeError("empty_file", "zero-byte file")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise _open_error(path, err) from None
    with container:
        if not container.streams.video:
            raise DecodeError("no_video_stream", "no video stream (audio-only or not a video)")
        vstream = container.streams.video[0]
        duration = _duration_seconds(container, vstream)
        if duration is None:  # written live (browser recordings, streams): the header holds no duration
            duration = _duration_from_packets(path)
        warnings: list[str] = []
        spans = window_spans(duration, max_audio_seconds, max_windows) if duration else [(0.0, 0.0)]
        if len(spans) > 1:
            windows = _decode_windows(path, container, vstream, duration, spans, num_frames, size, sample_rate,
                                      warnings)
            if windows is not None:
                return DecodedClip(frames=windows[0].frames, audio=windows[0].audio, duration=float(duration),
                                   has_audio=bool(container.streams.audio), warning="; ".join(warnings),
                                   windows=windows)
            warnings.clear()  # damaged: decoded as one window below, which reports the damage
        if duration is not None and duration > SEEK_ABOVE_SECONDS:
            frames = _frames_by_seeking(container, vstream, duration, num_frames, size, warnings)
        else:
            frames, decoded = _frames_by_decoding(container, vstream, duration, num_frames, size, warnings)
            fps = float(vstream.average_rate or 25)
            if duration and duration - decoded > max(2.0 / fps, ENDS_EARLY_FRACTION * duration):
                # Cut short or damaged: sample the T frames from the part that decodes, not from beyond its end.
                if not warnings:
                    warnings.append(f"truncated or damaged: the video stops at {decoded:.2f} s of the "
                                    f"{duration:.2f} s its header gives; frames taken from what decoded")
                with av.open(str(path), metadata_errors="ignore") as again:
                    frames, _ = _frames_by_decoding(again, again.streams.video[0], decoded, num_frames, size, [])
            if not duration or warnings:
                duration = decoded
        has_audio = bool(container.streams.audio)
    audio = np.zeros(0, np.float32)
    if has_audio:
        # A second demuxer for the sound: the video pass above has consumed the first one's packets.
        with av.open(str(path), metadata_errors="ignore") as audio_container:
            audio = _decode_audio(audio_container, duration, max_audio_seconds, sample_rate, warnings)
    if not has_audio:
        audio = np.zeros(int(min(duration, max_audio_seconds) * sample_rate), np.float32)
    return DecodedClip(frames=frames, audio=audio, duration=float(duration), has_audio=has_audio,
                       warning="; ".join(warnings), windows=[DecodedWindow(0.0, float(duration), frames, audio)])


def _decode_windows(path: Path, container, vstream, duration: float, spans: list[tuple[float, float]],
                    num_frames: int, size: int, sample_rate: int, warnings: list[str]) -> list[DecodedWindow] | None:
    """The frames and sound of each window of ``spans``; None when the video turns out damaged or shorter than its
    header says (the caller then decodes the clip as one window)."""
    targets = np.concatenate([start + _segment_centres(end - start, num_frames) for start, end in spans])
    if duration > SEEK_ABOVE_SECONDS:
        frames = _frames_by_seeking(container, vstream, duration, num_frames, size, warnings, targets)
    else:
        frames, decoded = _frames_by_decoding(container, vstream, duration, num_frames, size, warnings, targets)
        if duration - decoded > max(2.0 / float(vstream.average_rate or 25), ENDS_EARLY_FRACTION * duration):
            return None
    if warnings:
        return None
    frames = frames.reshape(len(spans), num_frames, *frames.shape[1:])
    audios = []
    for start, end in spans:
        if container.streams.audio:
            with av.open(str(path), metadata_errors="ignore") as audio_container:
                audios.append(_decode_audio_span(audio_container, start, end - start, sample_rate, warnings))
        else:
            audios.append(np.zeros(int((end - start) * sample_rate), np.float32))
    return [DecodedWindow(float(start), float(end), f, a) for (start, end), f, a in zip(spans, frames, audios,
                                                                                     strict=True)]


def _short(err: BaseException) -> str:
    """One line for a decoder error: FFmpeg's reason, without its error number or the file's path."""
    if isinstance(err, av.FFmpegError) and err.strerror:
        return str(err.strerror).splitlines()[0][:160]
    return str(err).splitlines()[0][:160] if str(err) else type(err).__name__


def _open_error(path: Path, err: BaseException) -> DecodeError:
    """Why ``path`` does not open: a file that starts like a video container is damaged ("corrupt", e.g. an mp4
    cut short before its index), anything else is not media at all ("not_media")."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        detail = _short(err) if _has_mp4_box(path, b"moov") else \
            "its index (moov box) is missing, as when a download or copy stopped early"
        return DecodeError("corrupt", f"truncated or damaged mp4/mov file: {detail}")
    if head[:4] == b"\x1aE\xdf\xa3" or (head[:4] == b"RIFF" and head[8:12] == b"AVI "):
        return DecodeError("corrupt", f"truncated or damaged {'AVI' if head[:4] == b'RIFF' else 'Matroska/WebM'} "
                                      f"file ({_short(err)})")
    return DecodeError("not_media", f"not a readable media file ({_short(err)})")


def _has_mp4_box(path: Path, kind: bytes) -> bool:
    """Whether the top level of an ISO media file (mp4/mov) holds a box of type ``kind`` (reads box headers only)."""
    size_total, offset = path.stat().st_size, 0
    with open(path, "rb") as fh:
        while offset + 8 <= size_total:
            fh.seek(offset)
            header = fh.read(16)
            size, box = int.from_bytes(header[:4], "big"), header[4:8]
            if box == kind:
                return True
            if size == 1 and len(header) == 16:  # 64-bit size follows the type
                size = int.from_bytes(header[8:16], "big")
            if size < 8:  # 0 = "to the end of the file", or a damaged header
                return False
            offset += size
    return False


def _duration_seconds(container: av.container.InputContainer, vstream: av.video.stream.VideoStream) -> float | None:
    if vstream.duration is not None and vstream.time_base is not None:
        return float(vstream.duration * vstream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _duration_from_packets(path: Path) -> float | None:
    """Seconds of video from the time stamps of its packets, read without decoding (fast even for long files)."""
    first = last = None
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.pts is None or packet.time_base is None:
                    continue
                start = float(packet.pts * packet.time_base)
                end = start + float((packet.duration or 0) * packet.time_base)
                first = start if first is None else min(first, start)
                last = end if last is None else max(last, end)
    except (av.FFmpegError, ValueError):
        pass  # damaged: whatever was read before the damage still counts
    return last - first if first is not None and last > first else None


def _to_rgb(frame: av.VideoFrame, size: int) -> np.ndarray:
    """Shorter side -> size (keeping aspect), centre crop to size x size, rotation metadata applied."""
    w, h = frame.width, frame.height
    if w <= 0 or h <= 0:
        raise DecodeError("corrupt", "frame with zero width or height")
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = frame.reformat(width=nw, height=nh, format="rgb24").to_ndarray()
    top, left = (nh - size) // 2, (nw - size) // 2
    img = img[top:top + size, left:left + size]
    rotation = int(getattr(frame, "rotation", 0) or 0) % 360
    if rotation:
        # FFmpeg's display-matrix angle is counter-clockwise; np.rot90 rotates counter-clockwise too.
        img = np.rot90(img, k=rotation // 90)
    return np.ascontiguousarray(img)


def _segment_centres(duration: float, num_frames: int) -> np.ndarray:
    return (np.arange(num_frames) + 0.5) * (duration / num_frames)


def _frames_by_decoding(container, vstream, duration, num_frames, size, warnings, targets=None):
    """Decode the (short) stream once, keeping only the frame nearest each segment centre (or each of ``targets``,
    seconds from the start). Returns the frames and the seconds of video that decoded.

    With a known duration only T frame references are held at a time (bounded memory for any resolution);
    without one every frame is downscaled to S x S as it comes (thinned to every other one whenever more than
    MAX_HELD_FRAMES are held) and the picks are made at the end.
    """
    vstream.thread_type = "AUTO"
    fps = float(vstream.average_rate or 25)
    wanted = _segment_centres(duration, num_frames) if duration and duration > 0 else None
    if targets is not None:
        wanted = np.asarray(targets, dtype=float)
    best: list[tuple[float, av.VideoFrame] | None] = [None] * (num_frames if wanted is None else len(wanted))
    small: list[np.ndarray] = []
    small_times: list[float] = []
    stride = 1  # without a duration: keep every stride-th frame
    times: list[float] = []
    t0: float | None = None
    try:
        for frame in container.decode(vstream):
            t = frame.time if frame.time is not None else len(times) / fps
            t0 = t if t0 is None else t0
            times.append(t)
            if wanted is None:
                if (len(times) - 1) % stride == 0:
                    small.append(_to_rgb(frame, size))
                    small_times.append(t)
                if len(small) > MAX_HELD_FRAMES:
                    small, small_times, stride = small[::2], small_times[::2], stride * 2
                continue
            for k, target in enumerate(wanted):
                gap = abs(t - t0 - target)
                if best[k] is None or gap < best[k][0]:
                    best[k] = (gap, frame)
    except (av.FFmpegError, ValueError) as err:
        if not times:
            raise DecodeError("corrupt", f"no decodable frame ({_short(err)})") from None
        warnings.append(f"decoding stopped at {times[-1]:.2f} s ({_short(err)}); kept what decoded")
    if not times and duration:
        raise DecodeError("corrupt", f"truncated or damaged: its header gives {duration:.2f} s of video but no "
                                     "frame decodes")
    if not times:
        raise DecodeError("no_frames", "the video stream holds no frames (zero length)")
    decoded = float(max(times) - min(times) + 1.0 / fps)
    if wanted is None:
        rel = np.asarray(small_times) - min(times)
        picks = np.abs(rel[None, :] - _segment_centres(decoded, num_frames)[:, None]).argmin(axis=1)
        return np.stack([small[i] for i in picks]), decoded
    frames = np.stack([_to_rgb(b[1], size) for b in best if b is not None])
    return frames, decoded


def _frames_by_seeking(container, vstream, duration, num_frames, size, warnings, targets=None):
    """Seek to each segment centre of a long stream (or each of ``targets``, seconds from the start) and take the
    first frame at or after it."""
    tb = vstream.time_base
    start = float(vstream.start_time * tb) if vstream.start_time is not None else 0.0
    out: list[np.ndarray] = []
    targets = _segment_centres(duration, num_frames) if targets is None else np.asarray(targets, dtype=float)
    for target in targets + start:
        frame = None
        try:
            container.seek(int(target / tb), stream=vstream, backward=True, any_frame=False)
            for frame in container.decode(vstream):
                if frame.time is None or frame.time >= target - 1e-3:
                    break
        except (av.FFmpegError, ValueError) as err:
            warnings.append(f"seek to {target:.1f} s failed ({_short(err)})")
        if frame is not None:
            out.append(_to_rgb(frame, size))
        else:
            warnings.append(f"no frame at {target:.1f} s (truncated or damaged?)")
            if out:
                out.append(out[-1])
    if not out:
        raise DecodeError("corrupt", "no decodable frame at any sampled time")
    while len(out) < len(targets):
        out.append(out[-1])
    return np.stack(out)


def _decode_audio(container, duration, max_seconds, sample_rate, warnings) -> np.ndarray:
    """Mono float32 at sample_rate: the whole track, or its middle max_seconds when longer."""
    start = (duration - max_seconds) / 2.0 if duration is not None and duration > max_seconds else 0.0
    return _decode_audio_span(container, start, min(duration or math.inf, max_seconds), sample_rate, warnings)


def _decode_audio_span(container, start, seconds, sample_rate, warnings) -> np.ndarray:
    """Mono float32 at sample_rate: ``seconds`` of the track from ``start`` (seconds from the clip's start), padded
    with silence where the track is shorter."""
    astream = container.streams.audio[0]
    if start > 0:
        try:
            container.seek(int(start * av.time_base), backward=True, any_frame=False)
        except (av.FFmpegError, ValueError) as err:
            warnings.append(f"audio seek failed ({_short(err)})")
            start = 0.0
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    first_time: float | None = None
    limit = int(seconds * sample_rate)
    got = 0
    try:
        for frame in container.decode(astream):
            if first_time is None and frame.time is not None:
                first_time = frame.time
            for out in resampler.resample(frame):
                arr = out.to_ndarray().reshape(-1)
                chunks.append(arr)
                got += arr.size
            if got >= limit + sample_rate:  # a second of slack for the trim below
                break
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    except (av.FFmpegError, ValueError) as err:
        warnings.append(f"audio decoding stopped ({_short(err)}); kept what decoded")
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if start > 0 and first_time is not None and first_time < start:
        audio = audio[int((start - first_time) * sample_rate):]
    want = int(seconds * sample_rate)
    audio = audio[:want] if want > 0 else audio
    if audio.size < want:  # AAC priming/padding and short tracks: pad with silence to the video's length
        audio = np.pad(audio, (0, want - audio.size))
    return np.clip(audio, -1.0, 1.0)
