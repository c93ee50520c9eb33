"""A tiny data set for the features path: labels.csv over empty .mp4 files (the manifest checks only that they
exist) and a features file of Gaussian class clusters, with planted wrong labels and swapped sounds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class FeatureSet:
    data: Path
    features: Path
    wrong_label: np.ndarray  # (N,) bool: the given label is not the clip's class
    swapped: np.ndarray  # (N,) bool: the audio vector is another class's


def make_feature_set(root: Path, *, n: int = 240, classes: int = 4, dims: tuple[int, int] = (24, 16),
                     label_noise: float = 0.15, mismatch: float = 0.15, seed: int = 0, suffix: str = ".parquet",
                     spread: float = 0.5, windows: int = 0, silent: int = 0) -> FeatureSet:
    """``n`` clips of ``classes`` classes in ``root``/data: visual and audio vectors = the class's centre (unit
    Gaussian in D_v, D_a) + N(0, spread^2) noise; a share ``label_noise`` of the labels flipped to another class,
    a share ``mismatch`` of the audio vectors drawn from another class's centre. The first ``windows`` clips get
    a second row (window 1: new noise around the same centres, spans 0-10 s and 10-20 s); the last ``silent``
    clips an all-NaN audio vector (no sound)."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    (data / "clips").mkdir(parents=True, exist_ok=True)
    truth = np.arange(n) % classes
    centres_v, centres_a = rng.normal(size=(classes, dims[0])), rng.normal(size=(classes, dims[1]))
    wrong = rng.random(n) < label_noise
    swapped = rng.random(n) < mismatch
    other = (truth + rng.integers(1, classes, size=n)) % classes
    given = np.where(wrong, other, truth)
    audio_class = np.where(swapped, (truth + rng.integers(1, classes, size=n)) % classes, truth)
    visual = centres_v[truth] + spread * rng.normal(size=(n, dims[0]))
    audio = centres_a[audio_class] + spread * rng.normal(size=(n, dims[1]))
    audio[n - silent:] = np.nan
    swapped[n - silent:] = False
    clips = [f"clips/c{i:04d}.mp4" for i in range(n)]
    for c in clips:
        (data / c).touch()
    pd.DataFrame({"clip": clips, "label": [f"class{k}" for k in given]}).to_csv(data / "labels.csv", index=False)
    path = root / f"features{suffix}"
    second = np.arange(windows)
    extra = {"start_s": np.r_[np.zeros(n), np.full(windows, 10.0)], "end_s": np.r_[np.full(n, 10.0),
                                                                                  np.full(windows, 20.0)]}
    write_features(path, clips + [clips[i] for i in second],
                   np.r_[visual, centres_v[truth[second]] + spread * rng.normal(size=(windows, dims[0]))],
                   np.r_[audio, centres_a[audio_class[second]] + spread * rng.normal(size=(windows, dims[1]))],
                   **(extra if windows else {}))
    return FeatureSet(data, path, wrong, swapped)


def write_features(path: Path, clips: list[str], visual: np.ndarray, audio: np.ndarray, **extra) -> None:
    """A features file in the format of ``path``'s suffix (.parquet: list columns; .npz: arrays)."""
    if path.suffix == ".npz":
        np.savez(path, clip=np.asarray(clips, dtype=str), visual=visual.astype(np.float32),
                 audio=audio.astype(np.float32), **extra)
    else:
        pd.DataFrame({"clip": clips, "visual": list(visual.astype(np.float32)),
                      "audio": list(audio.astype(np.float32)), **extra}).to_parquet(path, index=False)
