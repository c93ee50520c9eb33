"""``ingest --visual-encoder --audio-encoder``: encoder files (here the pair export-encoders writes) turn a data
set into a features file that holds the model's own features and trains with ``train --features``; encoder files
that do not fit their contract are refused, naming the file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from auditor.__main__ import main
from auditor.data.cache import prepare_data
from auditor.model.checkpoint import load_trained
from auditor.model.config import TrainConfig
from auditor.model.encoder_files import CONTRACT_KEY
from auditor.model.estimate import evaluate
from auditor.model.presets import preprocess_params

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "sample"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("encoders")
    assert main(["export-encoders", "--run", str(SHIPPED), "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_exported_encoders_round_trip_into_a_features_run(small_dataset, exported, tmp_path):
    features = tmp_path / "features.parquet"
    assert main(["ingest", "--data", str(small_dataset), "--visual-encoder", str(exported / "visual_encoder.pt"),
                 "--audio-encoder", str(exported / "audio_encoder.pt"), "--out", str(features)]) == 0
    table = pd.read_parquet(features)
    model, ckpt = load_trained(SHIPPED)
    _, arrays = prepare_data(small_dataset, preprocess_params("cpu"), show_bar=False)
    ev = evaluate(model, arrays, np.arange(len(arrays.clips)), TrainConfig(**ckpt["config"]), torch.device("cpu"))
    assert table["clip"].tolist() == arrays.clips
    assert np.allclose(np.stack(table["visual"]), ev["h_v"].numpy(), atol=1e-4)
    with_sound = table["has_audio"].to_numpy()
    assert with_sound.tolist() == arrays.has_audio.tolist()
    assert np.allclose(np.stack(table["audio"])[with_sound], ev["h_a"].numpy()[with_sound], atol=1e-4)
    run = tmp_path / "run"
    assert main(["train", "--data", str(small_dataset), "--run", str(run), "--features", str(features), "--quiet",
                 "--device", "cpu", "--epochs-phase1", "2", "--epochs-phase2", "1", "--batch-size", "16"]) == 0
    assert len(pd.read_csv(run / "flags.csv")) == len(arrays.clips)


def _ingest(data: Path, visual: Path, audio: Path, tmp_path: Path) -> int:
    return main(["ingest", "--data", str(data), "--visual-encoder", str(visual), "--audio-encoder", str(audio),
                 "--out", str(tmp_path / "f.parquet")])


def _script(module: nn.Module, path: Path, contract: str = "") -> Path:
    torch.jit.save(torch.jit.script(module), str(path), _extra_files={CONTRACT_KEY: contract} if contract else {})
    return path


class _Flat(nn.Module):
    """A vector encoder of 10 numbers: does not take frames."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(10, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _PerPixel(nn.Module):
    """Returns (B, T, 3, S, S): not one vector per clip."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_files_that_do_not_fit_are_refused_naming_them(small_dataset, exported, tmp_path, capsys):
    visual, audio = exported / "visual_encoder.pt", exported / "audio_encoder.pt"
    assert _ingest(small_dataset, audio, audio, tmp_path) == 2
    assert f"{audio}: its contract is for the audio input; given as the visual encoder" in capsys.readouterr().err
    state = tmp_path / "state.pt"
    torch.save(nn.Linear(2, 2).state_dict(), state)
    assert _ingest(small_dataset, state, audio, tmp_path) == 2
    assert f"{state}: not a TorchScript file" in capsys.readouterr().err
    flat = _script(_Flat(), tmp_path / "flat.pt")
    assert _ingest(small_dataset, flat, audio, tmp_path) == 2
    assert f"{flat}: does not fit the visual contract: given frames of shape (" in capsys.readouterr().err
    pixels = _script(_PerPixel(), tmp_path / "pixels.pt")
    assert _ingest(small_dataset, visual, pixels, tmp_path) == 2
    assert "returned float32 (" in capsys.readouterr().err
    assert _ingest(small_dataset, tmp_path / "none.onnx", audio, tmp_path) == 2
    assert "no such encoder file" in capsys.readouterr().err
    assert main(["ingest", "--data", str(small_dataset), "--visual-encoder", str(visual)]) == 2
    assert "--visual-encoder and --audio-encoder go together" in capsys.readouterr().err
    assert not (tmp_path / "f.parquet").exists()


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is not None, reason="onnxruntime is installed")
def test_onnx_without_onnxruntime_says_what_to_install(small_dataset, exported, tmp_path, capsys):
    onnx = tmp_path / "v.onnx"
    onnx.write_bytes(b"onnx")
    assert _ingest(small_dataset, onnx, exported / "audio_encoder.pt", tmp_path) == 2
    assert "reading ONNX encoders needs onnxruntime" in capsys.readouterr().err


def _to_onnx(pt: Path, out: Path, example: torch.Tensor) -> Path:
    """The TorchScript encoder ``pt`` as ONNX (any batch size), carrying the same contract in its metadata."""
    import onnx

    extra = {CONTRACT_KEY: ""}
    module = torch.jit.load(str(pt), _extra_files=extra)
    torch.onnx.export(module, (example,), str(out), dynamo=False, input_names=["x"], output_names=["h"],
                      dynamic_axes={"x": {0: "batch"}, "h": {0: "batch"}})
    model = onnx.load(str(out))
    model.metadata_props.add(key=CONTRACT_KEY, value=extra[CONTRACT_KEY])
    onnx.save(model, str(out))
    return out


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
                    reason="needs the onnx extra (onnxruntime) and onnx")
def test_onnx_encoders_give_the_torchscript_vectors(small_dataset, exported, tmp_path):
    paths = {}
    for name, example in (("visual", torch.zeros(2, 4, 3, 64, 64)), ("audio", torch.zeros(2, 1, 64, 256))):
        paths[name] = _to_onnx(exported / f"{name}_encoder.pt", tmp_path / f"{name}.onnx", example)
    tables = []
    for visual, audio in ((paths["visual"], paths["audio"]),
                          (exported / "visual_encoder.pt", exported / "audio_encoder.pt")):
        out = tmp_path / f"{visual.suffix[1:]}.parquet"
        assert main(["ingest", "--data", str(small_dataset), "--visual-encoder", str(visual), "--audio-encoder",
                     str(audio), "--out", str(out)]) == 0
        tables.append(pd.read_parquet(out))
    onnx_table, ts_table = tables
    assert onnx_table["clip"].tolist() == ts_table["clip"].tolist()
    for column in ("visual", "audio"):
        assert np.allclose(np.stack(onnx_table[column]), np.stack(ts_table[column]), atol=1e-4, equal_nan=True)
