"""Background jobs that fill a run directory (train / score run as separate OS processes): start, status, cancel.

The run directory's own files (config.json, progress.jsonl, job.lock) are :mod:`auditor.run_folder`; a job adds:
* ``job.json``: ``{pid, args, started, run_dir}`` of a job started by :func:`start_job` (the app).
* ``job.log``: stdout and stderr of that job, appended.
* ``job.start.lock``: held by :func:`start_job` while it checks and spawns, so two app sessions cannot both start.

Everything is on disk: :func:`job_status` gives the same answer in a restarted app or another process.
States: ``none`` (no job ever), ``running``, ``finished`` (last progress event "done"), ``failed`` (last event
"error", or the process died without a final event), ``cancelled`` (last event "cancelled").
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from auditor.atomic import atomic_write_text
from auditor.run_folder import (
    FINAL_EVENTS,
    LOCK_FILE,
    PROGRESS_FILE,
    JobRunningError,
    lock_held,
    read_json,
    read_progress,
)

START_LOCK_FILE = "job.start.lock"
JOB_FILE = "job.json"
LOG_FILE = "job.log"
STATES = ("none", "running", "finished", "failed", "cancelled")
LOG_TAIL_LINES = 20
# How long to wait for the process to disappear after SIGKILL (it cannot refuse, but exiting takes a moment).
KILL_GRACE_S = 5.0
POLL_S = 0.05

# Popen objects of the jobs this process started: kept so that Python does not reap them behind our back and
# so that their exit status is known here.
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass
class JobStatus:
    """Where the job of a run directory stands (see the module docstring for the states).

    ``returncode`` is the exit status when this process started and reaped the job, else derived from the last
    event (0 for "done", 1 for "error"), else None. ``ended`` is the time of the final event (unix seconds), or
    the last write to job.log / progress.jsonl for a job that died without one.
    """

    state: str
    pid: int | None = None
    args: list[str] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    returncode: int | None = None
    last_progress: dict | None = None
    log_tail: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state == "running"


def start_job(run_dir: str | os.PathLike[str], args: list[str], *, module: str = "auditor") -> dict:
    """Spawn ``sys.executable -m <module> *args`` detached from this process and return the job record.

    The child gets its own session (so cancelling kills its whole process group and closing the app does not),
    stdin from /dev/null, stdout and stderr appended to RUNDIR/job.log. RUNDIR/job.json = the returned record
    ``{pid, args, started, run_dir}``. The command is expected to take :class:`RunLock` itself.
    Raises :class:`JobRunningError` when ``job_status(run_dir).state == "running"``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Two app sessions pressing "start" at once: the check and the spawn happen under one lock, and the second
    # one sees the first one's job.json with a live pid.
    with open(run_dir / START_LOCK_FILE, "a") as start_lock:
        fcntl.flock(start_lock, fcntl.LOCK_EX)
        return _spawn(run_dir, [str(a) for a in args], module)


def _spawn(run_dir: Path, args: list[str], module: str) -> dict:
    status = job_status(run_dir)
    if status.state == "running":
        raise JobRunningError(f"{run_dir}: a job is already running in this run folder (pid {status.pid}); "
                              "wait for it or cancel it first")
    started = time.time()
    with open(run_dir / LOG_FILE, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start: -m {module} {' '.join(args)}\n".encode())
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    _CHILDREN[proc.pid] = proc
    record = {"pid": proc.pid, "args": args, "started": started, "run_dir": str(run_dir.resolve()),
              "module": module}
    atomic_write_text(run_dir / JOB_FILE, json.dumps(record, indent=1))
    return record


def job_status(run_dir: str | os.PathLike[str]) -> JobStatus:
    """The state of the latest job of ``run_dir``, from the files on disk only (plus process liveness).

    ``running`` iff job.lock is held or the pid of the latest job record is a live process (the second covers the
    moment between spawning and taking the lock). Otherwise the last progress event written after the job
    started decides: "done" -> finished, "error" -> failed, "cancelled" -> cancelled; none -> failed (the process
    died without a word; ``log_tail`` says why). ``none`` when the folder never saw a job.
    """
    run_dir = Path(run_dir)
    record = _latest_record(run_dir)
    events = read_progress(run_dir)
    last = events[-1] if events else None
    log_tail = _tail(run_dir / LOG_FILE, LOG_TAIL_LINES)
    if record is None:
        if last is None:
            return JobStatus("none", log_tail=log_tail)
        record = {}
    pid, started = record.get("pid"), record.get("started")
    status = JobStatus("running", pid=pid, args=list(record.get("args") or []), started=started,
                       last_progress=last, log_tail=log_tail)
    returncode = _reap(pid) if pid else None
    # Events from an older job do not describe this one.
    current = last if _is_current(last, started) else None
    event = current.get("event") if current else None
    # A job that wrote its final event and released the lock has ended, even while its process is still exiting;
    # before that, a live process without the lock is a job that has not taken it yet.
    alive = event not in FINAL_EVENTS and pid and returncode is None and _job_alive(pid, record.get("module", "auditor"))
    if lock_held(run_dir) or alive:
        return status
    if pid and returncode is None:  # it may have exited between the first look and the liveness check
        returncode = _reap(pid)
    status.state = FINAL_EVENTS.get(event, "failed")
    status.returncode = returncode if returncode is not None else {"done": 0, "error": 1}.get(event)
    status.ended = float(current["time"]) if current and "time" in current and event in FINAL_EVENTS \
        else _last_write(run_dir)
    return status


def cancel_job(run_dir: str | os.PathLike[str], timeout: float = 10.0) -> bool:
    """Stop the running job of ``run_dir``: SIGTERM its process group, SIGKILL after ``timeout`` seconds.

    When the job wrote no final event, ``{"event": "cancelled"}`` is appended to progress.jsonl so that
    :func:`job_status` says "cancelled". Returns True if a process was stopped, False if nothing was running.
    """
    run_dir = Path(run_dir)
    status = job_status(run_dir)
    if status.state != "running" or not status.pid:
        return False
    pid = status.pid
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout, run_dir):
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, KILL_GRACE_S, run_dir)
    events = read_progress(run_dir)
    last = events[-1] if events else None
    if not _is_current(last, status.started) or last.get("event") not in FINAL_EVENTS:
        _append_event(run_dir, {"event": "cancelled", "time": time.time(),
                                "phase": last.get("phase") if last else None,
                                "message": "cancelled by the user"})
    return True


def _is_current(event: dict | None, started: float | None) -> bool:
    """Whether ``event`` was written by the job that started at ``started`` (not by an older one)."""
    if event is None:
        return False
    try:
        return started is None or float(event["time"]) >= started
    except (KeyError, TypeError, ValueError):
        return True  # no usable time: trust it


def _latest_record(run_dir: Path) -> dict | None:
    """The newer of job.json (started by the app) and job.lock's contents (written by the job itself)."""
    job, lock = read_json(run_dir / JOB_FILE), read_json(run_dir / LOCK_FILE)
    if job and lock and job.get("pid") == lock.get("pid"):
        return {**lock, **job}  # the app's job, as it took the lock: job.json has args and module
    records = [r for r in (job, lock) if r and r.get("pid")]
    if not records:
        return None
    record = dict(max(records, key=lambda r: float(r.get("started") or 0)))
    if "args" not in record and "argv" in record:
        record["args"] = list(record["argv"])[1:]
    return record


def _reap(pid: int) -> int | None:
    """The exit status of ``pid`` if it is a child of this process that has ended (reaping it), else None."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        return proc.poll()
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        return None
    return os.waitstatus_to_exitcode(status) if done else None


def _job_alive(pid: int, module: str | None) -> bool:
    """Whether the job process ``pid`` still runs: for a child of this process, until it can be reaped.

    A child's pid cannot be reused before it is reaped, so its exit status is the whole truth; looking at /proc
    instead would call a child in the middle of exiting (its command line already gone, not yet a zombie) dead
    while its exit status cannot be read yet.
    """
    if pid in _CHILDREN:
        return _reap(pid) is None
    return _pid_alive(pid, module)


def _pid_alive(pid: int, module: str | None = None) -> bool:
    """True if ``pid`` is a live (not zombie) process; on Linux also that it runs ``-m module`` (pid reuse)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    with contextlib.suppress(OSError, IndexError):
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        if module is not None:
            name = module.encode()
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            return any(part == name or part.endswith(b"/" + name) for part in cmdline)
    return True


def _signal(pid: int, sig: int) -> None:
    """Signal the process group of ``pid`` when ``pid`` leads it (jobs from start_job), else ``pid`` alone."""
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float, run_dir: Path) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not _job_alive(pid, None) and not lock_held(run_dir):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def _append_event(run_dir: Path, event: dict) -> None:
    """Rewrite progress.jsonl with its complete lines plus ``event`` (atomically; the writer is gone)."""
    path = run_dir / PROGRESS_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # drop the torn last line
    atomic_write_text(path, text + json.dumps(event) + "\n")


def _tail(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read()
    except OSError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-n:]


def _last_write(run_dir: Path) -> float | None:
    times = [p.stat().st_mtime for p in (run_dir / LOG_FILE, run_dir / PROGRESS_FILE) if p.exists()]
    return max(times) if times else None
