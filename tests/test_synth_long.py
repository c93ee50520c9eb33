"""Long clips of the sample generator (generate_dataset(clip_seconds=(A, B)), sample --clip-seconds, the bench's
durA-B setting): lengths, the event columns of truth.csv, one loud sound event over a quiet background,
determinism, and the 2-5 s clips unchanged without the option."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from auditor.__main__ import build_parser, main
from auditor.bench.settings import BenchConfig, Setting, check_generator, parse_settings
from auditor.cli_data import parse_clip_seconds
from auditor.data import synth
from auditor.data.decode import decode_clip
from auditor.data.features import SILENT_BELOW_DBFS, is_silent
from auditor.data.generate import generate_dataset
from auditor.data.noise import TRUTH_COLUMNS
from auditor.data.synth import EVENT_SECONDS, FPS, render_clip, render_event_clip
from auditor.errors import UserError

SECONDS = (6.0, 8.0)
ARGS = dict(clips=6, mismatch=0.34, muted=0.17, seed=11, test_clips=1, clip_seconds=SECONDS)
FRAME = 1 / FPS
MARGIN = 0.1  # seconds left out on both sides of an event edge when comparing levels (fades, AAC frames)


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _dbfs(x: np.ndarray) -> float:
    return 20 * math.log10(math.sqrt(float(np.mean(np.asarray(x, np.float64) ** 2))) + 1e-12)


@pytest.fixture(scope="module")
def long_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("long") / "a"
    generate_dataset(root, workers=1, **ARGS)
    return root


def _rows(root: Path) -> list:
    rows = list(pd.read_csv(root / "truth.csv").itertuples(index=False))
    return rows + list(pd.read_csv(root / "test" / "truth.csv").itertuples(index=False))


def _path(root: Path, row, index: int, clips: int = ARGS["clips"]) -> Path:
    return root / row.clip if index < clips else root / "test" / row.clip


def test_clip_lengths_are_within_the_range(long_set):
    rows = _rows(long_set)
    assert len(rows) == 7
    for i, row in enumerate(rows):
        with av.open(str(_path(long_set, row, i))) as container:
            seconds = container.duration / 1e6
            frames = sum(1 for _ in container.decode(video=0))
        assert SECONDS[0] - FRAME <= seconds <= SECONDS[1] + FRAME, row.clip
        assert frames / FPS == pytest.approx(seconds, abs=FRAME)


def test_truth_has_the_event_columns(long_set):
    truth = pd.read_csv(long_set / "truth.csv")
    assert list(truth.columns) == TRUTH_COLUMNS + ["is_muted", "event_start_s", "event_end_s"]
    assert list(pd.read_csv(long_set / "test" / "truth.csv").columns) == TRUTH_COLUMNS + ["event_start_s",
                                                                                        "event_end_s"]
    assert truth["is_muted"].sum() == 1 and truth["is_mismatched"].sum() == 2
    for i, row in enumerate(_rows(long_set)):
        if getattr(row, "is_muted", 0):
            assert math.isnan(row.event_start_s) and math.isnan(row.event_end_s)
            continue
        with av.open(str(_path(long_set, row, i))) as container:
            seconds = container.duration / 1e6
        assert 0 <= row.event_start_s < row.event_end_s <= seconds + 1e-9, row.clip
        assert EVENT_SECONDS[0] - 1e-3 <= row.event_end_s - row.event_start_s <= EVENT_SECONDS[1] + 1e-3
        assert row.event_start_s == round(row.event_start_s, 3)
    # events are placed at random: not all at the same place
    assert truth["event_start_s"].nunique() == truth["event_start_s"].notna().sum()


def test_sound_is_loud_inside_the_event_and_quiet_outside(long_set):
    for i, row in enumerate(_rows(long_set)):
        audio = decode_clip(_path(long_set, row, i), max_audio_seconds=60).audio
        if getattr(row, "is_muted", 0):
            assert np.abs(audio).max() < 1e-6 and is_silent(audio)  # digital silence throughout
            continue
        start, end = (int(round(t * 16000)) for t in (row.event_start_s, row.event_end_s))
        margin = int(MARGIN * 16000)
        inside = audio[start + margin:end - margin]
        outside = np.concatenate([audio[:max(start - margin, 0)], audio[end + margin:]])
        assert len(outside) > 16000  # the 6-8 s clips leave at least 3 s outside a 2-3 s event
        loud, quiet = _dbfs(inside), _dbfs(outside)
        assert SILENT_BELOW_DBFS < quiet < -38, (row.clip, quiet)  # a present, quiet background
        assert loud > quiet + 10, (row.clip, row.audio_label, loud, quiet)
        assert not is_silent(outside)


def test_same_arguments_give_identical_bytes_whatever_workers(long_set, tmp_path):
    generate_dataset(tmp_path / "b", workers=2, **ARGS)
    assert _hashes(long_set) == _hashes(tmp_path / "b")


def test_render_event_clip_picture_moves_throughout_and_sound_follows_audio_class():
    frames, audio, (start, end) = render_event_clip(2, 5, "hammering", clip_seconds=(7.0, 7.0))
    assert frames.shape == (175, 128, 128, 3) and audio.shape == (175 * 640,) and audio.dtype == np.float32
    assert 0 <= start < end <= 7.0 and EVENT_SECONDS[0] <= end - start <= EVENT_SECONDS[1]
    moving = [np.abs(np.diff(frames[k:k + FPS].astype(np.int16), axis=0)).max() for k in range(0, 175 - FPS, FPS)]
    assert min(moving) > 30  # the motion goes on outside the event, every second
    frames2, audio2, event2 = render_event_clip(2, 5, "hammering", "typing", clip_seconds=(7.0, 7.0))
    assert np.array_equal(frames, frames2) and event2 == (start, end)  # same picture and event, other sound
    a, b = int(round(start * 16000)), int(round(end * 16000))
    assert not np.allclose(audio[a:b], audio2[a:b])
    assert np.array_equal(audio[:a], audio2[:a])  # the same background
    with pytest.raises(ValueError, match="drums"):
        render_event_clip(2, 5, "drums", clip_seconds=(7.0, 7.0))


@pytest.mark.parametrize("bad", [(0, 5), (5, 2), (1, float("nan")), (1, 1000), "10-30", 7, (1, 2, 3)])
def test_bad_clip_seconds_raise_naming_the_option(tmp_path, bad):
    with pytest.raises(UserError, match="clip_seconds"):
        generate_dataset(tmp_path, clips=2, clip_seconds=bad)
    assert not (tmp_path / "truth.csv").exists()


def test_without_clip_seconds_nothing_changes(tmp_path):
    # render_clip's output of the 2-5 s generator (length, mean pixel value, audio RMS), as before long clips
    expected = [((3, 1, "typing"), 65, 153.04952, 0.01276286), ((3, 2, "bell", "sawing"), 94, 139.003728, 0.03229049),
                ((4, 0, "spinning"), 118, 79.17621, 0.07713924)]
    for args, frames_n, mean, rms in expected:
        frames, audio = render_clip(*args)
        assert len(frames) == frames_n
        assert float(frames.mean(dtype=np.float64)) == pytest.approx(mean, rel=1e-6)
        assert math.sqrt(float(np.mean(audio.astype(np.float64) ** 2))) == pytest.approx(rms, rel=1e-5)
    generate_dataset(tmp_path / "a", clips=2, seed=1, workers=1)
    generate_dataset(tmp_path / "b", clips=2, seed=1, workers=1, clip_seconds=None)
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")
    assert list(pd.read_csv(tmp_path / "a" / "truth.csv").columns) == TRUTH_COLUMNS


# ---------------------------------------------------------------------------------------------------------------
# command line and bench settings


def test_cli_clip_seconds_parses_a_range_and_a_single_number():
    args = build_parser().parse_args(["sample", "--out", "x", "--clip-seconds", "10-30"])
    assert parse_clip_seconds(args.clip_seconds) == (10.0, 30.0)
    args = build_parser().parse_args(["sample", "--out", "x", "--clip-seconds", "8"])
    assert parse_clip_seconds(args.clip_seconds) == (8.0, 8.0)
    assert parse_clip_seconds(build_parser().parse_args(["sample", "--out", "x"]).clip_seconds) is None
    assert parse_clip_seconds("2.5-4.5") == (2.5, 4.5)
    for bad in ("5-2", "0", "-3", "abc", "1-2-3", "700"):
        with pytest.raises(UserError, match="--clip-seconds"):
            parse_clip_seconds(bad)


def test_cli_rejects_a_bad_clip_seconds_before_rendering(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path / "d"), "--clips", "2", "--clip-seconds", "5-2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --clip-seconds '5-2'") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_cli_help_names_the_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sample", "--help"])
    assert "--clip-seconds A-B" in capsys.readouterr().out


def test_event_seconds_sets_the_event_length():
    for index in range(5):
        n_frames, start, end = synth.event_window(3, index, (10.0, 30.0), (1.0, 1.0))
        assert end - start == pytest.approx(1.0) and 0 <= start and end <= n_frames / FPS
    _, audio, (start, end) = render_event_clip(2, 5, "hammering", clip_seconds=(7.0, 7.0), event_seconds=(0.5, 0.8))
    assert 0.5 <= end - start <= 0.8
    with pytest.raises(UserError, match="event_seconds needs clip_seconds"):
        generate_dataset("/nonexistent", clips=1, event_seconds=(1.0, 1.0))
    assert main(["sample", "--out", "/nonexistent", "--clips", "1", "--clip-seconds", "8",
                 "--event-seconds", "0-1"]) == 2


def test_bench_duration_setting_is_no_longer_refused(tmp_path):
    settings = parse_settings("sym0.4+dur10-30")
    check_generator(settings)
    BenchConfig(out=tmp_path, settings=settings).validate()
    assert Setting(seconds=(10.0, 30.0)).generator_args()["clip_seconds"] == (10.0, 30.0)
    assert "clip_seconds" not in Setting().generator_args()


def test_module_constants_match_the_ingest():
    assert synth.BACKGROUND_DBFS[0] > SILENT_BELOW_DBFS  # the background is never taken for a silent track
