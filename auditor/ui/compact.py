"""The Review page's compact layout: constant CSS that lets the clip and every decision control fit one
1400×900 screen (a short top padding and title, the clip's heading smaller, the video at most REVIEW_VIDEO_PX
tall, letterboxed). It applies while the Review page is shown and goes with it (Streamlit removes the page's
elements on navigation). Constant text: no user text reaches it."""

from __future__ import annotations

import streamlit as st

MEDIA_KEY = "review_media"  # the container of the clip's video, sound, spectrogram and frames
REVIEW_VIDEO_PX = 270  # the video's greatest height on screen
REVIEW_CSS = f"""<style>
[data-testid="stMainBlockContainer"] {{ padding-top: 2.75rem; padding-bottom: 2rem; }}
[data-testid="stMainBlockContainer"] h1 {{ font-size: 1.75rem; padding: 0 0 0.25rem 0; }}
[data-testid="stMainBlockContainer"] h3 {{ font-size: 1.25rem; padding: 0; }}
.st-key-{MEDIA_KEY} video {{ max-height: {REVIEW_VIDEO_PX}px; background: #000; }}
</style>"""


def compact_review_layout() -> None:
    """Apply REVIEW_CSS to the page being drawn (call once per run of the Review page)."""
    st.html(REVIEW_CSS)
