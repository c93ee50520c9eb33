"""How well can the cpu preset's encoder learn one modality of a data set alone? A single-modality probe.

    python scripts/modality_probe.py --data DIR --modality {sound,picture} [--pool {product,average}] [--steps 216]

Trains one small CNN of the cpu preset (model/network.SmallCNN, width 16) with a linear head by plain
cross-entropy on the given labels of DIR, with the product's inputs and augmentation (model/inputs.batch_inputs:
the sound crop placed by loudness, frame jitter, flip, shift, gain), batch 64, AdamW (lr 2e-3, weight decay 1e-4)
and the training loop's schedule (linear warm-up over one epoch, cosine decay to 5%), for ``--steps`` steps (216 =
the automatic schedule's minimum); then prints one JSON line: accuracy on DIR and on DIR/test (a clean held-out
split, as ``sample --test-clips`` writes) and the per-class recall on DIR/test, in class order. ``--pool average``
replaces the encoder's pooling (TimePool / SpacePool) by a global average over the map, to measure what the
pooling brings. Figures in BENCHMARKS.md name this command.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from auditor.data.cache import prepare_data
from auditor.model.inputs import batch_inputs
from auditor.model.network import SmallCNN
from auditor.model.presets import get_preset, preprocess_params
from auditor.train import _lr_factor
from auditor.workspace import cache_root

BATCH = 64


class Probe(nn.Module):
    """SmallCNN (sound: 1-channel log-mel; picture: shared over the T frames, mean over time) -> linear head."""

    def __init__(self, modality: str, num_classes: int, width: int, average: bool) -> None:
        super().__init__()
        self.sound = modality == "sound"
        self.enc = SmallCNN(1 if self.sound else 3, width, spectrogram=self.sound)
        if average:
            self.enc.net[-1] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(self.enc.out_dim, num_classes)

    def forward(self, frames: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        if self.sound:
            return self.head(self.enc(mel))
        b, t = frames.shape[:2]
        return self.head(self.enc(frames.flatten(0, 1)).view(b, t, -1).mean(1))


def _load(folder: Path, classes: list[str] | None):
    result, arrays = prepare_data(folder, preprocess_params("cpu"), show_bar=False, cache_root=cache_root(folder))
    classes = classes or result.classes
    return arrays, torch.tensor([classes.index(c) for c in arrays.labels]), classes


def _recall(model: Probe, arrays, labels: torch.Tensor, k: int) -> tuple[float, list[float]]:
    preset = get_preset("cpu")
    model.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, len(labels), 128):
            idx = np.arange(start, min(len(labels), start + 128))
            preds.append(model(*batch_inputs(arrays, idx, preset.num_frames, preset.audio_frames, None)).argmax(1))
    p = torch.cat(preds)
    recall = [round(float((p[labels == c] == c).float().mean()), 3) if (labels == c).any() else float("nan")
              for c in range(k)]
    return round(float((p == labels).float().mean()), 3), recall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a data set with a clean test split in DATA/test")
    ap.add_argument("--modality", choices=("sound", "picture"), required=True)
    ap.add_argument("--pool", choices=("product", "average"), default="product")
    ap.add_argument("--steps", type=int, default=216)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    preset = get_preset("cpu")
    arrays, labels, classes = _load(args.data, None)
    test_arrays, test_labels, _ = _load(args.data / "test", classes)
    torch.manual_seed(args.seed)
    model = Probe(args.modality, len(classes), preset.width, args.pool == "average")
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    per_epoch = max(1, len(labels) // BATCH)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, args.steps, per_epoch))
    rng = np.random.default_rng(args.seed)
    started, step = time.time(), 0
    while step < args.steps:
        order = rng.permutation(len(labels))
        for b in range(per_epoch):
            if step == args.steps:
                break
            idx = np.sort(order[b * BATCH:(b + 1) * BATCH])
            model.train()
            loss = F.cross_entropy(model(*batch_inputs(arrays, idx, preset.num_frames, preset.audio_frames, rng)),
                                   labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
    train_acc, _ = _recall(model, arrays, labels, len(classes))
    test_acc, test_recall = _recall(model, test_arrays, test_labels, len(classes))
    print(json.dumps({"data": str(args.data), "modality": args.modality, "pool": args.pool, "steps": args.steps,
                      "seed": args.seed, "train_acc": train_acc, "test_acc": test_acc,
                      "test_recall": dict(zip(classes, test_recall, strict=True)),
                      "seconds": round(time.time() - started, 1)}))


if __name__ == "__main__":
    main()
