"""Unit tests of auditor/explore.py: the pure logic behind the Explore, Review and Model pages."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from auditor import explore
from auditor.run_folder import read_progress
from tests.fakerun import HOSTILE_LABELS, make_fake_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_fake_run(tmp_path_factory.mktemp("fake") / "run", n_clips=60, n_classes=5, seed=3,
                         hostile_labels=True, n_problems=2)


@pytest.fixture(scope="module")
def table(run):
    return explore.points_table(explore.read_flags(run / "flags.csv"), explore.read_umap(run / "embeddings.parquet"))


def test_read_flags_keeps_labels_as_text_and_marks_problem_rows(tmp_path):
    path = tmp_path / "flags.csv"
    pd.DataFrame({"clip": ["a.mp4", "b.mp4", "c.mp4"], "given_label": ["NA", "null", "x"],
                  "suggested_label": ["NA", "x", ""], "suggested_confidence": [0.9, 0.8, ""],
                  "label_noise_score": [0.1, 0.7, ""], "mismatch_score": [0.6, 0.2, ""],
                  "audio_pred": ["NA", "x", ""], "visual_pred": ["NA", "x", ""],
                  "problem": ["", "", "corrupt"]}).to_csv(path, index=False)
    flags = explore.read_flags(path)
    assert flags["given_label"].tolist() == ["NA", "null", "x"]
    assert flags["flag_kind"].tolist() == ["mismatch", "wrong_label", "unscored"]
    assert flags["max_score"].iloc[:2].tolist() == [0.6, 0.7]
    assert np.isnan(flags["max_score"].iloc[2])


def test_points_table_joins_umap_and_review_status(run, table):
    flags = explore.read_flags(run / "flags.csv")
    assert len(table) == (flags["problem"] == "").sum()  # problem rows have no embedding
    latest = pd.DataFrame({"clip": [table["clip"].iloc[0]], "decision": ["exclude"]})
    status = explore.review_status(table["clip"], latest)
    assert status.iloc[0] == "excluded" and (status.iloc[1:] == explore.NOT_REVIEWED).all()


def test_plan_traces_legend_mode_partitions_rows_in_the_given_order():
    cats = pd.Series(["b", "a", "c", "a", "b"])
    plan = explore.plan_traces(cats, order=["c", "b"], colours={"c": "#000000"})
    assert plan.mode == "legend" and plan.names == ["c", "b", "a"]
    assert [r.tolist() for r in plan.rows] == [[2], [0, 4], [1, 3]]
    assert plan.colours[0] == "#000000"
    assert sorted(np.concatenate(plan.rows).tolist()) == list(range(5))


def test_plan_traces_index_mode_above_the_legend_limit():
    cats = pd.Series([f"c{i % 30}" for i in range(90)])
    plan = explore.plan_traces(cats, max_legend=20)
    assert plan.mode == "index" and len(plan.rows) == 1 and len(plan.names) == 30
    assert [plan.names[c] for c in plan.codes] == cats.tolist()


def test_selected_rows_maps_trace_points_back_to_rows():
    plan = explore.plan_traces(pd.Series(["x", "y", "x", "y", "x"]))  # x: rows 0,2,4; y: rows 1,3
    points = [{"curve_number": 0, "point_index": 2}, {"curve_number": 1, "point_index": 0},
              {"curve_number": 1, "point_index": 0}, {"curve_number": 7, "point_index": 0},
              {"curve_number": 0, "point_index": 99}]
    assert explore.selected_rows(plan, points).tolist() == [1, 4]
    assert explore.selected_rows(plan, []).tolist() == []


def test_hover_text_is_escaped(table):
    custom = explore.hover_customdata(table)
    assert custom.shape == (len(table), 4)
    joined = " ".join(custom[:, 1])
    assert "&lt;b&gt;x&lt;/b&gt;" in joined and "<b>" not in joined and "<script>" not in joined
    assert explore.escape_hover("a & <i>b</i>") == "a &amp; &lt;i&gt;b&lt;/i&gt;"


def test_md_literal_survives_backticks_newlines_and_html():
    assert explore.md_literal("<b>x</b>") == "`<b>x</b>`"
    assert explore.md_literal("a`b") == "``a`b``"
    assert explore.md_literal("`x") == "`` `x ``"
    assert explore.md_literal("a\nb") == "`a b`"
    assert explore.md_literal("") == "` `"


def test_review_queue_filters_and_orders(table):
    t = table.copy()
    t.loc[t.index[:3], "review_status"] = ["accepted suggestion", "skipped", explore.NOT_REVIEWED]
    queue = explore.review_queue(t, kinds=["wrong_label", "both"], threshold=0.5)
    assert queue["flag_kind"].isin(["wrong_label", "both"]).all() and (queue["max_score"] >= 0.5).all()
    assert "accepted suggestion" not in set(queue["review_status"])
    skipped = (queue["review_status"] == "skipped").to_numpy()
    assert not skipped.any() or skipped[-skipped.sum():].all()  # skipped clips come last
    fresh = queue[~skipped]["max_score"].to_numpy()
    assert (np.diff(fresh) <= 0).all()
    all_kinds = explore.review_queue(t, unreviewed_only=False, threshold=0.0)
    assert len(all_kinds) == len(t)
    chosen = t["clip"].iloc[[5, 1, 0]].tolist()
    explicit = explore.review_queue(t, kinds=["clean"], classes=["nope"], threshold=1.0, clips=chosen,
                                    unreviewed_only=False)
    assert set(explicit["clip"]) == set(chosen)


def test_review_queue_puts_the_hostile_top_clip_first(table):
    queue = explore.review_queue(table, kinds=["wrong_label", "mismatch", "both"], threshold=0.5)
    assert queue.iloc[0]["given_label"] == HOSTILE_LABELS[0]
    assert queue.iloc[0]["suggested_label"] == HOSTILE_LABELS[1]


def test_nearest_neighbours_excludes_itself_and_sorts():
    clips = ["a", "b", "c", "d"]
    m = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    near = explore.nearest_neighbours(clips, m, "a", k=2)
    assert near["clip"].tolist() == ["b", "c"]
    assert near["similarity"].is_monotonic_decreasing
    assert explore.nearest_neighbours(clips, m, "zzz").empty
    assert len(explore.nearest_neighbours(clips, m, "a", k=10)) == 3


def test_nearest_neighbours_share_the_class_in_fake_embeddings(run):
    clips, matrix = explore.read_embedding_matrix(run / "embeddings.parquet")
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    flags = explore.read_flags(run / "flags.csv").set_index("clip")
    near = explore.nearest_neighbours(clips, matrix, clips[7], k=3)
    assert (flags.loc[near["clip"], "suggested_label"] == flags.loc[clips[7], "suggested_label"]).all()


def test_explain_names_both_modalities_and_the_suggestion():
    row = {"given_label": "bouncing", "suggested_label": "hammering", "suggested_confidence": 0.8,
           "label_noise_score": 0.9, "mismatch_score": 0.7, "audio_pred": "hammering", "visual_pred": "bouncing"}
    text = explore.explain(row)
    assert "Likely wrong label" in text["label"] and "`hammering`" in text["label"] and "80%" in text["label"]
    assert "audio says `hammering`, picture says `bouncing`" in text["mismatch"]
    calm = explore.explain(row | {"label_noise_score": 0.1, "mismatch_score": 0.1, "audio_pred": "bouncing"})
    assert "looks right" in calm["label"] and "both say" in calm["mismatch"]
    unscored = explore.explain({"given_label": "x", "label_noise_score": np.nan, "mismatch_score": np.nan,
                                "problem": "corrupt"})
    assert "Not scored" in unscored["label"] and unscored["mismatch"] == ""


def test_clip_path_stays_inside_the_data_set(tmp_path):
    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    (data / "clips" / "a.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    assert explore.clip_path(data, "clips/a.mp4") == (data / "clips" / "a.mp4").resolve()
    for bad in ("../secret.mp4", str(tmp_path / "secret.mp4"), "clips/missing.mp4"):
        with pytest.raises(ValueError):
            explore.clip_path(data, bad)
    os.symlink(tmp_path / "secret.mp4", data / "clips" / "link.mp4")
    with pytest.raises(ValueError, match="outside"):
        explore.clip_path(data, "clips/link.mp4")


def test_progress_view_of_a_finished_and_a_running_run(run):
    events = read_progress(run)
    done = explore.progress_view(events)
    assert done.fraction == 1.0 and done.caption == "all epochs done" and done.eta_s == 0.0
    assert set(done.losses["term"]) >= {"cls", "hyb", "inst", "cat", "total"}
    assert done.losses.groupby("term")["step"].apply(lambda s: s.is_monotonic_increasing).all()
    assert done.est_label_noise is not None and done.est_mismatch is not None
    # Cut after the second step of epoch index 2 (the first phase-2 epoch) of 4 epochs, 3 steps each.
    cut = next(i for i, e in enumerate(events) if e.get("event") == "step" and e["epoch"] == 2 and e["step"] == 2)
    partial = explore.progress_view(events[:cut + 1], now=events[cut]["time"] + 1.0)
    assert partial.fraction == pytest.approx((2 + 2 / 3) / 4)
    assert partial.caption == "phase 2 · epoch 3 of 4 · step 2/3"
    assert partial.eta_s == pytest.approx(9.0 - 1.0 - 3.0)  # last ETA 9 s, written 3 s before the cut, +1 s
    empty = explore.progress_view([])
    assert empty.fraction == 0.0 and empty.losses.empty and empty.eta_s is None


def test_format_seconds_and_run_names():
    assert explore.format_seconds(None) == "–"
    assert explore.format_seconds(42) == "42 s"
    assert explore.format_seconds(85) == "1 min 25 s"
    assert explore.format_seconds(3725) == "1 h 02 min"
    assert explore.run_name_problem("default") is None and explore.run_name_problem("exp-2.b_c") is None
    for bad in ("", "../x", "a/b", ".hidden", "x" * 65):
        assert explore.run_name_problem(bad)
