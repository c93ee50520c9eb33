"""The Explore page's maps, computed without Streamlit: which clip is drawn where, in which colour, with which
hover text, and how a Plotly selection maps back to clips.

Notation: N scored clips. A run's embeddings.parquet gives 2-D UMAP coordinates ``umap_<modality>_<x|y>`` for
each of MODALITIES; :func:`points_table` joins them to the flags and review status (:mod:`auditor.review_queue`).
Its row positions 0..N-1 are what a :class:`TracePlan` and a selection refer to. User text in hover labels and
legends goes through :func:`auditor.text.escape_hover`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.review_queue import KIND_TEXT, NOT_REVIEWED, STATUS_TEXT, UNSCORED, review_status
from auditor.text import escape_hover

MODALITIES = ("audio", "visual", "fused")
# Colour options of the maps -> the column of points_table() they colour by.
COLOUR_BY = {"Flag kind": "kind_text", "Given label": "given_label", "Suggested label": "suggested_label",
             "Review status": "review_status"}
# Flag kinds in legend order (clean first so that flagged points are drawn on top) and their colours.
KIND_COLOURS = {KIND_TEXT["clean"]: "#b8c2cc", KIND_TEXT[UNSCORED]: "#6c757d", KIND_TEXT["mismatch"]: "#7b61ff",
                KIND_TEXT["wrong_label"]: "#f28e2b", KIND_TEXT["both"]: "#d62728"}
STATUS_COLOURS = {NOT_REVIEWED: "#b8c2cc", STATUS_TEXT["accept"]: "#2ca02c", STATUS_TEXT["keep"]: "#1f77b4",
                  STATUS_TEXT["relabel"]: "#9467bd", STATUS_TEXT["exclude"]: "#d62728",
                  STATUS_TEXT["skip"]: "#ff7f0e"}
# More colour categories than this and the maps use one trace with a numeric colour index and no legend:
# a trace per category costs a WebGL draw call each and a 300-entry legend is unreadable anyway.
MAX_LEGEND_CATEGORIES = 20
QUALITATIVE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf", "#393b79", "#e7ba52", "#637939", "#ad494a", "#a55194", "#6b6ecf",
               "#8ca252", "#bd9e39", "#843c39", "#7b4173"]


# ------------------------------------------------------------------------------------------------- points
def read_umap(path: str | Path) -> pd.DataFrame:
    """embeddings.parquet -> clip plus the six ``umap_<modality>_<x|y>`` columns (the vectors are not read)."""
    cols = ["clip"] + [f"umap_{m}_{a}" for m in MODALITIES for a in "xy"]
    return pd.read_parquet(path, columns=cols)


def points_table(flags: pd.DataFrame, umap: pd.DataFrame, latest: pd.DataFrame | None = None) -> pd.DataFrame:
    """Scored clips that have UMAP coordinates, one row each: flags columns + umap columns + review_status.
    Row order is that of ``flags``; the index is 0..N-1 (row positions are what the plots refer to)."""
    table = flags.merge(umap.dropna(), on="clip", how="inner")  # clips left off the maps have NaN coordinates
    table["review_status"] = review_status(table["clip"], latest).to_numpy()
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------------------------- plot traces
@dataclass
class TracePlan:
    """How the points of a map are split into Plotly traces.

    ``mode`` "legend": one trace per category, ``names[k]`` shown in the legend, ``rows[k]`` the row positions
    (into the points table) of trace k. ``mode`` "index": one trace holding every row, ``rows[0]`` =
    arange(N), ``codes`` (N,) int colour index into ``names``. In both modes point j of trace k is row
    ``rows[k][j]``, which is what :func:`selected_rows` relies on.
    """

    mode: str
    names: list[str]
    rows: list[np.ndarray]
    codes: np.ndarray | None = None
    colours: list[str] | None = None


def plan_traces(categories: pd.Series, *, max_legend: int = MAX_LEGEND_CATEGORIES,
                order: list[str] | None = None, colours: dict[str, str] | None = None) -> TracePlan:
    """Split rows by category. ``order`` fixes the category order (others follow, sorted); ``colours`` maps a
    category to a colour (others get QUALITATIVE colours in turn)."""
    values = categories.astype(str).to_numpy()
    present = set(values)
    names = [c for c in (order or []) if c in present] + sorted(present - set(order or []))
    if len(names) <= max_legend:
        rows = [np.flatnonzero(values == n) for n in names]
        palette = [(colours or {}).get(n, QUALITATIVE[i % len(QUALITATIVE)]) for i, n in enumerate(names)]
        return TracePlan("legend", names, rows, colours=palette)
    code_of = {n: i for i, n in enumerate(names)}
    codes = np.fromiter((code_of[v] for v in values), dtype=np.int32, count=len(values))
    return TracePlan("index", names, [np.arange(len(values))], codes=codes)


def colour_plan(points: pd.DataFrame, colour_by: str) -> TracePlan:
    """The TracePlan of the maps coloured by ``colour_by`` (a key of COLOUR_BY): flag kinds and review statuses
    in their fixed order and colours, labels sorted with QUALITATIVE colours (or a colour index past
    MAX_LEGEND_CATEGORIES)."""
    column = COLOUR_BY[colour_by]
    if column == "kind_text":
        return plan_traces(points[column], order=list(KIND_COLOURS), colours=KIND_COLOURS)
    if column == "review_status":
        return plan_traces(points[column], order=list(STATUS_COLOURS), colours=STATUS_COLOURS)
    return plan_traces(points[column])


def selected_rows(plan: TracePlan, points: list[dict]) -> np.ndarray:
    """Plotly selection ``points`` (dicts with ``curve_number`` and ``point_index``; Streamlit's selection
    state) -> sorted unique row positions. Points on traces the plan does not know (an overlay) are ignored."""
    found: set[int] = set()
    for p in points or []:
        curve = p.get("curve_number", p.get("curveNumber"))
        index = p.get("point_index", p.get("pointIndex", p.get("point_number")))
        if curve is None or index is None or not 0 <= int(curve) < len(plan.rows):
            continue
        trace_rows = plan.rows[int(curve)]
        if 0 <= int(index) < len(trace_rows):
            found.add(int(trace_rows[int(index)]))
    return np.array(sorted(found), dtype=np.int64)


def hover_customdata(points: pd.DataFrame) -> np.ndarray:
    """(N, 4) object array for a ``hovertemplate`` (see HOVER_TEMPLATE): clip, given -> suggested label,
    flag kind, scores; every user string escaped."""
    def score(v: pd.Series) -> pd.Series:
        return v.map(lambda x: "–" if pd.isna(x) else f"{x:.2f}")

    labels = points["given_label"].map(escape_hover) + " → " + points["suggested_label"].map(escape_hover)
    scores = "label " + score(points["label_noise_score"]) + " · mismatch " + score(points["mismatch_score"])
    return np.column_stack([points["clip"].map(escape_hover), labels, points["kind_text"], scores]).astype(object)


HOVER_TEMPLATE = ("%{customdata[0]}<br>label: %{customdata[1]}<br>%{customdata[2]}<br>%{customdata[3]}"
                  "<extra></extra>")


def thumbnail_clips(points: pd.DataFrame, selected: list[str] | None, limit: int) -> list[str]:
    """The clips of ``points`` (at most ``limit``) whose frame the maps show on hover: the ``selected`` ones
    first (in their order), then the others by their higher score, most suspicious first (unscored clips last,
    ties in row order). Returns distinct clips of ``points["clip"]``; all of them when there are ``limit`` or
    fewer."""
    present = set(points["clip"])
    first = list(dict.fromkeys(c for c in (selected or []) if c in present))[:limit]
    score = points[["label_noise_score", "mismatch_score"]].apply(pd.to_numeric, errors="coerce").max(axis=1)
    order = points.assign(_score=score.fillna(-1.0)).sort_values("_score", ascending=False, kind="stable")["clip"]
    chosen = set(first)
    rest = [c for c in order if c not in chosen][:max(0, limit - len(first))]
    return first + rest
