"""User text made safe for the place the app shows it, and durations in words (pure; no Streamlit).

User data (labels, file names, error messages that name them) is never rendered as HTML: in Markdown it goes
through :func:`md_literal`, in Plotly hover labels and legends through :func:`escape_hover`; elsewhere the app
shows it with ``st.text`` / ``st.dataframe``, which render text as text.
"""

from __future__ import annotations

import html
import re

import pandas as pd


def md_literal(text: object) -> str:
    """User text as a Markdown inline-code span: shown literally (no HTML, emphasis, links, emoji or maths)."""
    s = re.sub(r"[\r\n]+", " ", str(text))
    if not s:
        return "` `"
    fence = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or s.startswith(" ") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def escape_hover(text: object) -> str:
    """User text for a Plotly hover label or legend: Plotly interprets a subset of HTML tags there, so ``&``,
    ``<`` and ``>`` become entities (shown literally)."""
    return html.escape(str(text), quote=False)


def error_text(err: BaseException | str) -> str:
    """An error in words for a person: an OSError as "<file>: <reason>" (never "[Errno 17] File exists: '...'"),
    any other error as its message (its type's name when it has none)."""
    if isinstance(err, str):
        return err
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror.lower() if err.strerror[:1].isupper() else err.strerror}"
    return str(err) or type(err).__name__


def plural(n: int, word: str) -> str:
    """1, "clip" -> "1 clip"; 1200, "clip" -> "1,200 clips" (English words that take an s)."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def decoded_text(checked: int, decoded_now: int) -> str:
    """How a check of ``checked`` clips went, ``decoded_now`` of them decoded and the rest read from the cache:
    (12, 12) -> "all 12 clips decoded"; (12, 0) -> "all 12 clips from the cache, none decoded";
    (12, 3) -> "3 clips decoded, 9 from the cache"."""
    from_cache = max(checked - decoded_now, 0)
    if not from_cache:
        return f"all {plural(decoded_now, 'clip')} decoded"
    if not decoded_now:
        return f"all {plural(from_cache, 'clip')} from the cache, none decoded"
    return f"{plural(decoded_now, 'clip')} decoded, {from_cache:,} from the cache"


def format_seconds(seconds: float | None) -> str:
    """85 -> "1 min 25 s"; None or NaN -> "–"."""
    if seconds is None or pd.isna(seconds):
        return "–"
    s = int(round(float(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
