"""Display helpers every page uses: error boxes, one-shot (flash) messages, and read-only clip tables.

User text reaches the screen literally: error texts as :func:`auditor.text.md_literal` spans, table cells as
text (``st.dataframe``).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from auditor.text import error_text, md_literal

FLASH_KEY = "_flash"  # (kind, message) to show once at the top of the next page run
_FLASH_BOXES = {"success": st.success, "error": st.error, "info": st.info, "warning": st.warning}

# Clip tables (Explore selection, Review queue, neighbours): columns and how they are shown.
CLIP_TABLE = ["clip", "given_label", "suggested_label", "kind_text", "label_noise_score", "mismatch_score",
              "review_status"]
TABLE_COLUMNS = {
    "clip": st.column_config.TextColumn("clip"),
    "given_label": st.column_config.TextColumn("given label"),
    "suggested_label": st.column_config.TextColumn("suggested"),
    "kind_text": st.column_config.TextColumn("flag"),
    "label_noise_score": st.column_config.NumberColumn("wrong-label score", format="%.2f"),
    "mismatch_score": st.column_config.NumberColumn("mismatch score", format="%.2f"),
    "similarity": st.column_config.NumberColumn("similarity", format="%.2f"),
    "review_status": st.column_config.TextColumn("status"),
}


def show_error(headline: str, err: BaseException | str) -> None:
    """An error box: ``headline`` (our words) plus the error text, which may name user files, shown literally."""
    st.error(f"{headline}  \n{md_literal(error_text(err))}", icon=":material/error:")


def flash(message: str, kind: str = "success") -> None:
    """Show ``message`` (Markdown, user text already escaped) once, at the top of the next page run; ``kind`` is
    a key of _FLASH_BOXES."""
    st.session_state[FLASH_KEY] = (kind, message)


def show_flash() -> None:
    """The message :func:`flash` left, if any (then it is gone)."""
    kind, message = st.session_state.pop(FLASH_KEY, (None, None))
    if message:
        _FLASH_BOXES[kind](message)


def show_table(df: pd.DataFrame, **kwargs) -> None:
    """A read-only table without the index (text cells are rendered as text)."""
    st.dataframe(df, hide_index=True, width="stretch", **kwargs)
