"""model/checkpoint.py: --init-from copies the matching weights of an earlier run and refuses another preset."""

from __future__ import annotations

import pytest
import torch

from auditor.errors import UserError
from auditor.model.checkpoint import init_from_run, save_checkpoint
from auditor.model.config import TrainConfig
from auditor.model.network import AudioVisualNet
from auditor.model.presets import get_preset


def _saved_run(tmp_path, num_classes: int, preset: str = "cpu") -> AudioVisualNet:
    torch.manual_seed(1)
    model = AudioVisualNet(get_preset(preset), num_classes)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    save_checkpoint(tmp_path / "checkpoint.pt", model, opt, sched, {}, 3, 1.0, TrainConfig(preset=preset),
                    [f"c{i}" for i in range(num_classes)], ["a.mp4"], ["c0"])
    return model


def test_init_from_copies_encoders_and_keeps_heads_of_another_class_count(tmp_path):
    source = _saved_run(tmp_path, num_classes=6)
    torch.manual_seed(2)
    model = AudioVisualNet(get_preset("cpu"), 4)
    counts = init_from_run(model, tmp_path, "cpu")
    src, own = source.state_dict(), model.state_dict()
    for name, value in own.items():
        if name.startswith(("f_v.", "f_a.", "g_v.", "g_a.")):
            assert torch.equal(value, src[name]), name
    assert not torch.equal(own["c_v.weight"][:4], src["c_v.weight"][:4])  # 4 vs 6 classes: fresh heads
    assert counts["copied"] > 0 and counts["kept"] == 6  # c_v, c_a, c_av: weight and bias each
    assert counts["copied"] + counts["kept"] == len(own)


def test_init_from_refuses_another_preset_and_a_missing_run(tmp_path):
    _saved_run(tmp_path, num_classes=4)
    with pytest.raises(UserError, match="same preset"):
        init_from_run(AudioVisualNet(get_preset("resnet18"), 4), tmp_path, "resnet18")
    with pytest.raises(UserError, match="no checkpoint"):
        init_from_run(AudioVisualNet(get_preset("cpu"), 4), tmp_path / "nope", "cpu")


def test_video_backbone_uses_cached_weights_and_trains_from_scratch_without(tmp_path, monkeypatch, capsys):
    from torchvision.models.video import R2Plus1D_18_Weights, r2plus1d_18

    from auditor.model.network import VideoR2Plus1DEncoder

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch" / "hub"))
    fresh = VideoR2Plus1DEncoder(pretrained=True)
    assert "no cached Kinetics-400 weights" in capsys.readouterr().err
    torch.manual_seed(7)
    cached = r2plus1d_18(weights=None).state_dict()
    path = tmp_path / "torch" / "hub" / "checkpoints" / R2Plus1D_18_Weights.KINETICS400_V1.url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True)
    torch.save(cached, path)
    loaded = VideoR2Plus1DEncoder(pretrained=True)
    name = "stem.0.weight"
    assert torch.equal(loaded.net.state_dict()[name], cached[name])
    assert not torch.equal(fresh.net.state_dict()[name], cached[name])
    model = AudioVisualNet(get_preset("r2plus1d"), 3)
    out = model(torch.randn(2, 8, 3, 32, 32), torch.randn(2, 1, 64, 40))
    assert out.logits_av.shape == (2, 3) and out.z_v.shape == (2, 128)
