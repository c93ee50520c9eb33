"""Cached arrays -> network inputs for a batch of clip indices (method.md, "Inputs").

Frames: T of the cached frames (one per segment, jittered in training), random horizontal flip and a random
shift of up to S/8 pixels (reflect-padded) in training, ImageNet normalisation -> (B, T, 3, S, S) float32.
Sound: a window of ``audio_frames`` log-mel frames (random in training, centred otherwise) -> (B, 1, 64, L),
standardised with a fixed offset/scale so values are O(1).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from auditor.data.cache import ClipArrays
from auditor.data.features import crop_or_pad_time, frame_indices

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)
# log-mel values span about [-14, 5]; this affine map brings them to roughly zero mean, unit scale.
MEL_OFFSET = -6.0
MEL_SCALE = 4.0


def batch_inputs(arrays: ClipArrays, idx: np.ndarray, num_frames: int, audio_frames: int,
                 rng: np.random.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames (B, T, 3, S, S) float32, mel (B, 1, 64, L) float32) for clips ``idx``; ``rng`` None = evaluation."""
    cached = arrays.frames.shape[1]
    picks = np.stack([frame_indices(cached, num_frames, rng) for _ in idx])  # (B, T)
    frames = torch.from_numpy(arrays.frames[idx[:, None], picks])  # (B, T, S, S, 3) uint8
    frames = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)  # (B, T, 3, S, S)
    if rng is not None:
        frames = _augment_frames(frames, rng)
    frames = (frames - IMAGENET_MEAN) / IMAGENET_STD

    mels = []
    for i in idx:
        valid = arrays.mel[i, :, : max(1, int(arrays.mel_lengths[i]))]
        mels.append(crop_or_pad_time(valid, audio_frames, rng))
    mel = torch.from_numpy(np.stack(mels).astype(np.float32))[:, None]  # (B, 1, 64, L)
    if rng is not None:  # loudness jitter: a gain of +-6 dB is a shift of +-1.4 in natural-log power
        mel = mel + torch.from_numpy(rng.uniform(-1.4, 1.4, size=(len(idx), 1, 1, 1)).astype(np.float32))
    return frames.contiguous(), ((mel - MEL_OFFSET) / MEL_SCALE).contiguous()


def _augment_frames(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Per-clip horizontal flip and a shift of up to S/8 px (same for all T frames of a clip)."""
    b, t, c, s, _ = frames.shape
    flip = torch.from_numpy(rng.random(b) < 0.5)
    frames = torch.where(flip.view(b, 1, 1, 1, 1), frames.flip(-1), frames)
    pad = max(1, s // 8)
    padded = F.pad(frames.reshape(b, t * c, s, s), (pad, pad, pad, pad), mode="reflect")
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, b))
    out = torch.stack([padded[i, :, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(b)])
    return out.reshape(b, t, c, s, s)
