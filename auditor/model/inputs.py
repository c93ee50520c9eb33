"""Cached arrays -> network inputs for a batch of clip indices (method.md, "Inputs").

Frames: T of the cached frames (one per segment, jittered in training), a random shift of up to S/8 pixels
(reflect-padded) and, where the run mirrors (TrainConfig.flip_frames), a random horizontal flip in training,
ImageNet normalisation -> (B, T, 3, S, S) float32.
Sound: a crop of ``audio_frames`` log-mel frames placed by loudness (:func:`loud_crop_offset`: in training drawn
with probability proportional to the crop's amplitude, otherwise the loudest crop; a clip's sound event may be
anywhere in it, and a short one is missed by a crop placed blindly; a clip shorter than the crop is padded with
silence at a random place in training, centred in evaluation) -> (B, 1, 64, L), standardised with a fixed
offset/scale so values are O(1).
A batch is made in two steps: :func:`draw_batch` draws every random choice (cheap, in order, from one generator),
:func:`make_inputs` reads the clips and applies them (the work a DataLoader worker does, model/loader.py).
A clip cut into aligned windows (data/decode.window_spans) gives one window per draw in training (frames and sound
from the same time span), drawn with :func:`window_draw_weights`; evaluation reads the windows as items
(model/estimate.evaluate).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from auditor.data.cache import ClipArrays
from auditor.data.features import frame_indices, window_at, window_offset

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)
# log-mel values span about [-14, 5]; this affine map brings them to roughly zero mean, unit scale.
MEL_OFFSET = -6.0
MEL_SCALE = 4.0
# Loudness jitter: a gain of +-6 dB is a shift of +-1.4 in natural-log power.
GAIN_LOG_POWER = 1.4


@dataclass
class Draws:
    """The random choices for a batch of B clips: frame picks (B, T), where the sound crop goes (B,) (the u of
    :func:`loud_crop_offset`: uniform in [0, 1) in training, NaN = the loudest crop in evaluation), and in training a
    horizontal flip (B,) bool, a shift (2, B) (dy, dx) in [0, 2 pad] and a gain (B,) float32 in log power; None in
    evaluation (but the flips of :meth:`mirrored`)."""

    picks: np.ndarray
    crop: np.ndarray
    flip: np.ndarray | None = None
    shift: np.ndarray | None = None
    gain: np.ndarray | None = None
    windows: np.ndarray | None = None  # (B,) the window of each clip, when the data set has clips of several

    def without_flips(self) -> Draws:
        """The same choices with no clip mirrored (an epoch that does not mirror); the random stream is unchanged."""
        if self.flip is None:
            return self
        return dataclasses.replace(self, flip=np.zeros_like(self.flip))

    def mirrored(self) -> Draws:
        """These choices with every clip's frames mirrored (and no shift where none was drawn): for evaluation
        choices, the clips' mirror images as the mirror test (model/mirror_test.py) reads them."""
        return dataclasses.replace(self, flip=np.ones(len(self.picks), bool))

    def __getitem__(self, rows: slice) -> Draws:
        """The choices of the clips ``rows`` of the batch (a rank's part)."""
        windows = None if self.windows is None else self.windows[rows]
        if self.flip is None:
            return Draws(self.picks[rows], self.crop[rows], windows=windows)
        return Draws(self.picks[rows], self.crop[rows], self.flip[rows], self.shift[:, rows], self.gain[rows],
                     windows)


def window_draw_weights(levels: np.ndarray) -> np.ndarray:
    """(B, W) probabilities of drawing each window of B clips from their levels (ClipArrays.window_levels: dBFS,
    NaN = no sound track, -inf = no such window): proportional to the window's RMS amplitude 10^(dBFS/20), so the
    loudest part of a long clip's track (most likely its own sound event) is drawn most and equally loud windows
    equally; uniform over a clip's windows when it has no sound track."""
    finite = np.isfinite(levels)
    amplitude = np.where(finite, 10.0 ** (np.where(finite, levels, 0.0) / 20.0), 0.0)
    exists = (levels != -np.inf) | (np.arange(levels.shape[1]) == 0)
    none = amplitude.sum(1, keepdims=True) <= 0
    weights = np.where(none, exists, amplitude).astype(np.float64)
    return weights / weights.sum(1, keepdims=True)


def batch_inputs(arrays: ClipArrays, idx: np.ndarray, num_frames: int, audio_frames: int,
                 rng: np.random.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames (B, T, 3, S, S) float32, mel (B, 1, 64, L) float32) for clips ``idx``; ``rng`` None = evaluation."""
    return make_inputs(arrays, idx, draw_batch(arrays, idx, num_frames, audio_frames, rng), audio_frames)


def draw_batch(arrays: ClipArrays, idx: np.ndarray, num_frames: int, audio_frames: int,
               rng: np.random.Generator | None) -> Draws:
    """Every random choice of the batch ``idx``, drawn from ``rng`` in a fixed order (frame picks clip by clip,
    flips, shifts, with several windows per clip a window per clip (the first in evaluation), a uniform per clip
    for :func:`loud_crop_offset` (NaN = the loudest crop without ``rng``), gains); reads no clip's pixels or
    sound."""
    cached, size = arrays.frames.shape[1], arrays.frames.shape[2]
    picks = np.stack([frame_indices(cached, num_frames, rng) for _ in idx])  # (B, T)
    flip = shift = gain = windows = None
    if rng is not None:
        flip = rng.random(len(idx)) < 0.5
        shift = rng.integers(0, 2 * _shift_pad(size) + 1, size=(2, len(idx)))
    if arrays.windows is not None:  # the window, then where in it the sound crop goes (read with the mel)
        windows = np.zeros(len(idx), np.int64)
        if rng is not None:
            cumulative = np.cumsum(window_draw_weights(arrays.window_levels(idx)), axis=1)
            windows = np.minimum((rng.random(len(idx))[:, None] > cumulative).sum(1), arrays.window_counts()[idx] - 1)
    crop = rng.random(len(idx)) if rng is not None else np.full(len(idx), np.nan)
    if rng is not None:
        gain = rng.uniform(-GAIN_LOG_POWER, GAIN_LOG_POWER, size=len(idx)).astype(np.float32)
    return Draws(picks, crop, flip, shift, gain, windows)


def loud_crop_offset(mel: np.ndarray, length: int, u: float) -> int:
    """Where a ``length``-frame crop of the log-mel window ``mel`` (n_mels, n) goes: for u in [0, 1) drawn with
    probability proportional to the crop's RMS amplitude sqrt(sum_t sum_f exp(mel)) (the event of a long clip's
    window is heard most), for u NaN the loudest crop. When n <= length the spectrogram is padded into the crop:
    at offset floor(u·(length − n + 1)) (uniform over every placement, so a short clip's sound is not always at the
    same place and the encoder learns to hear it wherever it is), centred for u NaN."""
    n = mel.shape[-1]
    if n <= length:
        return window_offset(n, length, None) if np.isnan(u) else min(int(u * (length - n + 1)), length - n)
    power = np.exp(mel.astype(np.float64)).sum(0)
    crops = np.sqrt(np.convolve(power, np.ones(length), mode="valid"))  # (n - length + 1,)
    if np.isnan(u):
        return int(crops.argmax())
    cumulative = np.cumsum(crops) / crops.sum()
    return int(min(np.searchsorted(cumulative, u, side="right"), n - length))


def make_inputs(arrays: ClipArrays, idx: np.ndarray, draws: Draws, audio_frames: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Read clips ``idx`` and apply ``draws``: (frames (B, T, 3, S, S) float32, mel (B, 1, 64, L) float32)."""
    source = arrays
    if draws.windows is not None:
        arrays, idx = arrays.at_windows(idx, draws.windows), np.arange(len(idx))
    frames = torch.from_numpy(arrays.read_frames(idx, draws.picks))  # (B, T, S, S, 3) uint8
    frames = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)  # (B, T, 3, S, S)
    if draws.flip is not None:
        frames = _augment_frames(frames, draws.flip, draws.shift)
    frames = (frames - IMAGENET_MEAN) / IMAGENET_STD

    mels = []
    for j, i in enumerate(idx):
        mel = arrays.read_mel(i)
        mels.append(window_at(mel, audio_frames, loud_crop_offset(mel, audio_frames, draws.crop[j])))
    if arrays is not source:  # count the view's reads where the store's pages are handed back
        source._touched(arrays._read)
    mel = torch.from_numpy(np.stack(mels).astype(np.float32))[:, None]  # (B, 1, 64, L)
    if draws.gain is not None:
        mel = mel + torch.from_numpy(draws.gain).view(-1, 1, 1, 1)
    return frames.contiguous(), ((mel - MEL_OFFSET) / MEL_SCALE).contiguous()


def _shift_pad(size: int) -> int:
    return max(1, size // 8)


def _augment_frames(frames: torch.Tensor, flip: np.ndarray, shift: np.ndarray | None) -> torch.Tensor:
    """Per-clip horizontal flip and a shift of up to S/8 px (same for all T frames of a clip; none without
    ``shift``)."""
    b, t, c, s, _ = frames.shape
    frames = torch.where(torch.from_numpy(flip).view(b, 1, 1, 1, 1), frames.flip(-1), frames)
    if shift is None:
        return frames
    pad = _shift_pad(s)
    padded = F.pad(frames.reshape(b, t * c, s, s), (pad, pad, pad, pad), mode="reflect")
    dy, dx = shift
    out = torch.stack([padded[i, :, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(b)])
    return out.reshape(b, t, c, s, s)
