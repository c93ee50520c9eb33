"""Writing media with PyAV, shared by the sample generator (synth.py) and noise injection (inject.py).

* :func:`container_format`: the PyAV/FFmpeg muxer name for a file suffix.
* :func:`encode_audio`: (C, n) float32 samples -> the encoded packets of an audio stream, flushed.
* :func:`encode_video`: (F, H, W, 3) uint8 frames -> the encoded packets of a video stream, flushed.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

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
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    return packets


def encode_video(stream: av.VideoStream, frames: np.ndarray, fps: int) -> list[av.Packet]:
    """Encode ``frames`` ((F, H, W, 3) uint8 RGB) on ``stream`` with pts in frames at ``fps``; returns every
    packet, the encoder's flush included."""
    packets: list[av.Packet] = []
    for i, img in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode(None))
    return packets
