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
