"""Model inputs from decoded media (method.md, "Inputs").

* :func:`log_mel` — mono 16 kHz audio -> log-mel spectrogram (64 mel bins, 25 ms window, 10 ms hop),
  ``log(mel + LOG_FLOOR)``, shape (n_mels, 1 + n_samples // hop).
* :func:`crop_or_pad_time` — a fixed-length window of a spectrogram (random in training, centred otherwise),
  padded with the log of silence.
* :func:`frame_indices` — which of the cached frames form the T input frames (segment jitter in training).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio

N_MELS = 64
WIN_SECONDS = 0.025
HOP_SECONDS = 0.010
# Added before the log so silence maps to a finite value: log(1e-6) = -13.8.
LOG_FLOOR = 1e-6
SILENCE = math.log(LOG_FLOOR)

# A sound track is silent (muted upload, dead microphone) when even its loudest LEVEL_PERCENTILE % of
# LEVEL_WINDOW_SECONDS windows stays below SILENT_BELOW_DBFS (RMS, dB relative to full scale). Quiet real recordings
# (room tone, distant speech) measure -50 to -30 dBFS there; digital silence and dither sit at -90 and below.
SILENT_BELOW_DBFS = -60.0
LEVEL_WINDOW_SECONDS = 0.1
LEVEL_PERCENTILE = 99.0
_DBFS_FLOOR = -200.0


def audio_level_dbfs(audio: np.ndarray, sample_rate: int = 16_000) -> float:
    """The level of a sound track for the silence test: the LEVEL_PERCENTILE-th percentile over windows of
    LEVEL_WINDOW_SECONDS of 20 log10(RMS), in dBFS (full scale = 1.0); -200 for digital silence or no samples."""
    audio = np.asarray(audio, dtype=np.float64)
    win = max(1, int(round(LEVEL_WINDOW_SECONDS * sample_rate)))
    n = audio.size // win
    if n == 0:
        frames = audio[None, :] if audio.size else np.zeros((1, 1))
    else:
        frames = audio[: n * win].reshape(n, win)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    level = np.percentile(rms, LEVEL_PERCENTILE)
    return float(max(_DBFS_FLOOR, 20 * math.log10(level))) if level > 0 else _DBFS_FLOOR


def is_silent(audio: np.ndarray, sample_rate: int = 16_000) -> bool:
    """True when :func:`audio_level_dbfs` is below SILENT_BELOW_DBFS."""
    return audio_level_dbfs(audio, sample_rate) < SILENT_BELOW_DBFS


_mel_cache: dict[int, torchaudio.transforms.MelSpectrogram] = {}


def _mel_transform(sample_rate: int) -> torchaudio.transforms.MelSpectrogram:
    if sample_rate not in _mel_cache:
        win = int(round(WIN_SECONDS * sample_rate))
        _mel_cache[sample_rate] = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=win, win_length=win, hop_length=int(round(HOP_SECONDS * sample_rate)),
            n_mels=N_MELS, power=2.0,
        )
    return _mel_cache[sample_rate]


def log_mel(audio: np.ndarray, sample_rate: int = 16_000) -> np.ndarray:
    """(n,) float audio -> (N_MELS, 1 + n // hop) float32 log-mel power spectrogram."""
    if audio.ndim != 1:
        raise ValueError(f"log_mel expects mono audio of shape (n,), got {audio.shape}")
    wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    if wave.numel() < 2:
        wave = torch.zeros(int(sample_rate * HOP_SECONDS) * 2)
    with torch.no_grad():
        mel = _mel_transform(sample_rate)(wave)
    return torch.log(mel + LOG_FLOOR).numpy().astype(np.float32)


def crop_or_pad_time(mel: np.ndarray, length: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """(n_mels, L) -> (n_mels, length): a random window if ``rng`` is given, else the centre; pads with SILENCE."""
    return window_at(mel, length, window_offset(mel.shape[-1], length, rng))


def window_offset(n: int, length: int, rng: np.random.Generator | None = None) -> int:
    """Where the ``length``-frame window of an ``n``-frame spectrogram goes: its start in the spectrogram when
    n >= length, else the spectrogram's start in the window. Random (one draw of ``rng``) or centred."""
    span = abs(n - length)
    return int(rng.integers(0, span + 1)) if rng is not None else span // 2


def window_at(mel: np.ndarray, length: int, offset: int) -> np.ndarray:
    """(n_mels, n) -> (n_mels, length) at a :func:`window_offset`, padded with SILENCE."""
    n = mel.shape[-1]
    if n >= length:
        return mel[..., offset:offset + length]
    out = np.full(mel.shape[:-1] + (length,), SILENCE, dtype=mel.dtype)
    out[..., offset:offset + n] = mel
    return out


def frame_indices(cached: int, wanted: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pick ``wanted`` of ``cached`` evenly sampled frames: one per equal segment, random within the segment in
    training (``rng`` given), the segment's middle otherwise. Returns (wanted,) int indices, non-decreasing."""
    edges = np.linspace(0, cached, wanted + 1)
    lo = np.floor(edges[:-1]).astype(int)
    hi = np.maximum(lo + 1, np.floor(edges[1:]).astype(int))
    if rng is None:
        return np.minimum((lo + hi) // 2, cached - 1)
    return np.minimum(rng.integers(lo, hi), cached - 1)
