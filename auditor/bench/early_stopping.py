"""The warm-up baselines' early stopping: a training's outputs recorded after every epoch, and the epoch that a
held-out split of the given (noisy) labels picks.

The small-loss criterion (Co-teaching, DivideMix) reads each clip's loss at an early epoch, before the network has
memorised the wrong labels. A practitioner picks that epoch on a held-out split whose labels are as noisy as the
rest (no clean labels are needed):

  selection run  the method's training on a stratified (F-1)/F of the clips (F = SELECTION_FOLDS); its outputs
                 on the held-out 1/F recorded after every epoch e
  criterion c_e  small_loss: accuracy of argmax p^av against the held-out clips' given labels;
                 infonce_loss: minus the mean cross-modal InfoNCE l_i of the held-out clips with usable sound
                 among themselves (estimate.per_clip_infonce, clips of the same given label left out of the
                 negatives, as for ntl's w)
  e*             argmax_e c_e, the earliest of ties
  scored run     the same training on all clips, its outputs on every clip recorded after every epoch; the
                 baseline scores the outputs of epoch e*, so every clip is scored in-sample, as the criterion
                 assumes.

Both runs train ntl's total number of epochs with the same schedule, so e* carries over by its number. A record is
RUN/epochs/e<NNN>.pt: the kept evaluate() outputs (CPU tensors) for the clips ``indices`` (positions in the full
data set's ClipArrays).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import torch

from auditor.atomic import atomic_write_bytes
from auditor.data.cache import ClipArrays
from auditor.model.config import TrainConfig
from auditor.model.estimate import evaluate, per_clip_infonce
from auditor.run_folder import CHECKPOINT_FILE, FLAGS_FILE, read_progress

SELECTION_FOLDS = 5  # the selection run trains on 4/5 of the clips and is judged on the other 1/5
RECORDS_DIR = "epochs"
# The evaluate() outputs each warm-up baseline keeps per epoch.
RECORDED_OUTPUTS: dict[str, tuple[str, ...]] = {"small_loss": ("logits_av",), "infonce_loss": ("z_v", "z_a")}


def record_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / RECORDS_DIR / f"e{epoch:03d}.pt"


class EpochRecorder:
    """An ``epoch_end`` for auditor.train.train: after epoch e, evaluate the model on ``indices`` of ``arrays`` and
    write the outputs ``keys`` (and ``indices``) to record_path(run_dir, e), atomically."""

    def __init__(self, run_dir: Path, arrays: ClipArrays, indices: np.ndarray, cfg: TrainConfig,
                 keys: tuple[str, ...]) -> None:
        self.run_dir, self.arrays, self.indices, self.cfg, self.keys = Path(run_dir), arrays, indices, cfg, keys

    def __call__(self, epoch: int, model: torch.nn.Module, device: torch.device) -> None:
        ev = evaluate(model, self.arrays, self.indices, self.cfg, device)
        buffer = io.BytesIO()
        torch.save({"indices": torch.from_numpy(np.asarray(self.indices)), **{k: ev[k] for k in self.keys}}, buffer)
        path = record_path(self.run_dir, epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())


def load_record(run_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    path = record_path(run_dir, epoch)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no outputs recorded for epoch {epoch}")
    return torch.load(path, map_location="cpu", weights_only=True)


def keep_records_consistent(run_dir: Path, fresh: bool) -> None:
    """Before (re)training ``run_dir`` with an EpochRecorder: a fresh run (``fresh``) starts without records; a run
    that trained an epoch without recording it (e.g. one trained by ``python -m auditor train``) is started again
    (its checkpoint, flags.csv and records removed), since those outputs cannot be had any more."""
    run_dir = Path(run_dir)
    trained = {int(e["epoch"]) for e in read_progress(run_dir) if e.get("event") == "epoch"}
    if fresh or any(not record_path(run_dir, e).is_file() for e in trained):
        shutil.rmtree(run_dir / RECORDS_DIR, ignore_errors=True)
        for name in (CHECKPOINT_FILE, FLAGS_FILE):
            (run_dir / name).unlink(missing_ok=True)


def select_epoch(criterion: dict[int, float]) -> int:
    """e* = argmax_e criterion[e], the earliest epoch of ties."""
    if not criterion:
        raise ValueError("no epochs to select from")
    best = max(criterion.values())
    return min(e for e, c in criterion.items() if c == best)


def held_out_criterion(method: str, record: dict[str, torch.Tensor], labels: list[str], run_classes: list[str],
                       has_audio: np.ndarray, tau: float, seed: int) -> float:
    """c_e of one record of the selection run (module docstring). ``labels``: the given label of every clip of the
    full data set; ``run_classes``: the selection run's classes (its logits' columns); ``has_audio``: (N,) bool."""
    idx = record["indices"].numpy()
    given = np.asarray(labels, dtype=object)[idx]
    if method == "small_loss":
        predicted = np.asarray(run_classes, dtype=object)[record["logits_av"].argmax(1).numpy()]
        return float(np.mean(predicted == given))
    if method == "infonce_loss":
        sound = np.asarray(has_audio)[idx]
        if sound.sum() < 2:
            return 0.0
        codes = torch.from_numpy(np.unique(given[sound], return_inverse=True)[1])
        ell = per_clip_infonce(record["z_v"][sound].float(), record["z_a"][sound].float(), tau, seed, codes)
        return -float(ell.mean())
    raise ValueError(f"no early-stopping criterion for {method!r}")
