"""``ingest --visual-encoder V --audio-encoder A``: a data set's clips through encoder files (a user's TorchScript or
ONNX model, or a pair from ``export-encoders``) into a features file (data/feature_file.py), on which ``train
--features`` then runs.

Every clip is decoded into the ingest cache at the visual contract's frame size S and the audio contract's sample
rate (model/encoder_files.py: the contract a file carries, else the cpu preset's with the shapes given). Each clip,
and each window of a long clip, gets its evaluation inputs (model/inputs.py: T evenly spread frames, the loudest L
log-mel frames), moved from our normalisation to the contract's, x_c = (x * std + mean - mean_c) / std_c per
channel and m_c = (m * MEL_SCALE + MEL_OFFSET - offset_c) / scale_c, and is encoded. A row without sound gets an
all-NaN audio vector (= no sound in a features file). The file goes to ``--out`` or beside the decode cache,
named by a digest of the two encoder files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from auditor.atomic import atomic_write
from auditor.data.cache import IngestResult, prepare_data
from auditor.data.features import HOP_SECONDS, LOG_FLOOR, N_MELS, WIN_SECONDS
from auditor.data.params import PreprocessParams
from auditor.data.store import ClipArrays
from auditor.errors import UserError
from auditor.model.encoder_files import EncoderFile, contracts, load_encoder
from auditor.model.inputs import IMAGENET_MEAN, IMAGENET_STD, MEL_OFFSET, MEL_SCALE
from auditor.model.loader import evaluation_batches

ENCODE_BATCH = 64
# The log-mel this version computes (data/features.py); an audio contract asking for another is refused.
OUR_LOG_MEL = {"n_mels": N_MELS, "win_seconds": WIN_SECONDS, "hop_seconds": HOP_SECONDS, "log_floor": LOG_FLOOR}


def encode_data_set(data_dir: str | os.PathLike[str], visual_path: str | os.PathLike[str],
                    audio_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
                    frames: int | None = None, frame_size: int | None = None, audio_frames: int | None = None,
                    workers: int | None = None, cache_root: str | os.PathLike[str] | None = None,
                    show_bar: bool = True) -> tuple[Path, IngestResult]:
    """Decode the data set (what is not cached yet), encode every clip and window with the two encoder files and
    write the features file; returns its path and the ingest's result. ``frames`` T, ``frame_size`` S and
    ``audio_frames`` L give the input of a file that carries no contract (default: the cpu preset's). UserError
    naming the file when an encoder does not fit its contract."""
    visual, audio = _encoders(visual_path, audio_path, frames, frame_size, audio_frames)
    t, s = visual.contract["shape"][1], visual.contract["shape"][3]
    length = audio.contract["shape"][3]
    params = PreprocessParams(num_frames=max(t, PreprocessParams.num_frames), frame_size=s,
                              sample_rate=int(audio.contract["sample_rate"]))
    result, arrays = prepare_data(data_dir, params, workers=workers, show_bar=show_bar, cache_root=cache_root)
    items, owner = _items(arrays)
    rows: dict[str, list[np.ndarray]] = {"visual": [], "audio": []}
    batches = evaluation_batches(items, np.arange(len(owner)), ENCODE_BATCH, t, length, workers=0, pin_memory=False)
    for _, x_v, x_a in tqdm(batches, total=-(-len(owner) // ENCODE_BATCH), desc="encode", unit="batch",
                            disable=not show_bar):
        rows["visual"].append(visual(_frames_for(x_v, visual.contract)))
        rows["audio"].append(audio(_mel_for(x_a, audio.contract)))
    vectors = {k: np.concatenate(v) for k, v in rows.items()}
    vectors["audio"][~items.has_audio] = np.nan
    spans = items.row_table(items.rows)
    table = pd.DataFrame({"clip": np.asarray(arrays.clips, dtype=object)[owner], "visual": list(vectors["visual"]),
                          "audio": list(vectors["audio"]), "has_audio": items.has_audio,
                          "start_s": spans["start_s"].to_numpy(), "end_s": spans["end_s"].to_numpy()})
    path = Path(out) if out else result.cache_dir / f"features-{_digest(visual.path, audio.path)}.parquet"
    atomic_write(path, lambda fh: table.to_parquet(fh, index=False))
    return path, result


def _encoders(visual_path: str | os.PathLike[str], audio_path: str | os.PathLike[str], frames: int | None,
              frame_size: int | None, audio_frames: int | None) -> tuple[EncoderFile, EncoderFile]:
    """Both encoders with their contracts (the fallback: the cpu preset's, shapes from the arguments given)."""
    fallback = contracts("cpu", 0, PreprocessParams.sample_rate)
    v_shape, a_shape = fallback["visual"]["shape"], fallback["audio"]["shape"]
    size = frame_size or v_shape[3]
    fallback["visual"]["shape"] = [-1, frames or v_shape[1], 3, size, size]
    fallback["audio"]["shape"] = [-1, 1, N_MELS, audio_frames or a_shape[3]]
    visual = load_encoder(visual_path, "visual", fallback["visual"])
    audio = load_encoder(audio_path, "audio", fallback["audio"])
    shape = visual.contract["shape"]
    if len(shape) != 5 or shape[2] != 3 or shape[3] != shape[4]:
        raise UserError(f"{visual.path}: takes frames of shape {shape}; this version makes (B, T, 3, S, S)")
    other = {k: audio.contract.get(k) for k in OUR_LOG_MEL if audio.contract.get(k) != OUR_LOG_MEL[k]}
    if other:
        raise UserError(f"{audio.path}: wants a log-mel of {other}; this version computes {OUR_LOG_MEL}")
    return visual, audio


def _items(arrays: ClipArrays) -> tuple[ClipArrays, np.ndarray]:
    """Every window of every clip as an item (clips of one window: the clips themselves) and each item's clip."""
    if arrays.windows is None:
        return arrays, np.arange(len(arrays.clips))
    items, owner, _ = arrays.window_items(np.arange(len(arrays.clips)))
    return items, owner


def _frames_for(frames: torch.Tensor, contract: dict) -> np.ndarray:
    mean, std = (torch.tensor(contract[k], dtype=torch.float32).view(1, 1, 3, 1, 1) for k in ("mean", "std"))
    return ((frames * IMAGENET_STD + IMAGENET_MEAN - mean) / std).numpy()


def _mel_for(mel: torch.Tensor, contract: dict) -> np.ndarray:
    return ((mel * MEL_SCALE + MEL_OFFSET - float(contract["offset"])) / float(contract["scale"])).numpy()


def _digest(*paths: Path) -> str:
    """12 hex digits of sha1 over the files' bytes."""
    h = hashlib.sha1()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]
