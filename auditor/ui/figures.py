"""Plotly figures of the pages (Explore maps, clips per class, loss curves, spectrogram, a long clip's windows) and
the Review page's frame strip. Figures only: no Streamlit calls, no session state; user text in hover labels and legends goes
through :func:`auditor.escape_hover`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from auditor.explore_maps import HOVER_TEMPLATE, TracePlan
from auditor.text import escape_hover

MARGINS = {"l": 8, "r": 8, "t": 8, "b": 8}


def point_size(n: int) -> float:
    """Marker size for a map of ``n`` points: large enough to read a small map's clusters at a glance, smaller as
    the map fills, so that a large map's clusters stay apart."""
    return 9.0 if n <= 1_000 else 6.0 if n <= 5_000 else 4.0


def map_figure(points: pd.DataFrame, plan: TracePlan, modality: str, customdata: np.ndarray,
               highlight: np.ndarray | None, *, height: int = 430) -> go.Figure:
    """A UMAP map as WebGL scatter traces following ``plan``; rows in ``highlight`` are drawn selected and the
    rest faded (Plotly's ``selectedpoints``)."""
    size = point_size(len(points))
    x = points[f"umap_{modality}_x"].to_numpy()
    y = points[f"umap_{modality}_y"].to_numpy()
    chosen = None if highlight is None or len(highlight) == 0 else np.zeros(len(points), bool)
    if chosen is not None:
        chosen[highlight] = True
    traces = []
    for k, rows in enumerate(plan.rows):
        if plan.mode == "legend":
            marker = {"color": plan.colours[k], "size": size}
            name = escape_hover(plan.names[k])
        else:
            marker = {"color": plan.codes, "colorscale": "Turbo", "cmin": 0, "cmax": max(1, len(plan.names) - 1),
                      "size": size, "showscale": False}
            name = "clips"
        selected = None if chosen is None else np.flatnonzero(chosen[rows]).tolist()
        traces.append(go.Scattergl(
            x=x[rows], y=y[rows], mode="markers", name=name, marker=marker, customdata=customdata[rows],
            hovertemplate=HOVER_TEMPLATE, selectedpoints=selected,
            selected={"marker": {"size": size + 3, "opacity": 1.0}},
            unselected={"marker": {"opacity": 0.12}}))
    fig = go.Figure(traces)
    fig.update_layout(
        height=height, margin=MARGINS, dragmode="lasso", uirevision=modality,
        showlegend=plan.mode == "legend", legend={"itemsizing": "constant", "orientation": "h", "y": -0.02,
                                                  "yanchor": "top", "x": 0},
        hoverlabel={"align": "left"})
    fig.update_xaxes(showticklabels=False, title=None, zeroline=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, title=None, zeroline=False, showgrid=False)
    return fig


def class_histogram(per_class: dict[str, int]) -> go.Figure:
    """Bars of clips per class (class names as categories; their tick labels hidden past 60 classes)."""
    names = [escape_hover(k) for k in per_class]
    fig = go.Figure(go.Bar(x=names, y=list(per_class.values()), marker_color="#4c78a8",
                           hovertemplate="%{x}: %{y} clips<extra></extra>"))
    fig.update_layout(height=300, margin=MARGINS, yaxis_title="clips",
                      xaxis={"type": "category", "showticklabels": len(names) <= 60})
    return fig


# The loss terms of train.py's progress events, in words (a term not listed keeps its own name, e.g. "total").
LOSS_TERMS = {"cls": "classification", "hyb": "hybrid classification", "inst": "sound–picture contrastive",
              "cat": "class contrastive"}


def loss_figure(losses: pd.DataFrame) -> go.Figure:
    """One line per loss term of a long-form DataFrame(step, term, value) (progress_view.ProgressView.losses),
    named in words (LOSS_TERMS)."""
    fig = go.Figure()
    for term, part in losses.groupby("term", sort=False):
        fig.add_trace(go.Scatter(x=part["step"], y=part["value"], mode="lines",
                                 name=LOSS_TERMS.get(str(term), str(term))))
    fig.update_layout(height=300, margin=MARGINS, xaxis_title="step",
                      yaxis_title="loss", legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0})
    return fig


def confusion_figure(cells: pd.DataFrame, classes: list[str], *, height: int = 460) -> go.Figure:
    """The given x suggested label matrix as square tiles (a scatter, so that a tile can be clicked and
    selected), coloured and labelled by its clip count; off-diagonal tiles are the suggested relabels.
    ``cells`` = auditor.class_view.confusion_cells; the point's customdata is (given, suggested).

    No drag mode and fixed axes: Streamlit lets a click select a point only when the drag mode is neither box
    nor lasso, so a click selects a tile (Shift+click adds one) and the toolbar's box tool selects several."""
    names = [escape_hover(c) for c in classes]
    x = cells["suggested_label"].map(escape_hover)
    y = cells["given_label"].map(escape_hover)
    size = max(8.0, min(48.0, (height - 120) / max(1, len(classes)) * 0.9))
    fig = go.Figure(go.Scatter(
        x=x, y=y, mode="markers+text" if len(classes) <= 20 else "markers", text=cells["clips"],
        textfont={"size": 11, "color": np.where(np.log1p(cells["clips"]) > np.log1p(cells["clips"].max()) * 0.6,
                                                "white", "#333")}, customdata=np.column_stack([cells["given_label"], cells["suggested_label"]]),
        marker={"symbol": "square", "size": size, "color": np.log1p(cells["clips"]), "colorscale": "Blues",
                "line": {"width": 0}},
        hovertemplate="given %{y} → suggested %{x}: %{text} clips<extra></extra>",
        unselected={"marker": {"opacity": 0.35}, "textfont": {"color": "#444"}}))  # counts readable beside a pick
    fig.update_layout(height=height, margin={"l": 8, "r": 8, "t": 8, "b": 8}, dragmode=False,
                      xaxis={"title": "suggested label", "type": "category", "categoryorder": "array",
                             "categoryarray": names, "showticklabels": len(classes) <= 60, "fixedrange": True},
                      yaxis={"title": "given label", "type": "category", "categoryorder": "array",
                             "categoryarray": names[::-1], "showticklabels": len(classes) <= 60,
                             "fixedrange": True})
    return fig


SPECTROGRAM_COLUMNS = 2_000  # columns drawn at most (a long clip's log-mel is thinned to this many)


def spectrogram_figure(mel: np.ndarray, hop_seconds: float = 0.010, start_s: float = 0.0, *,
                       height: int = 180) -> go.Figure:
    """A (64, L) log-mel as a heatmap ``height`` px tall over the clip's seconds (``hop_seconds`` per column, the
    first at ``start_s``); every ceil(L / SPECTROGRAM_COLUMNS)-th column when L is larger."""
    step = max(1, -(-mel.shape[1] // SPECTROGRAM_COLUMNS))
    mel = mel[:, ::step]
    t = start_s + np.arange(mel.shape[1]) * hop_seconds * step
    fig = go.Figure(go.Heatmap(z=mel, x=t, colorscale="Magma", showscale=False,
                               hovertemplate="%{x:.2f} s · mel %{y}<extra></extra>"))
    fig.update_layout(height=height, margin={"l": 8, "r": 8, "t": 4, "b": 4}, xaxis_title="seconds",
                      yaxis_title="mel bin")
    return fig


def windows_figure(rows: pd.DataFrame, reference: float) -> go.Figure:
    """A long clip's windows over its time line (clip_windows.clip_windows' rows): one bar per window spanning it,
    as high as its InfoNCE loss; red where the sound is unlike matching clips', grey where it is quiet (not
    audible); the judged window outlined; the class's reference loss as a dashed line above the bars."""
    colour = np.where(~rows["audible"], "#bdbdbd", np.where(rows["unlike"], "#d62728", "#1f77b4"))
    loss = rows["infonce_loss"].fillna(0.0).to_numpy()
    judged = rows["best_aligned"].astype(bool).to_numpy()
    fig = go.Figure(go.Bar(
        x=((rows["start_s"] + rows["end_s"]) / 2).to_numpy(), y=loss, width=(rows["end_s"] - rows["start_s"]) * 0.96,
        marker={"color": colour, "line": {"color": np.where(judged, "#000000", "rgba(0,0,0,0)"), "width": 2}},
        customdata=np.stack([rows["start_s"], rows["end_s"], rows["cosine"].fillna(np.nan),
                             np.where(judged, "judged window", "")], axis=1),
        hovertemplate="%{customdata[0]:.1f}–%{customdata[1]:.1f} s · loss %{y:.2f} · cosine %{customdata[2]:.2f}"
                      "<br>%{customdata[3]}<extra></extra>"))
    if np.isfinite(reference):
        fig.add_hline(y=reference, line={"dash": "dash", "color": "#222222", "width": 1.5}, layer="above",
                      annotation_text="reference", annotation_position="top left",
                      annotation_font={"size": 11, "color": "#222222"})
    fig.update_layout(height=170, margin={"l": 8, "r": 8, "t": 4, "b": 4}, showlegend=False,
                      xaxis={"title": "seconds", "range": [0, float(rows["end_s"].max())]},
                      yaxis={"title": "loss", "rangemode": "tozero"})
    return fig


def frame_strip(frames: np.ndarray) -> np.ndarray:
    """(T, S, S, 3) frames -> one (S, T*S, 3) image, left to right."""
    return np.concatenate(list(frames), axis=1) if len(frames) else np.zeros((1, 1, 3), np.uint8)
