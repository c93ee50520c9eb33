"""Ingest cache: decode once, reuse, invalidate on change, resume after kill -9, report problems."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

from auditor.data.cache import ingest, load_arrays
from auditor.data.params import PreprocessParams
from tests.conftest import REPO
from tests.media import write_clip

PARAMS = PreprocessParams(num_frames=4, frame_size=32)


def _dataset(root, n=4):
    for i in range(n):
        write_clip(root / "clips" / f"c{i}.mp4", seconds=1.0, tone_hz=300.0 + 100 * i)
    write_clip(root / "clips" / "silent.mp4", seconds=1.0, tone_hz=None)
    (root / "clips" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    (root / "clips" / "empty.mp4").write_bytes(b"")
    rows = [f"clips/c{i}.mp4,{'ab'[i % 2]}" for i in range(n)] + ["clips/silent.mp4,a", "clips/broken.mp4,b",
                                                                "clips/empty.mp4,a"]
    (root / "labels.csv").write_text("clip,label\n" + "\n".join(rows) + "\n")


def test_ingest_decodes_once_and_reports(tmp_path):
    _dataset(tmp_path)
    first = ingest(tmp_path, PARAMS, workers=1)
    assert first.decoded_now == 7
    assert sorted(first.clips["clip"]) == ["clips/c0.mp4", "clips/c1.mp4", "clips/c2.mp4", "clips/c3.mp4",
                                           "clips/silent.mp4"]
    report = first.report.set_index("clip")
    assert report.loc["clips/broken.mp4", "kept"] == False  # noqa: E712
    assert report.loc["clips/empty.mp4", "problem"] == "empty_file"
    assert report.loc["clips/silent.mp4", "problem"] == "no_audio" and report.loc["clips/silent.mp4", "kept"]
    assert (first.cache_dir / "decode_report.csv").exists()

    again = ingest(tmp_path, PARAMS, workers=1)
    assert again.decoded_now == 0
    arrays = load_arrays(again)
    assert arrays.frames.shape == (5, 4, 32, 32, 3)
    assert arrays.mel.shape[:2] == (5, 64) and arrays.has_audio.tolist().count(False) == 1
    # the sound is really there (not silence) for clips with audio
    assert arrays.mel[0].astype(np.float32).max() > -5


def test_changed_file_and_changed_params_are_decoded_again(tmp_path):
    _dataset(tmp_path, n=2)
    ingest(tmp_path, PARAMS, workers=1)
    write_clip(tmp_path / "clips" / "c0.mp4", seconds=2.0, tone_hz=900.0)
    os.utime(tmp_path / "clips" / "c0.mp4", (time.time() + 5, time.time() + 5))
    again = ingest(tmp_path, PARAMS, workers=1)
    assert again.decoded_now == 1
    assert again.clips.set_index("clip").loc["clips/c0.mp4", "duration"] > 1.5
    other = ingest(tmp_path, PreprocessParams(num_frames=2, frame_size=16), workers=1)
    assert other.decoded_now == 5 and other.cache_dir != again.cache_dir


def test_parallel_ingest_matches_serial(tmp_path):
    _dataset(tmp_path, n=4)
    serial = load_arrays(ingest(tmp_path, PARAMS, workers=1, cache_root=tmp_path / "c1"))
    parallel = load_arrays(ingest(tmp_path, PARAMS, workers=2, cache_root=tmp_path / "c2"))
    assert serial.clips == parallel.clips
    assert np.array_equal(serial.frames, parallel.frames) and np.array_equal(serial.mel, parallel.mel)


def test_killed_ingest_resumes_without_redoing_finished_clips(tmp_path):
    n = 24
    for i in range(n):
        write_clip(tmp_path / "clips" / f"c{i}.mp4", seconds=1.0)
    (tmp_path / "labels.csv").write_text("clip,label\n" + "".join(f"clips/c{i}.mp4,x{i % 3}\n" for i in range(n)))
    code = ("import sys; from auditor.data.cache import ingest; from auditor.data.params import PreprocessParams; "
            "ingest(sys.argv[1], PreprocessParams(num_frames=4, frame_size=32), workers=1)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO)
    cache = tmp_path / ".auditor" / "cache" / PARAMS.digest()
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.glob("*/*.npz"))) < 3:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(cache.glob("*/*.npz")))
    assert 3 <= done_before < n, "the kill came too late to test resuming"
    result = ingest(tmp_path, PARAMS, workers=1)
    assert result.decoded_now == n - done_before
    assert len(result.clips) == n
    arrays = load_arrays(result)
    assert arrays.frames.shape[0] == n


def test_a_muted_sound_track_is_marked_silent_and_a_quiet_one_is_not(tmp_path):
    write_clip(tmp_path / "clips" / "muted.mp4", seconds=1.0, amplitude=0.0)
    write_clip(tmp_path / "clips" / "hiss.mp4", seconds=1.0, amplitude=10 ** (-75 / 20))  # a dead microphone
    write_clip(tmp_path / "clips" / "quiet.mp4", seconds=1.0, amplitude=10 ** (-35 / 20))  # quiet, but sound
    write_clip(tmp_path / "clips" / "loud.mp4", seconds=1.0)
    (tmp_path / "labels.csv").write_text("clip,label\n" + "".join(
        f"clips/{n}.mp4,{label}\n" for n, label in (("muted", "a"), ("hiss", "a"), ("quiet", "b"), ("loud", "b"))))
    result = ingest(tmp_path, PARAMS, workers=1)
    audio = result.clips.set_index("clip")["audio"].to_dict()
    assert audio == {"clips/muted.mp4": "silent", "clips/hiss.mp4": "silent", "clips/quiet.mp4": "present",
                     "clips/loud.mp4": "present"}
    assert result.clips.set_index("clip")["has_audio"].to_dict() == {
        "clips/muted.mp4": False, "clips/hiss.mp4": False, "clips/quiet.mp4": True, "clips/loud.mp4": True}
    report = result.report.set_index("clip")
    assert report.loc["clips/muted.mp4", "problem"] == "silent_audio" and report.loc["clips/muted.mp4", "kept"]
    assert "dBFS" in report.loc["clips/hiss.mp4", "detail"]
    # read back from the cache, the verdict is the same
    assert ingest(tmp_path, PARAMS, workers=1).clips["audio"].tolist() == result.clips["audio"].tolist()
