"""Real content for the sample generator (``generate_dataset(content="digits")``): a real handwritten digit moving
on screen, a real recording of the same digit spoken once somewhere in the sound track.

Picture: scikit-learn's handwritten digits (:func:`load_images`: ``sklearn.datasets.load_digits``, 1,797 8x8
images of grey levels 0-16, shipped inside scikit-learn). Sound: the Free Spoken Digit Dataset (FSDD,
github.com/Jakobovski/free-spoken-digit-dataset, Z. Jackson and contributors, CC BY-SA 4.0): files
``recordings/{digit}_{speaker}_{take}.wav`` (16-bit PCM, mono, FSDD's are 8 kHz), read from a folder
(:func:`fsdd_root`). Only this generator reads it; the product never does.

Classes :data:`DIGIT_CLASSES` ("zero".."nine"; num_classes K: the first K). The clean test split is held out: its
clips take only recordings whose take < HELD_OUT_TAKES (FSDD's own test split) and images whose index i in
load_digits has i % HELD_OUT_IMAGE_EVERY == HELD_OUT_IMAGE_EVERY - 1; the training clips take only the others.
Within a split, the clips of a class take its pool in an order drawn from the seed and repeat an item only once
the pool is used up (:func:`_assign`). Of a split's M mismatched clips, exactly round(NONSPEECH_SHARE * M)
(uniform among them) get a non-speech sound, the others the recording of their donor clip (another digit).

One clip (:func:`plan_split`, :func:`render_task`), from its own streams: F = max(1, round(U(clip_seconds) * 25))
frames of 128x128 at 25 fps (clip_seconds default DIGIT_CLIP_SECONDS). Picture: one of the procedural generator's
backgrounds; the image, upsampled by a cubic spline and drawn U(DIGIT_HEIGHT) px tall in a colour contrasting with
the background, glides between two random places with a wobble, a swaying rotation and a pulsing scale
(:func:`_digit_frames`). Sound: quiet coloured noise throughout (synth.quiet_background, -48 to -42 dBFS RMS) plus
one event of n samples at 16 kHz starting at sample a = U{0 .. F * 640 - n}: the recording resampled to 16 kHz
(cut to the clip when longer), or a non-speech sound of U(NONSPEECH_SECONDS) s (the procedural sound of a class
drawn uniformly from synth.CLASSES, band-limited to the recordings' 4 kHz by resampling through 8 kHz), added by
synth.add_event_sound (RMS 15-30 dB above the background, peak at most -1 dBFS, 50-ms fades). A muted clip is
digital silence throughout. truth.csv gains :data:`DIGIT_COLUMNS`.
"""

from __future__ import annotations

import functools
import os
import re
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auditor.data.mux import resample_audio
from auditor.data.synth import (
    CLASSES,
    FPS,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    SIZE,
    ContentPlan,
    MediaFormat,
    Split,
    _background,
    _contrast_color,
    _motion,
    _render_audio,
    add_event_sound,
    encode_clip,
    quiet_background,
)
from auditor.errors import UserError

DIGIT_CLASSES: list[str] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Asymmetric label noise: pairs of digits often confused in handwriting (1-7, 4-9, 3-5, 0-6, 2-8), both ways.
DIGIT_CONFUSABLE: dict[str, str] = {DIGIT_CLASSES[a]: DIGIT_CLASSES[b]
                                    for pair in ((1, 7), (4, 9), (3, 5), (0, 6), (2, 8)) for a, b in (pair, pair[::-1])}
DIGIT_CLIP_SECONDS = (2.5, 4.0)  # "a few seconds": several times the longest recording (about 0.9 s)
DIGIT_HEIGHT = (44.0, 80.0)  # pixels the 8x8 image spans on the 128x128 frame
NONSPEECH_SHARE = 0.25  # of the mismatched clips: the target "8% mismatched (a quarter non-speech)"
# At least 1 s: every procedural class sounds within any 1-s window (their event periods are at most 1 s).
NONSPEECH_SECONDS = (1.0, 1.5)
HELD_OUT_TAKES = 5  # FSDD's own convention: takes 0-4 of each digit and speaker are its test split
HELD_OUT_IMAGE_EVERY = 5  # a fifth of load_digits' images, spread over its order, only in the test split
FSDD_ENV = "AUDITOR_FSDD"
AUDIO_KINDS = ("speech", "nonspeech", "silent")
# truth.csv's extra columns: load_digits index of the picture; the recording heard (file name) and its speaker
# (empty for a non-speech or silent clip); what the sound is (AUDIO_KINDS); the event's span in seconds
# (3 decimals; empty when silent).
DIGIT_COLUMNS = ("image", "recording", "speaker", "audio_kind", "event_start_s", "event_end_s")
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
_INK_FROM, _INK_TO = 0.1, 0.55  # image grey level (0-1) where the ink's coverage starts and becomes full
_ASSIGN_STREAM = (0, 0xD161)
_KIND_STREAM = (0, 0xD162)
_PLAN_STREAM = 0xD163


@dataclass(frozen=True)
class Recording:
    """One FSDD recording: its path, the spoken digit, speaker, take, sample rate and length in samples."""

    path: str
    digit: int
    speaker: str
    take: int
    rate: int
    samples: int

    def samples_at(self, rate: int) -> int:
        """Its length in samples resampled to ``rate`` (resample_audio's count)."""
        return int(round(self.samples * rate / self.rate))


@dataclass(frozen=True)
class DigitTask:
    """Everything a worker needs to render and write one clip (:func:`render_task`). ``kind`` in AUDIO_KINDS;
    ``sound``: the recording's path (speech) or the procedural class (nonspeech); the event covers samples
    [start, start + length) of the 16-kHz track."""

    path: str
    seed: int
    index: int
    image: np.ndarray  # (8, 8) grey levels 0-16
    frames: int
    kind: str
    sound: str
    start: int
    length: int
    media: MediaFormat


def fsdd_root(path: str | Path | None = None) -> Path:
    """The FSDD folder: ``path``, else $AUDITOR_FSDD, else ``<repository root>/../shared/data/fsdd``."""
    if path is None:
        path = os.environ.get(FSDD_ENV) or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd"
    return Path(path)


def fsdd_recordings(path: str | Path | None = None) -> list[Recording]:
    """Every ``recordings/{digit}_{speaker}_{take}.wav`` under :func:`fsdd_root` (``path``), sorted by file name.

    Raises UserError naming the folder when it has none, or naming a file that is not 16-bit mono PCM WAV."""
    root = fsdd_root(path)
    folder = root / "recordings"
    files = sorted(p for p in folder.glob("*.wav") if _FSDD_NAME.match(p.name)) if folder.is_dir() else []
    if not files:
        raise UserError(f"{root}: no spoken-digit recordings ({folder}/<digit>_<speaker>_<take>.wav); the digits "
                        "content needs the Free Spoken Digit Dataset there: pass its folder (sample --fsdd DIR) or "
                        f"set {FSDD_ENV}")
    out = []
    for p in files:
        digit, speaker, take = _FSDD_NAME.match(p.name).groups()
        try:
            with wave.open(str(p), "rb") as w:
                if w.getnchannels() != 1 or w.getsampwidth() != 2:
                    raise UserError(f"{p}: expected 16-bit mono PCM, got {w.getnchannels()} channels of "
                                    f"{8 * w.getsampwidth()} bits")
                out.append(Recording(str(p), int(digit), speaker, int(take), w.getframerate(), w.getnframes()))
        except (wave.Error, EOFError) as err:
            raise UserError(f"{p}: not a readable WAV file ({err})") from None
    return out


@functools.cache
def load_images() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float32 grey levels 0-16, digits (1797,) int) of ``sklearn.datasets.load_digits``;
    read-only."""
    from sklearn.datasets import load_digits  # scikit-learn ships the images: nothing is downloaded

    data = load_digits()
    images, digits = data.images.astype(np.float32), data.target.astype(int)
    images.flags.writeable = digits.flags.writeable = False
    return images, digits


def digit_vocabulary(num_classes: int | None = None) -> dict[str, tuple[str, str]]:
    """Class name -> (picture class, sound class) = (name, name) for the first ``num_classes`` (None: 10) of
    DIGIT_CLASSES; UserError unless 1 <= num_classes <= 10."""
    k = len(DIGIT_CLASSES) if num_classes is None else num_classes
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(DIGIT_CLASSES):
        raise UserError(f"num_classes must be in [1, {len(DIGIT_CLASSES)}] for content 'digits', got {num_classes!r}")
    return {c: (c, c) for c in DIGIT_CLASSES[:k]}


def _assign(digits: list[int], pools: dict[int, list], rng: np.random.Generator) -> list:
    """One pool item per clip: the clips of digit d, in clip order, take pools[d] in a random order (one
    permutation per digit, drawn in increasing digit order), cycling through it again only when it is used up."""
    orders = {d: rng.permutation(len(pools[d])) for d in sorted(set(digits))}
    seen: dict[int, int] = {}
    out = []
    for d in digits:
        k = seen.get(d, 0)
        seen[d] = k + 1
        out.append(pools[d][int(orders[d][k % len(pools[d])])])
    return out


def plan_split(seed: int, split: Split, *, clip_seconds: tuple[float, float] | None,
               images: tuple[np.ndarray, np.ndarray], recordings: list[Recording]) -> ContentPlan:
    """The digit clips of ``split`` (see the module docstring): render tasks, audio labels and DIGIT_COLUMNS.

    Raises UserError when a digit of the split has no recording or image in its pool (held out or not)."""
    clip_seconds = clip_seconds or DIGIT_CLIP_SECONDS
    held = split.held_out
    pictures, picture_digits = images
    digits = [DIGIT_CLASSES.index(c) for c in split.labels]
    image_pool = {d: [i for i in np.flatnonzero(picture_digits == d)
                      if (i % HELD_OUT_IMAGE_EVERY == HELD_OUT_IMAGE_EVERY - 1) == held] for d in set(digits)}
    sound_pool = {d: [r for r in recordings if r.digit == d and (r.take < HELD_OUT_TAKES) == held] for d in set(digits)}
    which = "held-out (test)" if held else "training"
    for d in sorted(set(digits)):
        if not sound_pool[d] or not image_pool[d]:
            raise UserError(f"no {which} {'recording' if image_pool[d] else 'image'} of digit {d} "
                            f"(in {Path(recordings[0].path).parent}, {which} recordings are the takes "
                            f"{'<' if held else '>='} {HELD_OUT_TAKES})")
    rng = np.random.default_rng([seed, *_ASSIGN_STREAM, int(held)])
    image_of = _assign(digits, image_pool, rng)
    recording_of = _assign(digits, sound_pool, rng)
    mismatched = [i for i, d in enumerate(split.donors) if d is not None]
    count = int(round(NONSPEECH_SHARE * len(mismatched)))
    kind_rng = np.random.default_rng([seed, *_KIND_STREAM, int(held)])
    nonspeech = set(kind_rng.choice(mismatched, size=count, replace=False).tolist()) if count else set()

    tasks, audio_labels = [], []
    columns: dict[str, list] = {c: [] for c in DIGIT_COLUMNS}
    for i, (name, donor, muted, media) in enumerate(zip(split.names, split.donors, split.muted, split.formats,
                                                        strict=True)):
        u = np.random.default_rng([seed, split.first + i, _PLAN_STREAM]).random(4)  # a fixed number of draws
        frames = max(1, int(round((clip_seconds[0] + u[0] * (clip_seconds[1] - clip_seconds[0])) * FPS)))
        n = frames * SAMPLES_PER_FRAME
        recording = recording_of[i if donor is None else donor]
        if muted:
            kind, sound, length, label = "silent", "", 0, split.labels[i]
        elif i in nonspeech:
            kind, sound = "nonspeech", CLASSES[min(int(u[1] * len(CLASSES)), len(CLASSES) - 1)]
            seconds = NONSPEECH_SECONDS[0] + u[2] * (NONSPEECH_SECONDS[1] - NONSPEECH_SECONDS[0])
            length, label = 2 * int(round(seconds * SAMPLE_RATE / 2)), sound  # even: exact through 8 kHz and back
        else:
            kind, sound, length = "speech", recording.path, recording.samples_at(SAMPLE_RATE)
            label = DIGIT_CLASSES[recording.digit]
        length = min(length, n)
        start = min(int(u[3] * (n - length + 1)), n - length)
        tasks.append(DigitTask(str(split.root / name), seed, split.first + i, pictures[image_of[i]], frames, kind,
                               sound, start, length, media))
        audio_labels.append(label)
        speech = kind == "speech"
        for column, value in zip(DIGIT_COLUMNS, (
                int(image_of[i]), Path(sound).name if speech else None, recording.speaker if speech else None, kind,
                None if muted else round(start / SAMPLE_RATE, 3),
                None if muted else round((start + length) / SAMPLE_RATE, 3)), strict=True):
            columns[column].append(value)
    return ContentPlan(tasks, render_task, audio_labels, columns)


def render_task(task: DigitTask) -> float:
    """Render and write one digit clip (:func:`render_digit_clip`); returns its length in seconds."""
    frames, audio = render_digit_clip(task)
    encode_clip(task.path, frames, audio, task.media)
    return len(audio) / SAMPLE_RATE


def render_digit_clip(task: DigitTask) -> tuple[Iterator[np.ndarray], np.ndarray]:
    """(the task's frames (128, 128, 3) uint8 at 25 fps as a stream, audio (frames * 640,) float32 mono 16 kHz in
    [-1, 1]), from the clip's stream ``default_rng([seed, index])`` (picture and sound each from a child)."""
    vis_rng, aud_rng = np.random.default_rng([task.seed, task.index]).spawn(2)
    frames = _digit_frames(task.image, vis_rng, task.frames)
    n = task.frames * SAMPLES_PER_FRAME
    if task.kind == "silent":
        return frames, np.zeros(n, np.float32)
    audio, level_db = quiet_background(aud_rng, n)
    add_event_sound(audio, task.start, _event_sound(task, aud_rng)[:task.length], aud_rng, level_db)
    return frames, np.clip(audio, -1, 1).astype(np.float32)


def _event_sound(task: DigitTask, rng: np.random.Generator) -> np.ndarray:
    """(>= task.length,) float64: the recording at 16 kHz, or the non-speech sound band-limited through 8 kHz."""
    if task.kind == "speech":
        with wave.open(task.sound, "rb") as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
        return resample_audio(pcm[None], rate, SAMPLE_RATE)[0].astype(np.float64)
    motion = _motion(task.sound, rng, task.length / SAMPLE_RATE)
    sound = _render_audio(motion, rng, task.length)[None]
    narrow = resample_audio(resample_audio(sound, SAMPLE_RATE, SAMPLE_RATE // 2), SAMPLE_RATE // 2, SAMPLE_RATE)
    return narrow[0].astype(np.float64)


def _digit_frames(image: np.ndarray, rng: np.random.Generator, n_frames: int) -> Iterator[np.ndarray]:
    """``n_frames`` (SIZE, SIZE, 3) uint8 frames of ``image`` ((8, 8), 0-16) moving over a background; every draw
    from ``rng`` happens in this call. Frame t: the image's centre at p0 + (p1 - p0) * smoothstep(t / (F - 1)) plus
    a circular wobble, rotated by a0 + sway * sin(...), scale h / 8 * (1 + pulse * sin(...)) px per image pixel;
    the image is upsampled 4x by a cubic spline once, then sampled bilinearly; coverage = clip((v - _INK_FROM) /
    (_INK_TO - _INK_FROM), 0, 1) of its grey level v in [0, 1]."""
    from scipy import ndimage  # a scikit-learn dependency, like load_digits

    bg, bg_lum = _background(rng)
    bg = bg[:SIZE, :SIZE]
    ink = _contrast_color(rng, bg_lum)
    up = 4
    fine = ndimage.zoom(np.pad(image / 16.0, 2), up, order=3, grid_mode=True, mode="grid-constant")
    height = rng.uniform(*DIGIT_HEIGHT)
    half = height / 2
    p0, p1 = rng.uniform(half, SIZE - half, (2, 2))
    wobble, wobble_period, wobble_phase = rng.uniform(0, 6), rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi)
    tilt, sway, sway_period = rng.uniform(-0.25, 0.25), rng.uniform(0, 0.2), rng.uniform(1.5, 4.0)
    pulse, pulse_period = rng.uniform(0, 0.12), rng.uniform(1.0, 3.0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5

    def frames() -> Iterator[np.ndarray]:
        for i in range(n_frames):
            t = i / FPS
            k = i / max(n_frames - 1, 1)
            centre = p0 + (p1 - p0) * k * k * (3 - 2 * k)
            centre = centre + wobble * np.array([np.cos(2 * np.pi * t / wobble_period + wobble_phase),
                                                 np.sin(2 * np.pi * t / wobble_period + wobble_phase)])
            angle = tilt + sway * np.sin(2 * np.pi * t / sway_period)
            scale = height / 8 * (1 + pulse * np.sin(2 * np.pi * t / pulse_period))
            c, s = np.cos(angle), np.sin(angle)
            dx, dy = xx - centre[0], yy - centre[1]
            # frame pixel -> image coordinates (0..8 across the image, +2 for the padding), then fine-grid indices
            col = (c * dx + s * dy) / scale + 4 + 2
            row = (-s * dx + c * dy) / scale + 4 + 2
            v = ndimage.map_coordinates(fine, [row * up - 0.5, col * up - 0.5], order=1, mode="constant", cval=0.0)
            alpha = np.clip((v - _INK_FROM) / (_INK_TO - _INK_FROM), 0.0, 1.0).astype(np.float32)[..., None]
            yield np.clip((bg + alpha * (ink - bg)) * 255 + 0.5, 0, 255).astype(np.uint8)

    return frames()
