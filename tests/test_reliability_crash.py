"""Crashes lose nothing: kill -9 during training phase 2, during scoring's writes and during review writes; a full
disk and a read-only folder give a clear error and leave no corrupt file.

Already covered elsewhere: kill -9 during ingest (tests/test_cache.py) and during training phase 1
(tests/test_train.py). Faults inside a process are injected by running ``python -m auditor`` through
``FAULT_WRAPPER``: ``FAULT=kill:NAME`` SIGKILLs the process once the temporary file of NAME is fully written and
about to be renamed over NAME; ``FAULT=enospc:NAME`` makes that rename fail as a full disk does.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditor import jobs, run_folder
from auditor.data.cache import ingest
from auditor.data.params import PreprocessParams
from auditor.errors import UserError
from auditor.model.checkpoint import load_checkpoint
from auditor.reviews import ReviewStore, store_path
from tests.conftest import REPO, run_cli
from tests.media import write_clip

# Small settings like tests/test_train.py's FAST, on a 10-clip data set, with two phase-2 epochs.
EPOCHS_PHASE1 = 2
TINY = ["--epochs-phase1", str(EPOCHS_PHASE1), "--epochs-phase2", "2", "--warmup-epochs", "1", "--batch-size", "4",
        "--quiet", "--workers", "1"]
OUTPUTS = ("flags.csv", "embeddings.parquet")

FAULT_WRAPPER = r"""
import errno, os, signal, sys
mode, target = os.environ["FAULT"].split(":", 1)
def hit(path):
    return os.path.basename(str(path)).startswith(".tmp-" + target + "-")
if mode == "kill":  # SIGKILL with the temporary file fully written, just before it would replace the target
    real_fsync = os.fsync
    def fsync(fd):
        if hit(os.readlink(f"/proc/self/fd/{fd}")):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_fsync(fd)
    os.fsync = fsync
elif mode == "enospc":  # the disk is full when the target is put in place
    real_replace = os.replace
    def replace(src, dst, *args, **kwargs):
        if hit(src):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
from auditor.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def run_with_fault(fault: str, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"FAULT": fault, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-c", FAULT_WRAPPER, *args], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=600)


def digest(path: Path) -> str | None:
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.exists() else None


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("ingest:")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """10 generated clips (8 classes): epochs of about a second, and scoring without UMAP (too few points)."""
    from auditor.data.generate import generate_dataset

    out = tmp_path_factory.mktemp("tiny") / "data"
    generate_dataset(out, clips=10, seed=3, workers=1)
    return out


@pytest.fixture(scope="module")
def reference_run(tiny, tmp_path_factory) -> Path:
    """An uninterrupted training run with TINY settings."""
    run = tmp_path_factory.mktemp("ref") / "run"
    run_cli("train", "--data", str(tiny), "--run", str(run), *TINY)
    return run


def _flags(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "flags.csv", keep_default_na=False).set_index("clip").sort_index()


# ------------------------------------------------------------------------------------------ training
@pytest.mark.slow
def test_kill_during_phase2_then_resume_equals_uninterrupted(tiny, reference_run, tmp_path):
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "train", "--data", str(tiny), "--run", str(run),
                             *TINY], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if any(e.get("event") == "epoch" and e.get("phase") == 2 for e in run_folder.read_progress(run)):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "training ended before it could be killed in phase 2"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == EPOCHS_PHASE1 + 1  # the first phase-2 checkpoint
    assert not (run / "flags.csv").exists()
    assert jobs.job_status(run).state == "failed"  # died without a final event

    run_cli("train", "--data", str(tiny), "--run", str(run), *TINY, "--resume")
    pd.testing.assert_frame_equal(_flags(reference_run), _flags(run), atol=1e-4)
    starts = [e for e in run_folder.read_progress(run) if e["event"] == "start"]
    assert starts[-1]["resumed"] and starts[-1]["epoch"] == EPOCHS_PHASE1 + 1
    assert jobs.job_status(run).state == "finished"


# ------------------------------------------------------------------------------------------- scoring
@pytest.mark.slow
@pytest.mark.parametrize("target,with_old", [("flags.csv", False), ("embeddings.parquet", True)])
def test_kill_during_score_write_leaves_old_file_or_none(tiny, reference_run, tmp_path, target, with_old):
    out = tmp_path / "scored"
    score = ["score", "--run", str(reference_run), "--data", str(tiny), "--out", str(out), "--workers", "1"]
    if with_old:  # outputs of an earlier scoring, made distinguishable from what this one writes
        out.mkdir()
        for name in OUTPUTS:
            shutil.copy(reference_run / name, out / name)
        old = pd.read_parquet(out / "embeddings.parquet").iloc[::-1]
        old.to_parquet(out / "embeddings.parquet", index=False)
    before = {name: digest(out / name) for name in OUTPUTS}

    proc = run_with_fault(f"kill:{target}", *score)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert digest(out / target) == before[target]  # the old file, untouched, or still none
    if target == "embeddings.parquet":  # flags.csv was already replaced: complete and current
        pd.testing.assert_frame_equal(_flags(out), _flags(reference_run), atol=1e-4)
    for name in OUTPUTS:  # whatever is there reads completely
        if (out / name).exists():
            pd.read_csv(out / name) if name.endswith(".csv") else pd.read_parquet(out / name)
    assert jobs.job_status(out).state == "failed"

    run_cli(*score)  # a rerun succeeds and replaces everything
    pd.testing.assert_frame_equal(_flags(out), _flags(reference_run), atol=1e-4)
    assert len(pd.read_parquet(out / "embeddings.parquet")) == len(_flags(out))
    assert jobs.job_status(out).state == "finished"


@pytest.mark.slow
def test_disk_full_during_score_keeps_the_previous_outputs(tiny, reference_run, tmp_path):
    out = tmp_path / "scored"
    out.mkdir()
    for name in OUTPUTS:
        shutil.copy(reference_run / name, out / name)
    before = {name: digest(out / name) for name in OUTPUTS}
    proc = run_with_fault("enospc:flags.csv", "score", "--run", str(reference_run), "--data", str(tiny),
                          "--out", str(out), "--workers", "1")
    assert proc.returncode != 0
    assert {name: digest(out / name) for name in OUTPUTS} == before
    assert not list(out.glob(".tmp-*"))  # the failed write cleaned up after itself
    assert jobs.job_status(out).state == "failed"
    assert "No space left on device" in (jobs.job_status(out).last_progress or {}).get("message", "")


@pytest.mark.slow
def test_disk_full_during_score_is_one_line(tiny, reference_run, tmp_path):
    proc = run_with_fault("enospc:flags.csv", "score", "--run", str(reference_run), "--data", str(tiny),
                          "--out", str(tmp_path / "scored"), "--workers", "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "No space left on device" in lines[0], lines


# --------------------------------------------------------------------------------------------- reviews
REVIEW_WRITER = r"""
import sys
from auditor.reviews import ReviewStore
with ReviewStore(sys.argv[1]) as store:
    i = 0
    while True:
        new_id = store.record(f"clips/c{i % 50:02d}.mp4", ("accept", "keep", "exclude")[i % 3], given_label="a",
                              suggested_label="b", curator="bot", run_id=sys.argv[2])
        print(new_id, flush=True)  # printed only after record() returned
        i += 1
"""


def test_kill_during_review_writes_loses_no_recorded_decision(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    promised: set[int] = set()
    for round_ in range(3):  # kill the writer three times; each time at a different moment
        proc = subprocess.Popen([sys.executable, "-c", REVIEW_WRITER, str(data), f"round{round_}"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        read: list[str] = []
        for line in proc.stdout:
            read.append(line)
            if len(read) >= 150 + 37 * round_:
                break
        os.kill(proc.pid, signal.SIGKILL)
        printed = "".join(read) + proc.stdout.read()
        proc.wait()
        # every complete line is the id of a decision whose record() returned (a torn last line is dropped)
        promised |= {int(x) for x in printed.split("\n")[:-1]}
        assert len(promised) >= len(read)
        with contextlib.closing(sqlite3.connect(store_path(data))) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = {row[0] for row in conn.execute("SELECT id FROM decisions")}
        assert promised <= stored, sorted(promised - stored)[:10]
    with ReviewStore(data) as store:  # the store still works after the kills
        new_id = store.record("clips/after.mp4", "keep", given_label="a", curator="me")
        assert store.latest_for("clips/after.mp4")["id"] == new_id
        assert len(store.history()) >= len(promised) + 1


# ---------------------------------------------------------------------------------- disk full, read-only
@pytest.fixture()
def mount_point(tmp_path):
    """mount(*options) -> a fresh tmpfs mount at a new folder (unmounted afterwards); skips where mounting is
    not permitted (not root, no CAP_SYS_ADMIN, no mount binary)."""
    mounted: list[Path] = []

    def mount(*options: str, source: str = "tmpfs", fstype: str | None = "tmpfs") -> Path:
        target = tmp_path / f"mnt{len(mounted)}"
        target.mkdir()
        cmd = ["mount", *(["-t", fstype] if fstype else []), *options, source, str(target)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            pytest.skip("no mount command here")
        if proc.returncode != 0:
            pytest.skip(f"mounting is not permitted here ({proc.stderr.strip()}); the monkeypatched fault tests "
                        "cover this case")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def _clips(root: Path, n: int) -> Path:
    for i in range(n):
        write_clip(root / "clips" / f"c{i}.mp4", seconds=1.0, tone_hz=300.0 + 50 * i)
    (root / "labels.csv").write_text("clip,label\n" + "".join(f"clips/c{i}.mp4,{'ab'[i % 2]}\n" for i in range(n)))
    return root


def test_disk_full_during_ingest_is_one_line_and_resumes(tmp_path, mount_point):
    data = _clips(tmp_path / "data", 6)
    cache = mount_point("-o", "size=256k")  # room for about two cache entries
    proc = run_cli("ingest", "--data", str(data), "--cache", str(cache), "--workers", "1", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "cannot write the decode cache (No space left on device)" in lines[0], lines
    entries = list(cache.rglob("*.npz"))
    for entry in entries:  # no half-written entry, and nothing temporary left behind
        with np.load(entry) as z:
            assert z["frames"].shape[0] == 8
    assert not list(cache.rglob(".tmp-*"))
    subprocess.run(["mount", "-o", "remount,size=16m", str(cache)], check=True)  # space freed
    proc = run_cli("ingest", "--data", str(data), "--cache", str(cache), "--workers", "1")
    assert proc.stdout.startswith("6 clips usable") and f"decoded now: {6 - len(entries)}" in proc.stdout


def test_disk_full_during_ingest_in_process(tmp_path, monkeypatch):
    """The same as above without mounting: os.replace fails with ENOSPC for the third cache entry."""
    import auditor.atomic

    data = _clips(tmp_path / "data", 4)
    real_replace, calls = os.replace, []

    def replace(src, dst, *args, **kwargs):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(auditor.atomic.os, "replace", replace)
    params = PreprocessParams(num_frames=4, frame_size=32)
    with pytest.raises(UserError, match=r"cannot write the decode cache \(No space left on device\)") as err:
        ingest(data, params, workers=1, cache_root=tmp_path / "cache")
    assert "\n" not in str(err.value)
    monkeypatch.setattr(auditor.atomic.os, "replace", real_replace)
    assert not list((tmp_path / "cache").rglob(".tmp-*"))
    again = ingest(data, params, workers=1, cache_root=tmp_path / "cache")
    assert again.decoded_now == 2 and len(again.clips) == 4


def test_read_only_data_folder_is_ingested_into_the_user_cache(tmp_path, mount_point):
    source = _clips(tmp_path / "source", 2)
    data = mount_point("--bind", source=str(source), fstype=None)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(data)], check=True)
    with pytest.raises(OSError):
        (data / "probe").write_text("x")
    home_cache = tmp_path / "xdg"
    proc = run_cli("ingest", "--data", str(data), "--workers", "1", env={"XDG_CACHE_HOME": str(home_cache)})
    assert proc.stdout.startswith("2 clips usable")
    assert list((home_cache / "av-auditor").rglob("store.json")) and not (source / ".auditor").exists()


def _read_only_copy(mount_point, tmp_path: Path, files: dict[str, bytes]) -> Path:
    source = tmp_path / "run-source"
    source.mkdir()
    for name, data in files.items():
        (source / name).write_bytes(data)
    target = mount_point("--bind", source=str(source), fstype=None)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
    return target


def test_read_only_run_folder_changes_nothing(tmp_path, mount_point):
    data = _clips(tmp_path / "data", 2)
    run = _read_only_copy(mount_point, tmp_path, {"flags.csv": b"clip,given_label\nclips/c0.mp4,a\n"})
    proc = run_cli("train", "--data", str(data), "--run", str(run), *TINY, check=False)
    assert proc.returncode != 0
    assert sorted(p.name for p in run.iterdir()) == ["flags.csv"]
    assert (run / "flags.csv").read_bytes() == b"clip,given_label\nclips/c0.mp4,a\n"


def test_read_only_run_folder_is_one_line(tmp_path, mount_point):
    data = _clips(tmp_path / "data", 2)
    run = _read_only_copy(mount_point, tmp_path, {"flags.csv": b"clip\n"})
    proc = run_cli("train", "--data", str(data), "--run", str(run), *TINY, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "Read-only file system" in lines[0], lines
