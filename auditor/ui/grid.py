"""The Review page's triage grid: the queue's clips as thumbnails with their verdicts, PER_PAGE at a time; a
checkbox per clip, "select this page" and "clear", the queue's batch actions on the ticked clips, and "Open" to
decide one clip in the one-clip view.

In the browser (GRID_SCRIPT, constant HTML and JavaScript: no user text): the arrow keys move a focus ring between
the tiles, Space ticks the tile in the ring and Enter opens it; a tile under the mouse plays its clip muted in
place of the thumbnail (paused when the mouse leaves), and its ▶ control plays it with its sound. A clip that
needs converting for the browser has no preview until its copy is made (in the background).

The ticks live in the session (one key per clip, PICK_PREFIX + clip); only the queue's clips count, so a clip
that left the queue (decided, filtered out) is not acted on. The view and the page are in the address bar
(?view=grid&gpage=N): a reload keeps them."""

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
PAGE_PARAM = "gpage"
PICK_PREFIX = "grid_pick::"
TILE_PREFIX = "grid_tile_"  # + the tile's place on the page (0..PER_PAGE-1): the tile's container key
PER_PAGE = 24
COLUMNS = 6
SOUND_HTML = ('<button type="button" class="av-grid-sound" title="Play the clip with its sound" '
              'aria-label="Play with sound">&#9654;</button>')
_ELEMENT = '[data-testid="stElementContainer"]'  # the box Streamlit puts around each element of a tile
# The focus ring is drawn from an attribute of <body> (data-av-grid-focus="i"), which Streamlit's reruns leave
# alone, so that it stays on its tile while the page is drawn again (after Space ticked a clip).
GRID_CSS = "\n".join(
    [f'body[data-av-grid-focus="{i}"] .st-key-{TILE_PREFIX}{i} {{ outline: 3px solid #ff4b4b; outline-offset: 2px; }}'
     for i in range(PER_PAGE)]
    + [f'[class*="st-key-{TILE_PREFIX}"] {_ELEMENT}:has([data-testid="stVideo"]) {{ display: none; }}',
       f'[class*="st-key-{TILE_PREFIX}"]:hover {_ELEMENT}:has([data-testid="stVideo"]) {{ display: block; }}',
       f'[class*="st-key-{TILE_PREFIX}"]:hover:has([data-testid="stVideo"]) {_ELEMENT}:has([data-testid="stImage"]) '
       "{ display: none; }",
       f'[class*="st-key-{TILE_PREFIX}"] {{ padding: 0.6rem; }}',
       f'[class*="st-key-{TILE_PREFIX}"] [data-testid="stCheckbox"] code {{ font-size: 0.65rem; }}',
       ".av-grid-sound { border: 1px solid rgba(49, 51, 63, 0.2); border-radius: 0.5rem; background: white; "
       "padding: 0.25rem 0.75rem; cursor: pointer; font: inherit; line-height: 1.6; }",
       ".av-grid-sound:hover { border-color: #ff4b4b; color: #ff4b4b; }"])
GRID_SCRIPT = f"""<style>
{GRID_CSS}
</style>
<script>
(() => {{
  if (window.__avAuditorGrid) return;
  window.__avAuditorGrid = true;
  const TILE = '[class*="st-key-{TILE_PREFIX}"]';
  const tileAt = (i) => document.querySelector(".st-key-{TILE_PREFIX}" + i);
  const ring = () => {{ const i = parseInt(document.body.dataset.avGridFocus, 10); return isNaN(i) ? -1 : i; }};
  const moves = {{ ArrowLeft: -1, ArrowRight: 1, ArrowUp: -{COLUMNS}, ArrowDown: {COLUMNS} }};
  window.addEventListener("keydown", (e) => {{
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const n = document.querySelectorAll(TILE).length;
    if (!n || document.querySelector('[role="dialog"]')) return;
    const t = e.target || document.body;
    const field = t.tagName === "INPUT" && !["checkbox", "radio"].includes(t.type);
    if (field || t.isContentEditable || ["TEXTAREA", "SELECT"].includes(t.tagName)) return;
    const i = ring();
    if (e.key in moves) {{
      e.preventDefault();
      e.stopImmediatePropagation();
      if (t !== document.body && t.blur) t.blur();
      const next = i < 0 || i >= n ? 0 : Math.min(n - 1, Math.max(0, i + moves[e.key]));
      document.body.dataset.avGridFocus = String(next);
      tileAt(next).scrollIntoView({{ block: "nearest" }});
      return;
    }}
    const tile = i >= 0 && i < n ? tileAt(i) : null;
    if (!tile || (e.key !== " " && e.key !== "Enter") || ["INPUT", "BUTTON"].includes(t.tagName)) return;
    const control = e.key === " " ? tile.querySelector('[data-testid="stCheckbox"] input')
                                  : tile.querySelector('[data-testid="stButton"] button');
    if (!control) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    control.click();
  }}, true);
  const preview = (e, play) => {{
    if (!e.target.matches || !e.target.matches(TILE)) return;
    const video = e.target.querySelector("video");
    if (!video) return;
    video.muted = true;
    if (play) {{ video.loop = true; video.play().catch(() => {{}}); }} else video.pause();
  }};
  document.addEventListener("mouseenter", (e) => preview(e, true), true);
  document.addEventListener("mouseleave", (e) => preview(e, false), true);
  document.addEventListener("click", (e) => {{
    const button = e.target.closest && e.target.closest(".av-grid-sound");
    const tile = button && button.closest(TILE);
    const video = tile && tile.querySelector("video");
    if (!video) return;
    document.querySelectorAll(TILE + " video").forEach((v) => {{ if (v !== video) v.pause(); }});
    video.muted = false;
    video.currentTime = 0;
    video.play().catch(() => {{}});
  }}, true);
}})();
</script>"""


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
    state.bind_to_url(PAGE_KEY, PAGE_PARAM, 1, parse=int)
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
    state.write_url()
    review.batch_buttons(data, run_id, chosen, "selected in the grid", "grid_batch")
    st.caption("**Keys** &nbsp; `←` `→` `↑` `↓` move between the clips · `Space` ticks one · `Enter` opens it · "
               "the mouse over a clip plays it muted, its ▶ plays it with its sound")
    st.html(GRID_SCRIPT, unsafe_allow_javascript=True)
    rows = shown.to_dict("records")
    for start in range(0, len(rows), COLUMNS):
        for place, (col, row) in enumerate(zip(st.columns(COLUMNS), rows[start:start + COLUMNS], strict=False),
                                           start):
            with col, st.container(border=True, gap="small", key=f"{TILE_PREFIX}{place}"):
                _tile(data, row)


def _tile(data: Path, row: dict) -> None:
    try:
        path = clip_path(data, row["clip"])
    except ValueError:
        path = None
    image = loaders.thumbnail(data, path) if path is not None else None
    video = loaders.preview_video(data, path) if path is not None else None
    if image is not None:
        st.image(image, width="stretch")
    if video is not None:
        st.video(str(video[0]), format=video[1], muted=True, loop=True)
    st.checkbox(md_literal(row["clip"].rsplit("/", 1)[-1]), key=PICK_PREFIX + row["clip"])
    suggested = row.get("suggested_label") or "–"
    st.caption(f"{KIND_TEXT.get(row['flag_kind'], row['flag_kind'])} · {md_literal(row['given_label'])} → "
               f"{md_literal(suggested)} · {row['review_status']}")
    with st.container(horizontal=True, gap="small", vertical_alignment="center"):
        st.button("Open", key=f"grid_open_{row['clip']}", on_click=_open, args=(row["clip"],),
                  width="stretch", help="Decide it in the one-clip view")
        if video is not None:
            st.html(SOUND_HTML, width="content")
