"""data/feature_file.py: a features file is read in both formats, matched to labels.csv, and every bad file is
refused with a message naming the file and the problem (the row, for bad values)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from auditor.data.feature_file import check_features, load_features
from auditor.errors import UserError
from tests.features_data import make_feature_set, write_features


@pytest.fixture(params=[".parquet", ".npz"])
def feature_set(tmp_path, request):
    return make_feature_set(tmp_path, n=12, classes=3, dims=(5, 3), suffix=request.param)


def _clips(fs) -> list[str]:
    return pd.read_csv(fs.data / "labels.csv")["clip"].tolist()


def _vectors(n: int, dims=(5, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, dims[0])), rng.normal(size=(n, dims[1]))


def test_both_formats_load_in_labels_order(feature_set):
    result, arrays = load_features(feature_set.data, feature_set.features)
    assert arrays.clips == _clips(feature_set) and arrays.visual.shape == (12, 5) and arrays.audio.shape == (12, 3)
    assert arrays.visual.dtype == np.float32 and arrays.has_audio.all() and arrays.windows is None
    assert result.clips["clip"].tolist() == arrays.clips and (result.clips["audio"] == "present").all()
    assert result.report.empty
    check = check_features(feature_set.data, feature_set.features)
    assert (check.clips, check.rows, check.visual_dim, check.audio_dim, check.no_audio) == (12, 12, 5, 3, 0)


def test_nan_audio_or_has_audio_false_means_no_sound(feature_set):
    clips = _clips(feature_set)
    visual, audio = _vectors(len(clips))
    audio[2] = np.nan
    has_audio = np.ones(len(clips), bool)
    has_audio[5] = False
    write_features(feature_set.features, clips, visual, audio, has_audio=has_audio)
    result, arrays = load_features(feature_set.data, feature_set.features)
    assert np.flatnonzero(~arrays.has_audio).tolist() == [2, 5]
    assert (arrays.audio[[2, 5]] == 0).all()
    assert result.report["problem"].tolist() == ["no_audio", "no_audio"]


def test_several_rows_of_a_clip_are_its_windows(feature_set):
    clips = _clips(feature_set)
    visual, audio = _vectors(len(clips) + 2)
    rows = clips + [clips[3], clips[3]]
    audio[-1] = np.nan  # the third window of clip 3 has no sound
    write_features(feature_set.features, rows, visual, audio)
    _, arrays = load_features(feature_set.data, feature_set.features)
    assert arrays.window_counts().tolist() == [1, 1, 1, 3] + [1] * 8
    items, owner, window = arrays.window_items(np.array([3]))
    assert owner.tolist() == [0, 0, 0] and window.tolist() == [0, 1, 2]
    assert items.has_audio.tolist() == [True, True, False] and arrays.has_audio[3]
    assert check_features(feature_set.data, feature_set.features).max_windows == 3


def test_clip_vectors_are_the_rows_or_the_means_of_a_clip_s_windows(feature_set):
    clips = _clips(feature_set)
    visual, audio = _vectors(len(clips) + 2)
    write_features(feature_set.features, clips, visual[:12], audio[:12])
    _, arrays = load_features(feature_set.data, feature_set.features)
    v, a = arrays.clip_vectors(np.arange(12))
    assert np.shares_memory(v, arrays.visual) and np.shares_memory(a, arrays.audio)  # in order: views, no copy
    np.testing.assert_array_equal(v, visual[:12].astype(np.float32))
    v, a = arrays.clip_vectors(np.array([5, 2]))
    np.testing.assert_array_equal(a, audio[[5, 2]].astype(np.float32))
    audio[-1] = np.nan  # clip 3 has three windows, the last without sound
    write_features(feature_set.features, clips + [clips[3], clips[3]], visual, audio)
    _, arrays = load_features(feature_set.data, feature_set.features)
    v, a = arrays.clip_vectors(np.array([3, 0]))
    np.testing.assert_allclose(v, np.stack([visual[[3, 12, 13]].mean(0), visual[0]]), rtol=1e-6)
    np.testing.assert_allclose(a, np.stack([audio[[3, 12]].mean(0), audio[0]]), rtol=1e-6)


def test_extra_clips_are_left_out_and_noted(feature_set):
    clips = _clips(feature_set)
    visual, audio = _vectors(len(clips) + 1)
    write_features(feature_set.features, clips + ["clips/elsewhere.mp4"], visual, audio)
    check = check_features(feature_set.data, feature_set.features)
    assert check.clips == 12 and "clips/elsewhere.mp4" in check.notes[0]


def _refused(fs, match: str) -> None:
    with pytest.raises(UserError, match=match) as err:
        check_features(fs.data, fs.features)
    assert str(fs.features) in str(err.value)


def test_missing_clips_are_named_with_the_count(feature_set):
    clips = _clips(feature_set)
    visual, audio = _vectors(4)
    write_features(feature_set.features, clips[:4], visual, audio)
    _refused(feature_set, r"no vectors for 8 of the 12 clips of labels.csv: clips/c0004.mp4, .* and 3 more")


@pytest.mark.parametrize(("vector", "row", "match"), [
    ("visual", 3, r"row 3 \(clip 'clips/c0003.mp4'\): the visual vector holds NaN or inf"),
    ("audio", 7, r"row 7 \(clip 'clips/c0007.mp4'\): the audio vector holds inf or is partly NaN"),
])
def test_nan_and_inf_are_refused_naming_the_row(feature_set, vector, row, match):
    clips = _clips(feature_set)
    visual, audio = _vectors(len(clips))
    {"visual": visual, "audio": audio}[vector][row, 1] = np.inf if vector == "visual" else np.nan
    write_features(feature_set.features, clips, visual, audio)
    _refused(feature_set, match)


def test_bad_files_are_refused(tmp_path):
    fs = make_feature_set(tmp_path, n=6, classes=2, dims=(4, 2))
    clips = _clips(fs)
    visual, audio = _vectors(6, (4, 2))
    pd.DataFrame({"clip": clips, "visual": list(visual)}).to_parquet(fs.features)
    _refused(fs, "missing 'audio'")
    pd.DataFrame({"clip": clips, "visual": list(visual), "audio": [["a", "b"]] * 6}).to_parquet(fs.features)
    _refused(fs, "column 'audio' must hold numbers")
    pd.DataFrame({"clip": clips, "visual": [v[:3] if i == 4 else v for i, v in enumerate(visual)],
                  "audio": list(audio)}).to_parquet(fs.features)
    _refused(fs, "row 4: the visual vector has 3 numbers, row 0's has 4")
    pd.DataFrame({"clip": clips, "visual": list(visual), "audio": list(audio), "has_audio": [1] * 6}
                 ).to_parquet(fs.features)
    _refused(fs, "'has_audio' must be true/false")
    fs.features.write_bytes(b"not parquet")
    _refused(fs, "cannot read it")
    fs.features = tmp_path / "features.csv"
    fs.features.write_text("clip\n")
    _refused(fs, "must be .parquet or .npz")
    fs.features = tmp_path / "nowhere.npz"
    _refused(fs, "no such features file")
    fs.features = tmp_path / "f.npz"
    np.savez(fs.features, clip=np.asarray(clips), visual=visual[:, 0], audio=audio)
    _refused(fs, "'visual' must be a 2-D array of numbers")
    np.savez(fs.features, clip=np.asarray(clips, dtype=object), visual=visual, audio=audio)
    _refused(fs, "holds Python objects")
