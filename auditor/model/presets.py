"""Named model presets: encoder family, input sizes and the training settings that go with them.

``cpu`` is the default: small CNN encoders on 64x64 frames, fast enough for a 2-core machine.
``resnet18`` follows method.md's full-size setting (torchvision ResNet-18 encoders, 112x112 frames).
``r2plus1d`` uses torchvision's R(2+1)D-18 video backbone over 8 frames (Kinetics-400 weights when cached).
``features`` reads no frames: small MLPs over the per-clip vectors of a features file (``train --features``).
"""

from __future__ import annotations

from dataclasses import dataclass

from auditor.data.params import PreprocessParams
from auditor.errors import UserError


@dataclass(frozen=True)
class Preset:
    name: str
    encoder: str  # "small_cnn" | "resnet18" | "r2plus1d_18" | "vectors"
    frame_size: int  # S
    cached_frames: int  # frames decoded per clip into the cache
    num_frames: int  # T frames fed to the visual encoder
    audio_frames: int  # log-mel frames (10 ms each) fed to the audio encoder
    width: int  # channels of the small CNN's first block (doubles per block); the MLPs' width (vectors)
    batch_size: int
    min_epochs: int  # the automatic schedule's least number of epochs (model/config.auto_epochs)


PRESETS: dict[str, Preset] = {
    "cpu": Preset("cpu", "small_cnn", frame_size=64, cached_frames=8, num_frames=4, audio_frames=256, width=16,
                  batch_size=64, min_epochs=32),
    "resnet18": Preset("resnet18", "resnet18", frame_size=112, cached_frames=8, num_frames=4, audio_frames=400,
                       width=64, batch_size=32, min_epochs=32),
    # A video backbone (torchvision R(2+1)D-18) for GPUs; Kinetics-400 weights with --pretrained when cached.
    "r2plus1d": Preset("r2plus1d", "r2plus1d_18", frame_size=112, cached_frames=8, num_frames=8, audio_frames=400,
                       width=64, batch_size=16, min_epochs=32),
    # Precomputed vectors (data/feature_file.py) through small MLP encoders; no frames or sound are decoded.
    "features": Preset("features", "vectors", frame_size=0, cached_frames=0, num_frames=1, audio_frames=1,
                       width=256, batch_size=256, min_epochs=24),
}
FEATURES_PRESET = "features"
# The presets that decode clips into the ingest cache (the choices of --preset; --features picks FEATURES_PRESET).
FRAME_PRESETS = tuple(name for name in PRESETS if name != FEATURES_PRESET)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


def preprocess_params(name: str) -> PreprocessParams:
    """What the ingest cache must hold for this preset."""
    p = get_preset(name)
    return PreprocessParams(num_frames=p.cached_frames, frame_size=p.frame_size)
