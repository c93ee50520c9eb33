"""checkpoint.pt: save, load (weights_only) and re-create a run's trained model.

A checkpoint is a dict of tensors and plain Python values only: format, epoch, elapsed_s, config
(TrainConfig as a dict), classes, clips, labels (the given labels trained on, one per clip), model, optimizer,
scheduler, state (per-clip estimates), torch_rng.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path

import torch

from auditor.atomic import atomic_write
from auditor.errors import UserError
from auditor.model.config import TrainConfig
from auditor.model.network import AudioVisualNet, place_on
from auditor.model.presets import get_preset
from auditor.run_folder import CHECKPOINT_FILE

# 2: the encoders pool their last maps by max + mean (model/network.TimePool, SpacePool; docs/method.md departure
# 22). A format-1 checkpoint's weights were trained through a global average and score wrongly through these.
CHECKPOINT_FORMAT = 2


def save_checkpoint(path: Path, model, opt, sched, state: dict[str, torch.Tensor], epoch: int, elapsed: float,
                    cfg: TrainConfig, classes: list[str], clips: list[str], labels: list[str]) -> None:
    """Everything needed to resume, as tensors and plain Python values only (loadable with weights_only=True)."""
    payload = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "elapsed_s": elapsed, "config": asdict(cfg),
               "classes": list(classes), "clips": list(clips), "labels": [str(label) for label in labels],
               "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
               "state": dict(state), "torch_rng": torch.get_rng_state()}
    atomic_write(path, lambda fh: torch.save(payload, fh))


def load_checkpoint(path: str | Path) -> dict:
    """torch.load with weights_only=True: a checkpoint carrying any pickled object is refused, never executed."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no checkpoint there") from None
    except pickle.UnpicklingError:
        raise UserError(f"{path}: refused to load the checkpoint: it holds pickled Python objects besides tensors, "
                        "which could run code; only AV Auditor's own checkpoints (tensors and plain values) "
                        "are loaded") from None
    except Exception as err:  # a torn file, not a checkpoint at all
        raise UserError(f"{path}: refused to load the checkpoint ({str(err).splitlines()[0][:200]})") from None
    if isinstance(ckpt, dict) and ckpt.get("format") == 1:
        raise UserError(f"{path}: trained by an earlier version of AV Auditor whose encoders pooled their feature "
                        "maps by a global average; this version's encoders pool differently (docs/method.md, "
                        "departure 22) and would score wrongly with these weights: train the run again")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not an AV Auditor checkpoint of format {CHECKPOINT_FORMAT} "
                        f"(found {ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__})")
    return ckpt


def init_from_run(model: AudioVisualNet, run_dir: str | Path, preset: str) -> dict[str, int]:
    """Start ``model`` from the weights of an earlier run (e.g. encoders trained on a large set on a GPU): every
    tensor of RUNDIR/checkpoint.pt whose name and shape match is copied (encoders and projection heads; the
    classifier heads too when the classes have the same count), the rest keeps its fresh initialisation.
    Returns {"copied": n, "kept": m}. Raises UserError when the run has no checkpoint or another preset."""
    ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT_FILE)
    if ckpt["config"].get("preset") != preset:
        raise UserError(f"{run_dir}: --init-from needs a run of the same preset ({preset}); it was trained with "
                        f"{ckpt['config'].get('preset')!r}")
    own = model.state_dict()
    matching = {k: v for k, v in ckpt["model"].items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return {"copied": len(matching), "kept": len(own) - len(matching)}


def load_trained(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[AudioVisualNet, dict]:
    """The model of a run (evaluation mode, on ``device``) and its checkpoint dict (config, classes, state)."""
    ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT_FILE)
    cfg = TrainConfig(**ckpt["config"])
    model = AudioVisualNet(get_preset(cfg.preset), len(ckpt["classes"]), cfg.embed_dim,
                           input_dims=(cfg.visual_dim, cfg.audio_dim))
    model.load_state_dict(ckpt["model"])
    return place_on(model, device).eval(), ckpt
