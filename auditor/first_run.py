"""The first minute: the bundled sample (``sample_data/``) scored by the shipped model (``models/sample``), so
that Explore and Review work as soon as the app opens.

The scored run is made once, in the background (a ``score`` job, :mod:`auditor.jobs`), into the sample's work
folder (:mod:`auditor.workspace`: the user's data folder, since the installation itself is not written), and
reused at every later start. A stamp of the checkpoint it was made with (``shipped_model.json``: size and
modification time) tells whether the shipped model changed since; then a new run is made beside the old one.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from auditor import jobs, run_folder
from auditor.workspace import BUNDLED_SAMPLE, runs_root

SHIPPED_MODEL = BUNDLED_SAMPLE.parent / "models" / "sample"
SAMPLE_RUN_PREFIX = "shipped-model"
STAMP_FILE = "shipped_model.json"
LOCK_FILE = ".first_run.lock"  # in the sample's runs folder: two tabs opening at once start one job


def _stamp() -> dict | None:
    """{"size", "mtime_ns"} of the shipped checkpoint, or None when there is none."""
    try:
        st = (SHIPPED_MODEL / run_folder.CHECKPOINT_FILE).stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def sample_runs() -> list[Path]:
    """The sample's runs made by this module, newest first."""
    root = runs_root(BUNDLED_SAMPLE)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.name.startswith(SAMPLE_RUN_PREFIX) and (p / STAMP_FILE).is_file()]
    return sorted(runs, key=lambda p: p.name, reverse=True)


def sample_run_state() -> tuple[str, Path | None]:
    """("ready" | "running" | "failed" | "missing" | "unavailable", the run or None) of the sample scored by the
    current shipped model. "unavailable": no shipped model or no bundled sample in this installation;
    "missing": no run made with this checkpoint yet (or its job was cancelled)."""
    stamp = _stamp()
    if stamp is None or not (BUNDLED_SAMPLE / "labels.csv").is_file():
        return "unavailable", None
    for run in sample_runs():
        if run_folder.read_json(run / STAMP_FILE) != stamp:
            continue
        state = jobs.job_status(run).state
        if state == "finished" and run_folder.run_outputs_ready(run):
            return "ready", run
        if state in ("running", "failed"):
            return state, run
    return "missing", None


def start_sample_run() -> Path:
    """Start scoring the bundled sample with the shipped model into a new run of the sample's work folder, in
    the background; returns the run folder. Raises JobRunningError (a UserError) as auditor.jobs.start_job."""
    root = runs_root(BUNDLED_SAMPLE)
    run = root / run_folder.new_run_name(root, SAMPLE_RUN_PREFIX)
    run.mkdir(parents=True, exist_ok=True)
    (run / STAMP_FILE).write_text(json.dumps(_stamp()))
    jobs.start_job(run, ["score", "--run", str(SHIPPED_MODEL), "--data", str(BUNDLED_SAMPLE), "--out", str(run)])
    return run


def ensure_sample_run() -> tuple[str, Path | None]:
    """sample_run_state(), after starting the scoring job when the run is missing (once: later calls find it
    running or ready)."""
    state, run = sample_run_state()
    if state != "missing":
        return state, run
    root = runs_root(BUNDLED_SAMPLE)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state, run = sample_run_state()  # another tab may have started it meanwhile
        return ("running", start_sample_run()) if state == "missing" else (state, run)
