"""Noise protocols (method.md "Noise protocols"): which labels flip, which sound tracks are swapped or muted, and
the truth tables. Shared by the sample generator and ``python -m auditor inject``; light (numpy and pandas only).

- symmetric: with probability ``rate`` a label is replaced by a uniformly drawn *other* class;
- asymmetric: with probability ``rate`` a label is replaced by a fixed confusable class (``confusion_map``);
- mismatch: exactly ``round(rate * N)`` clips get the sound track of a clip of another class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.errors import UserError

NOISE_TYPES = ("symmetric", "asymmetric")
TRUTH_COLUMNS = ["clip", "true_label", "given_label", "label_is_noisy", "audio_label", "is_mismatched"]


def write_tables(root: Path, clips: Sequence[str], true_labels: Sequence[str], given: Sequence[str],
                 audio_labels: Sequence[str], is_mismatched: Sequence[int],
                 is_muted: Sequence[int] | None = None, extra: Mapping[str, Sequence] | None = None) -> None:
    """Write ``root/labels.csv`` (clip,label = the given labels) and ``root/truth.csv`` (TRUTH_COLUMNS, plus
    ``is_muted`` when given: 1 for a clip whose sound track is present but silent, then the ``extra`` columns in
    their order; None / NaN values are written as empty fields)."""
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
    for name, values in (extra or {}).items():
        truth[name] = list(values)
        columns.append(name)
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


def check_rate(name: str, rate: float, *, allow_one: bool) -> float:
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
    rate = check_rate("label noise rate", rate, allow_one=False)
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
    rate = check_rate("mismatch rate", rate, allow_one=True)
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
