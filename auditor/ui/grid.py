"""The Review page's triage grid: the queue's clips as thumbnails with their verdicts, PER_PAGE at a time; a
checkbox per clip (Tab moves between them, Space ticks one), "select this page" and "clear", the queue's batch
actions on the ticked clips, and "Open" to decide one clip in the one-clip view (where it can be heard).

The ticks live in the session (one key per clip, PICK_PREFIX + clip); only the queue's clips count, so a clip
that left the queue (decided, filtered out) is not acted on."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from auditor.review_queue import KIND_TEXT, clip_path
from auditor.text import md_literal, plural
from auditor.ui import loaders, review, state

VIEW_KEY = "review_view"  # "clip" (one clip at a time) or "grid"
VIEWS = {"clip": "One clip", "grid": "Grid"}
VIEW_PARAM = "view"
PAGE_KEY = "review_grid_page"
PICK_PREFIX = "grid_pick::"
PER_PAGE = 24
COLUMNS = 6


def view() -> str:
    """The view chosen above the queue ("clip" unless the grid is chosen), kept in the address bar (?view=)."""
    state.bind_to_url(VIEW_KEY, VIEW_PARAM, "clip", parse=state.one_of(VIEWS))
    chosen = st.segmented_control("View", list(VIEWS), key=VIEW_KEY, format_func=VIEWS.get,
                                  label_visibility="collapsed")
    return chosen or "clip"


def picked(queue: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``queue`` whose clips are ticked (``queue``'s columns, also when none is)."""
    ss = st.session_state
    return queue[queue["clip"].map(lambda clip: bool(ss.get(PICK_PREFIX + clip))).astype(bool)]


def _tick(clips: list[str], value: bool) -> None:
    for clip in clips:
        st.session_state[PICK_PREFIX + clip] = value


def _open(clip: str) -> None:
    """Show ``clip`` (a clip of the queue) in the one-clip view."""
    review.go_to(clip)
    st.session_state[VIEW_KEY] = "clip"


def show(data: Path, run_id: str, queue: pd.DataFrame) -> None:
    """The grid of ``queue`` (review_queue.review_queue's rows) with its selection and batch actions; "Nothing
    left" when the queue is empty."""
    if queue.empty:
        st.success("Nothing left to review with these filters.", icon=":material/task_alt:")
        return
    pages = max(1, math.ceil(len(queue) / PER_PAGE))
    ss = st.session_state
    if not 1 <= ss.get(PAGE_KEY, 1) <= pages:
        ss[PAGE_KEY] = 1
    shown = queue.iloc[(ss.get(PAGE_KEY, 1) - 1) * PER_PAGE:][:PER_PAGE]
    chosen = picked(queue)
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown(f"**{plural(len(chosen), 'clip')} selected**")
        st.button("Select this page", on_click=_tick, args=(shown["clip"].tolist(), True),
                  icon=":material/select_all:")
        st.button("Clear selection", on_click=_tick, args=(queue["clip"].tolist(), False),
                  icon=":material/deselect:", disabled=chosen.empty)
        if pages > 1:
            st.number_input("Page", 1, pages, key=PAGE_KEY, width=140)
    review.batch_buttons(data, run_id, chosen, "selected in the grid", "grid_batch")
    rows = shown.to_dict("records")
    for start in range(0, len(rows), COLUMNS):
        for col, row in zip(st.columns(COLUMNS), rows[start:start + COLUMNS], strict=False):
            with col, st.container(border=True, gap="small"):
                _tile(data, row)


def _tile(data: Path, row: dict) -> None:
    try:
        image = loaders.thumbnail(data, clip_path(data, row["clip"]))
    except ValueError:
        image = None
    if image is not None:
        st.image(image, width="stretch")
    st.checkbox(md_literal(row["clip"].rsplit("/", 1)[-1]), key=PICK_PREFIX + row["clip"])
    suggested = row.get("suggested_label") or "–"
    st.caption(f"{KIND_TEXT.get(row['flag_kind'], row['flag_kind'])} · {md_literal(row['given_label'])} → "
               f"{md_literal(suggested)} · {row['review_status']}")
    st.button("Open", key=f"grid_open_{row['clip']}", on_click=_open, args=(row["clip"],),
              icon=":material/open_in_new:", width="stretch", help="Decide it in the one-clip view, with its sound")
