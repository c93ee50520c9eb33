"""torch.distributed glue for ``torchrun --nproc_per_node=K -m auditor train ...`` (gloo on CPU, nccl on GPU).

Without torchrun (no WORLD_SIZE > 1 in the environment) every function is a no-op over a single process, so the
training loop reads the same either way. Per-clip statistics are computed on shards and gathered, so every rank
holds identical w, r, q and prototypes and the results do not depend on K.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as td
from torch import nn
from torch.distributed.nn.functional import all_gather

from auditor.errors import UserError


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a CUDA device is a UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return torch.device(name)


def env_rank() -> int:
    """This process's rank as torchrun announces it (RANK), before any process group exists; 0 without torchrun."""
    return int(os.environ.get("RANK", "0"))


def setup(device_name: str = "auto") -> Context:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    if not td.is_initialized():
        td.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank = td.get_rank()
    local = int(os.environ.get("LOCAL_RANK", rank))
    if use_cuda:
        torch.cuda.set_device(local)
    return Context(rank=rank, world=world, device=torch.device(f"cuda:{local}" if use_cuda else "cpu"))


def cleanup(ctx: Context) -> None:
    if ctx.world > 1 and td.is_initialized():
        td.destroy_process_group()


def _active() -> bool:
    return td.is_available() and td.is_initialized() and td.get_world_size() > 1


def world_size() -> int:
    """The number of processes of the process group (1 without one)."""
    return td.get_world_size() if _active() else 1


def barrier() -> None:
    if _active():
        td.barrier()


def wrap(model: nn.Module, ctx: Context) -> nn.Module:
    if ctx.world <= 1:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(wrap_sync_bn(model, ctx), device_ids=ids)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if _active():
        t = t.clone()
        td.all_reduce(t, op=td.ReduceOp.SUM)
    return t


def gather_with_grad(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``t`` (B_local, ...) over ranks with gradients flowing back to each rank's part; returns the
    (B_local * K, ...) tensor and the offset of this rank's rows in it."""
    if not _active():
        return t, 0
    return torch.cat(all_gather(t), dim=0), td.get_rank() * t.shape[0]


def wrap_sync_bn(model: nn.Module, ctx: Context) -> nn.Module:
    """BatchNorm statistics over the global batch, so K ranks normalise exactly as one process would. PyTorch's
    SyncBatchNorm runs on GPUs only; on the CPU each rank normalises its own rows (DDP broadcasts rank 0's running
    statistics), the one remaining difference from a single process."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if ctx.world > 1 and ctx.device.type == "cuda" else model


def gather_eval(fn: Callable[[np.ndarray], dict[str, torch.Tensor]], n: int, ctx: Context) -> dict[str, torch.Tensor]:
    """Run ``fn`` on this rank's shard (indices rank, rank+K, ...) and return the full (n, ...) results on every rank."""
    if ctx.world <= 1:
        return fn(np.arange(n))
    shard = np.arange(n)[ctx.rank::ctx.world]
    local = fn(shard)
    size = -(-n // ctx.world)
    full = {}
    for key, value in local.items():
        padded = torch.zeros((size, *value.shape[1:]), dtype=value.dtype)
        padded[: value.shape[0]] = value
        padded = padded.to(ctx.device)
        parts = [torch.zeros_like(padded) for _ in range(ctx.world)]
        td.all_gather(parts, padded)
        out = torch.zeros((n, *value.shape[1:]), dtype=value.dtype)
        for r, part in enumerate(parts):
            count = len(range(r, n, ctx.world))
            out[r::ctx.world] = part[:count].cpu()
        full[key] = out
    return full
