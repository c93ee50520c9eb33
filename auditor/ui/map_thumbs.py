"""The Explore maps' hover thumbnails: a point under the mouse shows its clip's frame in a small card beside the
cursor (beside Plotly's own hover label).

Only HOVER_THUMBS clips get one (auditor.explore_maps.thumbnail_clips: the selection, then the most suspicious),
so that a map of 20,000 points does not carry 20,000 images. The frames are the playback cache's thumbnails
(auditor.playback), served by Streamlit as images in a hidden container; those not made yet are made in the
background, and while some were missing when the page was drawn, the container is drawn again every
POLL_SECONDS (until the page is drawn again with none missing; a clip whose file has no picture is tried again
then). In the browser,
MAP_SCRIPT (constant HTML and JavaScript: no user text) finds a point's clip by its hover text (the escaped clip
name, column 0 of explore_maps.hover_customdata) among the container's names.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import streamlit as st

from auditor.explore_maps import thumbnail_clips
from auditor.review_queue import clip_path, clip_paths
from auditor.text import escape_hover
from auditor.ui import loaders

HOVER_THUMBS = 300  # clips whose frame a hover shows
POLL_SECONDS = 2.0  # while some of them are still being made
THUMBS_KEY = "explore_thumbs"  # the hidden container of the frames and their clips' names
CARD_PX = 160  # the card's image width
MAP_SCRIPT = f"""<style>
.st-key-{THUMBS_KEY} {{ display: none; }}
.av-map-thumb {{ position: fixed; z-index: 1000000; pointer-events: none; display: none; background: #fff;
  border: 1px solid rgba(49, 51, 63, 0.25); border-radius: 6px; padding: 3px;
  box-shadow: 0 2px 10px rgba(0, 0, 0, 0.2); }}
.av-map-thumb img {{ display: block; width: {CARD_PX}px; border-radius: 4px; }}
</style>
<script>
(() => {{
  if (window.__avAuditorMapThumbs) return;
  window.__avAuditorMapThumbs = true;
  const card = document.createElement("div");
  card.className = "av-map-thumb";
  const image = document.createElement("img");
  card.appendChild(image);
  document.body.appendChild(card);
  let mouse = {{ x: 0, y: 0 }};
  document.addEventListener("mousemove", (e) => {{ mouse = {{ x: e.clientX, y: e.clientY }}; }}, true);
  const frameOf = (clip) => {{
    const box = document.querySelector(".st-key-{THUMBS_KEY}");
    const names = box && box.querySelector("[data-clips]");
    if (!names) return null;
    const i = JSON.parse(names.dataset.clips).indexOf(clip);
    const frames = box.querySelectorAll("img");
    return i >= 0 && i < frames.length ? frames[i].src : null;
  }};
  const hide = () => {{ card.style.display = "none"; }};
  // The card goes on the side of the cursor away from Plotly's label (which Plotly puts left or right).
  const place = (plot) => {{
    const width = card.offsetWidth, height = card.offsetHeight;
    const label = plot.querySelector(".hoverlayer .hovertext");
    const box = label ? label.getBoundingClientRect() : null;
    const labelLeft = box && box.width > 0 && box.left + box.width / 2 < mouse.x;
    const area = plot.getBoundingClientRect();  // the card stays over its map (not under the sidebar)
    const fits = (x) => x >= area.left && x + width <= area.right;
    const x = labelLeft ? mouse.x + 16 : mouse.x - width - 16;
    let top = mouse.y - height / 2, left = x;
    if (!fits(x)) {{  // no room beside the cursor on that side: above or below the label instead
      left = Math.max(area.left, Math.min(area.right - width, mouse.x - width / 2));
      const labelBox = box && box.width > 0 ? box : {{ top: mouse.y, bottom: mouse.y }};
      top = labelBox.bottom + 8 + height <= window.innerHeight ? labelBox.bottom + 8 : labelBox.top - height - 8;
    }}
    card.style.left = left + "px";
    card.style.top = Math.max(4, Math.min(window.innerHeight - height - 4, top)) + "px";
  }};
  const show = (plot, ev) => {{
    const point = ev && ev.points && ev.points[0];
    const src = point && point.customdata ? frameOf(point.customdata[0]) : null;
    if (!src) {{ hide(); return; }}
    image.src = src;
    card.style.display = "block";
    requestAnimationFrame(() => place(plot));
  }};
  setInterval(() => {{
    document.querySelectorAll(".js-plotly-plot").forEach((plot) => {{
      if (!plot.on || plot.__avThumbLayout === plot._fullLayout) return;
      if (plot.__avThumbShow && plot.removeListener) {{
        plot.removeListener("plotly_hover", plot.__avThumbShow);
        plot.removeListener("plotly_unhover", hide);
      }}
      plot.__avThumbLayout = plot._fullLayout;
      plot.__avThumbShow = (ev) => show(plot, ev);
      plot.on("plotly_hover", plot.__avThumbShow);
      plot.on("plotly_unhover", hide);
    }});
    if (!document.querySelector(".st-key-{THUMBS_KEY}")) hide();
  }}, 400);
}})();
</script>"""


def show(data: Path, points: pd.DataFrame, selected: list[str] | None) -> None:
    """Give the maps of ``points`` (explore_maps.points_table's rows) their hover frames: HOVER_THUMBS clips,
    ``selected`` first; frames not made yet are made in the background and appear as they come."""
    clips = thumbnail_clips(points, selected, HOVER_THUMBS)
    st.html(MAP_SCRIPT, unsafe_allow_javascript=True)
    missing = [path for path in clip_paths(data, clips) if loaders.cached_thumbnail(data, path) is None]
    if missing:
        loaders.prefetch_thumbnails(data, missing)
    st.fragment(_frames, run_every=POLL_SECONDS if missing else None)(data, clips)


def _frames(data: Path, clips: list[str]) -> None:
    """The hidden container: the names of the clips whose frame is made (escaped as their hover text is) and
    the frames in the same order."""
    ready = [(c, f) for c in clips if (f := _frame(data, c)) is not None]
    with st.container(key=THUMBS_KEY):
        names = json.dumps([escape_hover(c) for c, _ in ready])
        st.html(f'<div data-clips="{html.escape(names, quote=True)}"></div>')
        if ready:
            st.image([f for _, f in ready])


def _frame(data: Path, clip: str) -> bytes | None:
    try:
        return loaders.cached_thumbnail(data, clip_path(data, clip))
    except ValueError:  # a clip outside the data set: no frame
        return None
