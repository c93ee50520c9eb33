"""The Review page's clip on screen and its callbacks: record a decision (checked against the decision shown,
so that two curators deciding one clip differently see a conflict instead of overwriting each other), undo,
resolve a conflict, move through the queue, and the keyboard shortcuts.

Decisions go to the data set's review store (:mod:`auditor.reviews`) with the curator's name, the run id, the
note and the sound-mismatch mark; the session only remembers which clip is on screen and what was shown of it.
Undo takes the curator's last decisions from the decision log, so it works after a reload.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from auditor.errors import UserError
from auditor.review_queue import (
    BATCH_ACTIONS,
    STATUS_TEXT,
    batch_decisions,
    batch_rows,
    clip_paths,
    nearest_neighbours,
)
from auditor.reviews import ReviewConflict
from auditor.text import md_literal, plural
from auditor.ui.loaders import (
    latest_decision,
    prefetch_playback,
    prefetch_thumbnails,
    review_store,
    undoable_decisions,
)
from auditor.ui.state import CURATOR_KEY
from auditor.ui.widgets import flash

REVIEW_CURRENT_KEY = "review_current"  # the clip on screen
# {"row", "decision", "final", "theirs", "already", ...} of a decision not recorded; "already": theirs was there
# when the clip was shown (else it came while the curator was looking)
REVIEW_CONFLICT_KEY = "_review_conflict"
RELABEL_KEY = "relabel_to"  # the "Relabel as" selectbox
NOTE_KEY = "review_note"  # the note that goes with the next decision
MISMATCH_KEY = "review_mismatch"  # the sound-mismatch kind that goes with the next decision (or None)
QUEUE_TABLE_KEY = "queue_table"  # the queue table (its row selection jumps to a clip)
SEARCH_KEY = "review_search"  # the queue's search box
PREFETCH_CLIPS = 2  # clips after the one on screen converted for playback in the background
NEIGHBOURS = 6  # nearest clips shown as thumbnails
UNDO_DEPTH = 10  # the curator's last decisions that can be undone
# Keyboard shortcuts: decision -> key (Streamlit button shortcuts; "r" is handled by KEYS_SCRIPT, since
# Streamlit reserves R for its own rerun).
SHORTCUTS = {"accept": "A", "keep": "K", "exclude": "X", "skip": "S", "undo": "U", "previous": "Left",
             "next": "Right"}
KEYS_HELP = ("**Keys** &nbsp; `a` accept · `k` keep given label · `x` mismatched / exclude · `s` skip · "
             "`r` relabel (class picker; `Esc` leaves it) · `←` `→` previous / next · `u` undo")
# "r" focuses the class picker (outside text fields) and Escape in the picker leaves it, so that the next key is a
# review key again; registered once per page, before Streamlit's own keys.
KEYS_SCRIPT = f"""<script>
(() => {{
  if (window.__avAuditorKeys) return;
  window.__avAuditorKeys = true;
  window.addEventListener("keydown", (e) => {{
    if (e.key === "Escape" && e.target && e.target.closest && e.target.closest(".st-key-{RELABEL_KEY}")) {{
      e.target.blur();
      return;
    }}
    if (e.key !== "r" || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const box = document.querySelector(".st-key-{RELABEL_KEY} input");
    if (!box) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    box.focus();
    box.click();
  }}, true);
}})();
</script>"""
_REVIEW_SHOWN_KEY = "_review_shown"  # {"clip", "id", "curator", "decision"}: its latest decision when first shown
_REVIEW_QUEUE_KEY = "_review_queue"  # the queue's clips as last drawn (to find the next one)
_CONFLICT_FINAL_KEY = "_conflict_final"  # the final label of "Record mine"
_PINNED_KEY = "_review_pinned"  # a clip opened by its link: shown even when the queue's filters leave it out
_LINKED_KEY = "_review_linked"  # the clip this page last put into the address bar
CLIP_PARAM = "clip"  # ?clip=<clip path>: a link to a clip of the Review page


def install_shortcut_keys() -> None:
    """The "r" and Escape keys of KEYS_SCRIPT (the other keys are button shortcuts). Constant HTML: no user
    text."""
    st.html(KEYS_SCRIPT, unsafe_allow_javascript=True)


def open_linked_clip(clips: set[str]) -> None:
    """When the address bar names a clip of ``clips`` that this page did not put there (a link was opened or
    the page reloaded), show that clip, even if the queue's filters leave it out."""
    ss = st.session_state
    linked = st.query_params.get(CLIP_PARAM)
    if linked and linked != ss.get(_LINKED_KEY) and linked in clips:
        go_to(linked)
        ss[_PINNED_KEY] = linked
    ss[_LINKED_KEY] = linked


def current_clip(queue: list[str], clips: set[str], searching: bool = False) -> str | None:
    """The clip to show: a conflict's, else the one on screen while it is in ``queue`` (or was opened by its
    link or as a neighbour and is in ``clips``, unless ``searching``: a search only ever shows its own clips),
    else the queue's first; None when there is none."""
    ss = st.session_state
    conflict = ss.get(REVIEW_CONFLICT_KEY)
    if conflict:
        return conflict["row"]["clip"]
    current = ss.get(REVIEW_CURRENT_KEY)
    if current in queue or (not searching and current == ss.get(_PINNED_KEY) and current in clips):
        return current
    return queue[0] if queue else None


def link_to(clip: str) -> None:
    """Put ``clip`` into the address bar (?clip=...): the page's own link, and what a reload shows again."""
    if st.query_params.get(CLIP_PARAM) != clip:
        st.query_params[CLIP_PARAM] = clip
    st.session_state[_LINKED_KEY] = clip


def show_clip(data: Path, clip: str, queue: list[str]) -> dict | None:
    """Make ``clip`` the clip on screen and return its latest decision (or None). The first time it is shown,
    that decision is remembered: what the curator's decision is checked against (:func:`_expected_id`)."""
    ss = st.session_state
    ss[REVIEW_CURRENT_KEY] = clip
    ss[_REVIEW_QUEUE_KEY] = queue
    latest = latest_decision(data, clip)
    shown = ss.get(_REVIEW_SHOWN_KEY)
    if not shown or shown["clip"] != clip:
        ss[_REVIEW_SHOWN_KEY] = {"clip": clip, **{k: (latest or {}).get(k) for k in ("id", "curator", "decision")}}
    return latest


def _expected_id(shown: dict, curator: str) -> int | None:
    """The ``expected_last_id`` of a decision on the clip ``shown``: the id of its decision when it was shown,
    so that a decision recorded since is a conflict; but None when that one was another curator's decision
    (not a skip or an undo), so that deciding it differently is a conflict too: the curator is shown theirs
    and chooses, instead of silently replacing it."""
    theirs = shown.get("curator") not in (None, curator) and shown.get("decision") not in (None, "skip", "undo")
    return None if theirs else shown.get("id")


def prefetch_next(data: Path, queue: list[str], clip: str, embeddings: tuple | None = None) -> None:
    """Make the PREFETCH_CLIPS clips after ``clip`` in ``queue`` playable in the background, and the
    thumbnails of their nearest clips when ``embeddings`` = (clips, unit-length matrix) is given."""
    i = queue.index(clip) if clip in queue else -1
    upcoming = queue[i + 1:i + 1 + PREFETCH_CLIPS]
    prefetch_playback(data, clip_paths(data, upcoming))
    if embeddings is not None:
        names, matrix = embeddings
        near = [c for name in upcoming for c in nearest_neighbours(names, matrix, name, k=NEIGHBOURS)["clip"]]
        prefetch_thumbnails(data, clip_paths(data, near))


def go_to(clip: str | None) -> None:
    """Show ``clip`` next (None: the queue's first); the decision inputs start empty."""
    ss = st.session_state
    ss[REVIEW_CURRENT_KEY] = clip
    ss.pop(_REVIEW_SHOWN_KEY, None)
    ss.pop(_PINNED_KEY, None)
    ss[RELABEL_KEY] = None
    ss[NOTE_KEY] = ""
    ss[MISMATCH_KEY] = None


def open_clip(clip: str) -> None:
    """Button callback: show ``clip`` (e.g. a neighbour), even when the queue's filters leave it out; the
    search is cleared (a search only ever shows its own clips)."""
    go_to(clip)
    st.session_state[_PINNED_KEY] = clip
    st.session_state[SEARCH_KEY] = ""


def step(offset: int) -> None:
    """Button callback: the clip ``offset`` places before (-1) or after (+1) the one on screen in the queue."""
    queue = st.session_state.get(_REVIEW_QUEUE_KEY) or []
    if not queue:
        return
    clip = st.session_state.get(REVIEW_CURRENT_KEY)
    i = queue.index(clip) if clip in queue else -1
    go_to(queue[min(max(i + offset, 0), len(queue) - 1)])


def _advance(clip: str) -> None:
    queue = st.session_state.get(_REVIEW_QUEUE_KEY) or []
    i = queue.index(clip) if clip in queue else -1
    go_to(queue[i + 1] if 0 <= i < len(queue) - 1 else None)


def record_decision(data: Path, run_id_: str, row: dict, decision: str, relabel_key: str | None = None,
                    expected_last_id: object = "shown", note: str | None = None,
                    mismatch: str | None | object = "shown") -> None:
    """Button callback: record ``decision`` for the clip of ``row`` (a flags row) with the curator's name, the
    run id, the note and the sound-mismatch mark on screen, checked against the id shown; on success the next
    clip follows, on a ReviewConflict the conflict is kept for the page to show."""
    ss = st.session_state
    clip = row["clip"]
    final = ss.get(relabel_key) if decision == "relabel" and relabel_key else None
    if decision == "relabel" and not final:  # the class picker was cleared: nothing to record
        return
    note = (ss.get(NOTE_KEY) or "").strip() if note is None else note
    if mismatch == "shown":
        mismatch = ss.get(MISMATCH_KEY) if decision not in ("skip",) else None
    curator = ss.get(CURATOR_KEY, "").strip()
    shown = ss.get(_REVIEW_SHOWN_KEY) or {}
    if expected_last_id == "shown":
        expected_last_id = _expected_id(shown, curator) if shown.get("clip") == clip else None
    try:
        with review_store(data) as store:
            store.record(clip, decision, given_label=row["given_label"],
                         suggested_label=row.get("suggested_label") or None, final_label=final, curator=curator,
                         run_id=run_id_, label_noise_score=row.get("label_noise_score"),
                         mismatch_score=row.get("mismatch_score"), note=note, mismatch=mismatch,
                         expected_last_id=expected_last_id)
    except ReviewConflict as err:
        already = shown.get("clip") == clip and shown.get("id") == err.theirs.get("id")
        ss[REVIEW_CONFLICT_KEY] = {"row": row, "decision": decision, "final": final, "theirs": dict(err.theirs),
                                   "note": note, "mismatch": mismatch, "already": already}
        return
    except (UserError, ValueError) as err:
        flash(f"Not recorded: {md_literal(err)}", "error")
        return
    ss.pop(REVIEW_CONFLICT_KEY, None)
    _advance(clip)
    st.toast(f"{STATUS_TEXT.get(decision, decision).capitalize()}: {md_literal(clip)} · `u` undoes it",
             icon=":material/check:")


def my_last_decisions(data: Path) -> list[dict]:
    """The curator's decisions that undo can take back, newest first (dicts with "id", "clip", "decision"; from
    the decision log: a reload keeps them)."""
    return undoable_decisions(data, st.session_state.get(CURATOR_KEY, ""), UNDO_DEPTH)


def undo(data: Path, run_id_: str, decision_id: int | None = None) -> None:
    """Button callback: take back the curator's decision ``decision_id`` (default: the last one) and show its
    clip again; refused, with the reason, when someone decided the clip since."""
    ss = st.session_state
    entry = next((m for m in my_last_decisions(data) if decision_id in (None, m["id"])), None)
    if entry is None:
        st.toast("Nothing of yours to undo.", icon=":material/info:")
        return
    try:
        with review_store(data) as store:
            store.undo(entry["id"], curator=ss.get(CURATOR_KEY, "").strip() or "?", run_id=run_id_)
    except ReviewConflict as err:
        flash(f"Not undone: {md_literal(err.theirs.get('curator', '?'))} decided "
              f"{md_literal(entry['clip'])} since.", "warning")
        return
    except (UserError, ValueError) as err:
        flash(f"Not undone: {md_literal(err)}", "error")
        return
    go_to(entry["clip"])
    st.toast(f"Undone: {STATUS_TEXT.get(entry['decision'], entry['decision'])} of {md_literal(entry['clip'])}",
             icon=":material/undo:")


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
                        expected_last_id=conflict["theirs"].get("id"), note=conflict.get("note", ""),
                        mismatch=conflict.get("mismatch"))


def jump_to_queue_row() -> None:
    """Queue table selection callback: show the selected clip."""
    state = st.session_state.get(QUEUE_TABLE_KEY)
    queue = st.session_state.get(_REVIEW_QUEUE_KEY) or []
    rows = list(state.selection.rows) if state is not None else []
    if rows and rows[0] < len(queue):
        go_to(queue[rows[0]])


def batch_buttons(data: Path, run_id_: str, points: pd.DataFrame, where: str, key: str) -> None:
    """One button per batch action (BATCH_ACTIONS) over the clips of ``points`` (``where`` names them, e.g.
    "selected on the maps"); each asks for a confirmation that states the count, then records one decision per
    clip. Disabled without a curator name."""
    curator = st.session_state.get(CURATOR_KEY, "").strip()
    with st.container(horizontal=True, vertical_alignment="center"):
        for decision, label in (("accept", "Accept all suggestions"), ("keep", "Mark all as checked"),
                                ("exclude", "Exclude all")):
            rows = batch_rows(points, decision)
            if st.button(f"{label} ({len(rows):,})", key=f"{key}_{decision}", disabled=not curator or rows.empty,
                         help=f"{BATCH_ACTIONS[decision].capitalize()} for every clip {where}, after a "
                              "confirmation; one decision per clip in the review log"):
                _confirm_batch(data, run_id_, rows, decision, where)


@st.dialog("Record decisions for many clips")
def _confirm_batch(data: Path, run_id_: str, rows: pd.DataFrame, decision: str, where: str) -> None:
    n = len(rows)
    st.markdown(f"**{BATCH_ACTIONS[decision].capitalize()}** for **{plural(n, 'clip')}** {where}?")
    if decision == "accept":
        st.caption("Only clips whose suggested label differs from the given one are counted.")
    note = st.text_input("Note for all of them", placeholder="optional")
    c1, c2 = st.columns(2)
    if c1.button(f"Record {plural(n, 'decision')}", type="primary", width="stretch"):
        items = batch_decisions(rows, decision, curator=st.session_state.get(CURATOR_KEY, "").strip(),
                                run_id=run_id_, note=note.strip())
        try:
            with review_store(data) as store:
                store.record_many(items)
        except (UserError, ValueError) as err:
            flash(f"Nothing recorded: {md_literal(err)}", "error")
        else:
            st.toast(f"Recorded {plural(n, 'decision')} ({STATUS_TEXT[decision]}).", icon=":material/done_all:")
        st.rerun()
    if c2.button("Cancel", width="stretch"):
        st.rerun()
