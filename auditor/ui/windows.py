"""The Review page's view of a long clip's aligned windows (auditor.clip_windows): a chart of each window's loss
over the clip's time line, the same in words, and a choice of window that the video above then plays."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from auditor import clip_windows
from auditor.ui import figures, loaders

PLAY_KEY_PREFIX = "play_window::"  # + clip: the window the video plays (a pills widget's key, one per clip)


@dataclass
class ClipWindows:
    """One clip's windows (clip_windows.clip_windows rows) and the reference loss they are compared with."""

    clip: str
    rows: pd.DataFrame
    reference: float
    reference_text: str


def clip_windows_of(run: Path, clip: str, label: str) -> ClipWindows | None:
    """The clip's windows when the run cut it into more than one, else None."""
    windows, references = loaders.windows(run)
    if not clip_windows.has_windows(windows, clip):
        return None
    reference, text = clip_windows.class_reference(references, label)
    return ClipWindows(clip, clip_windows.clip_windows(windows, clip, reference), reference, text)


def play_times(view: ClipWindows | None) -> dict:
    """st.video's start_time/end_time for the window chosen below the chart (nothing chosen: the whole clip), in
    whole seconds that cover the window (st.video takes whole seconds)."""
    if view is None:
        return {}
    chosen = st.session_state.get(PLAY_KEY_PREFIX + view.clip)
    match = view.rows[view.rows["window"] == chosen]
    if match.empty:
        return {}
    return {"start_time": math.floor(match["start_s"].iloc[0]), "end_time": math.ceil(match["end_s"].iloc[0])}


def show(view: ClipWindows) -> None:
    """The chart, the words, and the window picker (its choice is played by the video on the next run)."""
    st.markdown("**Where the sound fits the picture**")
    st.plotly_chart(figures.windows_figure(view.rows, view.reference), config={"displayModeBar": False},
                    key="windows_chart")
    st.caption(clip_windows.describe(view.rows, view.reference_text) +
               " Bars: each window's cross-modal loss; dashed line: the reference; outlined: the judged window.")
    spans = dict(zip(view.rows["window"].tolist(),
                     [clip_windows.span_text(r.start_s, r.end_s) for r in view.rows.itertuples()], strict=True))
    st.pills("Play one window", list(spans), format_func=spans.get, key=PLAY_KEY_PREFIX + view.clip,
             help="The video above plays only this window; choose it again to play the whole clip.")
