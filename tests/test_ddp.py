"""DDP must preserve the single-process gradient exactly: 2 gloo ranks on the CPU, each with half of a global
batch, end their backward pass with the same gradients as one process on the whole batch, log the same losses
(train.batch_losses), and the epoch end's evaluation of long clips' windows gives every rank the single process's
numbers.

BatchNorm (per-rank statistics on the CPU, documented in model/distributed.py) and dropout are the known
differences, so the network runs in evaluation mode here; everything else — the SCE and hybrid terms, the
cross-modal InfoNCE over the gathered global batch and L_cat — goes through the training code's own
``forward_backward``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as td
import torch.multiprocessing as mp

from auditor.data.cache import ingest, load_arrays
from auditor.data.params import PreprocessParams
from auditor.model import distributed as dist
from auditor.model.config import TrainConfig
from auditor.model.estimate import evaluate
from auditor.model.network import AudioVisualNet
from auditor.model.presets import get_preset
from auditor.train import Batch, NoiseState, Objective, batch_losses, forward_backward
from tests.media import write_clip

N_CLASSES, GLOBAL_BATCH, WORLD = 4, 8, 2
WINDOW_PARAMS = PreprocessParams(num_frames=4, frame_size=32)


def _inputs(phase: int):
    g = torch.Generator().manual_seed(1)
    preset = get_preset("cpu")
    frames = torch.randn(GLOBAL_BATCH, preset.num_frames, 3, preset.frame_size, preset.frame_size, generator=g)
    mel = torch.randn(GLOBAL_BATCH, 1, 64, preset.audio_frames, generator=g)
    given = torch.arange(GLOBAL_BATCH) % N_CLASSES
    state = NoiseState.initial(torch.ones(GLOBAL_BATCH, dtype=torch.bool), N_CLASSES, 128)
    state.mu_v = torch.nn.functional.normalize(torch.randn(N_CLASSES, 128, generator=g), dim=1)
    state.mu_a = torch.nn.functional.normalize(torch.randn(N_CLASSES, 128, generator=g), dim=1)
    state.q = torch.softmax(torch.randn(GLOBAL_BATCH, N_CLASSES, generator=g), dim=1)
    w = torch.rand(GLOBAL_BATCH, generator=g)
    r = torch.rand(GLOBAL_BATCH, generator=g)
    target = torch.where(r >= 0.5, given, (given + 1) % N_CLASSES) if phase == 2 else given
    return frames, mel, given, target, w, r, state


def _gradients(rank: int, world: int, phase: int) -> dict[str, torch.Tensor]:
    frames, mel, given, target, w, r, state = _inputs(phase)
    torch.manual_seed(0)
    model = AudioVisualNet(get_preset("cpu"), N_CLASSES).eval()
    ctx = dist.Context(rank=rank, world=world)
    ddp = dist.wrap(model, ctx)
    rows = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    idx = torch.arange(GLOBAL_BATCH)[rows]
    batch = Batch(idx=idx, given=given[rows], target=target[rows], w=w[rows], r=r[rows], target_weight=r[rows])
    cfg = TrainConfig()
    # A long-tailed prior, so that the logit adjustment is part of what must match.
    objective = Objective.for_labels(torch.tensor([0, 0, 0, 0, 0, 1, 1, 2, 3]), N_CLASSES, cfg, torch.device("cpu"))
    _, terms, loss = forward_backward(ddp, frames[rows], mel[rows], batch, state, phase, cfg, objective)
    logged = {f"loss:{name}": torch.tensor(value) for name, value in batch_losses(terms, loss).items()}
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None} | logged


def _worker(rank: int, init_file: str, out_file: str, phase: int) -> None:
    torch.set_num_threads(1)
    td.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        grads = _gradients(rank, WORLD, phase)
        if rank == 0:
            torch.save(grads, out_file)
    finally:
        td.destroy_process_group()


@pytest.mark.parametrize("phase", [1, 2])
def test_two_ranks_give_the_single_process_gradients_and_logged_losses(tmp_path, phase):
    single = _gradients(0, 1, phase)
    out = tmp_path / "grads.pt"
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(out), phase), nprocs=WORLD, join=True)
    ranked = torch.load(out, weights_only=True)
    assert set(ranked) == set(single)
    assert sum(g.abs().sum() for g in single.values()) > 0
    for name, g in single.items():
        torch.testing.assert_close(ranked[name], g, rtol=1e-4, atol=1e-6, msg=name)


def _evaluation(root: str, rank: int, world: int) -> dict[str, torch.Tensor]:
    arrays = load_arrays(ingest(root, WINDOW_PARAMS, workers=1))
    torch.manual_seed(0)
    model = AudioVisualNet(get_preset("cpu"), 2, 16, False)
    windows: dict = {}
    ev = evaluate(model, arrays, np.arange(len(arrays.clips)), TrainConfig(embed_dim=16), torch.device("cpu"),
                  windows_out=windows, ctx=dist.Context(rank=rank, world=world))
    return ev | {f"window:{k}": torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in windows.items()}


def _evaluation_worker(rank: int, init_file: str, root: str, out_file: str) -> None:
    torch.set_num_threads(1)
    td.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.save(_evaluation(root, rank, WORLD), f"{out_file}.{rank}")
    finally:
        td.destroy_process_group()


def test_two_ranks_evaluate_long_clips_windows_as_one_process(tmp_path):
    """Each window's InfoNCE is computed among all clips' windows, not among its own rank's: the chosen window,
    and with it z, w and r, do not depend on the number of processes."""
    root = tmp_path / "data"
    for i, seconds in enumerate([26.0, 1.0, 14.0, 1.5, 27.0]):
        write_clip(root / "clips" / f"c{i}.mp4", seconds=seconds, tone_hz=300.0 + 50 * i)  # every window audible
    (root / "labels.csv").write_text("clip,label\n" + "".join(f"clips/c{i}.mp4,{'ab'[i % 2]}\n" for i in range(5)))
    single = _evaluation(str(root), 0, 1)
    assert single["window:owner"].numel() == 10  # 3 + 1 + 2 + 1 + 3 windows: uneven shards of clips and windows
    out = tmp_path / "eval.pt"
    mp.spawn(_evaluation_worker, args=(str(tmp_path / "init"), str(root), str(out)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        ranked = torch.load(f"{out}.{rank}", weights_only=True)
        assert set(ranked) == set(single)
        for key, value in single.items():
            torch.testing.assert_close(ranked[key], value, rtol=1e-5, atol=1e-6, equal_nan=True, msg=key)
