"""auditor.class_view: per-class rates and the given x suggested confusion, worked out by hand."""

from __future__ import annotations

import pandas as pd

from auditor import class_view
from auditor.review_queue import annotate_flags


def _points() -> pd.DataFrame:
    flags = pd.DataFrame({
        "clip": list("abcdef"),
        "given_label": ["dog", "dog", "dog", "cat", "cat", "cat"],
        "suggested_label": ["dog", "cat", "cat", "cat", "dog", ""],
        "label_noise_score": [0.1, 0.9, 0.8, 0.2, 0.7, float("nan")],
        "mismatch_score": [0.6, 0.1, 0.9, 0.1, 0.1, float("nan")],
        "label_noise_rank": [0.2, 1.0, 0.8, 0.4, 0.6, float("nan")],
        "mismatch_rank": [0.8, 0.4, 1.0, 0.4, 0.4, float("nan")],
    })
    return annotate_flags(flags)


def test_class_table_shares_of_flagged_clips_and_the_report():
    report = pd.DataFrame({"class": ["cat", "dog"], "clips": [2, 3], "estimated_noise_rate": [0.5, 0.66],
                           "top_suggested_replacement": ["dog", "cat"], "estimated_mismatch_rate": [0.0, 0.3]})
    table = class_view.class_table(_points(), report)
    assert table["class"].tolist() == ["cat", "dog"] and table["clips"].tolist() == [2, 3]  # f is unscored
    assert table["flagged_wrong_label"].round(3).tolist() == [0.5, 0.667]  # e; b and c (c is "both")
    assert table["flagged_mismatch"].round(3).tolist() == [0.0, 0.667]  # a and c
    assert table["top_suggested_replacement"].tolist() == ["dog", "cat"]
    bare = class_view.class_table(_points(), None)
    assert bare["estimated_noise_rate"].isna().all() and list(bare.columns) == list(class_view.CLASS_COLUMNS)


def test_confusion_cells_count_every_scored_clip_once():
    points = _points()
    cells = class_view.confusion_cells(points)
    assert cells.values.tolist() == [["cat", "cat", 1], ["cat", "dog", 1], ["dog", "cat", 2], ["dog", "dog", 1]]
    assert cells["clips"].sum() == 5
    assert class_view.cell_clips(points, "dog", "cat") == ["b", "c"]
