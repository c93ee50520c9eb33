"""The ``train`` command end to end: hold the run folder's lock, train (:mod:`auditor.train`), then score the
training set with the trained model (:mod:`auditor.scoring`) into the same folder.

progress.jsonl gets the training's events, then the scoring's, then one final event: ``done`` when flags.csv,
embeddings.parquet and class_report.csv are written, ``error`` or ``cancelled`` when anything failed.
Under torchrun every rank trains; rank 0 alone holds the lock, scores and writes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from auditor.model import distributed as dist
from auditor.model.checkpoint import load_trained
from auditor.model.config import TrainConfig
from auditor.model.estimate import training_earlier_sound
from auditor.run_folder import CONFIG_FILE, FLAGS_FILE, RunLock, append_progress
from auditor.scoring import score_and_write
from auditor.train import EpochEnd, train


def train_and_score(data_dir: str | Path, run_dir: str | Path, cfg: TrainConfig, *, resume: bool = False,
                    overwrite: bool = False, workers: int | None = None, quiet: bool = False,
                    cache_root: str | Path | None = None, epoch_end: EpochEnd | None = None) -> Path:
    """Train on ``data_dir`` into ``run_dir`` and write its flags.csv, embeddings.parquet and class_report.csv;
    returns ``run_dir``. ``epoch_end``: see :func:`auditor.train.train`."""
    run_dir = Path(run_dir)
    is_main = dist.env_rank() == 0
    with RunLock(run_dir) if is_main else contextlib.nullcontext():
        try:
            trained = train(data_dir, run_dir, cfg, resume=resume, overwrite=overwrite, workers=workers, quiet=quiet,
                            cache_root=cache_root, epoch_end=epoch_end)
            if trained.is_main:
                model, ckpt = load_trained(run_dir, trained.device)
                arrays = trained.arrays
                score_and_write(model, ckpt["config"], trained.ingest, arrays, run_dir,
                                classes=ckpt["classes"], device=trained.device, run_config=trained.config,
                                evaluation=trained.final,
                                earlier_sound=training_earlier_sound(ckpt, arrays.clips, arrays.labels))
                append_progress(run_dir, {"event": "done", "message": f"wrote {run_dir / FLAGS_FILE}"})
        except BaseException as err:
            if is_main and (run_dir / CONFIG_FILE).exists():
                event = "cancelled" if isinstance(err, KeyboardInterrupt) else "error"
                append_progress(run_dir, {"event": event, "message": f"{type(err).__name__}: {err}"})
            raise
    return run_dir
