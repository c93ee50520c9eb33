"""Label-noise / mismatch choice functions and inject_dataset (hard links, remuxing without re-encoding)."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from auditor.data import mux, noise
from auditor.data.generate import generate_dataset
from auditor.data.inject import SOUND_COLUMNS, inject_dataset
from auditor.data.mux import swap_audio
from auditor.data.noise import choose_label_noise, choose_mismatch, default_confusion_map

CLASSES = ["a", "b", "c", "d", "e"]


def _labels(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [CLASSES[i] for i in rng.integers(0, len(CLASSES), n)]


# ------------------------------------------------------------------------------------------------ choose_label_noise


def test_label_noise_zero_rate_keeps_labels():
    labels = _labels(100)
    assert choose_label_noise(labels, CLASSES, 0.0, "symmetric", np.random.default_rng(0)) == labels


def test_symmetric_noise_rate_and_targets():
    labels = _labels(20000)
    given = choose_label_noise(labels, CLASSES, 0.3, "symmetric", np.random.default_rng(1))
    assert len(given) == len(labels)
    flipped = [(t, g) for t, g in zip(labels, given, strict=True) if t != g]
    assert abs(len(flipped) / len(labels) - 0.3) < 0.02
    assert set(given) <= set(CLASSES)
    # from each class, the flips spread uniformly over the 4 other classes
    for cls in CLASSES:
        targets = Counter(g for t, g in flipped if t == cls)
        assert set(targets) == set(CLASSES) - {cls}
        assert max(targets.values()) / min(targets.values()) < 1.4


def test_asymmetric_noise_uses_the_map_and_default_map():
    labels = _labels(5000)
    cmap = {"a": "b", "b": "a", "c": "d", "d": "c", "e": "a"}
    given = choose_label_noise(labels, CLASSES, 0.4, "asymmetric", np.random.default_rng(2), cmap)
    flips = [(t, g) for t, g in zip(labels, given, strict=True) if t != g]
    assert abs(len(flips) / len(labels) - 0.4) < 0.03
    assert all(g == cmap[t] for t, g in flips)
    assert default_confusion_map(["c", "a", "b"]) == {"a": "b", "b": "c", "c": "a"}
    given = choose_label_noise(labels, CLASSES, 0.4, "asymmetric", np.random.default_rng(2))
    assert all(g == default_confusion_map(CLASSES)[t] for t, g in zip(labels, given, strict=True) if t != g)


def test_label_noise_is_seeded():
    labels = _labels(500)
    one = choose_label_noise(labels, CLASSES, 0.3, "symmetric", np.random.default_rng(5))
    two = choose_label_noise(labels, CLASSES, 0.3, "symmetric", np.random.default_rng(5))
    three = choose_label_noise(labels, CLASSES, 0.3, "symmetric", np.random.default_rng(6))
    assert one == two and one != three


@pytest.mark.parametrize("rate, noise_type, cmap, word", [
    (1.0, "symmetric", None, "1.0"),
    (-0.2, "symmetric", None, "-0.2"),
    (0.2, "uniform", None, "uniform"),
    (0.2, "asymmetric", {"a": "a"}, "'a'"),
    (0.2, "asymmetric", {"a": "z", "b": "a", "c": "a", "d": "a", "e": "a"}, "'z'"),
])
def test_label_noise_rejects_bad_values(rate, noise_type, cmap, word):
    with pytest.raises(ValueError, match=word):
        choose_label_noise(_labels(20), CLASSES, rate, noise_type, np.random.default_rng(0), cmap)


def test_label_noise_rejects_unknown_label():
    with pytest.raises(ValueError, match="zebra"):
        choose_label_noise(["a", "zebra"], CLASSES, 0.1, "symmetric", np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------------- choose_mismatch


@pytest.mark.parametrize("n, rate", [(100, 0.15), (37, 0.5), (10, 1.0), (10, 0.0), (7, 0.3)])
def test_mismatch_count_and_donors(n, rate):
    labels = _labels(n, seed=n)
    donors = choose_mismatch(labels, rate, np.random.default_rng(0))
    assert len(donors) == n
    chosen = [(i, d) for i, d in enumerate(donors) if d is not None]
    assert len(chosen) == round(rate * n)
    assert all(0 <= d < n and labels[d] != labels[i] for i, d in chosen)


def test_mismatch_donor_classes_are_uniform_and_seeded():
    labels = _labels(4000)
    donors = choose_mismatch(labels, 0.5, np.random.default_rng(3))
    assert donors == choose_mismatch(labels, 0.5, np.random.default_rng(3))
    assert donors != choose_mismatch(labels, 0.5, np.random.default_rng(4))
    counts = Counter(labels[d] for d in donors if d is not None)
    assert max(counts.values()) / min(counts.values()) < 1.3


def test_mismatch_rejects_bad_values():
    with pytest.raises(ValueError, match="1.2"):
        choose_mismatch(_labels(10), 1.2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="2 classes"):
        choose_mismatch(["a"] * 10, 0.5, np.random.default_rng(0))


# ----------------------------------------------------------------------------------------------------- inject_dataset


def _packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as container:
        streams = container.streams.video if kind == "video" else container.streams.audio
        if not streams:
            return []
        return [bytes(p) for p in container.demux(streams[0]) if p.size > 0]


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inject") / "clean"
    generate_dataset(root, clips=8, seed=2, test_clips=2, workers=1)
    return root


def test_inject_dataset_links_remuxes_and_writes_truth(clean_set, tmp_path):
    out = tmp_path / "noisy"
    summary = inject_dataset(clean_set, out, label_noise=0.5, mismatch=0.5, seed=4)
    labels = pd.read_csv(out / "labels.csv")
    truth = pd.read_csv(out / "truth.csv")
    original = pd.read_csv(clean_set / "truth.csv")
    assert list(truth.columns) == ["clip", "true_label", "given_label", "label_is_noisy", "audio_label",
                                   "is_mismatched"]
    assert list(labels["clip"]) == list(original["clip"]) == list(truth["clip"])
    assert (labels["label"] == truth["given_label"]).all()
    assert (truth["true_label"] == original["true_label"]).all()
    assert (truth["label_is_noisy"] == (truth["given_label"] != truth["true_label"]).astype(int)).all()
    assert truth["is_mismatched"].sum() == 4 == summary["mismatched"]
    assert summary["remuxed"] == 4 and summary["linked"] + summary["copied"] == 4
    assert summary["noisy"] == truth["label_is_noisy"].sum()

    donors = noise.choose_mismatch(list(original["true_label"]), 0.5, noise.mismatch_rng(4))
    for i, row in truth.iterrows():
        src, dst = clean_set / row["clip"], out / row["clip"]
        if donors[i] is None:
            assert row["is_mismatched"] == 0 and row["audio_label"] == row["true_label"]
            if summary["linked"]:
                assert os.stat(src).st_ino == os.stat(dst).st_ino
            assert src.read_bytes() == dst.read_bytes()
        else:
            donor = clean_set / original["clip"][donors[i]]
            assert row["is_mismatched"] == 1
            assert row["audio_label"] == original["true_label"][donors[i]] != row["true_label"]
            assert _packets(dst, "video") == _packets(src, "video")
            got, donor_audio = _packets(dst, "audio"), _packets(donor, "audio")
            assert got and got == donor_audio[: len(got)]  # donor's packets, trimmed to the video's end
            with av.open(str(dst)) as container:  # and the result decodes
                assert sum(f.samples for f in container.decode(audio=0)) > 16000
    # the clean test split comes along unchanged
    assert (out / "test" / "labels.csv").read_bytes() == (clean_set / "test" / "labels.csv").read_bytes()
    for clip in pd.read_csv(clean_set / "test" / "labels.csv")["clip"]:
        assert (out / "test" / clip).read_bytes() == (clean_set / "test" / clip).read_bytes()


def test_inject_dataset_is_deterministic_and_composes_with_truth(clean_set, tmp_path):
    first = tmp_path / "one"
    inject_dataset(clean_set, first, label_noise=0.4, mismatch=0.25, seed=9)
    again = tmp_path / "again"
    inject_dataset(clean_set, again, label_noise=0.4, mismatch=0.25, seed=9)
    for name in ("labels.csv", "truth.csv"):
        assert (first / name).read_bytes() == (again / name).read_bytes()
    # inject again on top: the true labels stay the original truth's, earlier mismatches stay marked
    second = tmp_path / "two"
    inject_dataset(first, second, label_noise=0.3, noise_type="asymmetric", mismatch=0.25, seed=10)
    t1, t2 = pd.read_csv(first / "truth.csv"), pd.read_csv(second / "truth.csv")
    assert (t2["true_label"] == pd.read_csv(clean_set / "truth.csv")["true_label"]).all()
    assert (t2["is_mismatched"] >= t1["is_mismatched"]).all()
    assert (t2["label_is_noisy"] == (t2["given_label"] != t2["true_label"]).astype(int)).all()


def test_inject_dataset_without_truth_uses_labels_as_truth(clean_set, tmp_path):
    plain = tmp_path / "plain"
    (plain / "clips").mkdir(parents=True)
    shutil.copy(clean_set / "labels.csv", plain / "labels.csv")
    for clip in pd.read_csv(plain / "labels.csv")["clip"]:
        os.link(clean_set / clip, plain / clip)
    out = tmp_path / "out"
    inject_dataset(plain, out, label_noise=0.0, mismatch=0.25, seed=1)
    truth = pd.read_csv(out / "truth.csv")
    assert (truth["true_label"] == pd.read_csv(plain / "labels.csv")["label"]).all()
    assert truth["label_is_noisy"].sum() == 0 and truth["is_mismatched"].sum() == 2


def test_inject_dataset_rejects_bad_input(clean_set, tmp_path):
    with pytest.raises(ValueError, match="sideways"):
        inject_dataset(clean_set, tmp_path / "x", label_noise=0.1, noise_type="sideways")
    with pytest.raises(ValueError, match="1.0"):
        inject_dataset(clean_set, tmp_path / "x", label_noise=1.0)
    with pytest.raises(ValueError, match="differ"):
        inject_dataset(clean_set, clean_set, label_noise=0.1)
    with pytest.raises(ValueError, match="labels.csv"):
        inject_dataset(tmp_path, tmp_path / "x", label_noise=0.1)


def test_swap_audio_falls_back_to_reencoding(clean_set, tmp_path, monkeypatch):
    clips = list(pd.read_csv(clean_set / "labels.csv")["clip"])
    src, donor = clean_set / clips[0], clean_set / clips[1]

    def broken(*args, **kwargs):
        raise RuntimeError("remux refused")

    monkeypatch.setattr(mux, "_remux_copy", broken)
    dst = tmp_path / "re.mp4"
    assert swap_audio(src, donor, dst) == "reencoded"
    assert _packets(dst, "video") == _packets(src, "video")
    with av.open(str(dst)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac" and stream.sample_rate == 16000
        samples = sum(f.samples for f in container.decode(stream))
    with av.open(str(src)) as container:
        video_seconds = sum(1 for _ in container.decode(video=0)) / 25
    with av.open(str(donor)) as container:
        donor_seconds = sum(f.samples for f in container.decode(audio=0)) / 16000
    assert samples / 16000 == pytest.approx(min(video_seconds, donor_seconds), abs=0.15)


def test_swap_audio_with_silent_donor_keeps_video_only(clean_set, tmp_path):
    donor = tmp_path / "silent.mp4"
    with av.open(str(donor), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    src = clean_set / pd.read_csv(clean_set / "labels.csv")["clip"][0]
    dst = tmp_path / "out.mp4"
    assert swap_audio(src, donor, dst) == "no_audio"
    assert _packets(dst, "video") == _packets(src, "video")
    assert _packets(dst, "audio") == []


@pytest.mark.slow
def test_inject_keeps_the_truths_further_columns_and_moves_them_with_the_sound(tmp_path):
    """is_muted, a long clip's sound event and the media columns survive an injection; a clip given another
    clip's sound takes that clip's muting and event (cut where the picture ends), and its sound columns say what
    its file now holds (a WebM clip given AAC sound gets it re-encoded as Opus)."""
    src = tmp_path / "long"
    generate_dataset(src, clips=6, seed=3, clip_seconds=(10.0, 12.0), muted=0.34, media="mixed", workers=1)
    out = tmp_path / "noisy"
    inject_dataset(src, out, label_noise=0.0, mismatch=0.5, seed=5)
    before = pd.read_csv(src / "truth.csv", dtype=str, keep_default_na=False)
    after = pd.read_csv(out / "truth.csv", dtype=str, keep_default_na=False)
    assert list(after.columns) == list(before.columns)  # nothing dropped, same order
    assert {"is_muted", "event_start_s", "container", "audio_codec"} <= set(after.columns)
    donors = noise.choose_mismatch(list(before["true_label"]), 0.5, noise.mismatch_rng(5))
    assert sum(d is not None for d in donors) == 3
    media = ("audio_codec", "sample_rate", "channels")
    for i, donor in enumerate(donors):
        own, row = before.iloc[i], after.iloc[i]
        sound = own if donor is None else before.iloc[donor]
        with av.open(str(out / own["clip"])) as container:
            track = container.streams.audio[0]
            assert [row[c] for c in media] == [track.codec_context.name, str(track.sample_rate), str(track.channels)]
            picture_end = max(frame.time for frame in container.decode(video=0))
        for column in after.columns.drop(["clip", "given_label", "label_is_noisy", "audio_label", "is_mismatched",
                                          *media]):
            want = sound[column] if column in SOUND_COLUMNS else own[column]
            if column in ("event_start_s", "event_end_s") and donor is not None and want:
                want = want if float(sound["event_start_s"]) < picture_end else ""  # cut with the sound
            assert row[column] == want, (i, column)
