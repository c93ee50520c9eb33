"""Real content (generate_dataset(content="digits"), sample --content digits, the bench's ``real`` part): class
labels agree with the handwritten image and the spoken recording, truth.csv marks the injected noise and the
mismatched sounds (a quarter non-speech) exactly, the test split is held out, and a clip decodes with its sound
where truth.csv says the digit is spoken.

The tests that render need the Free Spoken Digit Dataset (auditor.data.digits.fsdd_root) and skip without it."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditor.__main__ import main
from auditor.bench.settings import Setting, check_generator, parse_settings
from auditor.data import digits
from auditor.data.decode import decode_clip
from auditor.data.digits import (
    DIGIT_CLASSES,
    DIGIT_COLUMNS,
    DIGIT_CONFUSABLE,
    HELD_OUT_TAKES,
    NONSPEECH_SHARE,
)
from auditor.data.generate import generate_dataset
from auditor.data.noise import TRUTH_COLUMNS
from auditor.data.synth import CLASSES
from auditor.errors import UserError

HAVE_FSDD = (digits.fsdd_root() / "recordings").is_dir()
needs_fsdd = pytest.mark.skipif(not HAVE_FSDD, reason=f"no Free Spoken Digit Dataset at {digits.fsdd_root()} "
                                                      f"(set {digits.FSDD_ENV} to its folder)")
ARGS = dict(clips=16, test_clips=6, label_noise=0.3, mismatch=0.25, muted=0.07, seed=5, content="digits")
MARGIN = 0.06  # seconds left out on both sides of an event edge (fades, AAC frames)


def _rows(root: Path) -> pd.DataFrame:
    train, test = pd.read_csv(root / "truth.csv"), pd.read_csv(root / "test" / "truth.csv")
    return pd.concat([train.assign(split="train"), test.assign(split="test")], ignore_index=True)


def _digit_of_recording(name: str) -> str:
    return DIGIT_CLASSES[int(name.split("_")[0])]


@pytest.fixture(scope="module")
def real_set(tmp_path_factory) -> tuple[Path, dict]:
    if not HAVE_FSDD:
        pytest.skip(f"no Free Spoken Digit Dataset at {digits.fsdd_root()}")
    root = tmp_path_factory.mktemp("real") / "a"
    return root, generate_dataset(root, workers=1, **ARGS)


def _tables_only(monkeypatch, root: Path, **kwargs) -> tuple[pd.DataFrame, dict]:
    """generate_dataset with rendering stubbed out, to check the plan on many clips."""
    monkeypatch.setattr(digits, "render_task", lambda task: 3.0)
    summary = generate_dataset(root, workers=1, **kwargs)
    return _rows(root) if kwargs.get("test_clips") else pd.read_csv(root / "truth.csv"), summary


def test_settings_real_part():
    assert parse_settings("real") == [Setting(content="digits")] and Setting(content="digits").name == "real"
    target = parse_settings("real+sym0.1+mm0.08+lt8+mute0.04+mixed")[0]
    assert target == Setting("symmetric", 0.1, 0.08, 8.0, 0.04, media="mixed", content="digits")
    assert parse_settings(target.name) == [target]
    assert target.generator_args() == {"label_noise": 0.1, "noise_type": "symmetric", "mismatch": 0.08,
                                       "imbalance": 8.0, "muted": 0.04, "media": "mixed", "content": "digits"}
    assert "content" not in Setting("symmetric", 0.1, 0.08).generator_args()  # procedural data keeps its cache
    for bad, word in (("real+", "cannot parse"), ("sym0.1+real", "cannot parse"), ("real+cls11", "at most 10"),
                      ("real+dur10-20+evt1-1", "evt")):
        with pytest.raises(UserError, match=word):
            parse_settings(bad)


def test_missing_recordings_name_the_folder(tmp_path, monkeypatch):
    missing = tmp_path / "no-fsdd"
    with pytest.raises(UserError, match=str(missing)):
        generate_dataset(tmp_path / "out", clips=2, content="digits", real_data=missing)
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv(digits.FSDD_ENV, str(missing))
    with pytest.raises(UserError, match=str(missing)):
        check_generator([Setting(content="digits")])
    check_generator([Setting()])  # procedural settings never look for it
    with pytest.raises(UserError, match="only for content 'digits'"):
        generate_dataset(tmp_path / "out", clips=2, real_data=missing)
    with pytest.raises(UserError, match="event"):
        generate_dataset(tmp_path / "out", clips=2, content="digits", clip_seconds=(5, 6), event_seconds=(1, 1))


@needs_fsdd
def test_clean_clips_agree_with_image_and_recording(real_set):
    root, _ = real_set
    rows = _rows(root)
    assert list(pd.read_csv(root / "truth.csv").columns) == [*TRUTH_COLUMNS, "is_muted", *DIGIT_COLUMNS]
    assert list(pd.read_csv(root / "test" / "truth.csv").columns) == [*TRUTH_COLUMNS, *DIGIT_COLUMNS]
    _, image_digits = digits.load_images()
    assert set(rows["true_label"]) <= set(DIGIT_CLASSES)
    assert (rows["true_label"] == [DIGIT_CLASSES[image_digits[i]] for i in rows["image"]]).all()
    clean = rows[(rows["is_mismatched"] == 0) & (rows["is_muted"].fillna(0) == 0)]
    assert len(clean) >= 15 and (clean["audio_kind"] == "speech").all()
    assert (clean["recording"].map(_digit_of_recording) == clean["true_label"]).all()
    assert (clean["audio_label"] == clean["true_label"]).all()
    assert (clean["speaker"] == clean["recording"].str.split("_").str[1]).all()


@needs_fsdd
def test_truth_marks_noise_and_mismatch_exactly(real_set):
    root, summary = real_set
    train = pd.read_csv(root / "truth.csv")
    assert (train["label_is_noisy"] == (train["given_label"] != train["true_label"]).astype(int)).all()
    assert (train["is_mismatched"] == (train["audio_label"] != train["true_label"]).astype(int)).all()
    assert summary["noisy"] == train["label_is_noisy"].sum() > 0
    mismatched = train[train["is_mismatched"] == 1]
    assert len(mismatched) == summary["mismatched"] == round(ARGS["mismatch"] * ARGS["clips"])
    nonspeech = mismatched[mismatched["audio_kind"] == "nonspeech"]
    assert len(nonspeech) == round(NONSPEECH_SHARE * len(mismatched)) == 1
    assert nonspeech["audio_label"].isin(CLASSES).all() and nonspeech["recording"].isna().all()
    speech = mismatched[mismatched["audio_kind"] == "speech"]
    assert (speech["recording"].map(_digit_of_recording) == speech["audio_label"]).all()
    muted = train[train["is_muted"] == 1]
    assert len(muted) == summary["muted"] == 1
    assert (muted["audio_kind"] == "silent").all() and muted["event_start_s"].isna().all()
    assert (train["audio_kind"] == "silent").sum() == 1
    test = pd.read_csv(root / "test" / "truth.csv")
    assert (test["label_is_noisy"] == 0).all() and (test["is_mismatched"] == 0).all()
    assert (test["audio_kind"] == "speech").all()


@needs_fsdd
def test_test_split_is_held_out(real_set):
    rows = _rows(real_set[0])
    heard = rows.dropna(subset=["recording"])
    takes = heard["recording"].str.rsplit("_", n=1).str[1].str.removesuffix(".wav").astype(int)
    assert (takes[heard["split"] == "test"] < HELD_OUT_TAKES).all()
    assert (takes[heard["split"] == "train"] >= HELD_OUT_TAKES).all()
    every = digits.HELD_OUT_IMAGE_EVERY
    assert (rows.loc[rows["split"] == "test", "image"] % every == every - 1).all()
    assert (rows.loc[rows["split"] == "train", "image"] % every != every - 1).all()


@needs_fsdd
def test_clip_decodes_with_the_spoken_digit_at_the_event(real_set):
    root, _ = real_set
    rows = _rows(root)
    for row in rows[rows["audio_kind"] != "silent"].head(4).itertuples():
        path = root / row.clip if row.split == "train" else root / "test" / row.clip
        clip = decode_clip(path, num_frames=8, size=64, max_audio_seconds=10.0)
        assert clip.has_audio and clip.frames.shape == (8, 64, 64, 3)
        assert np.abs(clip.frames[0].astype(int) - clip.frames[-1].astype(int)).max() > 30  # the digit moves
        t = np.arange(len(clip.audio)) / 16_000
        inside = (t > row.event_start_s + MARGIN) & (t < row.event_end_s - MARGIN)
        outside = (t < row.event_start_s - MARGIN) | (t > row.event_end_s + MARGIN)
        level = {k: 10 * math.log10(float(np.mean(clip.audio[m].astype(np.float64) ** 2)) + 1e-20)
                 for k, m in (("in", inside), ("out", outside))}
        assert level["in"] > level["out"] + 10, (row.clip, level)


@needs_fsdd
def test_plan_on_many_clips(monkeypatch, tmp_path):
    """The bench's real part through generate_dataset: rates, the non-speech quarter, recordings not repeated
    within a class before its pool is used up, asymmetric noise to the confusable digit, seeds."""
    setting = parse_settings("real+asym0.3+mm0.08+lt4+mute0.04")[0]
    args = {"clips": 400, "test_clips": 100, **setting.generator_args()}
    rows, summary = _tables_only(monkeypatch, tmp_path / "a", seed=1, **args)
    train = rows[rows["split"] == "train"]
    assert summary["mismatched"] == round(0.08 * 400) and summary["muted"] == round(0.04 * 400)
    assert (train["audio_kind"] == "nonspeech").sum() == round(NONSPEECH_SHARE * summary["mismatched"])
    noisy = train[train["label_is_noisy"] == 1]
    assert abs(len(noisy) / 400 - 0.3) < 0.07
    assert (noisy["given_label"] == noisy["true_label"].map(DIGIT_CONFUSABLE)).all()
    sizes = train["true_label"].value_counts()
    assert sizes.max() / sizes.min() == pytest.approx(4, rel=0.3)
    clean = train[train["is_mismatched"] == 0].dropna(subset=["recording"])
    assert not clean["recording"].duplicated().any() and not train["image"].duplicated().any()
    again, _ = _tables_only(monkeypatch, tmp_path / "b", seed=1, **args)
    other, _ = _tables_only(monkeypatch, tmp_path / "c", seed=2, **args)
    assert again.equals(rows) and not other["recording"].equals(rows["recording"])


@needs_fsdd
def test_sample_command_writes_digits(tmp_path):
    out = tmp_path / "s"
    assert main(["sample", "--out", str(out), "--content", "digits", "--clips", "3", "--classes", "3",
                 "--seed", "2", "--workers", "1", "--fsdd", str(digits.fsdd_root())]) == 0
    truth = pd.read_csv(out / "truth.csv")
    assert set(truth["true_label"]) == set(DIGIT_CLASSES[:3]) and (truth["audio_kind"] == "speech").all()
    first = hashlib.sha256((out / truth["clip"][0]).read_bytes()).hexdigest()
    generate_dataset(tmp_path / "t", clips=3, num_classes=3, seed=2, workers=2, content="digits")
    assert hashlib.sha256((tmp_path / "t" / truth["clip"][0]).read_bytes()).hexdigest() == first
