"""Tiny real media files written with PyAV for tests (no external tools needed)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_clip(path: str | Path, *, seconds: float = 1.0, size: tuple[int, int] = (64, 48), fps: int = 25,
               tone_hz: float | None = 440.0, sample_rate: int = 16_000, container: str | None = None,
               vcodec: str = "libx264", acodec: str = "aac", rotate: int = 0, amplitude: float = 0.3,
               tone_between: tuple[float, float] | None = None, gray_clock: bool = False) -> Path:
    """A clip with a moving gradient and (unless tone_hz is None) a sine tone of peak ``amplitude`` (0 = a
    present but muted sound track); returns the path. ``tone_between`` (start, end) seconds: the tone sounds only
    then, over quiet noise (about -50 dBFS) elsewhere; ``gray_clock``: plain gray frames whose level is
    255 * t / seconds (the frame's time can be read back from its pixels)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    with av.open(str(path), "w", format=container) as out:
        vs = out.add_stream(vcodec, rate=fps)
        vs.width, vs.height = w, h
        vs.pix_fmt = "yuv420p"
        if rotate:
            vs.metadata["rotate"] = str(rotate)
        a_s = None
        if tone_hz is not None:
            a_s = out.add_stream(acodec, rate=sample_rate)
            a_s.layout = "mono"
        n = int(seconds * fps)
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(n):
            img = np.stack([(xx * 4 + i * 8) % 256, (yy * 4) % 256, np.full_like(xx, (i * 10) % 256)], -1)
            if gray_clock:
                img = np.full((h, w, 3), round(255 * i / n))
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for pkt in vs.encode(frame):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        if a_s is not None:
            t = np.arange(int(seconds * sample_rate)) / sample_rate
            wave = (amplitude * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
            if tone_between is not None:
                quiet = np.random.default_rng(0).normal(0, 0.003, t.size)
                wave = np.where((t >= tone_between[0]) & (t < tone_between[1]), wave, quiet).astype(np.float32)
            fmt = a_s.codec_context.format.name if a_s.codec_context.format else "fltp"
            chunk = 1024
            for start in range(0, wave.size, chunk):
                part = wave[start:start + chunk]
                af = av.AudioFrame.from_ndarray(part[None, :], format="flt" if fmt == "flt" else "fltp", layout="mono")
                af.sample_rate = sample_rate
                af.pts = start
                af.time_base = Fraction(1, sample_rate)
                for pkt in a_s.encode(af):
                    out.mux(pkt)
            for pkt in a_s.encode():
                out.mux(pkt)
    return path
