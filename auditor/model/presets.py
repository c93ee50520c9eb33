"""Named model presets: encoder family, input sizes and the training settings that go with them.

``cpu`` is the default: small CNN encoders on 64x64 frames, fast enough for a 2-core machine.
``resnet18`` follows method.md's full-size setting (torchvision ResNet-18 encoders, 112x112 frames).
``r2plus1d`` uses torchvision's R(2+1)D-18 video backbone over 8 frames (Kinetics-400 weights when cached).
"""

from __future__ import annotations

from dataclasses import dataclass

from auditor.data.params import PreprocessParams
from auditor.errors import UserError


@dataclass(frozen=True)
class Preset:
    name: str
    encoder: str  # "small_cnn" | "resnet18" | "r2plus1d_18"
    frame_size: int  # S
    cached_frames: int  # frames decoded per clip into the cache
    num_frames: int  # T frames fed to the visual encoder
    audio_frames: int  # log-mel frames (10 ms each) fed to the audio encoder
    width: int  # channels of the small CNN's first block (doubles per block)
    batch_size: int


PRESETS: dict[str, Preset] = {
    "cpu": Preset("cpu", "small_cnn", frame_size=64, cached_frames=8, num_frames=4, audio_frames=256, width=16,
                  batch_size=64),
    "resnet18": Preset("resnet18", "resnet18", frame_size=112, cached_frames=8, num_frames=4, audio_frames=400,
                       width=64, batch_size=32),
    # A video backbone (torchvision R(2+1)D-18) for GPUs; Kinetics-400 weights with --pretrained when cached.
    "r2plus1d": Preset("r2plus1d", "r2plus1d_18", frame_size=112, cached_frames=8, num_frames=8, audio_frames=400,
                       width=64, batch_size=16),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


def preprocess_params(name: str) -> PreprocessParams:
    """What the ingest cache must hold for this preset."""
    p = get_preset(name)
    return PreprocessParams(num_frames=p.cached_frames, frame_size=p.frame_size)
