"""Writing media with PyAV, shared by the sample generator (synth.py) and noise injection (inject.py).

* :func:`container_format`: the PyAV/FFmpeg muxer name for a file suffix.
* :func:`encode_audio`: (C, n) float32 samples -> the encoded packets of an audio stream, flushed.
* :func:`encode_video`: (F, H, W, 3) uint8 frames -> the encoded packets of a video stream, flushed.
* :func:`resample_audio`: (C, n) float32 samples at one rate -> the same sound at another rate, n * new / old long.
* :func:`swap_audio`: a clip's picture with another clip's sound track, remuxed without re-encoding when possible.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from auditor.errors import UserError

# Samples per audio frame handed to the encoder: AAC's frame size (other encoders accept it too).
AUDIO_FRAME_SAMPLES = 1024
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


def container_format(path: Path) -> str | None:
    """'mp4', 'matroska', 'webm', ... for ``path``'s suffix; None lets FFmpeg guess."""
    return _FORMATS.get(Path(path).suffix.lower())


def encode_audio(stream: av.AudioStream, samples: np.ndarray, rate: int) -> list[av.Packet]:
    """Encode ``samples`` ((C, n) float32 in [-1, 1], C = 1 or 2) on ``stream`` in frames of AUDIO_FRAME_SAMPLES
    with pts in samples; returns every packet, the encoder's flush included."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    packets: list[av.Packet] = []
    for start in range(0, samples.shape[1], AUDIO_FRAME_SAMPLES):
        part = samples[:, start:start + AUDIO_FRAME_SAMPLES]
        if fmt == "flt":  # packed: (1, n * C) interleaved
            part = np.ascontiguousarray(part.T).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(part, format="flt" if fmt == "flt" else "fltp", layout=layout)
        frame.sample_rate = rate
        packets.extend(stream.encode(_at(frame, start, rate)))
    packets.extend(stream.encode(None))
    return packets


def encode_video(stream: av.VideoStream, frames: Iterable[np.ndarray], fps: int) -> list[av.Packet]:
    """Encode ``frames`` ((F, H, W, 3) uint8 RGB, or an iterable of (H, W, 3) frames) on ``stream`` with pts in
    frames at ``fps``; returns every packet, the encoder's flush included. Frames whose size differs from the
    stream's width x height are scaled to it by PyAV (swscale, bilinear) as they are converted to its pix_fmt."""
    packets: list[av.Packet] = []
    for i, img in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        packets.extend(stream.encode(_at(frame, i, fps)))
    packets.extend(stream.encode(None))
    return packets


def resample_audio(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """``samples`` ((C, n) float32, C = 1 or 2, at ``rate``) resampled to ``new_rate`` with PyAV's
    AudioResampler (swresample): (C, round(n * new_rate / rate)) float32, time-aligned with the input (sample 0
    at time 0; the filter's tail flushed, the length cut or zero-padded to the exact count). Deterministic;
    digital silence stays exactly zero. Same rate: the samples unchanged."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if new_rate == rate:
        return samples
    channels, n = samples.shape
    count = int(round(n * new_rate / rate))
    if n == 0:
        return np.zeros((channels, 0), np.float32)
    layout = "mono" if channels == 1 else "stereo"
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=new_rate)
    frame = _at(av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout), 0, rate)
    frame.sample_rate = rate
    chunks = [f.to_ndarray() for f in resampler.resample(frame)] + [f.to_ndarray() for f in resampler.resample(None)]
    out = np.zeros((channels, count), np.float32)
    if chunks:
        joined = np.concatenate(chunks, axis=1)[:, :count]
        out[:, : joined.shape[1]] = joined
    return out


def _at(frame, pts: int, rate: int):
    """``frame`` stamped at ``pts`` in units of 1 / ``rate`` seconds."""
    frame.pts = pts
    frame.time_base = Fraction(1, rate)
    return frame


@contextlib.contextmanager
def _output(dst: Path) -> Iterator[av.container.OutputContainer]:
    """A bit-exact output container for ``dst``, written under a temporary name and renamed to ``dst`` when the
    block ends without an error (a failed write leaves no partial file)."""
    tmp = dst.with_name(dst.name + ".part" + dst.suffix)
    try:
        with av.open(str(tmp), "w", format=container_format(dst), options={"fflags": "+bitexact"}) as out:
            yield out
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def clear_destination(dst: Path) -> None:
    """Make ``dst``'s folder and remove what is at ``dst`` (a file or a link), so a new file can take its place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()


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
        with _output(dst) as out:
            ov = out.add_stream_from_template(vin_stream)
            oa = out.add_stream_from_template(ain_stream)
            _mux_sorted(out, [(p, ov) for p in vpackets] + [(p, oa) for p in apackets])


# Containers that cannot hold AAC, and the sound codec (and sample rate) a re-encoded sound gets in them instead.
REENCODE_INSTEAD_OF_AAC = {".webm": ("libopus", 48_000)}  # WebM: Opus or Vorbis only; Opus runs at 48 kHz


def _remux_reencode(video_src: Path, audio_src: Path, dst: Path) -> None:
    """Video packets of ``video_src`` copied; audio of ``audio_src`` decoded and re-encoded as AAC at its own
    sample rate (in a container that cannot hold AAC: REENCODE_INSTEAD_OF_AAC)."""
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
            codec, rate = REENCODE_INSTEAD_OF_AAC.get(dst.suffix.lower(), ("aac", int(ain_stream.sample_rate or 16000)))
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
        with _output(dst) as out:
            ov = out.add_stream_from_template(vin_stream)
            oa = out.add_stream(codec, rate=rate, layout=layout)
            oa.codec_context.thread_count = 1
            apackets = encode_audio(oa, samples, rate)
            _mux_sorted(out, [(p, ov) for p in vpackets] + [(p, oa) for p in apackets])


def _remux_video_only(video_src: Path, dst: Path) -> None:
    with av.open(str(video_src)) as vin:
        vin_stream = vin.streams.video[0]
        vpackets = _valid_packets(vin, vin_stream)
        with _output(dst) as out:
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
    clear_destination(dst)
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


def transcode(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, video_codec: str = "libx264",
              audio_codec: str = "aac", sample_rate: int | None = None, stereo: bool | None = None,
              pix_fmt: str = "yuv420p", audio_bit_rate: int = 128_000) -> Path:
    """Decode every frame and sample of ``src`` and encode them into ``dst`` (container from its suffix) with
    ``video_codec`` / ``audio_codec`` (lossy audio at ``audio_bit_rate`` bits/s, what uploads commonly carry),
    the sound resampled to ``sample_rate`` and ``stereo`` (None: as in ``src``).
    A clip without sound gets none. Written under a temporary name; returns ``dst``."""
    src, dst = Path(src), Path(dst)
    clear_destination(dst)
    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        fps = vin.average_rate or vin.guessed_rate or 25
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(vin)]
        ain = inp.streams.audio[0] if inp.streams.audio else None
    samples, rate = None, 0
    if ain is not None:
        with av.open(str(src)) as inp:
            a = inp.streams.audio[0]
            rate = sample_rate or a.sample_rate
            layout = ("stereo" if stereo else "mono") if stereo is not None else ("mono" if a.channels == 1 else "stereo")
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            chunks = [f.to_ndarray() for frame in inp.decode(a) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray() for f in resampler.resample(None)]
            samples = np.concatenate(chunks, axis=1) if chunks else None
    with _output(dst) as out:
        vs = out.add_stream(video_codec, rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height = frames[0].shape[1] // 2 * 2, frames[0].shape[0] // 2 * 2
        vs.pix_fmt = pix_fmt
        vs.codec_context.thread_count = 1
        stream_packets = [(p, vs) for p in encode_video(vs, np.stack([f[: vs.height, : vs.width] for f in frames]),
                                                          int(round(float(fps))))]
        if samples is not None:
            aus = out.add_stream(audio_codec, rate=rate, layout="mono" if samples.shape[0] == 1 else "stereo")
            aus.bit_rate = audio_bit_rate
            aus.codec_context.thread_count = 1
            stream_packets += [(p, aus) for p in encode_audio(aus, samples, rate)]
        _mux_sorted(out, stream_packets)
    return dst
