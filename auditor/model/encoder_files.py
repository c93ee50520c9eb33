"""Encoders as files: a trained run's two encoders exported as TorchScript with their input contract, so that a
model trained once on a large clean set encodes new clips elsewhere (``export-encoders``), and encoder files
read back with that contract (``ingest --visual-encoder --audio-encoder``, auditor/encode.py).

The contract (a JSON object, stored inside each ``.pt`` as the extra file CONTRACT_KEY, or in an ONNX file's
metadata under the same key, and for people in ``encoders.json`` beside the exported pair):

* visual: ``frames`` (B, T, 3, S, S) float32 = RGB frames (shorter side resized to S, centre crop S x S, T frames
  evenly spread over the clip or window) scaled to [0, 1], then (x - mean_c) / std_c per channel -> (B, D_v);
* audio: ``log_mel`` (B, 1, n_mels, L) float32 = log(mel power + log_floor) of the sound resampled to
  ``sample_rate`` mono (n_mels mel bands, win_seconds windows, hop_seconds hop: data/features.log_mel), L frames
  around the loudest part, then (x - offset) / scale -> (B, D_a).

Keys: {"format", "modality", "input", "shape" ([-1, ...]: -1 = any batch), "dtype", "output_dim"} plus, for the
visual encoder, "mean" and "std"; for the audio encoder "sample_rate", "n_mels", "win_seconds", "hop_seconds",
"log_floor", "offset", "scale".
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from auditor.atomic import atomic_write, atomic_write_text
from auditor.data.features import HOP_SECONDS, LOG_FLOOR, N_MELS, WIN_SECONDS
from auditor.data.params import PreprocessParams
from auditor.errors import UserError
from auditor.model.checkpoint import load_trained
from auditor.model.config import TrainConfig
from auditor.model.inputs import IMAGENET_MEAN, IMAGENET_STD, MEL_OFFSET, MEL_SCALE
from auditor.model.network import FrameEncoder
from auditor.model.presets import FEATURES_PRESET, get_preset
from auditor.run_folder import read_config

CONTRACT_FORMAT = 1
CONTRACT_KEY = "auditor_contract.json"
CONTRACT_FILE = "encoders.json"
ENCODER_FILES = {"visual": "visual_encoder.pt", "audio": "audio_encoder.pt"}
# The exported encoders must give the trained model's h for a batch of another size than traced with, to this
# tolerance (float32 round-off of the same operations).
EXPORT_TOLERANCE = 1e-4


def contracts(preset_name: str, output_dim: int, sample_rate: int) -> dict[str, dict]:
    """The visual and audio contracts (module docstring) of our encoders for the preset ``preset_name``."""
    p = get_preset(preset_name)
    base = {"format": CONTRACT_FORMAT, "dtype": "float32", "output_dim": output_dim}
    return {
        "visual": {**base, "modality": "visual", "input": "frames",
                   "shape": [-1, p.num_frames, 3, p.frame_size, p.frame_size],
                   "mean": [round(v, 6) for v in IMAGENET_MEAN.flatten().tolist()],
                   "std": [round(v, 6) for v in IMAGENET_STD.flatten().tolist()]},
        "audio": {**base, "modality": "audio", "input": "log_mel", "shape": [-1, 1, N_MELS, p.audio_frames],
                  "sample_rate": sample_rate, "n_mels": N_MELS, "win_seconds": WIN_SECONDS,
                  "hop_seconds": HOP_SECONDS, "log_floor": LOG_FLOOR, "offset": MEL_OFFSET, "scale": MEL_SCALE},
    }


def export_encoders(run_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the run's f_v (as the network applies it to T frames) and f_a as TorchScript into ``out_dir``
    (ENCODER_FILES, each carrying its contract) plus CONTRACT_FILE; returns the three paths. Each traced encoder is
    checked against the model on a batch of another size. UserError for a run trained on precomputed features
    (its encoders take vectors, not clips)."""
    model, ckpt = load_trained(run_dir)
    cfg = TrainConfig(**ckpt["config"])
    if cfg.preset == FEATURES_PRESET:
        raise UserError(f"{run_dir}: trained on precomputed features; its encoders take vectors, not clips, and "
                        "there is nothing to export (export a run trained on decoded clips)")
    sample_rate = int(((read_config(run_dir) or {}).get("preprocess") or {}).get("sample_rate",
                                                                               PreprocessParams.sample_rate))
    contract = contracts(cfg.preset, model.f_v.out_dim, sample_rate)
    modules = {"visual": FrameEncoder(model.f_v).eval(), "audio": model.f_a.eval()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    generator = torch.Generator().manual_seed(0)
    for modality, module in modules.items():
        shape = contract[modality]["shape"][1:]
        with torch.no_grad():
            traced = torch.jit.trace(module, torch.randn(2, *shape, generator=generator))
            probe = torch.randn(3, *shape, generator=generator)
            gap = (traced(probe) - module(probe)).abs().max().item()
        if gap > EXPORT_TOLERANCE:
            raise UserError(f"{run_dir}: the exported {modality} encoder differs from the model by {gap:.2g}; "
                            "not written")
        path = out / ENCODER_FILES[modality]
        extra = {CONTRACT_KEY: json.dumps(contract[modality])}
        atomic_write(path, lambda fh, m=traced, e=extra: torch.jit.save(m, fh, _extra_files=e))
        paths.append(path)
    summary = {"run": str(Path(run_dir).resolve()), "preset": cfg.preset, "classes": ckpt["classes"],
               **{m: {"file": ENCODER_FILES[m], **c} for m, c in contract.items()}}
    atomic_write_text(out / CONTRACT_FILE, json.dumps(summary, indent=1))
    return [*paths, out / CONTRACT_FILE]
