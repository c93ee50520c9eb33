"""The Explore maps' selection, kept in the tab's session state: the clips selected on any map (drawn
highlighted on all three), and the map layout it was made on, to turn a Plotly selection event back into clips.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from auditor.explore_maps import TracePlan, selected_rows

EXPLORE_SELECTED_KEY = "explore_selected"  # clips selected on a map (list[str])
_EXPLORE_RENDER_KEY = "_explore_render"  # (TracePlan, clips array) of the maps as last drawn


def selected_clips() -> list[str]:
    """The clips selected on the maps ([] when none)."""
    return st.session_state.get(EXPLORE_SELECTED_KEY) or []


def clear() -> None:
    st.session_state.pop(EXPLORE_SELECTED_KEY, None)


def remember_maps(plan: TracePlan, clips: np.ndarray) -> None:
    """What the maps show now, so that a selection event (which names traces and points) maps back to clips."""
    st.session_state[_EXPLORE_RENDER_KEY] = (plan, clips)


def on_map_select(chart_key: str) -> None:
    """Selection callback of a map: the selected points become the selected clips (on all maps)."""
    state = st.session_state.get(chart_key)
    render = st.session_state.get(_EXPLORE_RENDER_KEY)
    if state is None or render is None:
        return
    plan, clips = render
    rows = selected_rows(plan, list(state.selection.points))
    st.session_state[EXPLORE_SELECTED_KEY] = [str(c) for c in clips[rows]]
