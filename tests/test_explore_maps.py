"""Unit tests of auditor/explore_maps.py: the points of the Explore maps, their traces and colours, hover text,
and a Plotly selection mapped back to rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from auditor import explore_maps
from auditor.review_queue import NOT_REVIEWED, read_flags, review_status
from tests.fakerun import make_fake_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_fake_run(tmp_path_factory.mktemp("fake") / "run", n_clips=60, n_classes=5, seed=3,
                         hostile_labels=True, n_problems=2)


@pytest.fixture(scope="module")
def table(run):
    return explore_maps.points_table(read_flags(run / "flags.csv"), explore_maps.read_umap(run / "embeddings.parquet"))


def test_points_table_joins_umap_and_review_status(run, table):
    flags = read_flags(run / "flags.csv")
    assert len(table) == (flags["problem"] == "").sum()  # problem rows have no embedding
    assert table.index.tolist() == list(range(len(table)))
    assert table["clip"].tolist() == [c for c in flags["clip"] if c in set(table["clip"])]  # flags' order
    assert (table["review_status"] == NOT_REVIEWED).all()
    latest = pd.DataFrame({"clip": [table["clip"].iloc[0]], "decision": ["exclude"]})
    status = review_status(table["clip"], latest)
    assert status.iloc[0] == "excluded" and (status.iloc[1:] == NOT_REVIEWED).all()


def test_plan_traces_legend_mode_partitions_rows_in_the_given_order():
    cats = pd.Series(["b", "a", "c", "a", "b"])
    plan = explore_maps.plan_traces(cats, order=["c", "b"], colours={"c": "#000000"})
    assert plan.mode == "legend" and plan.names == ["c", "b", "a"]
    assert [r.tolist() for r in plan.rows] == [[2], [0, 4], [1, 3]]
    assert plan.colours[0] == "#000000"
    assert sorted(np.concatenate(plan.rows).tolist()) == list(range(5))


def test_plan_traces_index_mode_above_the_legend_limit():
    cats = pd.Series([f"c{i % 30}" for i in range(90)])
    plan = explore_maps.plan_traces(cats, max_legend=20)
    assert plan.mode == "index" and len(plan.rows) == 1 and len(plan.names) == 30
    assert [plan.names[c] for c in plan.codes] == cats.tolist()


def test_colour_plan_keeps_the_kind_and_status_order():
    points = pd.DataFrame({"kind_text": ["wrong label?", "looks fine", "sound mismatch?", "looks fine"],
                           "review_status": ["skipped", NOT_REVIEWED, "excluded", "skipped"]})
    kinds = explore_maps.colour_plan(points, "Flag kind")
    assert kinds.names == ["looks fine", "sound mismatch?", "wrong label?"]  # clean first: drawn underneath
    assert kinds.colours == [explore_maps.KIND_COLOURS[n] for n in kinds.names]
    status = explore_maps.colour_plan(points, "Review status")
    assert status.names == [NOT_REVIEWED, "excluded", "skipped"]
    assert [r.tolist() for r in status.rows] == [[1], [2], [0, 3]]


def test_selected_rows_maps_trace_points_back_to_rows():
    plan = explore_maps.plan_traces(pd.Series(["x", "y", "x", "y", "x"]))  # x: rows 0,2,4; y: rows 1,3
    points = [{"curve_number": 0, "point_index": 2}, {"curve_number": 1, "point_index": 0},
              {"curve_number": 1, "point_index": 0}, {"curve_number": 7, "point_index": 0},
              {"curve_number": 0, "point_index": 99}]
    assert explore_maps.selected_rows(plan, points).tolist() == [1, 4]
    assert explore_maps.selected_rows(plan, []).tolist() == []


def test_hover_text_is_escaped(table):
    custom = explore_maps.hover_customdata(table)
    assert custom.shape == (len(table), 4)
    joined = " ".join(custom[:, 1])
    assert "&lt;b&gt;x&lt;/b&gt;" in joined and "<b>" not in joined and "<script>" not in joined


def test_thumbnail_clips_are_the_selection_then_the_most_suspicious():
    points = pd.DataFrame({"clip": list("abcde"), "label_noise_score": [0.1, 0.9, None, 0.2, 0.3],
                           "mismatch_score": [0.8, 0.1, None, 0.2, 0.1]})
    assert explore_maps.thumbnail_clips(points, ["d", "zz", "d"], 3) == ["d", "b", "a"]
    assert explore_maps.thumbnail_clips(points, None, 10) == ["b", "a", "e", "d", "c"]  # unscored last
    assert explore_maps.thumbnail_clips(points, list("edcba"), 2) == ["e", "d"]
