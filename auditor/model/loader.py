"""Training and evaluation batches through a ``torch.utils.data.DataLoader``, the same for any number of workers and
of ranks.

The order and every random choice of an epoch are drawn in the main process, in order, by :class:`EpochPlan`
(the DataLoader iterates its sampler there) from two independent streams: perm = default_rng([seed, epoch,
ORDER_STREAM]).permutation(N), and one generator default_rng([seed, epoch, AUGMENT_STREAM]) draws the whole global
batch's choices (the source's draw: inputs.draw_batch, or sources.vector_draws for a features file) on every rank,
step after step. Each rank then keeps its rows, and the workers (or the main process, with 0 workers) read those
clips from the memory-mapped store (or the vectors) and apply the draws (the source's make). Workers inherit the store's memory maps, and
every rank maps the same files: the page cache holds one copy of the data set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from auditor.model.inputs import Draws
from auditor.model.sources import Arrays, source_of

# Batches each worker prepares ahead of the one being trained on.
PREFETCH_BATCHES = 2
# Automatic number of workers per GPU process (at most; fewer where the machine has fewer cores).
GPU_WORKERS = 8
# The last word of the seed of an epoch's two random streams: the clips' order, and their augmentation.
ORDER_STREAM, AUGMENT_STREAM = 0, 1


class EpochPlan(Sampler):
    """Yields, for each of ``steps`` steps of the epoch set by :meth:`set_epoch`, this rank's part of the global
    batch: (clip indices (local_batch,), their Draws). Rank k takes rows k*local_batch .. (k+1)*local_batch - 1
    of each global batch of ``batch_size`` = local_batch * ranks clips; no clip's frames are mirrored unless
    ``flip_frames`` (which the training sets before each epoch: the mirror test may turn it on)."""

    def __init__(self, arrays: Arrays, *, seed: int, batch_size: int, local_batch: int, rank: int, steps: int,
                 num_frames: int, audio_frames: int, flip_frames: bool):
        self.arrays, self.seed, self.batch_size, self.steps = arrays, seed, batch_size, steps
        self.flip_frames = flip_frames
        self.mine = slice(rank * local_batch, (rank + 1) * local_batch)
        self.num_frames, self.audio_frames = num_frames, audio_frames
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        # Deterministic per (seed, epoch): a resumed run draws exactly what the uninterrupted one drew.
        rng = np.random.default_rng([self.seed, self.epoch, AUGMENT_STREAM])
        perm = np.random.default_rng([self.seed, self.epoch, ORDER_STREAM]).permutation(len(self.arrays.clips))
        for step in range(self.steps):
            rows = perm[step * self.batch_size:(step + 1) * self.batch_size]
            draws = source_of(self.arrays).draw(self.arrays, rows, self.num_frames, self.audio_frames, rng)
            if not self.flip_frames:
                draws = draws.without_flips()
            yield rows[self.mine], draws[self.mine]


class _Batches(Dataset):
    """Indexed by what EpochPlan yields: (clip indices (B,) long, frames (B, T, 3, S, S), mel (B, 1, 64, L)), or
    for a features file (clip indices, visual vectors (B, D_v), audio vectors (B, D_a))."""

    def __init__(self, arrays: Arrays, audio_frames: int):
        self.arrays, self.audio_frames = arrays, audio_frames

    def __getitem__(self, plan: tuple[np.ndarray, Draws]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows, draws = plan
        return (torch.from_numpy(rows), *source_of(self.arrays).make(self.arrays, rows, draws, self.audio_frames))


def loader_workers(requested: int, device: torch.device, ranks: int) -> int:
    """``requested`` workers, or for -1 (auto): none on the CPU, else up to GPU_WORKERS per rank, leaving each rank
    one of its share of the cores."""
    if requested >= 0:
        return requested
    if device.type == "cpu":
        return 0
    return max(1, min(GPU_WORKERS, (os.cpu_count() or 2) // ranks - 1))


def training_batches(arrays: Arrays, plan: EpochPlan, workers: int, pin_memory: bool) -> DataLoader:
    """A DataLoader over ``plan`` with ``workers`` processes (0 = in this process), kept across epochs."""
    return DataLoader(_Batches(arrays, plan.audio_frames), sampler=plan, batch_size=None, num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=workers > 0,
                      prefetch_factor=PREFETCH_BATCHES if workers > 0 else None,
                      # its own generator: starting an epoch must not draw from the global torch RNG (dropout)
                      generator=torch.Generator())


def evaluation_batches(arrays: Arrays, indices: np.ndarray, batch_size: int, num_frames: int, audio_frames: int,
                       workers: int, pin_memory: bool, mirrored: bool = False
                       ) -> Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(clip indices, frames, mel) of ``indices`` in order, ``batch_size`` at a time, with no random choice
    (the source's draw without a generator; with ``mirrored``, every clip's frames mirrored left-right): made by
    ``workers`` processes ahead of the model (0 = here, when each batch is asked for). The same tensors for any
    ``workers``."""
    draw = source_of(arrays).draw

    def evaluation_draw(chunk: np.ndarray) -> Draws:
        draws = draw(arrays, chunk, num_frames, audio_frames, None)
        return draws.mirrored() if mirrored else draws

    plans = [(chunk, evaluation_draw(chunk))
             for chunk in (indices[s:s + batch_size] for s in range(0, len(indices), batch_size))]
    batches = _Batches(arrays, audio_frames)
    if workers == 0:
        return (batches[plan] for plan in plans)
    return DataLoader(batches, sampler=plans, batch_size=None, num_workers=min(workers, len(plans)) or 1,
                      pin_memory=pin_memory, prefetch_factor=PREFETCH_BATCHES)
