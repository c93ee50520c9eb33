"""The Review page's reading of windows.csv (auditor.clip_windows): the per-class reference, which windows sound
unlike matching clips, the words, and windows.csv files written before the level columns existed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from auditor import clip_windows
from auditor.run_folder import WINDOWS_FILE


def _flags(clips: list[str], labels: list[str], mismatch: list[float], problems: list[str] | None = None):
    return pd.DataFrame({"clip": clips, "given_label": labels, "mismatch_score": mismatch,
                         "problem": problems or [""] * len(clips)})


def _windows(rows: list[tuple]) -> pd.DataFrame:
    """rows: (clip, window, start, end, loss, audible, best)."""
    table = pd.DataFrame(rows, columns=["clip", "window", "start_s", "end_s", "infonce_loss", "audible",
                                        "best_aligned"])
    return table.assign(audio="present", cosine=0.5, level_dbfs=-20.0)


def test_the_reference_is_per_class_where_a_class_has_enough_unflagged_clips():
    big = [f"b{i}" for i in range(clip_windows.POOL_CLIPS)]
    small = [f"s{i}" for i in range(3)]
    clips = big + small + ["flagged", "muted"]
    labels = ["big"] * len(big) + ["small"] * 3 + ["big", "big"]
    flags = _flags(clips, labels, [0.1] * (len(clips) - 2) + [0.9, 0.0],
                   [""] * (len(clips) - 1) + ["silent_audio"])
    losses = {c: float(i) for i, c in enumerate(clips)}
    losses["flagged"] = losses["muted"] = 1000.0  # flagged and silent clips are not the reference
    rows = [(c, 0, 0.0, 10.0, losses[c], True, True) for c in clips]
    rows += [(c, 1, 10.0, 20.0, 5000.0, True, False) for c in big]  # a window that is not judged: not used
    rows += [("b0", 2, 20.0, 30.0, 9000.0, False, False)]  # not audible: not used
    ref = clip_windows.reference_losses(_windows(rows), flags)
    assert set(ref) == {clip_windows.POOLED, "big"}  # "small" has too few clips of its own
    assert ref["big"] == pytest.approx(np.quantile(np.arange(len(big)), clip_windows.REFERENCE_QUANTILE))
    pooled = np.arange(len(big) + 3)
    assert ref[clip_windows.POOLED] == pytest.approx(np.quantile(pooled, clip_windows.REFERENCE_QUANTILE))
    value, words = clip_windows.class_reference(ref, "small")
    assert value == ref[clip_windows.POOLED] and "too few" in words
    value, words = clip_windows.class_reference(ref, "big")
    assert value == ref["big"] and words == "this class's clips not flagged for sound"


def test_windows_above_the_reference_are_named_and_quiet_ones_are_not_compared():
    windows = _windows([("c", 0, 0.0, 8.0, 2.0, True, True), ("c", 1, 8.0, 16.0, 9.0, True, False),
                        ("c", 2, 16.0, 24.0, 20.0, False, False), ("other", 0, 0.0, 5.0, 1.0, True, True)])
    rows = clip_windows.clip_windows(windows, "c", reference=5.0)
    assert rows["window"].tolist() == [0, 1, 2]
    assert rows["unlike"].tolist() == [False, True, False]  # window 2 is louder in loss but quiet: not compared
    text = clip_windows.describe(rows, "this class's clips")
    assert "judged on 0.0–8.0 s" in text
    assert "**8.0–16.0 s**" in text and "16.0–24.0 s." in text.split("Quiet")[1]
    calm = clip_windows.describe(clip_windows.clip_windows(windows, "c", reference=50.0), "x")
    assert "No audible window's sound is further" in calm
    assert clip_windows.has_windows(windows, "c") and not clip_windows.has_windows(windows, "other")
    assert not clip_windows.has_windows(None, "c")


def test_a_windows_file_without_the_level_columns_reads_as_all_present_sound_audible(tmp_path):
    (tmp_path / WINDOWS_FILE).write_text("clip,window,start_s,end_s,audio,infonce_loss,cosine,best_aligned\n"
                                         "NA,1,10,20,silent,3.0,0.1,0\n"
                                         "NA,0,0,10,present,1.0,0.9,1\n")
    table = clip_windows.read_windows(tmp_path)
    assert table["clip"].tolist() == ["NA", "NA"]  # a clip named "NA" stays text
    assert table["window"].tolist() == [0, 1] and table["audible"].tolist() == [True, False]
    assert table["level_dbfs"].isna().all()
    assert clip_windows.read_windows(tmp_path / "missing") is None


def test_a_file_that_is_not_a_windows_file_is_named_in_the_error(tmp_path):
    (tmp_path / WINDOWS_FILE).write_text("clip,score\na,1\n")
    with pytest.raises(ValueError, match=r"windows\.csv: not a windows file, missing column\(s\) window"):
        clip_windows.read_windows(tmp_path)
