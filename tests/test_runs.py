"""Tests for auditor.run_folder and auditor.jobs: the run lock, background jobs and their status, all read back from disk.

The jobs are this file run as a module (``python -m test_runs RUNDIR MODE SECONDS``, see the bottom): a fake
train that takes the real RunLock and writes progress events like the real one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from auditor import jobs, run_folder
from auditor.jobs import cancel_job, job_status, start_job
from auditor.run_folder import (
    JobRunningError,
    RunLock,
    list_runs,
    read_progress,
    run_name_problem,
    run_outputs_ready,
)

HERE = Path(__file__).resolve().parent
MODULE = Path(__file__).stem
WAIT_S = 20.0


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A run folder; the fake job module is importable by the children; leftover jobs are killed afterwards."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    path = tmp_path / "run"
    yield path
    record = run_folder.read_json(path / jobs.JOB_FILE)
    if record and jobs._pid_alive(record["pid"]):
        os.killpg(record["pid"], signal.SIGKILL)


def _start(run_dir: Path, mode: str, seconds: float = 0.0) -> dict:
    return start_job(run_dir, [str(run_dir), mode, str(seconds)], module=MODULE)


def _wait(predicate, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_started(run_dir: Path) -> None:
    """Until the job holds the lock and wrote its "start" event."""
    _wait(lambda: run_folder.lock_held(run_dir) and read_progress(run_dir), "the job to start")


def _wait_ended(run_dir: Path) -> jobs.JobStatus:
    return _wait(lambda: (s := job_status(run_dir)).state != "running" and s, "the job to end")


def test_empty_folder_has_no_job(tmp_path):
    assert job_status(tmp_path).state == "none"
    assert job_status(tmp_path / "missing").state == "none"
    assert cancel_job(tmp_path) is False


def test_job_runs_then_finishes_and_a_second_start_is_refused(run_dir):
    record = _start(run_dir, "done", 1.0)
    assert json.loads((run_dir / "job.json").read_text())["pid"] == record["pid"]
    # Running from the moment start_job returns (before the child took the lock, its pid counts).
    assert job_status(run_dir).state == "running"
    with pytest.raises(JobRunningError, match=str(record["pid"])):
        _start(run_dir, "done", 0)
    status = _wait_ended(run_dir)
    assert status.state == "finished"
    assert status.returncode == 0
    assert status.last_progress["event"] == "done"
    assert status.pid == record["pid"]
    assert status.args == [str(run_dir), "done", "1.0"]
    assert status.ended >= status.started
    assert any("fake job" in line for line in status.log_tail)


def test_status_is_read_from_disk_by_another_process(run_dir):
    _start(run_dir, "done", 0.2)
    # Wait without asking job_status, so that this process does not reap the child: it stays a zombie, which
    # another process (a restarted app) must not mistake for a live job.
    _wait(lambda: not run_folder.lock_held(run_dir) and read_progress(run_dir)[-1:] and
          read_progress(run_dir)[-1]["event"] == "done", "the job to finish")
    code = f"from auditor.jobs import job_status; print(job_status({str(run_dir)!r}).state)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert other.stdout.strip() == "finished", other.stderr
    assert job_status(run_dir).state == "finished"


def test_cancel_stops_the_process_group(run_dir):
    record = _start(run_dir, "hang", 60)
    _wait_started(run_dir)
    assert job_status(run_dir).state == "running"
    assert cancel_job(run_dir, timeout=10) is True
    with pytest.raises(ProcessLookupError):
        os.kill(record["pid"], 0)
    status = job_status(run_dir)
    assert status.state == "cancelled"
    assert read_progress(run_dir)[-1]["event"] == "cancelled"
    assert cancel_job(run_dir) is False  # nothing left to stop


def test_cancel_escalates_to_sigkill_when_sigterm_is_ignored(run_dir):
    record = _start(run_dir, "ignore-term", 60)
    _wait_started(run_dir)
    t0 = time.monotonic()
    assert cancel_job(run_dir, timeout=0.5) is True
    assert time.monotonic() - t0 >= 0.5
    with pytest.raises(ProcessLookupError):
        os.kill(record["pid"], 0)
    assert job_status(run_dir).state == "cancelled"


def test_a_job_killed_with_sigkill_shows_failed_with_its_log(run_dir):
    record = _start(run_dir, "hang", 60)
    _wait_started(run_dir)
    os.kill(record["pid"], signal.SIGKILL)
    status = _wait_ended(run_dir)
    assert status.state == "failed"
    assert status.returncode == -signal.SIGKILL
    assert status.last_progress["event"] == "step"
    assert any("fake job started" in line for line in status.log_tail)


def test_an_error_event_is_failed(run_dir):
    _start(run_dir, "error", 0)
    status = _wait_ended(run_dir)
    assert (status.state, status.last_progress["message"], status.returncode) == ("failed", "boom", 1)


def test_a_silent_exit_after_an_older_done_is_failed(run_dir):
    _start(run_dir, "done", 0)
    assert _wait_ended(run_dir).state == "finished"
    # The older run's "done" event must not make a job that died without a word look finished.
    _start(run_dir, "silent-exit", 0)
    status = _wait_ended(run_dir)
    assert status.state == "failed"
    assert status.returncode == 3
    assert status.last_progress["event"] == "done"


def test_an_exit_between_the_first_look_and_the_liveness_check_keeps_its_code(run_dir, monkeypatch):
    """The job exits just after job_status first polled it (seen under load): its exit status is still read."""
    record = _start(run_dir, "silent-exit", 0)
    jobs._CHILDREN[record["pid"]].wait()  # it has exited
    real, calls = jobs._reap, []

    def late(pid):  # the first poll came a moment too early
        calls.append(pid)
        return None if len(calls) == 1 else real(pid)

    monkeypatch.setattr(jobs, "_reap", late)
    status = job_status(run_dir)
    assert (status.state, status.returncode) == ("failed", 3)


def test_a_child_in_the_middle_of_exiting_is_still_running(run_dir, monkeypatch):
    """While a child exits, /proc already shows no command line but its exit status cannot be read yet (seen under
    load, CI): it is running until it can be reaped, then failed with its own code, never failed without one."""
    monkeypatch.setattr(jobs, "_pid_alive", lambda pid, module=None: False)  # what /proc says in that moment
    record = _start(run_dir, "silent-exit", 0)
    early = job_status(run_dir)  # python is most likely still starting; never failed without a code
    assert early.state == "running" or (early.state, early.returncode) == ("failed", 3)
    jobs._CHILDREN[record["pid"]].wait()
    status = job_status(run_dir)
    assert (status.state, status.returncode) == ("failed", 3)


def test_a_job_started_elsewhere_holds_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(run_folder, "LOCK_RETRY_S", 0.1)
    with RunLock(tmp_path) as lock:
        status = job_status(tmp_path)
        assert (status.state, status.pid) == ("running", os.getpid())
        with pytest.raises(JobRunningError, match=rf"{tmp_path}.*pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
        with pytest.raises(JobRunningError):
            start_job(tmp_path, ["ingest"])
        assert lock.path.is_file()
    assert job_status(tmp_path).state == "failed"  # ended without a final event
    with RunLock(tmp_path):  # free again
        pass


def test_read_progress_skips_a_torn_last_line(tmp_path):
    (tmp_path / "progress.jsonl").write_text('{"event": "start", "time": 1}\n{"event": "step", "ti')
    assert read_progress(tmp_path) == [{"event": "start", "time": 1}]
    assert read_progress(tmp_path / "nowhere") == []


def test_list_runs_newest_first_and_outputs_ready(tmp_path):
    for i, name in enumerate(["b", "a", "c"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        os.utime(tmp_path / name / "config.json", (1000 + i, 1000 + i))
    (tmp_path / "not-a-run").mkdir()
    assert [p.name for p in list_runs(tmp_path)] == ["c", "a", "b"]
    assert list_runs(tmp_path / "missing") == []
    run = tmp_path / "a"
    assert not run_outputs_ready(run)
    (run / "flags.csv").write_text("clip\n")
    assert not run_outputs_ready(run)
    (run / "embeddings.parquet").write_bytes(b"x")
    assert run_outputs_ready(run)


def test_run_names_are_one_visible_path_component():
    assert run_name_problem("default") is None and run_name_problem("exp-2.b_c") is None
    assert run_name_problem("x" * 64) is None
    for bad in ("", "../x", "a/b", ".hidden", "..", "x" * 65, "a b", "-x"):
        problem = run_name_problem(bad)
        assert problem and repr(bad) in problem  # the message names what was refused


def _fake_job(run_dir: str, mode: str, seconds: str) -> int:
    """A stand-in for ``python -m auditor train``: lock, events, then the ending that ``mode`` names."""
    def event(name: str, **extra) -> None:
        with open(Path(run_dir) / "progress.jsonl", "a") as fh:
            fh.write(json.dumps({"event": name, "time": time.time(), "phase": "train", **extra}) + "\n")

    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with RunLock(run_dir):
        print("fake job started", flush=True)
        if mode == "silent-exit":
            return 3
        event("start")
        event("step", step=1, losses={"ce": 1.0})
        time.sleep(float(seconds))
        if mode == "error":
            event("error", message="boom")
            return 1
        event("done")
    return 0


if __name__ == "__main__":
    sys.exit(_fake_job(*sys.argv[1:4]))
