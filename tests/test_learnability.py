"""The generated sample data carries the class in EACH modality: a small CNN on the frames alone and one on the
spectrogram alone both reach >= 85% on a clean held-out split (issue: foundation, tests)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auditor.data.cache import ingest, load_arrays
from auditor.data.params import PreprocessParams
from auditor.model.inputs import batch_inputs
from auditor.model.network import SmallCNN

EPOCHS = 15
TRAIN_CLIPS, TEST_CLIPS = 320, 160


class FramesOnly(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.enc, self.head = SmallCNN(3, 16), nn.Linear(128, k)

    def forward(self, frames, mel):
        b, t = frames.shape[:2]
        return self.head(self.enc(frames.flatten(0, 1)).view(b, t, -1).mean(1))


class SoundOnly(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.enc, self.head = SmallCNN(1, 16, spectrogram=True), nn.Linear(128, k)

    def forward(self, frames, mel):
        return self.head(self.enc(mel))


def _fit_and_test(model: nn.Module, train, test, y_train, y_test) -> float:
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    for _ in range(EPOCHS):
        model.train()
        perm = rng.permutation(len(y_train))
        for start in range(0, len(perm) - 31, 32):
            idx = perm[start:start + 32]
            frames, mel = batch_inputs(train, idx, 4, 256, rng)
            loss = F.cross_entropy(model(frames, mel), torch.from_numpy(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        frames, mel = batch_inputs(test, np.arange(len(y_test)), 4, 256, None)
        pred = model(frames, mel).argmax(1).numpy()
    return float((pred == y_test).mean())


@pytest.mark.slow
def test_each_modality_alone_is_learnable(tmp_path):
    from auditor.data.generate import generate_dataset

    generate_dataset(tmp_path / "d", clips=TRAIN_CLIPS, test_clips=TEST_CLIPS, seed=21)
    params = PreprocessParams(num_frames=8, frame_size=64)
    train = load_arrays(ingest(tmp_path / "d", params))
    test = load_arrays(ingest(tmp_path / "d" / "test", params))
    classes = sorted(set(train.labels))
    y_train = np.array([classes.index(c) for c in train.labels])
    y_test = np.array([classes.index(c) for c in test.labels])
    torch.set_num_threads(2)
    acc_frames = _fit_and_test(FramesOnly(len(classes)), train, test, y_train, y_test)
    acc_sound = _fit_and_test(SoundOnly(len(classes)), train, test, y_train, y_test)
    print(f"frames-only accuracy {acc_frames:.3f}, sound-only accuracy {acc_sound:.3f}")
    assert acc_frames >= 0.85, f"frames-only accuracy {acc_frames:.3f}"
    assert acc_sound >= 0.85, f"sound-only accuracy {acc_sound:.3f}"
