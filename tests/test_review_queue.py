"""Unit tests of auditor/review_queue.py: flags.csv as the pages read it, review status, the review queue, nearest
neighbours, plain-language explanations and clip paths."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from auditor import review_queue
from auditor.flags import FLAG_KINDS
from auditor.reviews import DECISIONS, FINAL_DECISIONS
from tests.fakerun import HOSTILE_LABELS, make_fake_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_fake_run(tmp_path_factory.mktemp("fake") / "run", n_clips=60, n_classes=5, seed=3,
                         hostile_labels=True, n_problems=2)


def test_vocabularies_cover_their_sources():
    assert set(review_queue.STATUS_TEXT) == set(DECISIONS)
    assert review_queue.DECIDED_STATUSES == {review_queue.STATUS_TEXT[d] for d in FINAL_DECISIONS}
    assert set(review_queue.KIND_TEXT) == {*FLAG_KINDS, review_queue.UNSCORED}


def test_read_flags_keeps_labels_as_text_and_marks_problem_rows(tmp_path):
    path = tmp_path / "flags.csv"
    pd.DataFrame({"clip": ["a.mp4", "b.mp4", "c.mp4"], "given_label": ["NA", "null", "x"],
                  "suggested_label": ["NA", "x", ""], "suggested_confidence": [0.9, 0.8, ""],
                  "label_noise_score": [0.1, 0.7, ""], "mismatch_score": [0.6, 0.2, ""],
                  "audio_pred": ["NA", "x", ""], "visual_pred": ["NA", "x", ""],
                  "problem": ["", "", "corrupt"]}).to_csv(path, index=False)
    flags = review_queue.read_flags(path)
    assert flags["given_label"].tolist() == ["NA", "null", "x"]
    assert flags["flag_kind"].tolist() == ["mismatch", "wrong_label", "unscored"]
    assert flags["kind_text"].tolist() == ["sound mismatch?", "wrong label?", "not scored"]
    assert flags["max_score"].iloc[:2].tolist() == [0.6, 0.7]
    assert np.isnan(flags["max_score"].iloc[2])
    # an older flags.csv without rank columns: ranks derived from the scores over the scored rows
    assert flags["label_noise_rank"].iloc[:2].tolist() == [0.5, 1.0] and np.isnan(flags["label_noise_rank"].iloc[2])
    assert flags["max_rank"].iloc[:2].tolist() == [1.0, 1.0]


def test_read_flags_reads_a_value_that_is_not_a_number_as_nan(tmp_path):
    path = tmp_path / "flags.csv"
    pd.DataFrame({"clip": ["a.mp4", "b.mp4"], "given_label": ["x", "y"], "suggested_label": ["x", "x"],
                  "suggested_confidence": [0.9, 0.8], "label_noise_score": ["0.75", "n/a"],
                  "mismatch_score": [0.1, 0.9], "audio_pred": ["x", "x"], "visual_pred": ["x", "x"],
                  "problem": ["", ""], "label_noise_rank": [1.0, 0.5],
                  "mismatch_rank": [0.5, 1.0]}).to_csv(path, index=False)
    flags = review_queue.read_flags(path)
    assert flags["label_noise_score"].iloc[0] == 0.75 and np.isnan(flags["label_noise_score"].iloc[1])
    assert flags["mismatch_score"].tolist() == [0.1, 0.9]
    assert flags["flag_kind"].tolist() == ["wrong_label", "mismatch"]


def test_review_status_is_the_latest_decision_as_text():
    clips = pd.Series(["a", "b", "c"])
    latest = pd.DataFrame({"clip": ["c", "a"], "decision": ["exclude", "skip"]})
    assert review_queue.review_status(clips, latest).tolist() == ["skipped", review_queue.NOT_REVIEWED, "excluded"]
    assert (review_queue.review_status(clips, None) == review_queue.NOT_REVIEWED).all()


# -------------------------------------------------------------------------------------------- review queue
def _queue_table() -> pd.DataFrame:
    """Seven clips whose queue order can be worked out by hand (see the test below)."""
    return pd.DataFrame({
        "clip": ["a", "b", "c", "d", "e", "f", "g"],
        "flag_kind": ["wrong_label", "both", "wrong_label", "mismatch", "clean", "wrong_label", "unscored"],
        "given_label": ["x", "y", "x", "y", "x", "y", "x"],
        "max_score": [0.9, 0.95, 0.6, 0.7, 0.1, 0.9, np.nan],
        "review_status": ["not reviewed", "skipped", "accepted suggestion", "not reviewed", "not reviewed",
                          "not reviewed", "not reviewed"],
    })


def _order(**kwargs) -> list[str]:
    return review_queue.review_queue(_queue_table(), **kwargs)["clip"].tolist()


def test_review_queue_filters_and_orders_as_worked_out_by_hand():
    # Flagged wrong labels at 0.5 or more, not yet decided: a and f tie at 0.9 (clip order), c is decided,
    # b is skipped (last, though its score is the highest).
    assert _order(kinds=["wrong_label", "both"], threshold=0.5) == ["a", "f", "b"]
    # Everything at score >= 0, decided or not: score descending, skipped b last; g has no score.
    assert _order(threshold=0.0, unreviewed_only=False) == ["a", "f", "d", "c", "e", "b"]
    assert _order(threshold=-1.0, unreviewed_only=False) == ["a", "f", "d", "c", "e", "g", "b"]
    assert _order(classes=["y"], threshold=0.0) == ["f", "d", "b"]
    assert _order(kinds=["mismatch"], threshold=0.8) == []
    # An explicit selection ignores kinds, classes and threshold, but not "unreviewed only" (c is decided).
    assert _order(kinds=["clean"], classes=["nope"], threshold=1.0, clips=["e", "c", "b"]) == ["e", "b"]
    assert _order(clips=["e", "c", "b"], unreviewed_only=False) == ["c", "e", "b"]


def test_triage_sorts_and_searches_the_queue():
    table = _queue_table().assign(
        suggested_label=["z", "x", "x", "q", "x", "zz", ""], suggested_confidence=[0.5, 0.9, 0.1, 0.7, 0.8, 0.6, np.nan],
        label_noise_score=[0.9, 0.95, 0.6, 0.1, 0.1, 0.9, np.nan], mismatch_score=[0.1, 0.9, 0.1, 0.7, 0.1, 0.2, np.nan])

    def order(**kwargs) -> list[str]:
        return review_queue.review_queue(table, threshold=-1.0, unreviewed_only=False, **kwargs)["clip"].tolist()

    assert order(sort="mismatch") == ["d", "f", "a", "c", "e", "g", "b"]  # skipped b still last
    assert order(sort="confidence") == ["e", "d", "f", "a", "c", "g", "b"]  # no confidence (g): last
    assert order(sort="class") == ["a", "c", "e", "g", "f", "d", "b"]
    assert order(sort="clip") == ["a", "c", "d", "e", "f", "g", "b"]
    assert order(search="Z") == ["a", "f"]  # suggested z / zz, case-insensitive
    with pytest.raises(ValueError, match="sort 'size' is not one of suspicious"):
        order(sort="size")


def test_saturated_scores_are_ordered_by_their_ranks():
    table = _queue_table().assign(max_score=1.0, max_rank=[0.2, 0.9, 0.5, 0.95, 0.1, 0.7, np.nan],
                                  review_status="not reviewed")
    assert review_queue.review_queue(table, threshold=0.5)["clip"].tolist() == ["d", "b", "f", "c", "a", "e", "g"]


def test_review_queue_puts_the_hostile_top_clip_first(run):
    table = review_queue.read_flags(run / "flags.csv")
    table["review_status"] = review_queue.NOT_REVIEWED
    queue = review_queue.review_queue(table, kinds=["wrong_label", "mismatch", "both"], threshold=0.5)
    assert queue.iloc[0]["given_label"] == HOSTILE_LABELS[0]
    assert queue.iloc[0]["suggested_label"] == HOSTILE_LABELS[1]


# ---------------------------------------------------------------------------------------------- neighbours
# Unit vectors in a plane at these angles (degrees): the cosine similarity of two clips is the cosine of the
# angle between them, so the neighbours of any clip and their order follow from the angles alone. "copy" is
# "p0" again under another name (similarity 1, like the clip itself).
ANGLES = {"p0": 0, "p80": 80, "p10": 10, "copy": 0, "p200": 200, "p35": 35, "p120": 120}


def _circle(dims: int = 4) -> tuple[list[str], np.ndarray]:
    clips = list(ANGLES)
    rad = np.deg2rad([ANGLES[c] for c in clips])
    matrix = np.zeros((len(clips), dims), np.float32)
    matrix[:, 1], matrix[:, 3] = np.cos(rad), np.sin(rad)  # the plane of axes 1 and 3
    return clips, matrix


def test_nearest_neighbours_follow_the_angles_and_leave_the_clip_out():
    clips, matrix = _circle()
    near = review_queue.nearest_neighbours(clips, matrix, "p0", k=4)
    assert near["clip"].tolist() == ["copy", "p10", "p35", "p80"]  # "p0" itself is not among them
    assert near["similarity"].tolist() == pytest.approx(np.round(np.cos(np.deg2rad([0, 10, 35, 80])), 3))
    # Around p120: p80 (40°), p200 (80°), p35 (85°), p10 (110°), then p0 and copy (120°).
    assert review_queue.nearest_neighbours(clips, matrix, "p120", k=4)["clip"].tolist() == \
        ["p80", "p200", "p35", "p10"]
    everyone = review_queue.nearest_neighbours(clips, matrix, "p200", k=100)
    assert len(everyone) == len(clips) - 1 and "p200" not in set(everyone["clip"])
    order = everyone["clip"].tolist()  # p120 (80°), p80 (120°), p0 and copy (160°), p35 (165°), p10 (170°)
    assert order[:2] == ["p120", "p80"] and set(order[2:4]) == {"p0", "copy"} and order[4:] == ["p35", "p10"]


def test_nearest_neighbours_of_an_unknown_or_lonely_clip_are_empty():
    clips, matrix = _circle()
    assert review_queue.nearest_neighbours(clips, matrix, "zzz").empty
    assert review_queue.nearest_neighbours(clips[:1], matrix[:1], "p0").empty
    assert review_queue.nearest_neighbours(clips, matrix, "p0", k=0).empty


def test_read_embedding_matrix_keeps_the_clip_order_and_normalises(tmp_path):
    clips, matrix = _circle()
    scales = np.arange(1, len(clips) + 1, dtype=np.float32)[:, None]  # lengths 1..7
    pd.DataFrame({"clip": clips, "fused": list(matrix * scales)}).to_parquet(tmp_path / "e.parquet")
    read_clips, read = review_queue.read_embedding_matrix(tmp_path / "e.parquet")
    assert read_clips == clips
    np.testing.assert_allclose(read, matrix, atol=1e-6)


# ------------------------------------------------------------------------------------------- explanations
def test_explain_names_both_modalities_and_the_suggestion():
    row = {"given_label": "bouncing", "suggested_label": "hammering", "suggested_confidence": 0.8,
           "label_noise_score": 0.9, "mismatch_score": 0.7, "audio_pred": "hammering", "visual_pred": "bouncing"}
    text = review_queue.explain(row)
    assert "Likely wrong label" in text["label"] and "`hammering`" in text["label"] and "80%" in text["label"]
    assert "suggests `hammering`; the picture alone suggests `bouncing`" in text["mismatch"]
    calm = review_queue.explain(row | {"label_noise_score": 0.1, "mismatch_score": 0.1, "audio_pred": "bouncing"})
    assert "probably right" in calm["label"] and "both suggest `bouncing`" in calm["mismatch"]
    agreed = review_queue.explain(row | {"label_noise_score": 0.1, "suggested_label": "bouncing"})
    assert "looks right" in agreed["label"]


def test_a_flagged_sound_whose_modalities_agree_is_explained_without_a_contradiction():
    """Issue 13 bug 5: "Sound may not belong to the picture: audio says spinning, picture says spinning"."""
    row = {"given_label": "spinning", "suggested_label": "spinning", "suggested_confidence": 0.9,
           "label_noise_score": 0.1, "mismatch_score": 0.92, "audio_pred": "spinning", "visual_pred": "spinning"}
    text = review_queue.explain(row)["mismatch"]
    assert "far from the sounds of clips whose picture looks like this one" in text
    assert "the class fits, this pairing does not" in text
    assert "says `spinning`, picture says `spinning`" not in text
    unscored = review_queue.explain({"given_label": "x", "label_noise_score": np.nan, "mismatch_score": np.nan,
                                     "problem": "corrupt"})
    assert "Not scored" in unscored["label"] and unscored["mismatch"] == ""


def test_clip_path_stays_inside_the_data_set(tmp_path):
    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    (data / "clips" / "a.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    assert review_queue.clip_path(data, "clips/a.mp4") == (data / "clips" / "a.mp4").resolve()
    for bad in ("../secret.mp4", str(tmp_path / "secret.mp4"), "clips/missing.mp4"):
        with pytest.raises(ValueError):
            review_queue.clip_path(data, bad)
    os.symlink(tmp_path / "secret.mp4", data / "clips" / "link.mp4")
    with pytest.raises(ValueError, match="outside"):
        review_queue.clip_path(data, "clips/link.mp4")


def test_batch_actions_apply_to_scored_clips_and_accept_only_real_suggestions():
    table = _queue_table().assign(suggested_label=["y", "y", "x", "", "x", "x", ""])
    assert review_queue.batch_rows(table, "accept")["clip"].tolist() == ["a", "f"]  # b, c, e: already so
    assert review_queue.batch_rows(table, "exclude")["clip"].tolist() == list("abcdef")  # g is unscored
    items = review_queue.batch_decisions(review_queue.batch_rows(table, "accept"), "accept", curator="ann",
                                         run_id="r1", note="bulk")
    assert [(i["clip"], i["decision"], i["suggested_label"], i["note"]) for i in items] == [
        ("a", "accept", "y", "bulk"), ("f", "accept", "x", "bulk")]
    with pytest.raises(ValueError, match="batch decision 'skip'"):
        review_queue.batch_rows(table, "skip")
