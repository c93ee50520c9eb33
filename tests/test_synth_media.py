"""Mixed media of the sample generator (generate_dataset(media="mixed"), sample --media, the bench's ``mixed``
setting part): each clip in a container, codecs, frame size, frame rate, sample rate and channel layout of its own,
as declared in truth.csv; every clip decodes and ingests; determinism; and the same picture and sound as the
uniform clip of the same arguments."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from auditor.__main__ import build_parser, main
from auditor.data import synth
from auditor.data.decode import SAMPLE_RATE, decode_clip
from auditor.data.generate import generate_dataset
from auditor.data.synth import (
    FPS,
    MEDIA_COLUMNS,
    MIXED_CONTAINERS,
    MIXED_FPS,
    MIXED_SAMPLE_RATES,
    MIXED_SIZES,
    UNIFORM_MEDIA,
    media_format,
)
from auditor.errors import UserError

# Seed 69's 10 clips (8 + 2 test) cover every container, codec, size, frame rate, sample rate and layout.
ARGS = dict(clips=8, test_clips=2, seed=69, mismatch=0.25, muted=0.25, label_noise=0.25)
# Measured on these clips: picture MAD 0.9-1.7 (of 255), sound correlation >= 0.97 (Opus and 44.1-kHz AAC the
# lowest); the bounds leave a wide margin.
MAX_PICTURE_MAD = 6.0
MIN_SOUND_CORRELATION = 0.9


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("media")
    generate_dataset(root / "uniform", workers=1, **ARGS)
    generate_dataset(root / "mixed", media="mixed", workers=1, **ARGS)
    return root / "uniform", root / "mixed"


def _rows(root: Path) -> list[tuple[Path, pd.Series]]:
    """(file, truth row) of every clip, the test split's after the training split's."""
    out = []
    for split in (root, root / "test"):
        out += [(split / row["clip"], row) for _, row in pd.read_csv(split / "truth.csv").iterrows()]
    return out


def test_media_format_draws_only_valid_combinations():
    formats = [media_format(3, i) for i in range(400)]
    assert formats == [media_format(3, i) for i in range(400)] and formats != [media_format(4, i) for i in range(400)]
    for f in formats:
        assert f.container in MIXED_CONTAINERS and (f.width, f.height) in MIXED_SIZES and f.fps in MIXED_FPS
        assert f.sample_rate in MIXED_SAMPLE_RATES and f.channels in (1, 2)
        assert f.video_codec in (("vp8", "vp9") if f.container == "webm" else ("h264",))
        assert f.audio_codec in {"mp4": ("aac",), "mov": ("aac",), "mkv": ("aac", "opus"),
                                 "webm": ("opus", "vorbis")}[f.container]
        assert f.audio_codec != "opus" or f.sample_rate == 48_000
        assert f.audio_codec != "vorbis" or f.channels == 2
        assert f.channels == 2 or f.balance_db == 0.0
        assert f.balance_db == 0.0 or 0.5 <= abs(f.balance_db) <= 3.0
    for name, options in (("container", MIXED_CONTAINERS), ("fps", MIXED_FPS), ("sample_rate", MIXED_SAMPLE_RATES),
                          ("video_codec", ("h264", "vp8", "vp9")), ("audio_codec", ("aac", "opus", "vorbis"))):
        assert {getattr(f, name) for f in formats} == set(options), name
    assert {(f.width, f.height) for f in formats} == set(MIXED_SIZES)
    stereo = [f for f in formats if f.channels == 2]
    assert 0.3 < np.mean([f.balance_db == 0.0 for f in stereo]) < 0.7
    with pytest.raises(UserError, match="media"):
        generate_dataset("unused", clips=1, media="bogus")


def test_mixed_files_are_what_truth_declares(sets):
    uniform, mixed = sets
    rows = _rows(mixed)
    assert len(rows) == 10
    seen = set()
    for (path, row), (upath, _) in zip(rows, _rows(uniform), strict=True):
        assert path.is_file() and path.stem == upath.stem and path.suffix == "." + row["container"]
        with av.open(str(path)) as container:
            v, a = container.streams.video[0], container.streams.audio[0]
            got = (v.codec_context.name, v.width, v.height, v.average_rate, a.codec_context.name, a.sample_rate,
                   a.channels)
        assert got == (row["video_codec"], row["width"], row["height"], Fraction(int(row["fps"])),
                       row["audio_codec"], row["sample_rate"], row["channels"]), path.name
        seen.add((row["container"], row["video_codec"], row["audio_codec"], row["sample_rate"], row["channels"]))
    assert {s[0] for s in seen} == set(MIXED_CONTAINERS) and {s[2] for s in seen} == {"aac", "opus", "vorbis"}
    assert {s[1] for s in seen} == {"h264", "vp8", "vp9"} and {s[3] for s in seen} == set(MIXED_SAMPLE_RATES)


def test_mixed_tables_are_the_uniform_ones_plus_the_media_columns(sets):
    uniform, mixed = sets
    for split in (Path("."), Path("test")):
        u, m = pd.read_csv(uniform / split / "truth.csv"), pd.read_csv(mixed / split / "truth.csv")
        assert list(m.columns) == list(u.columns) + list(MEDIA_COLUMNS)
        assert tuple(MEDIA_COLUMNS[:6]) == ("container", "width", "height", "fps", "sample_rate", "channels")
        assert not set(MEDIA_COLUMNS) & set(u.columns)
        assert (m["clip"] == u["clip"].str.replace(".mp4", "", regex=False) + "." + m["container"]).all()
        pd.testing.assert_frame_equal(m[u.columns].drop(columns="clip"), u.drop(columns="clip"))
        labels = pd.read_csv(mixed / split / "labels.csv")
        assert labels["clip"].tolist() == m["clip"].tolist() and labels["label"].tolist() == m["given_label"].tolist()


def test_every_mixed_clip_decodes_and_is_ingested(sets, tmp_path):
    from auditor.data.cache import ingest
    from auditor.data.params import PreprocessParams

    _, mixed = sets
    for path, row in _rows(mixed):
        clip = decode_clip(path, num_frames=4, size=32)
        assert clip.frames.shape == (4, 32, 32, 3) and clip.frames.dtype == np.uint8, path.name
        assert clip.audio.ndim == 1 and clip.audio.dtype == np.float32 and clip.has_audio and not clip.warning
        assert abs(len(clip.audio) / SAMPLE_RATE - clip.duration) < 0.1, path.name
        if row.get("is_muted", 0):  # digital silence, whatever the codec
            assert np.abs(clip.audio).max() == 0.0, path.name
        else:
            assert np.abs(clip.audio).max() > 0.01, path.name
    result = ingest(mixed, PreprocessParams(num_frames=4, frame_size=32), cache_root=tmp_path, workers=1)
    truth = pd.read_csv(mixed / "truth.csv")
    assert result.clips["clip"].tolist() == truth["clip"].tolist()
    assert not result.problems and result.report["kept"].all()  # every clip kept; the muted ones reported silent
    assert sorted(result.report["clip"]) == sorted(truth.loc[truth["is_muted"] == 1, "clip"])
    assert set(result.report["problem"]) == {"silent_audio"}
    assert result.clips["has_audio"].tolist() == (truth["is_muted"] == 0).tolist()


def _frames32(path: Path) -> tuple[np.ndarray, int]:
    """Every decoded frame's centre square (what the ingest keeps of a frame) scaled to 32x32, as float32, and the
    frame rate."""
    with av.open(str(path)) as container:
        v = container.streams.video[0]
        frames = []
        for f in container.decode(v):
            img = f.to_ndarray(format="rgb24")
            side = min(img.shape[:2])
            top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
            square = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[top:top + side, left:left + side]),
                                                format="rgb24")
            frames.append(square.reformat(width=32, height=32).to_ndarray())
        return np.stack(frames).astype(np.float32), int(v.average_rate)


def test_mixed_clip_shows_and_sounds_like_the_uniform_one(sets):
    uniform, mixed = sets
    for (path, row), (upath, _) in zip(_rows(mixed), _rows(uniform), strict=True):
        got, fps = _frames32(path)
        want, _ = _frames32(upath)
        nearest = np.minimum((2 * np.arange(len(got)) * FPS + fps) // (2 * fps), len(want) - 1)
        assert abs(len(got) / fps - len(want) / FPS) <= 0.5 / fps + 1e-9, path.name  # the same duration
        assert np.abs(got - want[nearest]).mean() < MAX_PICTURE_MAD, path.name
        if not row.get("is_muted", 0):
            a = decode_clip(upath, num_frames=1, size=16).audio.astype(np.float64)
            b = decode_clip(path, num_frames=1, size=16).audio.astype(np.float64)
            n = min(len(a), len(b))
            assert np.corrcoef(a[:n], b[:n])[0, 1] > MIN_SOUND_CORRELATION, path.name


def _decoded(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame (F, H, W, 3) and every sound sample (channels, n) of a clip, as float64."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(float)
    with av.open(str(path)) as c:
        sound = np.concatenate([f.to_ndarray().reshape(f.layout.nb_channels, -1) for f in c.decode(audio=0)], 1)
    return frames, sound.astype(float)


def test_mixed_is_deterministic_whatever_the_workers(sets, tmp_path):
    """The same clips for 1 or 2 workers: the tables byte for byte, every clip byte for byte or, where its H.264
    differs (a frame rescaled by swscale can come out one grey level apart when its buffer's alignment picks
    another vector code path: seen once, one frame of one .mov), the same sound and frames within one grey level."""
    _, mixed = sets
    again = tmp_path / "again"
    generate_dataset(again, media="mixed", workers=2, **ARGS)
    ours, theirs = _hashes(again), _hashes(mixed)
    assert ours.keys() == theirs.keys()
    for name in ours:
        if ours[name] == theirs[name]:
            continue
        assert not name.endswith(".csv"), name
        (f1, s1), (f2, s2) = _decoded(again / name), _decoded(mixed / name)
        assert f1.shape == f2.shape and np.abs(f1 - f2).max() <= 1 and np.abs(f1 - f2).mean() < 0.01, name
        assert np.array_equal(s1, s2), name


def test_mixed_long_clips_keep_their_event_and_silence(tmp_path):
    args = dict(clips=2, seed=69, muted=0.5, clip_seconds=(6.0, 7.0))
    generate_dataset(tmp_path / "u", workers=1, **args)
    generate_dataset(tmp_path / "m", media="mixed", workers=1, **args)
    u, m = pd.read_csv(tmp_path / "u" / "truth.csv"), pd.read_csv(tmp_path / "m" / "truth.csv")
    assert list(m.columns) == list(u.columns) + list(MEDIA_COLUMNS)
    assert "event_start_s" in m and m[["event_start_s", "event_end_s"]].equals(u[["event_start_s", "event_end_s"]])
    for (_, row), (_, urow) in zip(m.iterrows(), u.iterrows(), strict=True):
        clip = decode_clip(tmp_path / "m" / row["clip"], num_frames=2, size=16)
        assert abs(clip.duration - decode_clip(tmp_path / "u" / urow["clip"], num_frames=2, size=16).duration) < 0.1
        assert (np.abs(clip.audio).max() == 0.0) == bool(row["is_muted"])


def test_uniform_format_is_the_default_and_the_cli_option(tmp_path, capsys):
    assert synth.MediaFormat() == UNIFORM_MEDIA and UNIFORM_MEDIA.container == "mp4"
    parser = build_parser()
    assert parser.parse_args(["sample", "--out", "x"]).media == "uniform"
    with pytest.raises(SystemExit):
        parser.parse_args(["sample", "--out", "x", "--media", "odd"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sample", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--media {uniform,mixed}" in text and ".mp4/.mkv/.webm" in text and "16/44.1/48 kHz" in text
    assert main(["sample", "--out", str(tmp_path), "--clips", "1", "--seed", "69", "--media", "mixed",
                 "--workers", "1"]) == 0
    assert [p.name for p in (tmp_path / "clips").iterdir()] == ["clip_00000.mov"]
    assert pd.read_csv(tmp_path / "truth.csv")["container"].tolist() == ["mov"]
