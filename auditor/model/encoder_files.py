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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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


@dataclass
class EncoderFile:
    """An encoder read from a file: ``encode`` maps its contract's input (B, ...) float32 to (B, D) float32
    (numpy in, numpy out); ``contract`` as in the module docstring."""

    path: Path
    contract: dict
    encode: Callable[[np.ndarray], np.ndarray]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, D) float32 vectors of ``x``; UserError naming the file when it fails or returns another shape."""
        try:
            out = np.asarray(self.encode(np.ascontiguousarray(x, np.float32)))
        except Exception as err:  # the file's own code: any failure is its mismatch with the contract
            raise UserError(f"{self.path}: does not fit the {self.contract['modality']} contract: given "
                            f"{self.contract['input']} of shape {tuple(x.shape)} float32 it failed "
                            f"({str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__})"
                            ) from None
        if out.ndim != 2 or out.shape[0] != len(x) or out.dtype.kind != "f":
            raise UserError(f"{self.path}: given {self.contract['input']} of shape {tuple(x.shape)} it returned "
                            f"{out.dtype} {tuple(out.shape)}; an encoder returns one float vector per clip, "
                            f"shape ({len(x)}, D)")
        return out.astype(np.float32)


def load_encoder(path: str | Path, modality: str, fallback: dict) -> EncoderFile:
    """The TorchScript (``.pt``) or ONNX (``.onnx``, needs onnxruntime) encoder in ``path`` with its contract:
    the one the file carries (CONTRACT_KEY), else ``fallback`` (our contract of a preset, with the shape the
    command line gives). UserError naming the file when it cannot be read or its contract is of another modality."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such encoder file")
    readers = {".pt": _read_torchscript, ".onnx": _read_onnx}
    if path.suffix.lower() not in readers:
        raise UserError(f"{path}: an encoder must be TorchScript (.pt) or ONNX (.onnx)")
    encode, carried = readers[path.suffix.lower()](path)
    try:
        contract = json.loads(carried) if carried else dict(fallback)
    except ValueError:
        raise UserError(f"{path}: its {CONTRACT_KEY} is not JSON") from None
    if contract.get("modality") != modality:
        raise UserError(f"{path}: its contract is for the {contract.get('modality')} input; given as the "
                        f"{modality} encoder")
    return EncoderFile(path, contract, encode)


def _read_torchscript(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    extra = {CONTRACT_KEY: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
    except Exception as err:  # a state_dict, a pickled model, a torn file
        raise UserError(f"{path}: not a TorchScript file (torch.jit.save; a state_dict or a pickled model is not "
                        f"loaded): {str(err).strip().splitlines()[0][:200]}") from None

    def encode(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).float().numpy()

    return encode, extra[CONTRACT_KEY]


def _read_onnx(path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    try:
        import onnxruntime  # optional: pip install 'av-auditor[onnx]'
    except ImportError:
        raise UserError(f"{path}: reading ONNX encoders needs onnxruntime (pip install 'av-auditor[onnx]', or "
                        "onnxruntime); or export the encoder as TorchScript") from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:
        raise UserError(f"{path}: not a readable ONNX model: {str(err).strip().splitlines()[0][:200]}") from None
    name = session.get_inputs()[0].name
    carried = session.get_modelmeta().custom_metadata_map.get(CONTRACT_KEY, "")
    return (lambda x: session.run(None, {name: x})[0]), carried
