"""Procedural audio-visual "action" data set: 8 classes, each a characteristic motion with a synchronised sound.
(A data set is rendered by :func:`auditor.data.generate.generate_dataset`, which plans its clips with
:func:`plan_split` here, or with auditor.data.digits for real content.)

Every clip is drawn from its own random stream ``np.random.default_rng([seed, index])`` and rendered with numpy
(signed-distance shapes with soft edges, no per-pixel Python loops), then encoded with PyAV as H.264 (libx264,
yuv420p, one thread, 25 fps, 128x128) + AAC (16 kHz mono) in an ``.mp4`` without time stamps or version strings,
so the same arguments give byte-identical files. With ``generate_dataset(media="mixed")`` each clip is instead
written in a container, codecs, frame size, frame rate, sample rate and channel layout of its own
(:class:`MediaFormat`, :func:`media_format`, :func:`encode_clip`), as scraped collections are; what it shows and
sounds like does not change. Such a clip rescaled by swscale is byte-identical in almost every run, but a frame can
come out one grey level apart when its buffer's memory alignment picks another vector code path (seen once: one
frame of one .mov, and the H.264 frames predicted from it).

Per clip, everything that is not the class varies: object size, position, colours (random hues; the object's
brightness only contrasts with the background), background (smooth noise / gradient / stripes), tempo, swing
amplitude, camera jitter, clip length (2-5 s), pitch (about +-30 %), loudness, and additive coloured background
noise at 5-30 dB SNR. Sound events are tied to the motion (a thud at each floor contact, a knock at each
hammer hit, ...), unless the clip is *mismatched*: then its sound is rendered for another class, from that
class's own, independent motion.

Long clips (``generate_dataset(clip_seconds=(A, B))``, :func:`render_event_clip`): A-B seconds of the same motion,
the class sound audible only in one event at a random place (2-3 s, or ``event_seconds``), over quiet background
noise (-48 to -42 dBFS RMS); frames are encoded as they are drawn, so memory does not grow with the clip's length.

With ``generate_dataset(content="digits")`` the clips show and sound like real content instead
(:mod:`auditor.data.digits`: handwritten digits and recordings of spoken digits), through the same noise, mismatch,
muting, media and test-split machinery (:class:`Split`, :class:`ContentPlan`).

Classes (confusable pairs: hammering/clapping = periodic impacts, bouncing/dripping = falling objects,
bell/spinning = tonal sound and rotation about a pivot, sawing/typing = dense noisy strokes and repetitive
back-and-forth hand work): see :data:`CLASSES` and :data:`CONFUSABLE`.
"""

from __future__ import annotations

import colorsys
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auditor.data.mux import _mux_sorted, _output, encode_audio, encode_video, resample_audio
from auditor.errors import UserError

CLASSES: list[str] = ["bouncing", "hammering", "clapping", "bell", "spinning", "sawing", "dripping", "typing"]
CONFUSABLE: dict[str, str] = {
    "hammering": "clapping", "clapping": "hammering",
    "bouncing": "dripping", "dripping": "bouncing",
    "bell": "spinning", "spinning": "bell",
    "sawing": "typing", "typing": "sawing",
}

# More classes than the 8 base classes: combinations of a picture (motion) with another class's sound family.
MAX_CLASSES = len(CLASSES) ** 2
_COMBINATION_STREAM = 0x0C1A

FPS = 25
SIZE = 128
SAMPLE_RATE = 16_000
MIN_SECONDS, MAX_SECONDS = 2.0, 5.0
# Long clips (generate_dataset(clip_seconds=...)): the class sound is one event of EVENT_SECONDS (uniform; the
# generate_dataset option event_seconds chooses another range, e.g. (1, 1) for the 1-s event of the goals) at a
# uniform place in the clip, faded in and out over EVENT_FADE_SECONDS, its RMS EVENT_ABOVE_DB (uniform) above the
# background's (less where its peak would pass EVENT_PEAK_DBFS); the whole track carries coloured background
# noise of BACKGROUND_DBFS (uniform, RMS dB re full scale; above features.SILENT_BELOW_DBFS = -60).
EVENT_SECONDS = (2.0, 3.0)
EVENT_FADE_SECONDS = 0.05
EVENT_ABOVE_DB = (15.0, 30.0)
EVENT_PEAK_DBFS = -1.0
BACKGROUND_DBFS = (-48.0, -42.0)
MAX_CLIP_SECONDS = 600.0
_SOUND_TAIL_SECONDS = 2.5  # the longest single sound of an event (a bell's ring): events this early still sound
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
_JIT = 4  # camera-jitter margin (pixels): scenes are drawn on a (SIZE + 2*_JIT)^2 canvas and cropped
_CANVAS = SIZE + 2 * _JIT
_YY, _XX = np.mgrid[0:_CANVAS, 0:_CANVAS].astype(np.float32) + 0.5

# generate_dataset(media=...): "uniform" writes every clip as below (encode_mp4); "mixed" draws each clip's
# MediaFormat (media_format) from its own stream np.random.default_rng([seed, index, _MEDIA_STREAM]).
MEDIA = ("uniform", "mixed")
_MEDIA_STREAM = 0x3ED1A
MIXED_CONTAINERS = ("mp4", "mkv", "webm", "mov")
MIXED_SIZES = ((160, 120), (128, 128), (176, 144), (96, 128), (192, 108))  # (width, height)
MIXED_FPS = (25, 30, 24, 15)
MIXED_SAMPLE_RATES = (16_000, 44_100, 48_000)
MIXED_BALANCE_DB = (0.5, 3.0)  # a stereo clip with unequal channels: one channel this much quieter (uniform)
# Codec (the name FFmpeg's decoder reports) -> (encoder, its options); libx264/libvpx on one thread, libvpx with
# the "good" deadline at a fixed cpu-used (the "realtime" deadline picks its speed from the clock: not
# reproducible). The native Vorbis encoder is "experimental" in FFmpeg and encodes stereo only.
_ENCODERS: dict[str, tuple[str, dict[str, str]]] = {
    "h264": ("libx264", {"threads": "1", "preset": "veryfast", "crf": "23"}),
    "vp8": ("libvpx", {"threads": "1", "deadline": "good", "cpu-used": "4", "crf": "10", "b": "1M"}),
    "vp9": ("libvpx-vp9", {"threads": "1", "deadline": "good", "cpu-used": "5", "crf": "32", "b": "0",
                           "row-mt": "0"}),
    "aac": ("aac", {"aac_coder": "fast"}),
    "opus": ("libopus", {}),
    "vorbis": ("vorbis", {"strict": "experimental"}),
}
AUDIO_BIT_RATE = 48_000  # per channel (the Vorbis encoder picks its own)


# ================================================================================================================
# drawing primitives: every shape gives a signed distance (pixels, negative inside) on the grid slice of its
# bounding box; _paint turns it into a soft (anti-aliased) alpha and blends a colour in.


class _Canvas:
    def __init__(self, background: np.ndarray) -> None:
        self.img = background.copy()

    def paint(self, box: tuple[float, float, float, float], dist: Callable[[np.ndarray, np.ndarray], np.ndarray],
              color: np.ndarray, alpha: float = 1.0, outline: np.ndarray | None = None, width: float = 1.2) -> None:
        """Blend ``color`` where ``dist(X, Y) < 0`` inside ``box`` = (x0, y0, x1, y1); optional outline."""
        x0, y0, x1, y1 = box
        ix0, iy0 = max(int(math.floor(x0)) - 2, 0), max(int(math.floor(y0)) - 2, 0)
        ix1, iy1 = min(int(math.ceil(x1)) + 3, _CANVAS), min(int(math.ceil(y1)) + 3, _CANVAS)
        if ix0 >= ix1 or iy0 >= iy1:
            return
        xs, ys = _XX[iy0:iy1, ix0:ix1], _YY[iy0:iy1, ix0:ix1]
        d = dist(xs, ys)
        region = self.img[iy0:iy1, ix0:ix1]
        if outline is not None:
            region += _alpha(d - width, alpha)[..., None] * (outline - region)
        region += _alpha(d, alpha)[..., None] * (color - region)


def _alpha(d: np.ndarray, alpha: float) -> np.ndarray:
    """Soft coverage of a signed distance: 1 inside, 0 outside, linear over one pixel at the edge."""
    a = np.subtract(0.5, d, dtype=np.float32)
    np.minimum(a, 1.0, out=a)
    np.maximum(a, 0.0, out=a)
    if alpha != 1.0:
        a *= alpha
    return a


def _union(*shapes):
    """The union of (box, dist) shapes, as one shape (one outline around the whole silhouette)."""
    boxes = [b for b, _ in shapes]
    box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    dists = [f for _, f in shapes]

    def dist(x, y):
        d = dists[0](x, y)
        for f in dists[1:]:
            np.minimum(d, f(x, y), out=d)
        return d

    return box, dist


def _circle(cx: float, cy: float, r: float):
    box = (cx - r, cy - r, cx + r, cy + r)
    return box, lambda x, y: np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r


def _ellipse(cx: float, cy: float, a: float, b: float):
    box = (cx - a, cy - b, cx + a, cy + b)
    m = min(a, b)
    return box, lambda x, y: (np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2) - 1.0) * m


def _ring(cx: float, cy: float, r: float, w: float):
    box = (cx - r - w, cy - r - w, cx + r + w, cy + r + w)
    return box, lambda x, y: np.abs(np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r) - w / 2


def _capsule(x0: float, y0: float, x1: float, y1: float, r: float):
    box = (min(x0, x1) - r, min(y0, y1) - r, max(x0, x1) + r, max(y0, y1) + r)
    dx, dy = x1 - x0, y1 - y0
    ll = dx * dx + dy * dy + 1e-9

    def dist(x, y):
        px, py = x - x0, y - y0
        h = np.clip((px * dx + py * dy) / ll, 0.0, 1.0)
        return np.sqrt((px - h * dx) ** 2 + (py - h * dy) ** 2) - r

    return box, dist


def _box(cx: float, cy: float, hw: float, hh: float, angle: float = 0.0, rounding: float = 0.0):
    """Rectangle centred at (cx, cy), half sizes (hw, hh), rotated by ``angle`` (radians), rounded corners."""
    c, s = math.cos(angle), math.sin(angle)
    ext = abs(hw * c) + abs(hh * s), abs(hw * s) + abs(hh * c)
    box = (cx - ext[0], cy - ext[1], cx + ext[0], cy + ext[1])

    def dist(x, y):
        u = (x - cx) * c + (y - cy) * s
        v = -(x - cx) * s + (y - cy) * c
        qx, qy = np.abs(u) - (hw - rounding), np.abs(v) - (hh - rounding)
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
        return outside + np.minimum(np.maximum(qx, qy), 0) - rounding

    return box, dist


# ================================================================================================================
# colours and backgrounds


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32)


def _lum(c: np.ndarray) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def _contrast_color(rng: np.random.Generator, bg_lum: float, sat: tuple[float, float] = (0.35, 0.95)) -> np.ndarray:
    """A colour of random hue whose brightness is far from ``bg_lum`` (so shape, not hue, carries the class)."""
    h, s = rng.random(), rng.uniform(*sat)
    for _ in range(8):
        v = rng.uniform(0.05, 0.3) if bg_lum > 0.5 else rng.uniform(0.75, 1.0)
        c = _hsv(h, s, v)
        if abs(_lum(c) - bg_lum) > 0.3:
            return c
        s *= 0.6
    return _hsv(h, 0.1, 0.05 if bg_lum > 0.5 else 1.0)


def _shade(c: np.ndarray, f: float) -> np.ndarray:
    return np.clip(c * f if f < 1 else c + (1 - c) * (f - 1), 0, 1).astype(np.float32)


def _background(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(canvas float32 (C, C, 3) in [0, 1], mean luminance)."""
    dark = rng.random() < 0.5
    v1 = rng.uniform(0.55, 0.9) if not dark else rng.uniform(0.08, 0.4)
    v2 = np.clip(v1 + rng.uniform(-0.18, 0.18), 0.03, 0.97)
    c1 = _hsv(rng.random(), rng.uniform(0.05, 0.6), v1)
    c2 = _hsv(rng.random(), rng.uniform(0.05, 0.6), v2)
    kind = int(rng.integers(3))
    n = _CANVAS
    if kind == 0:  # linear gradient in a random direction
        a = rng.uniform(0, 2 * np.pi)
        t = (_XX - n / 2) * math.cos(a) + (_YY - n / 2) * math.sin(a)
        t = (t - t.min()) / (t.max() - t.min())
    elif kind == 1:  # smooth value noise
        g = int(rng.integers(3, 8))
        coarse = rng.random((g, g)).astype(np.float32)
        u = _XX / n * (g - 1)
        v = _YY / n * (g - 1)
        i0, j0 = np.clip(u.astype(int), 0, g - 2), np.clip(v.astype(int), 0, g - 2)
        fu, fv = u - i0, v - j0
        fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
        t = (coarse[j0, i0] * (1 - fu) * (1 - fv) + coarse[j0, i0 + 1] * fu * (1 - fv)
             + coarse[j0 + 1, i0] * (1 - fu) * fv + coarse[j0 + 1, i0 + 1] * fu * fv)
    else:  # soft stripes
        a = rng.uniform(0, np.pi)
        period = rng.uniform(14, 48)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * ((_XX * math.cos(a) + _YY * math.sin(a)) / period) + rng.uniform(0, 6.3))
        t = t * rng.uniform(0.4, 1.0)
    img = c1[None, None, :] + t[..., None].astype(np.float32) * (c2 - c1)[None, None, :]
    img = img + rng.normal(0, 0.012, img.shape).astype(np.float32)  # static grain
    return np.clip(img, 0, 1).astype(np.float32), _lum((c1 + c2) / 2)


# ================================================================================================================
# motion: each class draws its motion parameters once; the picture and the sound both follow them


def _periodic_times(period: float, phase: float, duration: float) -> np.ndarray:
    """Times t in [0, duration) where t / period + phase is an integer (sorted)."""
    p0 = phase
    k0 = math.ceil(p0 - 1e-9)
    k1 = math.floor(duration / period + p0)
    t = (np.arange(k0, k1 + 1) - p0) * period
    return t[(t >= 0) & (t < duration)]


# Period ranges (seconds) of the periodic impact classes.
_IMPACT_PERIODS = {"bouncing": (0.5, 1.0), "hammering": (0.45, 0.9), "clapping": (0.3, 0.65)}


def _motion(cls: str, rng: np.random.Generator, duration: float) -> dict:
    """Motion parameters of class ``cls`` (tempo, phase, amplitudes) and the event times of its sound."""
    m: dict = {"cls": cls, "duration": duration}
    if cls in _IMPACT_PERIODS:  # one sound event per period: ball contact, hammer hit, clap
        m["period"] = rng.uniform(*_IMPACT_PERIODS[cls])
        m["phase"] = rng.random()
        m["events"] = _periodic_times(m["period"], m["phase"], duration)
    elif cls == "bell":
        m["period"] = rng.uniform(1.0, 2.0)
        m["phase"] = rng.random()
        m["amp"] = math.radians(rng.uniform(18, 38))
        # swing ends: sin(2 pi (t / P + phase)) = +-1  <=>  2 (t / P + phase) - 1/2 is an integer
        m["events"] = _periodic_times(m["period"] / 2, 2 * m["phase"] - 0.5, duration)
    elif cls == "spinning":
        m["omega"] = rng.uniform(0.5, 1.6)  # revolutions per second
        m["mod"] = rng.uniform(0.25, 0.6)
        m["mod_period"] = rng.uniform(1.5, 4.0)
        m["phase"] = rng.random()
        m["events"] = np.zeros(0)
    elif cls == "sawing":
        m["period"] = rng.uniform(0.6, 1.3)
        m["phase"] = rng.random()
        m["events"] = np.zeros(0)
    elif cls == "dripping":
        m["period"] = rng.uniform(0.3, 0.8)
        m["phase"] = rng.random()
        m["fall"] = rng.uniform(0.35, 0.55)
        # drops released since before the clip start, so some are already falling in the first frame
        lead = m["fall"] + 1.0
        m["releases"] = _periodic_times(m["period"], m["phase"], duration + lead) - lead
        landings = m["releases"] + m["fall"]
        m["events"] = landings[(landings >= 0) & (landings < duration)]
    elif cls == "typing":
        rate = rng.uniform(4.0, 9.0)
        t, presses = rng.uniform(0, 0.2), []
        while t < duration:
            presses.append(t)
            t += max(0.07, rng.exponential(1.0 / rate))
        m["events"] = np.array(presses)
        m["hold"] = rng.uniform(0.07, 0.12)
        m["keys"] = rng.random((len(presses), 2))
    else:
        raise UserError(f"unknown class {cls!r}; valid: {', '.join(CLASSES)}")
    return m


def _spin_angle(m: dict, t: np.ndarray | float) -> np.ndarray | float:
    """Wheel angle (radians) at time t: integral of omega (1 + mod sin(2 pi (t / Pm + phase)))."""
    w, a, pm, ph = m["omega"], m["mod"], m["mod_period"], m["phase"]
    return 2 * np.pi * w * (t - a * pm / (2 * np.pi) * (np.cos(2 * np.pi * (t / pm + ph)) - math.cos(2 * np.pi * ph)))


def _spin_speed(m: dict, t: np.ndarray) -> np.ndarray:
    return m["omega"] * (1 + m["mod"] * np.sin(2 * np.pi * (t / m["mod_period"] + m["phase"])))


# ================================================================================================================
# pictures


def _render_frames(m: dict, rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """(n_frames, SIZE, SIZE, 3) uint8 frames showing the motion ``m`` (:func:`_frame_stream`, stacked)."""
    out = np.empty((n_frames, SIZE, SIZE, 3), np.uint8)
    for i, frame in enumerate(_frame_stream(m, rng, n_frames)):
        out[i] = frame
    return out


def _frame_stream(m: dict, rng: np.random.Generator, n_frames: int) -> Iterator[np.ndarray]:
    """The ``n_frames`` (SIZE, SIZE, 3) uint8 frames showing the motion ``m``, one at a time (memory: one frame).

    Every draw from ``rng`` happens in this call, before the first frame is asked for."""
    bg, bg_lum = _background(rng)
    s = rng.uniform(0.8, 1.2)  # object scale
    ox, oy = rng.uniform(-8, 8), rng.uniform(-6, 6)  # scene offset
    flip = bool(rng.random() < 0.5)
    col = _contrast_color(rng, bg_lum)
    col2 = _contrast_color(rng, bg_lum)
    line = _shade(col, 0.45) if _lum(col) > 0.5 else _shade(col, 1.8)
    static, scene = _SCENES[m["cls"]](m, rng, s, ox + _JIT + SIZE / 2, oy + _JIT + SIZE / 2, flip, col, col2,
                                      line, bg_lum)
    if static is not None:
        layer = _Canvas(bg)
        static(layer)
        bg = layer.img
    # camera jitter: a smooth random walk of the crop window
    amp = rng.uniform(0, _JIT)
    walk = rng.normal(0, 1, (n_frames + 7, 2)).cumsum(axis=0)
    jx, jy = (np.clip(np.round(_JIT + amp * np.tanh(np.convolve(walk[:, k], np.ones(8) / 8, "valid") / 4)),
                      0, 2 * _JIT).astype(int) for k in (0, 1))

    def frames() -> Iterator[np.ndarray]:
        for i in range(n_frames):
            canvas = _Canvas(bg)
            scene(canvas, i / FPS)
            crop = canvas.img[jy[i]:jy[i] + SIZE, jx[i]:jx[i] + SIZE]
            yield np.clip(crop * 255 + 0.5, 0, 255).astype(np.uint8)

    return frames()


def _scene_bouncing(m, rng, s, cx, cy, flip, col, col2, line, bg_lum):
    r = rng.uniform(8.5, 13) * s
    floor_y = cy + rng.uniform(28, 44)
    height = rng.uniform(35, min(62, floor_y - r - 12 - _JIT))
    floor_col = _contrast_color(rng, bg_lum, (0.1, 0.6))
    seam_col = _shade(col, 0.4) if _lum(col) > 0.5 else _shade(col, 2.2)
    x0, vx = cx + rng.uniform(-20, 20), rng.choice([-1, 1]) * rng.uniform(6, 22)
    lo, hi = _JIT + r + 6, _JIT + SIZE - r - 6
    spin = rng.choice([-1, 1]) * rng.uniform(2, 6)
    shadow = _shade(floor_col, 0.5) if _lum(floor_col) > 0.35 else _shade(floor_col, 1.6)

    def static(cv: _Canvas) -> None:
        cv.paint(*_box(_CANVAS / 2, (floor_y + _CANVAS) / 2 + 2, _CANVAS, (_CANVAS - floor_y) / 2 + 2),
                 floor_col, outline=line, width=1.0)

    def draw(cv: _Canvas, t: float) -> None:
        u = (t / m["period"] + m["phase"]) % 1.0
        hgt = height * 4 * u * (1 - u)
        x = lo + (hi - lo) - abs((x0 + vx * t - lo) % (2 * (hi - lo)) - (hi - lo))
        closeness = max(0.0, 1 - min(u, 1 - u) / 0.07)
        ry, rx = r * (1 - 0.28 * closeness), r * (1 + 0.2 * closeness)
        y = floor_y - hgt - ry
        sh = 1.0 - min(hgt / (height + 1), 1) * 0.5
        cv.paint(*_ellipse(x, floor_y + 2, r * sh * 1.1, r * 0.25 * sh + 1), shadow, alpha=0.7)
        box, ball = _ellipse(x, y, rx, ry)
        cv.paint(box, ball, col, outline=line)
        ang = spin * t
        _, band = _box(x, y, r * 2, r * 0.16, ang)
        cv.paint(box, lambda X, Y: np.maximum(ball(X, Y) + 1.2, band(X, Y)), seam_col)

    return static, draw


def _scene_hammering(m, rng, s, cx, cy, flip, col, col2, line, bg_lum):
    sign = -1 if flip else 1
    handle_len = rng.uniform(34, 44) * s
    head_half = rng.uniform(9, 12) * s
    head_thick = rng.uniform(4, 6) * s
    block_hw, block_hh = rng.uniform(14, 22) * s, rng.uniform(7, 11) * s
    nail_x = cx + sign * rng.uniform(8, 16)
    block_top = cy + rng.uniform(14, 26)
    nail_h = rng.uniform(6, 10) * s
    pivot = (nail_x - sign * handle_len, block_top - nail_h - head_half)
    theta_max = math.radians(rng.uniform(55, 85))
    block_col = _contrast_color(rng, bg_lum, (0.1, 0.7))
    arm_col = _contrast_color(rng, bg_lum, (0.1, 0.6))
    arm_end = (pivot[0] - sign * rng.uniform(25, 40), pivot[1] + rng.uniform(25, 45))

    def static(cv: _Canvas) -> None:
        cv.paint(*_box(nail_x, block_top + block_hh, block_hw, block_hh, 0, 2), block_col, outline=line)
        cv.paint(*_box(nail_x, block_top - nail_h / 2, 1.6 * s, nail_h / 2), line)
        cv.paint(*_box(nail_x, block_top - nail_h, 4 * s, 1.3 * s), line)
        cv.paint(*_capsule(*arm_end, *pivot, 5.5 * s), arm_col, outline=line)

    def draw(cv: _Canvas, t: float) -> None:
        u = (t / m["period"] + m["phase"]) % 1.0
        theta = theta_max * (math.sin(0.5 * math.pi * u / 0.65) if u < 0.65 else 1 - ((u - 0.65) / 0.35) ** 2)
        dx, dy = sign * math.cos(theta), -math.sin(theta)
        hx, hy = pivot[0] + handle_len * dx, pivot[1] + handle_len * dy
        cv.paint(*_capsule(pivot[0] - 4 * dx, pivot[1] - 4 * dy, hx, hy, 2.6 * s), col2, outline=line)
        ang = math.atan2(dy, dx)
        cv.paint(*_box(hx, hy, head_thick, head_half, ang, 1.0), col, outline=line)
        cv.paint(*_circle(*pivot, 6.5 * s), arm_col, outline=line)

    return static, draw


def _scene_clapping(m, rng, s, cx, cy, flip, col, col2, line, bg_lum):
    smax = rng.uniform(18, 36) * s
    palm_hw, palm_hh = 5.5 * s, rng.uniform(9, 12) * s
    finger_len = rng.uniform(10, 14) * s
    tilt = math.radians(rng.uniform(-12, 12))
    hy = cy + rng.uniform(-10, 6)
    sleeve = _contrast_color(rng, bg_lum, (0.2, 0.9))

    def hand(cv: _Canvas, x: float, side: int, open_ang: float) -> None:
        a = side * (tilt + open_ang)
        rx, ry = math.cos(a), math.sin(a)  # across the palm
        ux, uy = ry, -rx  # up along the fingers
        wx, wy = x - ux * palm_hh, hy - uy * palm_hh
        cv.paint(*_capsule(wx, wy, wx + side * 20 * s, wy + 42 * s, 6 * s), sleeve, outline=line)
        parts = [_box(x, hy, palm_hw, palm_hh, a, 3.5 * s)]
        for k in range(4):
            off = (k - 1.5) * palm_hw * 0.55
            bx, by = x + ux * palm_hh * 0.7 + rx * off, hy + uy * palm_hh * 0.7 + ry * off
            length = finger_len * (1 - 0.15 * abs(k - 1.5))
            parts.append(_capsule(bx, by, bx + ux * length, by + uy * length, 2.1 * s))
        # thumb on the inner side, pointing up and towards the other hand
        tx, ty = x - side * rx * palm_hw * 0.7, hy - side * ry * palm_hw * 0.7
        parts.append(_capsule(tx, ty, tx - side * rx * 7 * s + ux * 6 * s, ty - side * ry * 7 * s + uy * 6 * s,
                              2.4 * s))
        cv.paint(*_union(*parts), col, outline=line)
        # a crease line across the palm keeps the fingers' base visible
        cv.paint(*_capsule(x + ux * palm_hh * 0.55 - rx * palm_hw * 0.6, hy + uy * palm_hh * 0.55 - ry * palm_hw * 0.6,
                           x + ux * palm_hh * 0.55 + rx * palm_hw * 0.6, hy + uy * palm_hh * 0.55 + ry * palm_hw * 0.6,
                           0.5), line)

    def draw(cv: _Canvas, t: float) -> None:
        u = (t / m["period"] + m["phase"]) % 1.0
        sep = smax * math.sin(math.pi * u) ** 0.8
        open_ang = math.radians(14) * math.sin(math.pi * u)
        hand(cv, cx - palm_hw - sep / 2, -1, open_ang)
        hand(cv, cx + palm_hw + sep / 2, 1, open_ang)

    return None, draw


def _scene_bell(m, rng, s, cx, cy, flip, col, col2, line, bg_lum):
    beam_y = _JIT + rng.uniform(8, 16)
    pivot = (cx + rng.uniform(-8, 8), beam_y + rng.uniform(8, 14))
    body_len = rng.uniform(26, 34) * s
    w_top, w_bot = rng.uniform(7, 9) * s, rng.uniform(17, 22) * s
    beam_col = _contrast_color(rng, bg_lum, (0.1, 0.6))
    inner = _shade(col, 0.5) if _lum(col) > 0.5 else _shade(col, 1.7)
    u0, u1 = 7 * s, 7 * s + body_len

    def body(theta: float):
        c, sn = math.cos(theta), math.sin(theta)
        px, py = pivot
        reach = u1 + 4
        box = (px - reach, py - 10, px + reach, py + reach + 4)

        def dist(x, y):
            v = (x - px) * c + (y - py) * sn  # lateral
            u = -(x - px) * sn + (y - py) * c  # along the axis, downward
            frac = np.clip((u - u0) / body_len, 0, 1)
            half = w_top + (w_bot - w_top) * frac ** 2.2
            d_side = np.abs(v) - half
            d = np.maximum(np.maximum(d_side, u0 - u), u - u1)
            dome = np.sqrt(v * v + (u - u0 - 2) ** 2) - w_top - 0.5
            return np.minimum(d, dome)

        return box, dist

    def static(cv: _Canvas) -> None:
        cv.paint(*_box(pivot[0], beam_y, 34 * s, 4 * s, 0, 1.5), beam_col, outline=line)
        cv.paint(*_capsule(pivot[0], beam_y, pivot[0], pivot[1], 2 * s), beam_col, outline=line)

    def draw(cv: _Canvas, t: float) -> None:
        theta = m["amp"] * math.sin(2 * math.pi * (t / m["period"] + m["phase"]))
        lag = m["amp"] * 1.25 * math.sin(2 * math.pi * ((t - 0.09) / m["period"] + m["phase"]))
        c, sn = math.cos(theta), math.sin(theta)
        lip = (pivot[0] - u1 * sn, pivot[1] + u1 * c)
        cl_c, cl_s = math.cos(lag), math.sin(lag)
        cv.paint(*body(theta), col, outline=line)
        # rim: a darker ellipse at the mouth, and the clapper hanging below it
        cv.paint(*_box(lip[0], lip[1], w_bot + 1.5, 2.2 * s, theta, 1.5), inner, outline=line)
        clap_len = u1 + 5 * s
        cv.paint(*_circle(pivot[0] - clap_len * cl_s, pivot[1] + clap_len * cl_c, 3.8 * s), inner, outline=line)

    return static, draw


def _scene_spinning(m, rng, s, cx, cy, flip, col, col2, line, bg_lum):
    radius = rng.uniform(26, 36) * s
    hub = (cx + rng.uniform(-6, 6), cy + rng.uniform(-10, 2))
    n_spokes = int(rng.choice([4, 5, 6, 8]))
    spoke_w = rng.uniform(2.0, 3.2) * s
    rim_w = rng.uniform(3.5, 5.5) * s
    stand_col = _contrast_color(rng, bg_lum, (0.1, 0.6))
    ground = min(hub[1] + radius + rng.uniform(10, 16), _JIT + SIZE - 4)
    sector = 2 * np.pi / n_spokes
    direction = rng.choice([-1, 1])
    marker = _shade(col2, 1.0)

    spread = radius * 0.75

    def static(cv: _Canvas) -> None:
        cv.paint(*_capsule(hub[0], hub[1], hub[0] - spread, ground, 2.8 * s), stand_col, outline=line)
        cv.paint(*_capsule(hub[0], hub[1], hub[0] + spread, ground, 2.8 * s), stand_col, outline=line)
        cv.paint(*_box(hub[0], ground + 2, spread + 10, 2.5, 0, 1), stand_col, outline=line)

    def draw(cv: _Canvas, t: float) -> None:
        rot = direction * _spin_angle(m, t)
        px, py = hub

        def spokes(x, y):
            dx, dy = x - px, y - py
            rho = np.sqrt(dx * dx + dy * dy)
            ang = np.arctan2(dy, dx) - rot
            delta = (ang + sector / 2) % sector - sector / 2
            return np.maximum(rho * np.abs(np.sin(delta)) - spoke_w / 2, rho - radius)

        box = (px - radius, py - radius, px + radius, py + radius)
        cv.paint(box, spokes, col, outline=line, width=0.8)
        cv.paint(*_ring(px, py, radius, rim_w), col, outline=line)
        cv.paint(*_circle(px, py, 5 * s), col2, outline=line)
        mk = rot + sector / 2
        cv.paint(*_circle(px + radius * math.cos(mk), py + radius * math.sin(mk), rim_w * 0.7), marker)

    return static, draw


def _scene_sawing(m, rng, s, cx, cy, flip, col, col2, line, bg_lum):
    sign = -1 if flip else 1
    board_top = cy + rng.uniform(10, 22)
    board_h = rng.uniform(14, 22)
    board_col = _contrast_color(rng, bg_lum, (0.2, 0.7))
    grain = _shade(board_col, 0.75) if _lum(board_col) > 0.4 else _shade(board_col, 1.4)
    blade_len = rng.uniform(62, 76) * s
    h_heel, h_tip = rng.uniform(20, 26) * s, rng.uniform(11, 15) * s
    tooth_pitch, tooth_h = rng.uniform(4.0, 5.5) * s, rng.uniform(3.0, 4.2) * s
    tilt = sign * math.radians(rng.uniform(6, 16))
    amp = rng.uniform(12, 22)
    cut_x = cx + rng.uniform(-10, 10)
    handle_col = col2

    def static(cv: _Canvas) -> None:
        cv.paint(*_box(cx, board_top + board_h / 2, 70, board_h / 2, 0, 1.5), board_col, outline=line)
        cv.paint(*_box(cx, board_top + board_h * 0.55, 70, 0.7), grain)
        cv.paint(*_box(cut_x, board_top + 3, 1.3, 3.2), line)

    def draw(cv: _Canvas, t: float) -> None:
        shift = amp * math.sin(2 * math.pi * (t / m["period"] + m["phase"]))
        c, sn = math.cos(tilt), math.sin(tilt)
        # blade frame: origin at the cut point on the board top, axis along the blade (towards the tip)
        ax, ay = sign * c, sign * sn  # along the blade, tip direction
        nx, ny = -ay * sign, ax * sign  # perpendicular, downward in the blade frame
        ox = cut_x - ax * (blade_len * 0.5 + shift)
        oy = board_top - 1 - ay * (blade_len * 0.5 + shift)

        def blade(x, y):
            sx = (x - ox) * ax + (y - oy) * ay  # 0 at the heel (handle end), blade_len at the tip
            sy = (x - ox) * nx + (y - oy) * ny  # 0 at the tooth line, negative up into the blade
            frac = np.clip(sx / blade_len, 0, 1)
            top = -(h_heel + (h_tip - h_heel) * frac)
            teeth = tooth_h * (1 - (sx / tooth_pitch) % 1.0)
            return np.maximum(np.maximum(top - sy, sy - teeth), np.maximum(-sx, sx - blade_len))

        corners = [(ox + ax * u + nx * v, oy + ay * u + ny * v) for u in (0, blade_len) for v in (-h_heel, tooth_h)]
        box = (min(c[0] for c in corners), min(c[1] for c in corners),
               max(c[0] for c in corners), max(c[1] for c in corners))
        cv.paint(box, blade, col, outline=line)
        # D handle at the heel: an elliptical ring
        hx = ox - ax * 10 * s + nx * (-h_heel * 0.55)
        hy = oy - ay * 10 * s + ny * (-h_heel * 0.55)
        a, b = 12 * s, h_heel * 0.6
        ang = math.atan2(ay, ax)
        ca, sa = math.cos(ang), math.sin(ang)

        def handle(x, y):
            u = (x - hx) * ca + (y - hy) * sa
            v = -(x - hx) * sa + (y - hy) * ca
            r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
            return np.abs(r - 0.72) * min(a, b) - 2.6 * s

        e = max(a, b) + 4
        cv.paint((hx - e, hy - e, hx + e, hy + e), handle, handle_col, outline=line)

    return static, draw


def _scene_dripping(m, rng, s, cx, cy, flip, col, col2, line, bg_lum):
    sign = -1 if flip else 1
    spout_x = cx + rng.uniform(-12, 12)
    pipe_y = _JIT + rng.uniform(12, 22)
    spout_len = rng.uniform(8, 13) * s
    tip_y = pipe_y + spout_len
    pool_y = cy + rng.uniform(36, 46)
    pool_a, pool_b = rng.uniform(22, 32) * s, rng.uniform(4, 6.5) * s
    drop_r = rng.uniform(3.3, 5.0) * s
    fall = m["fall"]
    g = 2 * (pool_y - tip_y - drop_r) / fall ** 2
    tap_col = _contrast_color(rng, bg_lum, (0.1, 0.6))
    pool_col = _shade(col, 0.7) if _lum(col) > 0.5 else _shade(col, 1.3)
    releases = m["releases"]

    def drop(cv: _Canvas, x: float, y: float, r: float, stretch: float) -> None:
        cv.paint(*_capsule(x, y, x, y - r * (1.2 + stretch), r * 0.45), col)
        cv.paint(*_circle(x, y, r), col, outline=line)

    def static(cv: _Canvas) -> None:
        cv.paint(*_ellipse(spout_x, pool_y, pool_a, pool_b), pool_col, outline=line)
        # tap: horizontal pipe from the side, a spout down
        cv.paint(*_capsule(spout_x - sign * 50, pipe_y, spout_x, pipe_y, 4.5 * s), tap_col, outline=line)
        cv.paint(*_box(spout_x, pipe_y + spout_len / 2, 4 * s, spout_len / 2 + 1, 0, 1), tap_col, outline=line)
        cv.paint(*_box(spout_x - sign * 12, pipe_y - 6 * s, 2 * s, 5 * s), tap_col, outline=line)

    def draw(cv: _Canvas, t: float) -> None:
        for rel in releases[(releases > t - 0.5 - fall) & (releases <= t)]:
            land = rel + fall
            if 0 <= t - land < 0.45:  # ripple spreading on the pool
                k = (t - land) / 0.45
                rr = 4 + k * pool_a * 0.9
                cv.paint(*_ellipse(spout_x, pool_y, rr + 1.2, rr * pool_b / pool_a + 1.2),
                         line, alpha=1 - k)
                cv.paint(*_ellipse(spout_x, pool_y, rr, rr * pool_b / pool_a), pool_col, alpha=1 - k)
            if 0 <= t - land < 0.12:  # splash
                k = (t - land) / 0.12
                for side in (-1, 1):
                    cv.paint(*_circle(spout_x + side * (4 + 10 * k), pool_y - 10 * k * (1.2 - k) - 2, 1.6 * s),
                             col)
            if 0 <= t - rel < fall:
                dt = t - rel
                y = tip_y + drop_r + 0.5 * g * dt * dt
                drop(cv, spout_x, y, drop_r, min(1.0, g * dt / 400))
        # the next drop growing at the tip of the spout
        k = int(np.searchsorted(releases, t))
        nxt = releases[k] if k < len(releases) else t + 1
        grow = np.clip(1 - (nxt - t) / m["period"], 0.15, 1)
        cv.paint(*_circle(spout_x, tip_y + drop_r * grow * 0.8, drop_r * grow), col, outline=line)

    return static, draw


def _scene_typing(m, rng, s, cx, cy, flip, col, col2, line, bg_lum):
    cols, rows = int(rng.integers(8, 12)), int(rng.integers(3, 5))
    width = rng.uniform(92, 112) * s
    pitch = width / cols
    height = pitch * rows
    x0 = cx - width / 2
    y0 = cy + rng.uniform(-2, 14)
    base_col = col2
    key_col = col
    pressed_col = _shade(col, 0.5) if _lum(col) > 0.5 else _shade(col, 1.6)
    finger_col = _contrast_color(rng, bg_lum, (0.2, 0.8))
    gap = 0.14 * pitch
    presses, hold = m["events"], m["hold"]
    keys = np.minimum((m["keys"] * [cols, rows]).astype(int), [cols - 1, rows - 1])

    def key_center(k: int) -> tuple[float, float]:
        return x0 + (keys[k][0] + 0.5) * pitch, y0 + (keys[k][1] + 0.5) * pitch

    def grid(x, y):
        fx = (x - x0) / pitch
        fy = (y - y0) / pitch
        ex = (0.5 - np.abs(fx % 1.0 - 0.5)) * pitch - gap
        ey = (0.5 - np.abs(fy % 1.0 - 0.5)) * pitch - gap
        inside = np.minimum(ex, ey)
        bounds = np.maximum(np.maximum(x0 - x, x - x0 - width), np.maximum(y0 - y, y - y0 - height))
        return np.maximum(-inside, bounds)

    def static(cv: _Canvas) -> None:
        cv.paint(*_box(cx, y0 + height / 2, width / 2 + 5, height / 2 + 5, 0, 4), base_col, outline=line)
        cv.paint((x0, y0, x0 + width, y0 + height), grid, key_col)

    def draw(cv: _Canvas, t: float) -> None:
        k = int(np.searchsorted(presses, t, side="right")) - 1
        for side, kk in ((0, k), (1, k - 1)):
            if kk < 0:
                continue
            kx, ky = key_center(kk)
            down = t - presses[kk] < hold
            if down and side == 0:
                cv.paint(*_box(kx, ky + 0.8, pitch / 2 - gap - 0.8, pitch / 2 - gap - 0.8), pressed_col)
            # a finger reaching down from the top edge to the last pressed keys
            lift = 0 if (down and side == 0) else 7
            base_x = kx + (12 if (kk % 2) else -12)
            cv.paint(*_capsule(base_x, -4, kx, ky - 2 - lift, 3.4 * s), finger_col, outline=line)

    return static, draw


_SCENES = {
    "bouncing": _scene_bouncing, "hammering": _scene_hammering, "clapping": _scene_clapping,
    "bell": _scene_bell, "spinning": _scene_spinning, "sawing": _scene_sawing, "dripping": _scene_dripping,
    "typing": _scene_typing,
}


# ================================================================================================================
# sounds


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """White noise band-limited to [lo, hi] Hz (soft edges) by FFT masking, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    width = max((hi - lo) * 0.15, 30.0)
    mask = np.clip((f - lo) / width + 0.5, 0, 1) * np.clip((hi - f) / width + 0.5, 0, 1)
    x = np.fft.irfft(spec * mask, n)
    return x / (np.sqrt(np.mean(x * x)) + 1e-9)


def _colored_noise(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spec *= np.maximum(f, 40.0) ** (-beta / 2)
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x * x)) + 1e-9)


def _add(buf: np.ndarray, start: float, x: np.ndarray) -> None:
    i = int(round(start * SAMPLE_RATE))
    if i >= len(buf) or i + len(x) <= 0:
        return
    a, b = max(i, 0), min(i + len(x), len(buf))
    buf[a:b] += x[a - i:b - i]


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE


def _sine_sweep(freq: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE)


def _render_audio(m: dict, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) float32 in [-1, 1]: the class sound of motion ``m`` (:func:`_class_sound`), its peak at -14 to -3 dBFS,
    plus coloured noise 5-30 dB below its RMS."""
    buf = _class_sound(m, rng, n)
    peak = np.max(np.abs(buf)) + 1e-9
    buf *= 10 ** (rng.uniform(-14, -3) / 20) / peak
    snr_db = rng.uniform(5, 30)
    rms = math.sqrt(float(np.mean(buf * buf))) + 1e-9
    buf += _colored_noise(rng, n, rng.uniform(0.0, 1.5)) * rms / 10 ** (snr_db / 20)
    return np.clip(buf, -1, 1).astype(np.float32)


def _class_sound(m: dict, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) float64, unnormalised: the sound of motion ``m`` over [t0, t0 + n / SAMPLE_RATE) seconds of its
    time, t0 = ``m.get("t0", 0)``; ``m["events"]`` are times relative to t0 (negative: started before)."""
    cls = m["cls"]
    t0 = m.get("t0", 0.0)
    p = rng.uniform(0.72, 1.3)  # pitch factor
    buf = np.zeros(n)
    if cls == "bouncing":
        f0, tau, body = 75 * p, rng.uniform(0.06, 0.12), rng.uniform(170, 260) * p
        t = _t(0.35)
        for ev in m["events"]:
            freq = f0 * (1 + 0.6 * np.exp(-t / 0.025))
            x = np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t / tau)
            x += 0.5 * np.sin(2 * np.pi * body * t) * np.exp(-t / 0.03)
            x += 0.35 * _band_noise(rng, len(t), 40, 900) * np.exp(-t / 0.01)
            _add(buf, ev, rng.uniform(0.7, 1.0) * x)
    elif cls == "hammering":
        f1 = 1100 * p
        ratios = (1.0, 2.76, 5.4)
        taus = np.array((0.09, 0.05, 0.025)) * rng.uniform(0.7, 1.4)
        t = _t(0.35)
        for ev in m["events"]:
            x = sum(a * np.sin(2 * np.pi * f1 * r * t + rng.uniform(0, 6.3)) * np.exp(-t / tau)
                    for a, r, tau in zip((1.0, 0.6, 0.35), ratios, taus, strict=True))
            x += 0.8 * _band_noise(rng, len(t), 1500, 7500) * np.exp(-t / 0.0025)
            x += 0.5 * np.sin(2 * np.pi * 210 * p * t) * np.exp(-t / 0.02)
            _add(buf, ev, rng.uniform(0.75, 1.0) * x)
    elif cls == "clapping":
        lo, hi = 700 * p, 3200 * p
        tail = rng.uniform(0.02, 0.045)
        t = _t(0.2)
        for ev in m["events"]:
            env = np.exp(-t / tail) * 0.6
            for k, d in enumerate(np.sort(rng.uniform(0, 0.012, 3))):
                env += (1 - 0.25 * k) * np.exp(-np.maximum(t - d, 0) / 0.003) * (t >= d)
            x = _band_noise(rng, len(t), lo, hi) * env
            _add(buf, ev, rng.uniform(0.7, 1.0) * x)
    elif cls == "bell":
        f0 = 620 * p
        ratios = np.array((0.5, 1.0, 1.19, 1.5, 2.0, 2.52, 3.0))
        amps = np.array((0.6, 0.8, 0.6, 0.35, 0.5, 0.25, 0.2))
        base_tau = rng.uniform(0.5, 1.1)
        t = _t(2.5)
        for ev in m["events"]:
            x = np.zeros(len(t))
            for r, a in zip(ratios, amps, strict=True):
                detune = 1 + rng.uniform(-0.002, 0.002)
                x += a * np.sin(2 * np.pi * f0 * r * detune * t + rng.uniform(0, 6.3)) * np.exp(-t / (base_tau / r ** 0.6))
            x += 0.3 * _band_noise(rng, len(t), 1000, 6000) * np.exp(-t / 0.004)
            _add(buf, ev, rng.uniform(0.6, 1.0) * x)
    elif cls == "spinning":
        t = np.arange(n) / SAMPLE_RATE
        if t0:
            t = t + t0
        speed = _spin_speed(m, t) / m["omega"]
        fb = 130 * p * speed
        phase = 2 * np.pi * np.cumsum(fb) / SAMPLE_RATE
        for k in range(1, 9):
            buf += (1 / k) * rng.uniform(0.5, 1.0) * np.sin(k * phase + rng.uniform(0, 6.3))
        whoosh_rate = speed * m["omega"] * rng.integers(4, 9)
        wmod = 0.5 + 0.5 * np.sin(2 * np.pi * np.cumsum(whoosh_rate) / SAMPLE_RATE)
        buf += 0.25 * _band_noise(rng, n, 300 * p, 2000 * p) * wmod
        buf *= 0.6 + 0.4 * speed
    elif cls == "sawing":
        t = np.arange(n) / SAMPLE_RATE
        if t0:
            t = t + t0
        w = 2 * np.pi * (t / m["period"] + m["phase"])
        v = np.cos(w)  # stroke velocity (normalised)
        env = np.abs(v) ** 1.5
        fc = 2300 * p
        push = _band_noise(rng, n, fc * 0.75, fc * 1.6)
        pull = _band_noise(rng, n, fc * 0.5, fc * 1.1)
        tooth = np.cumsum(np.abs(v) * rng.uniform(90, 180)) / SAMPLE_RATE
        rasp = 0.45 + 0.55 * (0.5 + 0.5 * np.sin(2 * np.pi * tooth)) ** 2
        buf = env * rasp * np.where(v > 0, push, 0.8 * pull)
    elif cls == "dripping":
        f0 = 850 * p
        sweep = rng.uniform(1.8, 3.0)
        length = rng.uniform(0.03, 0.055)
        t = _t(0.12)
        for ev in m["events"]:
            freq = f0 * sweep ** np.clip(t / length, 0, 1.3)
            env = np.clip(t / 0.003, 0, 1) * np.exp(-t / (length * 0.6))
            x = _sine_sweep(freq) * env
            x += 0.15 * _band_noise(rng, len(t), 3000, 7000) * np.exp(-t / 0.006)
            _add(buf, ev, rng.uniform(0.7, 1.0) * x)
    elif cls == "typing":
        fr = 3800 * p
        t = _t(0.05)
        for ev in m["events"]:
            for delay, gain in ((0.0, 1.0), (m["hold"], rng.uniform(0.3, 0.6))):
                x = _band_noise(rng, len(t), 2000, 7800) * np.exp(-t / rng.uniform(0.0015, 0.003))
                x += 0.5 * np.sin(2 * np.pi * fr * rng.uniform(0.95, 1.05) * t) * np.exp(-t / 0.008)
                x += 0.3 * np.sin(2 * np.pi * 420 * p * t) * np.exp(-t / 0.012)
                _add(buf, ev + delay, gain * rng.uniform(0.6, 1.0) * x)
    return buf


# ================================================================================================================
# one clip


def _check_classes(visual_class: str, audio_class: str | None) -> None:
    for name in (visual_class, audio_class or visual_class):
        if name not in CLASSES:
            raise UserError(f"unknown class {name!r}; valid: {', '.join(CLASSES)}")


def render_clip(seed: int, index: int, visual_class: str, audio_class: str | None = None,
                duration: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render clip ``index`` of ``seed`` without encoding it.

    Returns (frames (F, 128, 128, 3) uint8 at 25 fps, audio (F * 640,) float32 mono 16 kHz in [-1, 1]).
    ``audio_class`` None or equal to ``visual_class`` gives a sound synchronised with the picture; another class
    gives that class's sound from its own, independent motion (a mismatched clip). ``duration`` (seconds, 2-5)
    overrides the random clip length.
    """
    _check_classes(visual_class, audio_class)
    rng = np.random.default_rng([int(seed), int(index)])
    vis_rng, aud_rng = rng.spawn(2)
    seconds = float(vis_rng.uniform(MIN_SECONDS, MAX_SECONDS)) if duration is None else float(duration)
    n_frames = int(np.clip(round(seconds * FPS), MIN_SECONDS * FPS, MAX_SECONDS * FPS))
    motion = _motion(visual_class, vis_rng, n_frames / FPS)
    frames = _render_frames(motion, vis_rng, n_frames)
    if audio_class is None or audio_class == visual_class:
        sound_motion = motion
    else:
        sound_motion = _motion(audio_class, aud_rng, n_frames / FPS)
    audio = _render_audio(sound_motion, aud_rng, n_frames * SAMPLES_PER_FRAME)
    return frames, audio


def check_clip_seconds(value, name: str = "clip_seconds") -> tuple[float, float]:
    """``value`` = (A, B) as floats when 0 < A <= B <= MAX_CLIP_SECONDS; else UserError naming ``name``."""
    problem = f"{name} must be (A, B) seconds with 0 < A <= B <= {MAX_CLIP_SECONDS:g}, got {value!r}"
    if isinstance(value, (str, bytes)):
        raise UserError(problem)
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise UserError(problem) from None
    if not 0.0 < a <= b <= MAX_CLIP_SECONDS:  # NaN fails too
        raise UserError(problem)
    return a, b


def event_window(seed: int, index: int, clip_seconds: tuple[float, float],
                 event_seconds: tuple[float, float] = EVENT_SECONDS) -> tuple[int, float, float]:
    """(frames F, event start, event end in seconds) of long clip ``index`` of ``seed``.

    From the clip's own stream (third child of ``np.random.default_rng([seed, index])``): the length is
    U(A, B) seconds rounded to whole frames, F = max(1, round(U(A, B) * 25)); the event lasts
    L = min(U(event_seconds), F / 25) seconds and starts at U(0, F / 25 - L), so 0 <= start < end <= F / 25.
    """
    n_frames, start, end, _ = _event_plan(seed, index, clip_seconds, event_seconds)
    return n_frames, start, end


def _event_plan(seed: int, index: int, clip_seconds: tuple[float, float],
                event_seconds: tuple[float, float] = EVENT_SECONDS) -> tuple[int, float, float, np.random.Generator]:
    """:func:`event_window` and its stream, to draw the clip's background noise from next."""
    a, b = check_clip_seconds(clip_seconds)
    rng = np.random.default_rng([int(seed), int(index)]).spawn(3)[2]
    n_frames = max(1, int(round(rng.uniform(a, b) * FPS)))
    seconds = n_frames / FPS
    length = min(float(rng.uniform(*check_clip_seconds(event_seconds, "event_seconds"))), seconds)
    start = float(rng.uniform(0.0, seconds - length))
    return n_frames, start, start + length, rng


def render_event_clip(seed: int, index: int, visual_class: str, audio_class: str | None = None, *,
                      clip_seconds: tuple[float, float], event_seconds: tuple[float, float] = EVENT_SECONDS
                      ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Render long clip ``index`` of ``seed`` without encoding it: (frames (F, 128, 128, 3) uint8 at 25 fps,
    audio (F * 640,) float32 mono 16 kHz in [-1, 1], (event start, event end) seconds), F and the event from
    :func:`event_window`.

    The picture shows the motion of ``visual_class`` for the whole clip. The sound track is coloured background
    noise of RMS G = U(BACKGROUND_DBFS) dBFS throughout (drawn with the event, so the same whatever
    ``audio_class``) plus, inside the event only, the sound of ``audio_class`` (None or ``visual_class``: the
    picture's own motion, synchronised; another class: its own, independent motion) with its own noise 5-30 dB
    below it (:func:`_render_audio`), scaled to an RMS of G + U(EVENT_ABOVE_DB) dB (less where its peak would pass
    EVENT_PEAK_DBFS) and faded in and out over EVENT_FADE_SECONDS.
    """
    frames, audio, event = _event_clip(seed, index, visual_class, audio_class, clip_seconds, event_seconds)
    return np.stack(list(frames)), audio, event


def _event_clip(seed: int, index: int, visual_class: str, audio_class: str | None, clip_seconds: tuple[float, float],
                event_seconds: tuple[float, float] = EVENT_SECONDS
                ) -> tuple[Iterator[np.ndarray], np.ndarray, tuple[float, float]]:
    """:func:`render_event_clip` with the frames as a stream (memory: one frame, not F)."""
    _check_classes(visual_class, audio_class)
    n_frames, start, end, plan_rng = _event_plan(seed, index, clip_seconds, event_seconds)
    vis_rng, aud_rng, _ = np.random.default_rng([int(seed), int(index)]).spawn(3)
    seconds = n_frames / FPS
    motion = _motion(visual_class, vis_rng, seconds)
    frames = _frame_stream(motion, vis_rng, n_frames)
    if audio_class is None or audio_class == visual_class:
        sound_motion = motion
    else:
        sound_motion = _motion(audio_class, aud_rng, seconds)
    audio, level_db = quiet_background(plan_rng, n_frames * SAMPLES_PER_FRAME)
    _add_event(audio, sound_motion, aud_rng, start, end, level_db)
    return frames, np.clip(audio, -1, 1).astype(np.float32), (start, end)


def quiet_background(rng: np.random.Generator, n: int) -> tuple[np.ndarray, float]:
    """((n,) float64 coloured noise of RMS G dBFS, G): G = U(BACKGROUND_DBFS), the noise's exponent U(0, 1.5)
    (:func:`_colored_noise`), drawn from ``rng`` in that order."""
    level_db = rng.uniform(*BACKGROUND_DBFS)
    return _colored_noise(rng, n, rng.uniform(0.0, 1.5)) * 10 ** (level_db / 20), level_db


def _add_event(out: np.ndarray, m: dict, rng: np.random.Generator, start: float, end: float,
               level_db: float) -> None:
    """Add to ``out`` over samples [round(start * 16000), round(end * 16000)) :func:`_render_audio` of motion
    ``m`` in that window, scaled to an RMS of ``level_db`` + U(EVENT_ABOVE_DB) dB (lowered where its peak would
    pass EVENT_PEAK_DBFS), faded in and out over EVENT_FADE_SECONDS."""
    a, b = int(round(start * SAMPLE_RATE)), min(int(round(end * SAMPLE_RATE)), len(out))
    if b <= a:
        return
    t0 = a / SAMPLE_RATE
    events = np.asarray(m["events"], dtype=np.float64)
    events = events[(events > t0 - _SOUND_TAIL_SECONDS) & (events < b / SAMPLE_RATE)] - t0
    sound = _render_audio(dict(m, t0=t0, events=events), rng, b - a).astype(np.float64)
    add_event_sound(out, a, sound, rng, level_db)


def add_event_sound(out: np.ndarray, a: int, sound: np.ndarray, rng: np.random.Generator, level_db: float) -> None:
    """Add ``sound`` ((n,) float64, changed in place) to ``out[a:a + n]``, scaled to an RMS of ``level_db`` +
    U(EVENT_ABOVE_DB) dB (one draw from ``rng``; lowered where its peak would pass EVENT_PEAK_DBFS) and faded in and
    out over min(EVENT_FADE_SECONDS, n / 2) each. A sound whose peak is below 1e-6 adds nothing."""
    above_db = rng.uniform(*EVENT_ABOVE_DB)
    peak = float(np.max(np.abs(sound)))
    if peak < 1e-6:  # a window without any of the motion's sound (only in clips far shorter than an event)
        return
    rms = math.sqrt(float(np.mean(sound * sound)))
    sound *= min(10 ** ((level_db + above_db) / 20) / rms, 10 ** (EVENT_PEAK_DBFS / 20) / peak)
    k = min(int(EVENT_FADE_SECONDS * SAMPLE_RATE), len(sound) // 2)
    if k:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
        sound[:k] *= ramp
        sound[-k:] *= ramp[::-1]
    out[a:a + len(sound)] += sound


@dataclass(frozen=True)
class MediaFormat:
    """How one clip is written: container (the file suffix, no dot), codecs (FFmpeg decoder names, keys of
    ``_ENCODERS``), picture size (None: the rendered frames' own, 128x128), frame rate, sample rate, channels and,
    for stereo, ``balance_db``: the right channel's level relative to the left's in dB (0: the same signal on
    both; < 0: the right one quieter, > 0: the left one; the louder channel keeps the rendered level).
    The default is the "uniform" format of every clip of ``generate_dataset(media="uniform")``."""

    container: str = "mp4"
    video_codec: str = "h264"
    audio_codec: str = "aac"
    width: int | None = None
    height: int | None = None
    fps: int = FPS
    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    balance_db: float = 0.0

    def truth_columns(self) -> dict:
        """The columns truth.csv gains for this clip with ``media="mixed"``."""
        return {"container": self.container, "width": self.width or SIZE, "height": self.height or SIZE,
                "fps": self.fps, "sample_rate": self.sample_rate, "channels": self.channels,
                "video_codec": self.video_codec, "audio_codec": self.audio_codec}


UNIFORM_MEDIA = MediaFormat()
MEDIA_COLUMNS = tuple(UNIFORM_MEDIA.truth_columns())


def media_format(seed: int, index: int) -> MediaFormat:
    """The "mixed" format of clip ``index`` of ``seed``, from its own stream (``default_rng([seed, index,
    _MEDIA_STREAM])``, independent of everything else about the clip): each choice uniform among

    * container MIXED_CONTAINERS: .mp4 / .mov = H.264 + AAC; .mkv = H.264 + AAC or Opus; .webm = VP8 or VP9 +
      Opus, or Vorbis (stereo only);
    * size MIXED_SIZES (the 128x128 picture scaled to it, aspect ratio not kept); frame rate MIXED_FPS;
    * channels 1 or 2 (stereo: half the clips the same signal on both, half one channel quieter by
      U(MIXED_BALANCE_DB) dB); sample rate MIXED_SAMPLE_RATES, except Opus: always 48 kHz (what it decodes to).
    """
    u = np.random.default_rng([int(seed), int(index), _MEDIA_STREAM]).random(10)  # a fixed number of draws

    def pick(options, x):
        return options[min(int(x * len(options)), len(options) - 1)]

    container = pick(MIXED_CONTAINERS, u[0])
    width, height = pick(MIXED_SIZES, u[1])
    fps = pick(MIXED_FPS, u[2])
    channels = pick((1, 2), u[3])
    sample_rate = pick(MIXED_SAMPLE_RATES, u[4])
    video_codec, audio_codec = "h264", "aac"
    if container == "mkv":
        audio_codec = pick(("aac", "opus"), u[5])
    elif container == "webm":
        video_codec = pick(("vp8", "vp9"), u[6])
        audio_codec = pick(("opus", "vorbis"), u[5]) if channels == 2 else "opus"
    if audio_codec == "opus":
        sample_rate = 48_000
    balance = 0.0
    if channels == 2 and u[7] < 0.5:
        balance = float(np.interp(u[8], (0.0, 1.0), MIXED_BALANCE_DB)) * (1.0 if u[9] < 0.5 else -1.0)
    return MediaFormat(container, video_codec, audio_codec, width, height, fps, sample_rate, channels, balance)


def _boxed(frames: Iterable[np.ndarray], aspect: float) -> Iterator[np.ndarray]:
    """Each (H, W, 3) frame centred on black bars to the width : height ``aspect`` (pillarbox or letterbox), so a
    frame scaled to another shape keeps its whole picture undistorted in its centre, as a camera's own
    recording of another shape would show it to a decoder that crops the centre square."""
    for frame in frames:
        h, w = frame.shape[:2]
        new_h, new_w = (h, max(w, round(h * aspect))) if aspect >= w / h else (max(h, round(w / aspect)), w)
        top, left = (new_h - h) // 2, (new_w - w) // 2
        out = np.zeros((new_h, new_w, 3), np.uint8)
        out[top:top + h, left:left + w] = frame
        yield out


def _retime(frames: Iterable[np.ndarray], fps: int, count: int) -> Iterator[np.ndarray]:
    """``count`` frames at ``fps`` showing the FPS-rate ``frames``: output frame k is the input frame nearest
    k / fps seconds, floor(k * FPS / fps + 1/2), or the last one where the input ends before. Streams (one frame
    held)."""
    source = iter(frames)
    held, have = None, -1
    for k in range(count):
        want = (2 * k * FPS + fps) // (2 * fps)
        while have < want:
            frame = next(source, None)
            if frame is None:
                break
            held, have = frame, have + 1
        yield held


def encode_mp4(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], audio: np.ndarray) -> None:
    """Write ``frames`` ((F, H, W, 3) uint8 at 25 fps, or an iterable of (H, W, 3) frames, encoded as they come)
    and ``audio`` ((n,) float32 mono 16 kHz) as H.264 + AAC mp4 (:func:`encode_clip` in the uniform format).

    Deterministic: one x264 thread, bit-exact muxing (no creation time, no version strings from the muxer).
    """
    encode_clip(path, frames, audio)


def encode_clip(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], audio: np.ndarray,
                media: MediaFormat = UNIFORM_MEDIA) -> None:
    """Write ``frames`` (rendered at 25 fps: (F, H, W, 3) uint8, or an iterable of (H, W, 3) frames, encoded as
    they come) and ``audio`` ((n,) float32 mono 16 kHz, n = F * 640) to ``path`` in the format ``media``:
    the picture centred on black bars to media's aspect ratio (:func:`_boxed`), scaled to its width x height
    (PyAV's swscale, bilinear) and re-timed to its frame rate
    (:func:`_retime`: round(n / 16000 * fps) frames, so the picture lasts as long as the sound within half a frame
    of the new rate), the sound resampled to its sample rate (:func:`auditor.data.mux.resample_audio`, same
    duration) and, for stereo, copied to both channels with ``balance_db`` between them (digital silence stays
    silence). The container is the one of ``path``'s suffix (:func:`auditor.data.mux.container_format`).

    Deterministic: one encoder thread, fixed encoder settings, bit-exact muxing; written under a temporary name.
    """
    path = Path(path)
    if isinstance(frames, np.ndarray):
        height, width = frames.shape[1], frames.shape[2]
    else:
        stream = iter(frames)
        first = next(stream, None)
        if first is None:
            raise ValueError(f"{path}: no frames to encode")
        height, width = first.shape[0], first.shape[1]
        frames = itertools.chain([first], stream)
    if media.width and media.width * height != media.height * width:
        frames = _boxed(frames, media.width / media.height)
    width, height = media.width or width, media.height or height
    if media.fps != FPS:
        frames = _retime(frames, media.fps, max(1, int(round(len(audio) * media.fps / SAMPLE_RATE))))
    samples = audio[None, :]
    if media.sample_rate != SAMPLE_RATE:
        samples = resample_audio(samples, SAMPLE_RATE, media.sample_rate)
    if media.channels == 2:
        gains = 10 ** (-max(media.balance_db, 0.0) / 20), 10 ** (min(media.balance_db, 0.0) / 20)
        samples = np.concatenate([samples * np.float32(g) for g in gains]).astype(np.float32)
    vcodec, voptions = _ENCODERS[media.video_codec]
    acodec, aoptions = _ENCODERS[media.audio_codec]
    with _output(path) as container:
        vs = container.add_stream(vcodec, rate=media.fps, options=voptions | {"g": str(2 * media.fps)})
        vs.width, vs.height = width, height
        vs.pix_fmt = "yuv420p"
        vs.codec_context.thread_count = 1
        aus = container.add_stream(acodec, rate=media.sample_rate, layout="mono" if media.channels == 1 else "stereo",
                                   options=dict(aoptions))
        aus.bit_rate = AUDIO_BIT_RATE * media.channels
        aus.codec_context.thread_count = 1
        vpackets = encode_video(vs, frames, media.fps)
        apackets = encode_audio(aus, samples, media.sample_rate)
        if media == UNIFORM_MEDIA:  # the order the uniform files have always been muxed in (same bytes)
            container.mux(vpackets)
            container.mux(apackets)
        else:
            _mux_sorted(container, [(p, vs) for p in vpackets] + [(p, aus) for p in apackets])


_LongClips = tuple[tuple[float, float], tuple[float, float]]  # (clip_seconds, event_seconds) of a long clip


def _render_task(task: tuple[str, int, int, str, str, bool, _LongClips | None, MediaFormat]) -> float:
    """Render and write one clip; returns its length in seconds."""
    path, seed, index, visual_class, audio_class, muted, long_clips, media = task
    if long_clips is None:
        frames, audio = render_clip(seed, index, visual_class, audio_class)
    else:
        frames, audio, _ = _event_clip(seed, index, visual_class, audio_class, *long_clips)
    encode_clip(path, frames, np.zeros_like(audio) if muted else audio, media)
    return len(audio) / SAMPLE_RATE


# ================================================================================================================
# the data set


def class_vocabulary(num_classes: int = len(CLASSES)) -> dict[str, tuple[str, str]]:
    """Class name -> (picture class, sound class). Up to 8 classes: the base classes (a motion with its own
    synchronised sound), in CLASSES order. Beyond: combinations "motion~sound" of a base class's picture with
    another base class's sound (from its own, independent motion), in one fixed order whatever the data seed."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise UserError(f"num_classes must be in [1, {MAX_CLASSES}], got {num_classes!r}")
    pairs = [(c, c) for c in CLASSES]
    others = [(m, a) for m in CLASSES for a in CLASSES if a != m]
    pairs += [others[i] for i in np.random.default_rng(_COMBINATION_STREAM).permutation(len(others))]
    return {(m if m == a else f"{m}~{a}"): (m, a) for m, a in pairs[:num_classes]}


def class_sizes(n: int, imbalance: float, rng: np.random.Generator, classes: list[str] = CLASSES) -> dict[str, int]:
    """Clips per class for ``n`` clips: geometric sizes n_k proportional to imbalance^(-k / (K - 1)) over ``classes``
    in a random order (largest : smallest = ``imbalance``), rounded by largest remainder, at least 1 each when
    n >= K. Sums to ``n``."""
    k = len(classes)
    weights = imbalance ** (-np.arange(k) / max(k - 1, 1))
    exact = n * weights / weights.sum()
    sizes = np.floor(exact).astype(int)
    sizes[np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]] += 1
    if n >= k:
        while (sizes == 0).any():
            sizes[np.argmax(sizes)] -= 1
            sizes[np.flatnonzero(sizes == 0)[0]] += 1
    order = rng.permutation(k)
    return {classes[order[i]]: int(sizes[i]) for i in range(k)}


def choose_muted(donors: list[int | None], rate: float, rng: np.random.Generator) -> list[bool]:
    """Exactly round(rate * N) clips, among those whose sound is not swapped, get a muted sound track."""
    free = [i for i, d in enumerate(donors) if d is None]
    count = min(len(free), int(round(rate * len(donors))))
    chosen = set(rng.choice(free, size=count, replace=False).tolist()) if count else set()
    return [i in chosen for i in range(len(donors))]


@dataclass(frozen=True)
class Split:
    """One split's clips as generate_dataset chose them; clip k is clip ``first + k`` of the seed's per-clip
    streams. ``names``: paths relative to ``root``; ``labels``: the true (picture) classes; ``donors``: None, or
    the index in this split of the clip whose class's sound clip k carries (a mismatch); ``muted``: a silent sound
    track; ``formats``: how each clip is written; ``held_out``: the clean test split."""

    root: Path
    first: int
    names: list[str]
    labels: list[str]
    donors: list[int | None]
    muted: list[bool]
    formats: list[MediaFormat]
    held_out: bool


@dataclass(frozen=True)
class ContentPlan:
    """What a content renders for one :class:`Split`: ``tasks`` (one picklable argument of ``render`` per clip, in
    clip order), ``render`` (a module-level function: task -> seconds written), ``audio_labels`` (what each clip's
    sound is) and the extra truth.csv ``columns`` (name -> one value per clip; None is written as an empty field)."""

    tasks: list
    render: Callable[[Any], float]
    audio_labels: list[str]
    columns: dict[str, list]


def plan_split(seed: int, split: Split, *, vocabulary: dict[str, tuple[str, str]],
               long_clips: _LongClips | None) -> ContentPlan:
    """The procedural clips of ``split``: a donor's class's sound from its own motion; long clips' event columns."""
    audio = [split.labels[i if d is None else d] for i, d in enumerate(split.donors)]
    tasks = [(str(split.root / name), seed, split.first + i, vocabulary[v][0], vocabulary[a][1], m, long_clips, f)
             for i, (name, v, a, m, f) in enumerate(zip(split.names, split.labels, audio, split.muted, split.formats,
                                                        strict=True))]
    columns: dict[str, list] = {}
    if long_clips is not None:
        events = [None if m else _event_columns(seed, split.first + i, *long_clips) for i, m in enumerate(split.muted)]
        columns = {"event_start_s": [e[0] if e else None for e in events],
                   "event_end_s": [e[1] if e else None for e in events]}
    return ContentPlan(tasks, _render_task, audio, columns)


def _event_columns(seed: int, index: int, clip_seconds: tuple[float, float],
                   event_seconds: tuple[float, float]) -> tuple[float, float]:
    """(event_start_s, event_end_s) of a long clip, rounded to 3 decimals."""
    _, start, end = event_window(seed, index, clip_seconds, event_seconds)
    return round(start, 3), round(end, 3)
