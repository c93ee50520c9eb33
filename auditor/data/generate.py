"""The sample generator's entry: :func:`generate_dataset` renders a data set of one content (:data:`CONTENTS`) with
injected label noise, swapped and muted sound tracks, media formats and a clean test split, and writes labels.csv
and truth.csv.

What a clip shows and sounds like is a content's planner: :func:`auditor.data.synth.plan_split` (the procedural
classes) or :func:`auditor.data.digits.plan_split` (real handwritten and spoken digits); both render through
:mod:`auditor.data.synth`'s scenes, sounds and encoders. This module sits above the two, so neither imports the
other's caller.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from auditor.data import digits
from auditor.data.noise import (
    NOISE_TYPES,
    choose_label_noise,
    choose_mismatch,
    default_confusion_map,
    mismatch_rng,
    muted_rng,
    noise_rng,
    write_tables,
)
from auditor.data.synth import (
    CLASSES,
    CONFUSABLE,
    EVENT_SECONDS,
    MEDIA,
    MEDIA_COLUMNS,
    UNIFORM_MEDIA,
    MediaFormat,
    Split,
    check_clip_seconds,
    choose_muted,
    class_sizes,
    class_vocabulary,
    media_format,
    plan_split,
)
from auditor.errors import UserError

_ORDER_STREAM = (0, 0x0A10)
_TEST_ORDER_STREAM = (0, 0x0A13)


# generate_dataset(content=...): what the clips show and sound like. "procedural": this module's classes;
# "digits": real handwritten digits on screen and real spoken digits in the sound (auditor.data.digits).
CONTENTS = ("procedural", "digits")


def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _class_labels(n: int, rng: np.random.Generator, imbalance: float = 1.0, classes: list[str] = CLASSES) -> list[str]:
    """``n`` labels in random order: round-robin over ``classes`` (balanced), or :func:`class_sizes`."""
    if imbalance == 1.0:
        labels = [classes[i % len(classes)] for i in range(n)]
    else:
        labels = [c for c, size in class_sizes(n, imbalance, rng, classes).items() for _ in range(size)]
    order = rng.permutation(n)
    return [labels[i] for i in order]


def _run_job(job: tuple[Callable[[Any], float], Any]) -> float:
    render, task = job
    return render(task)


def generate_dataset(out_dir: str | Path, *, clips: int = 240, label_noise: float = 0.0,
                     noise_type: str = "symmetric", mismatch: float = 0.0, seed: int = 0,
                     test_clips: int = 0, imbalance: float = 1.0, muted: float = 0.0, num_classes: int | None = None,
                     clip_seconds: tuple[float, float] | None = None,
                     event_seconds: tuple[float, float] | None = None, media: str = "uniform",
                     content: str = "procedural", real_data: str | Path | None = None,
                     workers: int | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Render the sample data set into ``out_dir``: procedural, or real content with ``content="digits"``.

    Writes ``out_dir/clips/clip_NNNNN.mp4`` (H.264 yuv420p 128x128 at 25 fps + AAC 16 kHz mono, 2-5 s unless
    ``clip_seconds``; names do not reveal the class), ``out_dir/labels.csv`` (``clip,label``, clip relative to ``out_dir``) and
    ``out_dir/truth.csv`` (``clip,true_label,given_label,label_is_noisy,audio_label,is_mismatched``, 0/1 ints).
    Classes are balanced (round-robin, shuffled). ``label_noise`` in [0, 1) flips each given label with that
    probability (``noise_type`` "symmetric": to a uniform other class; "asymmetric": to ``CONFUSABLE[true]``);
    ``mismatch`` in [0, 1]: exactly round(mismatch * clips) clips get the sound of a uniformly drawn other class
    (``true_label`` = the picture's class, ``audio_label`` = the sound's). ``imbalance`` >= 1: class sizes fall
    geometrically from the largest to the smallest class by this ratio (:func:`class_sizes`; 1 = balanced round-robin).
    ``muted`` in [0, 1): exactly round(muted * clips) clips that are not mismatched keep a sound track of digital
    silence (truth.csv then gets an ``is_muted`` column). ``num_classes`` in [1, 64] (None: 8): the first of
    :func:`class_vocabulary` (beyond 8, pictures combined with other classes' sounds; asymmetric noise then maps
    each class to the next in sorted order, and a mismatched clip gets a sound of another sound class). ``test_clips``
    > 0 adds a clean split in
    ``out_dir/test/`` (clips/, labels.csv, truth.csv). Same arguments -> the same files, whatever
    ``workers`` (processes; default ``os.cpu_count()``): byte-identical but for synth's note on rescaled
    mixed-media frames. ``progress(done, total)`` is called after each clip.

    ``clip_seconds`` = (A, B), 0 < A <= B <= MAX_CLIP_SECONDS (600), makes long clips (test split included): each clip
    lasts U(A, B) seconds rounded to whole frames, its picture shows the class's motion throughout, and its sound
    track is quiet coloured background noise (-48 to -42 dBFS RMS) with the sound of its ``audio_label`` audible
    only in one event of U(event_seconds) seconds (default EVENT_SECONDS, 2-3 s; at most the clip) that starts at
    U(0, length - event) seconds (:func:`event_window`, :func:`render_event_clip`); ``event_seconds`` = (a, b),
    0 < a <= b, needs ``clip_seconds``. truth.csv then ends with ``event_start_s,event_end_s``
    (seconds, 3 decimals, 0 <= start < end <= the clip's length; empty for a muted clip, which stays digital
    silence throughout). None (default): 2-5 s clips whose sound spans the clip, and no event columns.

    ``media`` "uniform" (default): every clip as above, ``clip_NNNNN.mp4``. "mixed": the media real collections
    mix. Each clip (test split included) is written in its own :class:`MediaFormat` drawn by :func:`media_format`
    from a stream of its own (``default_rng([seed, index, _MEDIA_STREAM])``), so its picture content, labels, sound,
    mismatch, muting and event are those of the uniform clip of the same arguments: a container ``clip_NNNNN.mp4``
    / ``.mov`` (H.264 + AAC), ``.mkv`` (H.264 + AAC or Opus) or ``.webm`` (VP8 or VP9 + Opus or Vorbis); the
    128x128 picture scaled to 160x120, 128x128, 176x144, 96x128 or 192x108 (aspect ratio not kept); 25, 30, 24 or
    15 fps (frame k = the rendered 25-fps frame nearest k / fps s, the clip's duration kept within half a frame);
    16, 44.1 or 48 kHz (Opus: 48 kHz), mono or stereo (the same signal on both channels, or one up to 3 dB
    quieter) resampled from the rendered 16-kHz sound (a muted clip stays digital silence). labels.csv and
    truth.csv name those files, and truth.csv ends with ``container,width,height,fps,sample_rate,channels,
    video_codec,audio_codec`` (container = the suffix without the dot, codecs as FFmpeg's decoders name them:
    h264, vp8, vp9, aac, opus, vorbis). Byte-identical files for the same arguments, as for "uniform".

    ``content`` (:data:`CONTENTS`) "procedural" (default): the classes above. "digits": real content
    (:mod:`auditor.data.digits`): the classes "zero".."nine" (``num_classes`` K <= 10: the first K), each clip a
    real handwritten digit moving on screen with a real recording of a spoken digit at a random place in its sound
    track, read from the Free Spoken Digit Dataset folder ``real_data`` (None: :func:`auditor.data.digits.fsdd_root`'s
    default); ``clip_seconds`` then sets the clips' length (default digits.DIGIT_CLIP_SECONDS), ``event_seconds``
    is refused (the event is the recording), a quarter of the mismatched clips get a non-speech sound, and truth.csv
    gets digits.DIGIT_COLUMNS before the media columns. The noise, mismatch, muting, media and test-split rules
    above hold alike. ``real_data`` is refused for "procedural".

    Returns ``{"clips", "classes" (count), "noisy", "mismatched", "muted", "test_clips", "seconds" (wall time)}``.
    Raises ``ValueError`` (``UserError``) naming a bad argument.
    """
    started = time.perf_counter()
    clips = _check_int("clips", clips, 1)
    test_clips = _check_int("test_clips", test_clips, 0)
    seed = _check_int("seed", seed, 0)
    if workers is not None:
        workers = _check_int("workers", workers, 1)
    if not (isinstance(imbalance, (int, float)) and 1.0 <= imbalance <= 1000.0):
        raise UserError(f"imbalance must be a ratio in [1, 1000], got {imbalance!r}")
    if not (isinstance(muted, (int, float)) and 0.0 <= muted < 1.0):
        raise UserError(f"muted must be a fraction in [0, 1), got {muted!r}")
    if noise_type not in NOISE_TYPES:
        raise UserError(f"unknown noise type {noise_type!r}; valid: {', '.join(NOISE_TYPES)}")
    if clip_seconds is not None:
        clip_seconds = check_clip_seconds(clip_seconds)
    if event_seconds is not None and content == "digits":
        raise UserError("event_seconds is not for content 'digits': its sound event is the spoken recording")
    if event_seconds is not None and clip_seconds is None:
        raise UserError("event_seconds needs clip_seconds: only long clips have a single sound event")
    event_seconds = EVENT_SECONDS if event_seconds is None else check_clip_seconds(event_seconds, "event_seconds")
    long_clips = None if clip_seconds is None else (clip_seconds, event_seconds)
    if media not in MEDIA:
        raise UserError(f"unknown media {media!r}; valid: {', '.join(MEDIA)}")
    if content not in CONTENTS:
        raise UserError(f"unknown content {content!r}; valid: {', '.join(CONTENTS)}")
    out_dir = Path(out_dir)

    if content == "digits":
        vocabulary = digits.digit_vocabulary(num_classes)
        planner = functools.partial(digits.plan_split, clip_seconds=clip_seconds,
                                    images=digits.load_images(), recordings=digits.fsdd_recordings(real_data))
        confusable = digits.DIGIT_CONFUSABLE if list(vocabulary) == digits.DIGIT_CLASSES else None
    else:
        if real_data is not None:
            raise UserError("real_data (the spoken-digit recordings) is only for content 'digits'")
        vocabulary = class_vocabulary(len(CLASSES) if num_classes is None else _check_int("num_classes",
                                                                                          num_classes, 1))
        planner = functools.partial(plan_split, vocabulary=vocabulary, long_clips=long_clips)
        confusable = CONFUSABLE if list(vocabulary) == CLASSES else None
    classes = list(vocabulary)
    confusable = confusable or default_confusion_map(classes)
    true_labels = _class_labels(clips, np.random.default_rng([seed, *_ORDER_STREAM]), float(imbalance), classes)
    given = choose_label_noise(true_labels, classes, label_noise, noise_type, noise_rng(seed), confusable)
    donors = choose_mismatch([vocabulary[c][1] for c in true_labels], mismatch, mismatch_rng(seed))
    muted_clips = choose_muted(donors, muted, muted_rng(seed))
    formats = [media_format(seed, i) if media == "mixed" else UNIFORM_MEDIA for i in range(clips + test_clips)]
    names = [f"clips/clip_{i:05d}.{formats[i].container}" for i in range(clips)]

    test_labels = _class_labels(test_clips, np.random.default_rng([seed, *_TEST_ORDER_STREAM]), 1.0, classes)
    test_names = [f"clips/clip_{j:05d}.{formats[clips + j].container}" for j in range(test_clips)]
    splits = [Split(out_dir, 0, names, true_labels, donors, muted_clips, formats[:clips], False)]
    if test_clips:
        splits.append(Split(out_dir / "test", clips, test_names, test_labels, [None] * test_clips,
                            [False] * test_clips, formats[clips:], True))
    plans = [planner(seed, split) for split in splits]

    for split in splits:
        (split.root / "clips").mkdir(parents=True, exist_ok=True)
    _run_jobs([(plan.render, task) for plan in plans for task in plan.tasks], workers, progress)

    mixed = media == "mixed"
    given_of = (given, test_labels)  # the test split is clean
    muted_of = (muted_clips if muted else None, None)  # is_muted: only a training split that has muted clips
    for k, (split, plan) in enumerate(zip(splits, plans, strict=True)):
        _write_tables(split.root, split.names, split.labels, given_of[k], plan.audio_labels, muted_of[k],
                      plan.columns, split.formats if mixed else None)
    return {
        "clips": clips,
        "classes": len(classes),
        "noisy": int(sum(g != t for g, t in zip(given, true_labels, strict=True))),
        "mismatched": int(sum(d is not None for d in donors)),
        "muted": int(sum(muted_clips)),
        "test_clips": test_clips,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _run_jobs(jobs: list[tuple[Callable[[Any], float], Any]], workers: int | None,
              progress: Callable[[int, int], None] | None) -> None:
    """Run every (render, task) job, in ``workers`` processes (default os.cpu_count(); one: in this process),
    calling ``progress(done, total)`` after each."""
    total = len(jobs)
    workers = min(workers or os.cpu_count() or 1, total)
    if workers <= 1:
        for done, job in enumerate(jobs, 1):
            _run_job(job)
            if progress:
                progress(done, total)
        return
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                      else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for done, _ in enumerate(pool.map(_run_job, jobs, chunksize=max(1, min(8, total // (4 * workers)))), 1):
            if progress:
                progress(done, total)


def _write_tables(root: Path, names: list[str], true_labels: list[str], given: list[str],
                  audio_labels: list[str], muted: list[bool] | None = None, columns: dict[str, list] | None = None,
                  media: list[MediaFormat] | None = None) -> None:
    """labels.csv and truth.csv; ``columns`` (name -> one value per clip, None written empty) follow is_muted, then
    ``media`` (None: no media columns) adds MEDIA_COLUMNS."""
    extra = dict(columns or {})
    if media is not None:
        extra |= {column: [f.truth_columns()[column] for f in media] for column in MEDIA_COLUMNS}
    write_tables(root, names, true_labels, given, audio_labels,
                 [int(a != t) for a, t in zip(audio_labels, true_labels, strict=True)], muted, extra)
