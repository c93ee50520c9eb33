"""The Review page's clip on screen and its callbacks: record a decision (checked against the decision shown,
so that two curators on one clip see a conflict instead of overwriting each other), resolve a conflict, move to
the next clip in the queue.

Decisions go to the data set's review store (:mod:`auditor.reviews`) with the curator's name and the run id;
the session only remembers which clip is on screen and what was shown of it.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from auditor.errors import UserError
from auditor.review_queue import STATUS_TEXT
from auditor.reviews import ReviewConflict
from auditor.text import md_literal
from auditor.ui.loaders import latest_decision, review_store
from auditor.ui.state import CURATOR_KEY
from auditor.ui.widgets import flash

REVIEW_CURRENT_KEY = "review_current"  # the clip on screen
REVIEW_CONFLICT_KEY = "_review_conflict"  # {"row", "decision", "final", "theirs"} of a decision not recorded
RELABEL_KEY = "relabel_to"  # the "Relabel as" selectbox
QUEUE_TABLE_KEY = "queue_table"  # the queue table (its row selection jumps to a clip)
_REVIEW_SHOWN_KEY = "_review_shown"  # {"clip", "id"}: the clip's latest decision id when it was first shown
_REVIEW_QUEUE_KEY = "_review_queue"  # the queue's clips as last drawn (to find the next one)
_CONFLICT_FINAL_KEY = "_conflict_final"  # the final label of "Record mine"


def show_clip(data: Path, clip: str, queue: list[str]) -> dict | None:
    """Make ``clip`` the clip on screen and return its latest decision (or None). The first time it is shown,
    that decision's id is remembered as the ``expected_last_id`` of the decision the curator will record."""
    ss = st.session_state
    ss[REVIEW_CURRENT_KEY] = clip
    ss[_REVIEW_QUEUE_KEY] = queue
    latest = latest_decision(data, clip)
    shown = ss.get(_REVIEW_SHOWN_KEY)
    if not shown or shown["clip"] != clip:
        ss[_REVIEW_SHOWN_KEY] = {"clip": clip, "id": latest["id"] if latest else None}
    return latest


def _advance(clip: str) -> None:
    queue = st.session_state.get(_REVIEW_QUEUE_KEY) or []
    i = queue.index(clip) if clip in queue else -1
    st.session_state[REVIEW_CURRENT_KEY] = queue[i + 1] if 0 <= i < len(queue) - 1 else None
    st.session_state.pop(_REVIEW_SHOWN_KEY, None)
    st.session_state[RELABEL_KEY] = None


def record_decision(data: Path, run_id_: str, row: dict, decision: str, relabel_key: str | None = None,
                    expected_last_id: object = "shown") -> None:
    """Button callback: record ``decision`` for the clip of ``row`` (a flags row) with the curator's name and
    the run id, checked against the id shown; on success the next clip follows, on a ReviewConflict the
    conflict is kept for the page to show."""
    ss = st.session_state
    clip = row["clip"]
    final = ss.get(relabel_key) if decision == "relabel" and relabel_key else None
    if expected_last_id == "shown":
        shown = ss.get(_REVIEW_SHOWN_KEY) or {}
        expected_last_id = shown.get("id") if shown.get("clip") == clip else None
    try:
        with review_store(data) as store:
            store.record(clip, decision, given_label=row["given_label"],
                         suggested_label=row.get("suggested_label") or None, final_label=final,
                         curator=ss.get(CURATOR_KEY, "").strip(), run_id=run_id_,
                         label_noise_score=row.get("label_noise_score"), mismatch_score=row.get("mismatch_score"),
                         expected_last_id=expected_last_id)
    except ReviewConflict as err:
        ss[REVIEW_CONFLICT_KEY] = {"row": row, "decision": decision, "final": final, "theirs": dict(err.theirs)}
        return
    except (UserError, ValueError) as err:
        flash(f"Not recorded: {md_literal(err)}", "error")
        return
    ss.pop(REVIEW_CONFLICT_KEY, None)
    _advance(clip)
    st.toast(f"{STATUS_TEXT.get(decision, decision).capitalize()}: {md_literal(clip)}", icon=":material/check:")


def keep_theirs() -> None:
    """Conflict resolution: leave the other curator's decision and go on."""
    conflict = st.session_state.pop(REVIEW_CONFLICT_KEY, None)
    if conflict:
        _advance(conflict["row"]["clip"])


def record_mine(data: Path, run_id_: str) -> None:
    """Conflict resolution: record my decision on top of theirs."""
    conflict = st.session_state.pop(REVIEW_CONFLICT_KEY, None)
    if conflict:
        st.session_state[_CONFLICT_FINAL_KEY] = conflict["final"]
        record_decision(data, run_id_, conflict["row"], conflict["decision"], _CONFLICT_FINAL_KEY,
                        expected_last_id=conflict["theirs"].get("id"))


def jump_to_queue_row() -> None:
    """Queue table selection callback: show the selected clip."""
    state = st.session_state.get(QUEUE_TABLE_KEY)
    queue = st.session_state.get(_REVIEW_QUEUE_KEY) or []
    rows = list(state.selection.rows) if state is not None else []
    if rows and rows[0] < len(queue):
        st.session_state[REVIEW_CURRENT_KEY] = queue[rows[0]]
