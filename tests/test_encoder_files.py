"""export-encoders: a run's encoders as TorchScript files that give the model's own h^v, h^a for any batch size,
each carrying its input contract."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from auditor.__main__ import main
from auditor.model.checkpoint import load_trained
from auditor.model.encoder_files import CONTRACT_KEY
from auditor.model.network import encode_frames

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "sample"


def test_exported_encoders_compute_the_models_features(tmp_path):
    assert main(["export-encoders", "--run", str(SHIPPED), "--out", str(tmp_path)]) == 0
    model, _ = load_trained(SHIPPED)
    summary = json.loads((tmp_path / "encoders.json").read_text())
    assert summary["preset"] == "cpu" and summary["visual"]["shape"] == [-1, 4, 3, 64, 64]
    assert summary["audio"]["shape"] == [-1, 1, 64, 256] and summary["audio"]["sample_rate"] == 16_000
    frames, mel = torch.randn(5, 4, 3, 64, 64), torch.randn(5, 1, 64, 256)
    for name, x, own in (("visual", frames, lambda: encode_frames(model.f_v, frames)),
                         ("audio", mel, lambda: model.f_a(mel))):
        extra = {CONTRACT_KEY: ""}
        encoder = torch.jit.load(tmp_path / f"{name}_encoder.pt", _extra_files=extra)
        contract = json.loads(extra[CONTRACT_KEY])
        assert contract == {k: v for k, v in summary[name].items() if k != "file"}
        with torch.no_grad():
            assert torch.allclose(encoder(x), own(), atol=1e-4)
        assert contract["output_dim"] == 128
