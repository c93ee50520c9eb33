"""The audio-visual network of method.md: encoders f_v, f_a, projection heads g_v, g_a, classifier heads.

Shapes: frames (B, T, 3, S, S) float (ImageNet-normalised), mel (B, 1, 64, L) float; with the features preset the
clip's precomputed vectors instead, (B, D_v) and (B, D_a) (model/sources.py says which a data set gives). Returns
h^v (B, C), h^a (B, C), z^v, z^a (B, d) unit vectors, and logits of c_v(h^v), c_a(h^a), c_av([h^v; h^a]) (B, K).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from auditor.model.presets import Preset


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class TimePool(nn.Module):
    """Pooling of a spectrogram encoder's map (B, C, F, T) -> (B, C): mean over frequency, then max + mean over
    time, as PANNs do (Kong et al., IEEE/ACM TASLP 2020). A short sound event anywhere in the window sets the max
    (a global average would dilute it by the window's length); a long, steady one sets both."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=2)
        return m.amax(dim=2) + m.mean(dim=2)


class SpacePool(nn.Module):
    """Pooling of a frame encoder's map (B, C, H, W) -> (B, C): max + mean over the picture's positions. An object
    anywhere in the frame, large or small, sets the max (a global average dilutes a small one by the background)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3)) + x.mean(dim=(2, 3))


class SmallCNN(nn.Module):
    """CPU preset encoder: stride-2 stem, three conv blocks doubling channels, then :class:`SpacePool` (frames) or
    :class:`TimePool` (``spectrogram``: a 1-channel log-mel (B, 1, F, T)) -> (B, 8w)."""

    def __init__(self, in_channels: int, width: int, spectrogram: bool = False) -> None:
        super().__init__()
        w = width
        pool = TimePool() if spectrogram else SpacePool()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, w, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            _conv_block(w, 2 * w), nn.MaxPool2d(2),
            _conv_block(2 * w, 4 * w), nn.MaxPool2d(2),
            _conv_block(4 * w, 8 * w), pool,
        )
        self.out_dim = 8 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ResNet18Encoder(nn.Module):
    """torchvision ResNet-18 trunk (no classifier) -> (B, 512); 1-channel input for spectrograms, pooled by
    :class:`TimePool` instead of the global average.

    Pretrained ImageNet weights are used only when already in the local torch cache (never downloaded)."""

    def __init__(self, in_channels: int, pretrained: bool = False) -> None:
        super().__init__()
        from torchvision.models import resnet18  # torchvision: only for this preset (a second to import)

        net = resnet18(weights=None)
        if pretrained and in_channels == 3:
            _load_cached_imagenet_weights(net)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            net.avgpool = TimePool()  # (B, 512, F', T') -> (B, 512); ResNet's forward then flattens it as is
        net.fc = nn.Identity()
        self.net = net
        self.out_dim = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _load_cached_imagenet_weights(net: nn.Module) -> bool:
    from torchvision.models import ResNet18_Weights  # as above

    return load_cached_weights(net, ResNet18_Weights.IMAGENET1K_V1.url, "ImageNet")


def load_cached_weights(net: nn.Module, url: str, what: str) -> bool:
    """Load torchvision weights for ``net`` from the local torch hub cache (never downloaded): True when they were
    there; otherwise one line says where they were looked for and the encoder trains from scratch."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        print(f"note: no cached {what} weights at {path}; training the visual encoder from scratch "
              f"(to use them, put {url.rsplit('/', 1)[-1]} there)", file=sys.stderr)
        return False
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
    return True


class VideoR2Plus1DEncoder(nn.Module):
    """torchvision R(2+1)D-18 (Tran et al., CVPR 2018) over the T frames of a clip -> (B, 512): a video backbone
    whose Kinetics-400 weights are used when they are in the local torch hub cache (never downloaded)."""

    temporal = True  # takes (B, T, 3, S, S) whole, not frame by frame

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        from torchvision.models.video import R2Plus1D_18_Weights, r2plus1d_18  # only for this preset

        net = r2plus1d_18(weights=None)
        if pretrained:
            load_cached_weights(net, R2Plus1D_18_Weights.KINETICS400_V1.url, "Kinetics-400")
        net.fc = nn.Identity()
        self.net = net
        self.out_dim = 512

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames.transpose(1, 2))  # (B, T, 3, S, S) -> (B, 3, T, S, S) -> (B, 512)


class VectorEncoder(nn.Module):
    """Features preset encoder: a small MLP over a clip's precomputed vector, LayerNorm(D) (embeddings of any
    scale), Linear(D, C), ReLU, Linear(C, C): (B, D) -> (B, C)."""

    temporal = True  # takes the clip's input whole (one vector), not frame by frame

    def __init__(self, in_dim: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, width), nn.ReLU(inplace=True),
                                 nn.Linear(width, width))
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_encoders(preset: Preset, pretrained: bool = False, input_dims: tuple[int, int] = (0, 0)
                  ) -> tuple[nn.Module, nn.Module]:
    """(f_v, f_a) of ``preset``, both with the same ``out_dim`` C; ``input_dims`` (D_v, D_a): the vector sizes of
    the features preset."""
    makers = {
        "resnet18": lambda: (ResNet18Encoder(3, pretrained), ResNet18Encoder(1)),
        "r2plus1d_18": lambda: (VideoR2Plus1DEncoder(pretrained), ResNet18Encoder(1)),
        "small_cnn": lambda: (SmallCNN(3, preset.width), SmallCNN(1, preset.width, spectrogram=True)),
        "vectors": lambda: (VectorEncoder(input_dims[0], preset.width), VectorEncoder(input_dims[1], preset.width)),
    }
    return makers[preset.encoder]()


def encode_frames(f_v: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """h^v of a clip's input: f_v shared over the T frames (B, T, 3, S, S) and mean-pooled over time; a video
    backbone sees the T frames together (and an MLP its vector): (B, C)."""
    if getattr(f_v, "temporal", False):
        return f_v(frames)
    b, t = frames.shape[:2]
    return f_v(frames.flatten(0, 1)).view(b, t, -1).mean(dim=1)


class FrameEncoder(nn.Module):
    """f_v as the network applies it to a clip's frames (encode_frames): the visual encoder a run exports."""

    def __init__(self, f_v: nn.Module) -> None:
        super().__init__()
        self.f_v = f_v

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return encode_frames(self.f_v, frames)


@dataclass
class Outputs:
    h_v: torch.Tensor  # (B, C)
    h_a: torch.Tensor  # (B, C)
    z_v: torch.Tensor  # (B, d), unit norm
    z_a: torch.Tensor  # (B, d), unit norm
    logits_v: torch.Tensor  # (B, K)
    logits_a: torch.Tensor  # (B, K)
    logits_av: torch.Tensor  # (B, K)


class AudioVisualNet(nn.Module):
    def __init__(self, preset: Preset, num_classes: int, embed_dim: int = 128, pretrained: bool = False,
                 input_dims: tuple[int, int] = (0, 0)) -> None:
        super().__init__()
        self.f_v, self.f_a = make_encoders(preset, pretrained, input_dims)
        c = self.f_v.out_dim
        self.g_v = nn.Sequential(nn.Linear(c, c), nn.ReLU(inplace=True), nn.Linear(c, embed_dim))
        self.g_a = nn.Sequential(nn.Linear(c, c), nn.ReLU(inplace=True), nn.Linear(c, embed_dim))
        self.c_v = nn.Linear(c, num_classes)
        self.c_a = nn.Linear(c, num_classes)
        self.c_av = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * c, num_classes))

    def forward(self, frames: torch.Tensor, mel: torch.Tensor) -> Outputs:
        h_v = encode_frames(self.f_v, frames)  # (B, C)
        h_a = self.f_a(mel)  # (B, C)
        z_v = F.normalize(self.g_v(h_v), dim=-1)
        z_a = F.normalize(self.g_a(h_a), dim=-1)
        return Outputs(h_v, h_a, z_v, z_a, self.c_v(h_v), self.c_a(h_a), self.c_av(torch.cat([h_v, h_a], dim=-1)))


def place_on(model: nn.Module, device: torch.device | str) -> nn.Module:
    """``model`` on ``device`` in the memory format that training and scoring both use there: channels_last on
    the CPU (faster convolutions), the default elsewhere. One rule for both, so that scoring a training set gives
    the numbers of the training's last epoch end to the bit."""
    model = model.to(device)
    if torch.device(device).type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model
