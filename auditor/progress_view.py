"""A run's progress.jsonl as the Model page shows it: progress bar, ETA, estimated noise rates, loss curves
(pure; no Streamlit). The events are those train.py appends (:func:`auditor.run_folder.read_progress`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass
class ProgressView:
    """What the Model page shows of a run's progress.jsonl: ``fraction`` in [0, 1] of all training epochs,
    ``caption`` (phase / epoch / step), ``eta_s`` and ``elapsed_s`` (None if unknown), the latest estimated
    rates, ``losses`` long-form DataFrame(step, term, value) over all step events (``step`` counts optimiser
    steps from the start of training), the last message and what the mirror test decided (``mirroring``,
    :func:`mirroring_note`)."""

    fraction: float
    caption: str
    eta_s: float | None
    elapsed_s: float | None
    est_label_noise: float | None
    est_mismatch: float | None
    losses: pd.DataFrame
    message: str
    mirroring: str = ""


def job_events(events: list[dict], since: float | None) -> list[dict]:
    """The events written at or after unix time ``since`` (the start of the job on screen; None: all of them):
    progress.jsonl keeps the events of every job the run folder saw, and an older job's must not describe a
    newer one. An event without a usable time is kept."""
    if since is None:
        return list(events)
    kept = []
    for e in events:
        try:
            if float(e["time"]) < since:
                continue
        except (KeyError, TypeError, ValueError):
            pass
        kept.append(e)
    return kept


def progress_view(events: list[dict], now: float | None = None, *, kind: str = "train") -> ProgressView:
    """Summarise progress events as train.py writes them: ``epoch`` counts epochs over both phases (0-based in
    "step" events, = epochs completed in "epoch" events), ``epochs_total`` = both phases, ``step`` is 1-based
    within the epoch. ``now`` (unix seconds) counts the ETA of the last "epoch" event down. ``kind`` "score"
    (a job that scores with a trained model: no epochs) says "scoring" / "scored" instead of epochs."""
    if kind == "score":
        return _score_view(events)
    total = next((int(e["epochs_total"]) for e in reversed(events) if e.get("epochs_total")), 0)
    last = next((e for e in reversed(events) if e.get("event") in ("step", "epoch")), None)
    fraction, caption = 0.0, "preparing: decoding clips and building the model"
    if last is not None and total:
        spe = int(last.get("steps_per_epoch") or 1)
        if last["event"] == "step":
            done = int(last.get("epoch", 0)) + int(last.get("step", 0)) / spe
            current = int(last.get("epoch", 0)) + 1
        else:
            done = current = int(last.get("epoch", 0))
        fraction = min(1.0, done / total)
        caption = f"phase {last.get('phase', '?')} · epoch {min(current, total)} of {total}"
        if last["event"] == "step":
            caption += f" · step {last.get('step')}/{spe}"
    finished = bool(events) and events[-1].get("event") == "done"
    if finished:
        fraction, caption = 1.0, "all epochs done"
    rows = []
    for e in events:
        if e.get("event") == "step":
            x = int(e.get("epoch", 0)) * int(e.get("steps_per_epoch") or 1) + int(e.get("step", 0))
            rows.extend((x, str(term), float(v)) for term, v in (e.get("losses") or {}).items() if v is not None)
    timed = [e for e in events if e.get("eta_s") is not None]
    eta = None
    if finished:
        eta = 0.0
    elif timed:
        eta = float(timed[-1]["eta_s"])
        if now is not None and timed[-1].get("time") is not None:
            eta = max(0.0, eta - (now - float(timed[-1]["time"])))
    rates = [e for e in events if e.get("est_label_noise") is not None or e.get("est_mismatch") is not None]
    elapsed = [e["elapsed_s"] for e in events if e.get("elapsed_s") is not None]
    messages = [e["message"] for e in events if e.get("message")]
    return ProgressView(
        fraction=float(fraction), caption=caption, eta_s=eta, elapsed_s=elapsed[-1] if elapsed else None,
        est_label_noise=rates[-1].get("est_label_noise") if rates else None,
        est_mismatch=rates[-1].get("est_mismatch") if rates else None,
        losses=pd.DataFrame(rows, columns=["step", "term", "value"]),
        message=messages[-1] if messages else "", mirroring=mirroring_note(events))


def mirroring_note(events: list[dict]) -> str:
    """One sentence on the frames' mirroring from the latest epoch event with a mirror test (train.py's
    ``mirror_test``, TrainConfig.flip_frames auto): undecided so far, mirrored from the next epoch on, or never
    mirrored, with the test's held-out accuracies; "" when no epoch has run the test."""
    tests = [e for e in events if e.get("event") == "epoch" and e.get("mirror_test")]
    if not tests:
        return ""
    epoch, test = int(tests[-1].get("epoch", 0)), tests[-1]["mirror_test"]
    figures = (f"held-out accuracy {test['accuracy']:.0%} on the clips, {test['mirrored_accuracy']:.0%} on their "
               f"mirror images, {test['trivial_accuracy']:.0%} answering the largest class")
    if not test.get("decided"):
        return f"Frames not mirrored: the mirror test has not decided yet (epoch {epoch}: {figures})."
    if test.get("keeps_class"):
        return f"Frames mirrored at random from epoch {epoch + 1} on: mirror images keep their class ({figures})."
    if not test["learnt"]:
        return (f"Frames never mirrored: the heads had learnt too little of the pictures "
                f"to tell whether mirror images keep their class ({figures}).")
    return f"Frames never mirrored: mirror images do not keep their class ({figures})."


def _score_view(events: list[dict]) -> ProgressView:
    finished = bool(events) and events[-1].get("event") == "done"
    messages = [e["message"] for e in events if e.get("message")]
    return ProgressView(
        fraction=1.0 if finished else 0.0,
        caption="scored" if finished else "scoring: decoding the clips, then scoring them with the trained model",
        eta_s=0.0 if finished else None, elapsed_s=None, est_label_noise=None, est_mismatch=None,
        losses=pd.DataFrame(columns=["step", "term", "value"]), message=messages[-1] if messages else "")
