"""A run directory's contract, shared by the command line, the training and scoring code and the app.

RUNDIR holds:
* ``config.json``: the run's configuration (written first, so a run is listed while it is being filled);
* ``progress.jsonl``: one JSON event a line, appended by the job (:func:`append_progress`), read by the app
  (:func:`read_progress`); final events are ``done``, ``error`` and ``cancelled``;
* ``job.lock``: held with an exclusive ``flock`` by the one process that writes the run (:class:`RunLock`);
* the outputs ``flags.csv``, ``embeddings.parquet``, ``class_report.csv`` and ``checkpoint.pt``.
Background jobs that fill a run directory (start, status, cancel) are :mod:`auditor.jobs`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path

from auditor.atomic import atomic_write_text
from auditor.errors import UserError

LOCK_FILE = "job.lock"
PROGRESS_FILE = "progress.jsonl"
CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
CLASS_REPORT_FILE = "class_report.csv"
FLAGS_FILE = "flags.csv"
EMBEDDINGS_FILE = "embeddings.parquet"
# Per-window scores of clips cut into aligned windows (scoring.window_table); absent when every clip is one window.
WINDOWS_FILE = "windows.csv"
OUTPUT_FILES = (FLAGS_FILE, EMBEDDINGS_FILE)
# Final progress events and the state each one means.
FINAL_EVENTS = {"done": "finished", "error": "failed", "cancelled": "cancelled"}
# A status probe holds job.lock for microseconds; a job taking the lock retries this long before it believes
# that another job holds it (a real job holds it for minutes).
LOCK_RETRY_S = 1.0
LOCK_RETRY_STEP_S = 0.02


class JobRunningError(UserError):
    """A job already runs in this run directory; the message names the directory and the holder's pid."""


class RunLock:
    """Exclusive lock on RUNDIR/job.lock for the life of a job: ``with RunLock(run_dir): train(...)``.

    Raises :class:`JobRunningError` naming ``run_dir`` and the holder's pid when another process holds it.
    While held, job.lock contains ``{"pid", "argv", "started"}`` of the holder. The lock file is never deleted
    (deleting a lock file lets two processes lock two different files).
    """

    def __init__(self, run_dir: str | os.PathLike[str]):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + LOCK_RETRY_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(LOCK_RETRY_STEP_S)
                    continue
                os.close(fd)
                holder = read_json(self.path) or {}
                raise JobRunningError(
                    f"{self.run_dir}: a job is already running in this run folder (pid {holder.get('pid', '?')}); "
                    "wait for it or cancel it first"
                ) from None
        record = {"pid": os.getpid(), "argv": sys.argv, "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def read_progress(run_dir: str | os.PathLike[str]) -> list[dict]:
    """The events of RUNDIR/progress.jsonl in order; a torn or unreadable line (a job killed mid-write) is skipped."""
    path = Path(run_dir) / PROGRESS_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict):
                events.append(event)
    return events


def list_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Sub-folders of ``root`` holding config.json, newest (config.json modification time) first; [] if none."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if (p / CONFIG_FILE).is_file()]
    return sorted(runs, key=lambda p: ((p / CONFIG_FILE).stat().st_mtime, p.name), reverse=True)


def run_outputs_ready(run_dir: str | os.PathLike[str]) -> bool:
    """True when the run's results (flags.csv and embeddings.parquet) exist."""
    return all((Path(run_dir) / name).is_file() for name in OUTPUT_FILES)


def append_progress(run_dir: str | os.PathLike[str], event: dict) -> None:
    """Append one event to RUNDIR/progress.jsonl as one whole line (a ``time`` key is added), flushed and fsynced;
    the running job's only way of telling the app where it is."""
    event = {"time": round(time.time(), 3)} | event
    with open(Path(run_dir) / PROGRESS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(event) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def write_config(run_dir: str | os.PathLike[str], config: dict) -> None:
    """Write RUNDIR/config.json atomically."""
    atomic_write_text(Path(run_dir) / CONFIG_FILE, json.dumps(config, indent=2))


def read_config(run_dir: str | os.PathLike[str]) -> dict | None:
    """RUNDIR/config.json, or None when there is none (or it is unreadable)."""
    return read_json(Path(run_dir) / CONFIG_FILE)


def lock_held(run_dir: Path) -> bool:
    """True while some process holds RUNDIR/job.lock (a job is writing the run)."""
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def run_in_use(run_dir: str | os.PathLike[str]) -> bool:
    """True when ``run_dir`` holds a run (config.json, a checkpoint, results or a job): starting a new job there
    would replace or mix with it."""
    run = Path(run_dir)
    return any((run / name).exists() for name in (CONFIG_FILE, CHECKPOINT_FILE, *OUTPUT_FILES, CLASS_REPORT_FILE,
                                                  PROGRESS_FILE, "job.json"))  # auditor.jobs.JOB_FILE


def new_run_name(root: str | os.PathLike[str], prefix: str, now: datetime | None = None) -> str:
    """A run name not yet used under ``root``: ``<prefix>-<YYYYMMDD-HHMMSS>`` of ``now`` (default: the local
    time), with ``-2``, ``-3``, ... appended when that folder exists."""
    base = f"{prefix}-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    name, n = base, 1
    while (Path(root) / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


# A run folder name, <work folder>/runs/<name>: one path component, never hidden, never "." or "..".
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def run_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a run folder name (it becomes <work folder>/runs/<name>), or None if it can."""
    if not RUN_NAME.fullmatch(name or ""):
        return ("a run name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit "
                f"(got {name!r})")
    return None
