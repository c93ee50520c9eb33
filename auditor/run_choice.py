"""Which of a data set's runs the app opens, and what the run picker says of each (pure; no Streamlit).

A newer run must not hide the one being reviewed: :func:`choose` prefers the run of the data set's latest
decision, then the scored run the curator last picked, then the newest scored run. Each run is described by its
flagged and decided clips and when it finished; a run trained on far fewer epochs than the automatic schedule
(auditor.model.config.resolve_schedule) for its clips is marked as short.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from auditor.errors import UserError
from auditor.model.config import TrainConfig, resolve_schedule

# A run trained on fewer than this share of the automatic schedule's epochs is "short": its scores are rough.
SHORT_SHARE = 0.5


@dataclass(frozen=True)
class RunSummary:
    """One run as the picker shows it: ``flagged`` (None: no results yet), ``decided`` (clips whose current
    decision was made on this run), ``finished`` (when its results were written, epoch seconds, or None),
    ``epochs`` (trained, or None when unknown) and ``auto_epochs`` (the automatic schedule's for its clips)."""

    name: str
    flagged: int | None
    decided: int
    finished: float | None
    epochs: int | None = None
    auto_epochs: int | None = None

    @property
    def ready(self) -> bool:
        return self.flagged is not None

    @property
    def short(self) -> bool:
        """Trained on fewer than SHORT_SHARE of the automatic schedule's epochs."""
        return self.epochs is not None and bool(self.auto_epochs) and self.epochs < SHORT_SHARE * self.auto_epochs


def schedule(config: dict) -> tuple[int, int] | None:
    """(epochs trained, epochs of the automatic schedule for the same clips) from a run's config.json (the
    ``train`` settings and ``clips`` count that training writes); None when it does not say (an older run, or a
    run scored with a model trained elsewhere: ``model_run``)."""
    train, clips = config.get("train"), config.get("clips")
    if config.get("model_run") or not isinstance(train, dict) or not isinstance(clips, int) or clips <= 0:
        return None
    try:
        epochs = int(train["epochs_phase1"]) + max(0, int(train["epochs_phase2"]))
        auto = resolve_schedule(TrainConfig(preset=str(train.get("preset", "cpu")),
                                            method=str(train.get("method", "ntl")),
                                            batch_size=int(train.get("batch_size") or 0)), clips)
    except (KeyError, TypeError, ValueError, UserError):
        return None
    return epochs, auto.epochs_phase1 + auto.epochs_phase2


def label(run: RunSummary) -> str:
    """The picker's line for ``run``: "name · 5 flagged · 2 decided · finished 2026-12-05 14:03 UTC", with
    "· short training (3 of 60 epochs)" for a short run; the name alone for a run without results. The line
    is ``run.name`` + " · " + :func:`details` ``(run)``."""
    return " · ".join([run.name, details(run)]) if run.ready else run.name


def details(run: RunSummary) -> str:
    """What :func:`label` says of ``run`` after its name ("5 flagged · 2 decided · finished 2026-12-05 14:03 UTC"
    and, for a short run, "· short training (3 of 60 epochs)"); "" for a run without results."""
    if not run.ready:
        return ""
    parts = [f"{run.flagged:,} flagged", f"{run.decided:,} decided"]
    if run.finished is not None:
        parts.append(f"finished {time.strftime('%Y-%m-%d %H:%M', time.gmtime(run.finished))} UTC")
    if run.short:
        parts.append(f"short training ({run.epochs} of {run.auto_epochs} epochs)")
    return " · ".join(parts)


def choose(runs: list[RunSummary], decided_run: str | None, picked: str | None) -> str | None:
    """The run to open among ``runs`` (newest first): ``decided_run`` (the run of the data set's latest
    decision), else ``picked`` (the scored run the curator last picked), when scored; else the newest scored
    run, else the newest run; None when there is none."""
    ready = [r.name for r in runs if r.ready]
    for name in (decided_run, picked):
        if name in ready:
            return name
    return (ready or [r.name for r in runs] or [None])[0]
