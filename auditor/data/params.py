"""Preprocessing parameters: what the ingest cache holds per clip. A light module (no torch, no PyAV), so that
listing presets or reading a run's config does not import the decoder."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PreprocessParams:
    """Everything that changes what is cached for a clip; part of every cache key."""

    num_frames: int = 8  # frames cached per clip; training picks T of them (features.frame_indices)
    frame_size: int = 64  # S: shorter side resized to S, centre crop S x S
    sample_rate: int = 16_000
    max_audio_seconds: float = 10.0  # a window's sound: a clip of one window keeps the middle of a longer track
    max_windows: int = 8  # aligned windows of a long clip (decode.window_spans, window length max_audio_seconds)
    version: int = 4  # bump when decode/features change meaningfully (3: silent tracks; 4: aligned windows)

    def digest(self) -> str:
        """12 hex digits of sha1 over the sorted fields: the cache folder of these parameters."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]
