"""The procedural sample generator: determinism, decodability, truth tables and noise protocols."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from auditor.data import synth
from auditor.data.decode import decode_clip
from auditor.data.generate import generate_dataset
from auditor.data.synth import CLASSES, CONFUSABLE, render_clip

TRUTH_COLUMNS = ["clip", "true_label", "given_label", "label_is_noisy", "audio_label", "is_mismatched"]


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synth")
    args = dict(clips=10, label_noise=0.3, mismatch=0.2, seed=3, test_clips=3)
    generate_dataset(root / "a", workers=2, **args)
    generate_dataset(root / "b", workers=1, **args)  # same seed, other worker count
    generate_dataset(root / "c", clips=3, seed=4, workers=1)
    return {"a": root / "a", "b": root / "b", "c": root / "c"}


def test_classes_and_confusable_map():
    assert len(CLASSES) >= 8 and len(set(CLASSES)) == len(CLASSES)
    assert all(c.isalpha() and c.islower() for c in CLASSES)
    assert set(CONFUSABLE) == set(CLASSES)
    assert all(v in CLASSES and v != k for k, v in CONFUSABLE.items())


def test_same_seed_gives_identical_bytes(sets):
    a, b = _hashes(sets["a"]), _hashes(sets["b"])
    assert a == b
    assert sum(name.endswith(".mp4") for name in a) == 13
    assert {"labels.csv", "truth.csv", "test/labels.csv", "test/truth.csv"} <= set(a)


def test_other_seed_differs(sets):
    a, c = _hashes(sets["a"]), _hashes(sets["c"])
    assert a["clips/clip_00000.mp4"] != c["clips/clip_00000.mp4"]
    assert a["labels.csv"] != c["labels.csv"]


def test_every_clip_decodes_with_expected_streams(sets):
    root = sets["a"]
    clips = [root / c for c in pd.read_csv(root / "labels.csv")["clip"]]
    clips += [root / "test" / c for c in pd.read_csv(root / "test" / "labels.csv")["clip"]]
    assert len(clips) == 13
    for path in clips:
        assert path.suffix == ".mp4" and path.name.startswith("clip_")
        with av.open(str(path)) as container:
            assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert (video.codec_context.width, video.codec_context.height) == (128, 128)
            assert video.average_rate == 25
            assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
            assert audio.codec_context.name == "aac"
            assert audio.sample_rate == 16000 and audio.channels == 1
            n_frames = sum(1 for _ in container.decode(video))
        assert 50 <= n_frames <= 125  # 2-5 s at 25 fps
        with av.open(str(path)) as container:
            samples = sum(f.samples for f in container.decode(audio=0))
        assert 2.0 <= samples / 16000 <= 5.2  # AAC pads a little


def test_truth_tables_are_consistent(sets):
    root = sets["a"]
    labels = pd.read_csv(root / "labels.csv")
    truth = pd.read_csv(root / "truth.csv")
    assert list(labels.columns) == ["clip", "label"]
    assert list(truth.columns) == TRUTH_COLUMNS
    assert list(labels["clip"]) == list(truth["clip"])
    assert (labels["label"] == truth["given_label"]).all()
    assert set(truth["true_label"]) <= set(CLASSES)
    assert (truth["label_is_noisy"] == (truth["given_label"] != truth["true_label"]).astype(int)).all()
    assert (truth["is_mismatched"] == (truth["audio_label"] != truth["true_label"]).astype(int)).all()
    assert truth["is_mismatched"].sum() == round(0.2 * 10)
    assert set(truth["label_is_noisy"]) <= {0, 1} and set(truth["is_mismatched"]) <= {0, 1}
    test = pd.read_csv(root / "test" / "truth.csv")
    assert len(test) == 3
    assert (test["label_is_noisy"] == 0).all() and (test["is_mismatched"] == 0).all()
    assert (test["true_label"] == test["given_label"]).all()
    assert (pd.read_csv(root / "test" / "labels.csv")["label"] == test["true_label"]).all()


def _tables_only(monkeypatch, tmp_path: Path, **kwargs) -> pd.DataFrame:
    """Run the generator with rendering stubbed out (in-process), to check the label logic on many clips."""
    monkeypatch.setattr(synth, "_render_task", lambda task: 3.0)
    summary = generate_dataset(tmp_path, workers=1, **kwargs)
    truth = pd.read_csv(tmp_path / "truth.csv")
    assert summary["clips"] == len(truth)
    assert summary["noisy"] == truth["label_is_noisy"].sum()
    assert summary["mismatched"] == truth["is_mismatched"].sum()
    return truth


def test_symmetric_noise_and_mismatch_rates(monkeypatch, tmp_path):
    truth = _tables_only(monkeypatch, tmp_path, clips=1600, label_noise=0.3, mismatch=0.15, seed=7)
    counts = truth["true_label"].value_counts()
    assert set(counts.index) == set(CLASSES) and counts.max() - counts.min() <= 1  # balanced
    assert abs(truth["label_is_noisy"].mean() - 0.3) < 0.04
    assert truth["is_mismatched"].sum() == round(0.15 * 1600)
    noisy = truth[truth["label_is_noisy"] == 1]
    # symmetric: flips spread over many targets, never to the true class
    assert noisy.groupby("true_label")["given_label"].nunique().min() >= 5
    mism = truth[truth["is_mismatched"] == 1]
    assert (mism["audio_label"] != mism["true_label"]).all()


def test_asymmetric_noise_goes_to_the_confusable_class(monkeypatch, tmp_path):
    truth = _tables_only(monkeypatch, tmp_path, clips=800, label_noise=0.4, noise_type="asymmetric", seed=1)
    noisy = truth[truth["label_is_noisy"] == 1]
    assert abs(len(noisy) / 800 - 0.4) < 0.06
    assert (noisy["given_label"] == noisy["true_label"].map(CONFUSABLE)).all()
    assert truth["is_mismatched"].sum() == 0


@pytest.mark.parametrize("kwargs, word", [
    (dict(label_noise=1.0), "1.0"),
    (dict(label_noise=-0.1), "-0.1"),
    (dict(noise_type="pairwise"), "pairwise"),
    (dict(mismatch=1.5), "1.5"),
    (dict(clips=0), "clips"),
])
def test_bad_arguments_raise_value_error(tmp_path, kwargs, word):
    with pytest.raises(ValueError, match=word):
        generate_dataset(tmp_path, **{"clips": 4, **kwargs})


def test_render_clip_shapes_and_mismatched_sound():
    frames, audio = render_clip(5, 1, "bell")
    assert frames.dtype == np.uint8 and frames.shape[1:] == (128, 128, 3)
    assert 50 <= len(frames) <= 125
    assert audio.dtype == np.float32 and audio.shape == (len(frames) * 640,)
    assert np.abs(audio).max() <= 1.0 and np.abs(audio).max() > 0.01
    frames2, audio2 = render_clip(5, 1, "bell", "typing")
    assert np.array_equal(frames, frames2)  # the picture does not depend on the sound
    assert not np.allclose(audio, audio2)
    with pytest.raises(ValueError, match="drums"):
        render_clip(5, 1, "drums")


def test_every_class_renders_distinct_pictures():
    """Each class draws something different from the background and moves over time."""
    for index, cls in enumerate(CLASSES):
        frames, audio = render_clip(9, index, cls, duration=2.0)
        assert len(frames) == 50
        assert frames.std() > 5
        assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).max() > 30, cls
        assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 1e-3, cls


def test_progress_is_reported_for_every_clip(monkeypatch, tmp_path):
    monkeypatch.setattr(synth, "_render_task", lambda task: 3.0)
    calls: list[tuple[int, int]] = []
    generate_dataset(tmp_path, clips=9, test_clips=3, workers=1, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 12) for i in range(1, 13)]


def test_long_tailed_sizes_and_muted_tracks(tmp_path):
    from auditor.data.features import is_silent
    from auditor.data.synth import class_sizes

    sizes = class_sizes(600, 10.0, np.random.default_rng(0))
    assert sum(sizes.values()) == 600 and max(sizes.values()) / min(sizes.values()) == pytest.approx(10, rel=0.1)
    assert sorted(class_sizes(8, 50.0, np.random.default_rng(0)).values()) == [1] * 8

    summary = generate_dataset(tmp_path, clips=24, imbalance=4.0, muted=0.25, mismatch=0.25, seed=2, workers=1)
    truth = pd.read_csv(tmp_path / "truth.csv")
    counts = truth["true_label"].value_counts()
    assert counts.max() > counts.min() and summary["muted"] == 6 == truth["is_muted"].sum()
    assert not (truth["is_muted"].astype(bool) & truth["is_mismatched"].astype(bool)).any()
    muted_clip = truth.loc[truth["is_muted"] == 1, "clip"].iloc[0]
    loud_clip = truth.loc[(truth["is_muted"] == 0) & (truth["is_mismatched"] == 0), "clip"].iloc[0]
    assert is_silent(decode_clip(tmp_path / muted_clip).audio)
    assert not is_silent(decode_clip(tmp_path / loud_clip).audio)


def test_more_classes_combine_pictures_with_other_sounds(tmp_path):
    from auditor.data.synth import MAX_CLASSES, class_vocabulary

    vocab = class_vocabulary(32)
    assert list(vocab)[:8] == CLASSES and len(set(vocab.values())) == 32 and len(class_vocabulary(MAX_CLASSES)) == 64
    assert all(name == f"{m}~{a}" for name, (m, a) in list(vocab.items())[8:])
    with pytest.raises(ValueError, match="num_classes"):
        class_vocabulary(65)
    summary = generate_dataset(tmp_path, clips=40, num_classes=32, mismatch=0.2, label_noise=0.2, seed=3, workers=1)
    truth = pd.read_csv(tmp_path / "truth.csv")
    assert summary["classes"] == 32 and set(truth["true_label"]) <= set(vocab)
    sound = {c: a for c, (_, a) in vocab.items()}
    mism = truth[truth["is_mismatched"] == 1]
    assert len(mism) == 8 and all(sound[a] != sound[t] for a, t in zip(mism["audio_label"], mism["true_label"], strict=True))
