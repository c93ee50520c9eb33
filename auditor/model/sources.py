"""Where a clip's network inputs come from: one choice, made here, for training, evaluation and scoring alike.

* the ingest store (:class:`~auditor.data.store.ClipArrays`): frames (B, T, 3, S, S) and log-mel (B, 1, 64, L) for
  our encoders, drawn and made by model/inputs.py;
* a features file (:class:`~auditor.data.feature_file.FeatureArrays`): the clip's precomputed vectors (B, D_v),
  (B, D_a) for the features preset's MLP encoders (network.VectorEncoder); in training a clip of several rows gives
  one of its windows, drawn uniformly, in evaluation window 0 (model/estimate.evaluate reads every window as an
  item); nothing else is random.

Everything after the encoders (heads, losses, model/estimate.py, scoring.py) is the same code for both.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from auditor.data.cache import ClipArrays, IngestResult, prepare_data
from auditor.data.feature_file import FeatureArrays, load_features
from auditor.errors import UserError
from auditor.model.config import TrainConfig
from auditor.model.inputs import Draws, draw_batch, make_inputs
from auditor.model.presets import FEATURES_PRESET, preprocess_params

Arrays = ClipArrays | FeatureArrays


@dataclass(frozen=True)
class Source:
    """``draw(arrays, idx, num_frames, audio_frames, rng)`` -> Draws (every random choice of a batch; rng None =
    evaluation) and ``make(arrays, idx, draws, audio_frames)`` -> (visual input, audio input) float32 tensors."""

    draw: Callable[[Arrays, np.ndarray, int, int, np.random.Generator | None], Draws]
    make: Callable[[Arrays, np.ndarray, Draws, int], tuple[torch.Tensor, torch.Tensor]]


def vector_draws(arrays: FeatureArrays, idx: np.ndarray, num_frames: int, audio_frames: int,
                 rng: np.random.Generator | None) -> Draws:
    """Draws of a features batch: with several windows per clip, a window per clip (uniform over its windows in
    training, window 0 without ``rng``); no other choice (frame picks and crops are empty)."""
    windows = None
    if arrays.windows is not None:
        windows = np.zeros(len(idx), np.int64)
        if rng is not None:
            windows = np.minimum((rng.random(len(idx)) * arrays.window_counts()[idx]).astype(np.int64),
                                 arrays.window_counts()[idx] - 1)
    return Draws(np.zeros((len(idx), 0), np.int64), np.full(len(idx), np.nan), windows=windows)


def vector_inputs(arrays: FeatureArrays, idx: np.ndarray, draws: Draws, audio_frames: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(visual (B, D_v), audio (B, D_a)) float32 of clips ``idx`` (of their drawn windows); zeros for the audio of
    a row without sound."""
    if draws.windows is not None:
        arrays, idx = arrays.at_windows(idx, draws.windows), np.arange(len(idx))
    rows = arrays.rows[idx]
    return torch.from_numpy(arrays.visual[rows]), torch.from_numpy(arrays.audio[rows])


SOURCES: dict[type, Source] = {ClipArrays: Source(draw_batch, make_inputs),
                               FeatureArrays: Source(vector_draws, vector_inputs)}


def source_of(arrays: Arrays) -> Source:
    """How batches of ``arrays`` are drawn and made."""
    return SOURCES[type(arrays)]


def prepare_inputs(data_dir: str | os.PathLike[str], cfg: TrainConfig, features: str | None, *,
                   workers: int | None = None, show_bar: bool = True,
                   cache_root: str | os.PathLike[str] | None = None) -> tuple[TrainConfig, IngestResult, Arrays]:
    """The data set's clips for the network of ``cfg``: the features file ``features`` (training: ``cfg.features``;
    scoring: the scored data set's own) for the features preset, else the ingest store (decoding what is not cached). Returns ``cfg`` with the
    features' vector sizes filled in where it had none; UserError when a features file is missing, given to another
    preset, or has other vector sizes than ``cfg``'s."""
    if cfg.preset != FEATURES_PRESET:
        if features:
            raise UserError(f"{features}: a features file goes with a model trained on features; this one was "
                            f"trained with the {cfg.preset} preset on decoded clips")
        result, arrays = prepare_data(data_dir, preprocess_params(cfg.preset), workers=workers, show_bar=show_bar,
                                      cache_root=cache_root)
        return cfg, result, arrays
    if not features:
        raise UserError(f"{data_dir}: the model was trained on precomputed features; give this data set's "
                        "features file (--features FILE)")
    result, arrays = load_features(data_dir, features)
    dims = (arrays.visual.shape[1], arrays.audio.shape[1])
    if cfg.visual_dim and (cfg.visual_dim, cfg.audio_dim) != dims:
        raise UserError(f"{features}: visual and audio vectors of {dims[0]} and {dims[1]} numbers; the model takes "
                        f"{cfg.visual_dim} and {cfg.audio_dim}")
    return dataclasses.replace(cfg, visual_dim=dims[0], audio_dim=dims[1]), result, arrays
