"""Unit tests of auditor/text.py: user text made safe for Markdown and Plotly, durations in words."""

from __future__ import annotations

import numpy as np

from auditor import text


def test_md_literal_survives_backticks_newlines_and_html():
    assert text.md_literal("<b>x</b>") == "`<b>x</b>`"
    assert text.md_literal("a`b") == "``a`b``"
    assert text.md_literal("`x") == "`` `x ``"
    assert text.md_literal("a\nb") == "`a b`"
    assert text.md_literal("") == "` `"


def test_escape_hover_turns_tags_into_entities():
    assert text.escape_hover("a & <i>b</i>") == "a &amp; &lt;i&gt;b&lt;/i&gt;"


def test_format_seconds():
    assert text.format_seconds(None) == "–"
    assert text.format_seconds(np.nan) == "–"
    assert text.format_seconds(42) == "42 s"
    assert text.format_seconds(85) == "1 min 25 s"
    assert text.format_seconds(3725) == "1 h 02 min"


def test_error_text_says_an_os_error_in_words():
    from auditor.text import error_text

    err = FileExistsError(17, "File exists", "/tmp/out")
    assert error_text(err) == "/tmp/out: file exists" and "Errno" not in error_text(err)
    assert error_text(ValueError("bad value")) == "bad value" and error_text(KeyError()) == "KeyError"


def test_decoded_text_counts_what_came_from_the_cache():
    """Issue 24 bug 8: "240 decoded, the rest from the cache" when all 240 came from the cache."""
    assert text.decoded_text(240, 240) == "all 240 clips decoded"
    assert text.decoded_text(240, 0) == "all 240 clips from the cache, none decoded"
    assert text.decoded_text(1200, 1) == "1 clip decoded, 1,199 from the cache"
