"""Plotly figures of the pages (Explore maps, clips per class, loss curves, spectrogram) and the Review page's
frame strip. Figures only: no Streamlit calls, no session state; user text in hover labels and legends goes
through :func:`auditor.escape_hover`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from auditor.explore_maps import HOVER_TEMPLATE, TracePlan
from auditor.text import escape_hover

MARGINS = {"l": 8, "r": 8, "t": 8, "b": 8}


def point_size(n: int) -> float:
    """Marker size for a map of ``n`` points: smaller as the map fills, so that clusters stay readable."""
    return 6.0 if n <= 1_000 else 4.5 if n <= 5_000 else 3.0


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


def loss_figure(losses: pd.DataFrame) -> go.Figure:
    """One line per loss term of a long-form DataFrame(step, term, value) (progress_view.ProgressView.losses)."""
    fig = go.Figure()
    for term, part in losses.groupby("term", sort=False):
        fig.add_trace(go.Scatter(x=part["step"], y=part["value"], mode="lines", name=str(term)))
    fig.update_layout(height=300, margin=MARGINS, xaxis_title="step",
                      yaxis_title="loss", legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0})
    return fig


def confusion_figure(cells: pd.DataFrame, classes: list[str], *, height: int = 460) -> go.Figure:
    """The given x suggested label matrix as square tiles (a scatter, so that a tile can be clicked and
    selected), coloured and labelled by its clip count; off-diagonal tiles are the suggested relabels.
    ``cells`` = auditor.class_view.confusion_cells; the point's customdata is (given, suggested)."""
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
        hovertemplate="given %{y} → suggested %{x}: %{text} clips<extra></extra>"))
    fig.update_layout(height=height, margin={"l": 8, "r": 8, "t": 8, "b": 8}, dragmode="select",
                      xaxis={"title": "suggested label", "type": "category", "categoryorder": "array",
                             "categoryarray": names, "showticklabels": len(classes) <= 60},
                      yaxis={"title": "given label", "type": "category", "categoryorder": "array",
                             "categoryarray": names[::-1], "showticklabels": len(classes) <= 60})
    return fig


def spectrogram_figure(mel: np.ndarray, hop_seconds: float = 0.010) -> go.Figure:
    """A (64, L) log-mel as a heatmap over seconds (``hop_seconds`` per column)."""
    t = np.arange(mel.shape[1]) * hop_seconds
    fig = go.Figure(go.Heatmap(z=mel, x=t, colorscale="Magma", showscale=False,
                               hovertemplate="%{x:.2f} s · mel %{y}<extra></extra>"))
    fig.update_layout(height=180, margin={"l": 8, "r": 8, "t": 4, "b": 4}, xaxis_title="seconds",
                      yaxis_title="mel bin")
    return fig


def frame_strip(frames: np.ndarray) -> np.ndarray:
    """(T, S, S, 3) frames -> one (S, T*S, 3) image, left to right."""
    return np.concatenate(list(frames), axis=1) if len(frames) else np.zeros((1, 1, 3), np.uint8)
