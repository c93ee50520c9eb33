"""Hostile files: a pickled checkpoint through the command line, HTML/JS in labels and file names on the Data and
Export pages, unsafe HTML anywhere in the app code, the app's bind address, and clip paths that lead outside
the data set folder (the Review page and the function it opens clips with).

Already covered elsewhere: load_checkpoint refusing a pickled payload (tests/test_train.py) and hostile labels
on the Review and Explore pages in a real browser (tests/test_browser.py).
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from auditor import review_queue
from auditor.reviews import ReviewStore
from tests.conftest import REPO, run_cli
from tests.fakerun import make_fake_run
from tests.media import write_clip

APP = REPO / "auditor" / "app.py"
TIMEOUT = 60
# Labels and file names a scraper might bring in (no '/' and no ',': they are file names and CSV cells).
HOSTILE = ("<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "[click](javascript:alert(3))",
           "<svg onload=alert(4)>", "<iframe src=javascript:alert(5)>")
# Elements whose content the browser shows as text whatever it holds (cells of a grid, values of inputs).
TEXT_ELEMENTS = {"dataframe", "text", "code", "text_input", "selectbox", "multiselect", "radio", "json"}
# Markdown-rendering elements: user text is allowed there only inside a code span (text.md_literal).
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)


# ------------------------------------------------------------------------------------------ checkpoints
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["pickled_payload", "torn_file"])
def test_cli_score_refuses_a_hostile_checkpoint(tmp_path, kind):
    marker, run, out = tmp_path / "pwned", tmp_path / "run", tmp_path / "out"
    run.mkdir()
    (tmp_path / "data").mkdir()
    if kind == "pickled_payload":
        torch.save({"format": 1, "model": _Payload(marker)}, run / "checkpoint.pt")
    else:  # a download that stopped half-way
        torch.save({"format": 1, "model": {"w": torch.zeros(1000)}}, run / "checkpoint.pt")
        data = (run / "checkpoint.pt").read_bytes()
        (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    proc = run_cli("score", "--run", str(run), "--data", str(tmp_path / "data"), "--out", str(out), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {run / 'checkpoint.pt'}: refused to load the checkpoint")
    assert not marker.exists()  # the payload never ran
    assert not out.exists()  # nothing was written


def test_refusal_does_not_advise_unsafe_loading(tmp_path):
    from auditor.errors import UserError
    from auditor.model.checkpoint import load_checkpoint

    torch.save({"format": 1, "model": _Payload(tmp_path / "pwned")}, tmp_path / "checkpoint.pt")
    with pytest.raises(UserError) as err:
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert "weights_only" not in str(err.value), str(err.value)


# ------------------------------------------------------------------------------ rendering user text
def _walk(node) -> Iterator:
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def _strings(message) -> Iterator[str]:
    """Every string field of a protobuf message, recursively."""
    for _field, value in message.ListFields():
        repeated = not isinstance(value, str | bytes) and not hasattr(value, "ListFields") \
            and hasattr(value, "__iter__")
        values = value if repeated else [value]
        for v in values:
            if isinstance(v, str):
                yield v
            elif hasattr(v, "ListFields"):
                yield from _strings(v)


def _only_in_code_spans(text: str, needle: str) -> bool:
    spans = [m.span(2) for m in _CODE_SPAN.finditer(text)]
    starts = [m.start() for m in re.finditer(re.escape(needle), text)]
    return all(any(a <= s and s + len(needle) <= b for a, b in spans) for s in starts)


def assert_user_text_is_text(at: AppTest, needles=HOSTILE) -> set[str]:
    """Every element showing one of ``needles`` shows it as text: a grid cell or input value, or inside a code
    span of Markdown that does not allow HTML; never raw in a chart spec or HTML. Returns the needles seen."""
    seen: set[str] = set()
    for el in _walk(at._tree):
        proto = getattr(el, "proto", None)
        if proto is None or not hasattr(proto, "ListFields"):
            continue
        kind = getattr(el, "type", type(el).__name__)
        if kind == "plotly_chart":  # Plotly reads HTML tags (not Markdown) in labels: they must arrive escaped
            spec = json.dumps(json.loads(proto.spec), ensure_ascii=False)  # undo JSON's \u003c escapes
            raw = [n for n in needles if "<" in n and n in spec]
            assert not raw, f"{raw} unescaped in a Plotly chart"
            seen.update(n for n in needles if html.escape(n, quote=False) in spec)
            continue
        present = [n for n in needles if n in str(proto)]
        if not present:
            continue
        seen.update(present)
        assert not getattr(proto, "allow_html", False), (kind, present)
        if kind in TEXT_ELEMENTS:
            continue
        assert kind not in ("html", "iframe"), f"{present} in a {kind} element"
        for text in _strings(proto):
            for needle in present:
                assert _only_in_code_spans(text, needle), f"{needle!r} outside a code span in {kind}: {text!r}"
    return seen


def _app(data: Path, curator: str = "") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["curator"] = curator
    return at.run()


def _goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture()
def hostile_data(tmp_path, monkeypatch) -> Path:
    """Labels and file names made of HTML/JS and Markdown links: a good clip, a broken one, a missing one."""
    data = tmp_path / "data"
    write_clip(data / "clips" / f"{HOSTILE[1]}.mp4", seconds=1.0)
    write_clip(data / "clips" / "plain.mp4", seconds=1.0, tone_hz=600.0)
    (data / "clips" / f"{HOSTILE[3]}.mp4").write_text("not a video")
    rows = [(f"clips/{HOSTILE[1]}.mp4", HOSTILE[0]), ("clips/plain.mp4", HOSTILE[2]),
            (f"clips/{HOSTILE[3]}.mp4", HOSTILE[0]), (f"clips/{HOSTILE[4]}.mp4", HOSTILE[2])]
    pd.DataFrame(rows, columns=["clip", "label"]).to_csv(data / "labels.csv", index=False)
    monkeypatch.setenv("AUDITOR_DATA", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return data


def test_data_page_shows_hostile_labels_and_file_names_as_text(hostile_data):
    at = _goto(_app(hostile_data), "data")
    [button] = [b for b in at.button if b.label == "Decode all clips"]
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    seen = assert_user_text_is_text(at)
    # the decode problem (broken file) and the label problem (missing file) name the hostile files
    assert {HOSTILE[3], HOSTILE[4]} <= seen, seen


def test_export_page_shows_hostile_labels_and_names_as_text(hostile_data, tmp_path):
    with ReviewStore(hostile_data) as store:
        store.record(f"clips/{HOSTILE[1]}.mp4", "relabel", given_label=HOSTILE[0], final_label=HOSTILE[4],
                     curator=HOSTILE[1])
        store.record("clips/plain.mp4", "exclude", given_label=HOSTILE[2], curator=HOSTILE[3])
    at = _goto(_app(hostile_data, curator=HOSTILE[3]), "export")
    out = tmp_path / f"out {HOSTILE[3]}"
    at.text_input(key="export_dir").set_value(str(out)).run()
    [button] = [b for b in at.button if b.label == "Write files"]
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Wrote" in s.value for s in at.success)
    seen = assert_user_text_is_text(at)
    assert {HOSTILE[0], HOSTILE[4]} <= seen, seen  # the class summary and the success message were checked
    labels = pd.read_csv(out / "labels.csv", dtype=str, keep_default_na=False).set_index("clip")
    assert labels.loc[f"clips/{HOSTILE[1]}.mp4", "label"] == HOSTILE[4]  # stored and exported verbatim


def test_no_unsafe_html_in_the_app_code():
    """User text reaches the page only through text elements, md_literal or, in one reviewed place, an HTML
    attribute escaped with html.escape(quote=True): no other page or library module uses raw HTML
    (unsafe_allow_html, st.html, components)."""
    # (path, line) of a reviewed use (by their text, so that edits above them do not move them out of the list):
    # constant, non-user HTML (the Review page's key script, its compact layout's stylesheet, the triage grid's
    # script and sound button, the Explore maps' hover script) and the hover frames' clip names, JSON escaped
    # with html.escape(quote=True) inside a double-quoted attribute (no character of a name can end it).
    allowed = {("auditor/ui/review.py", "st.html(KEYS_SCRIPT, unsafe_allow_javascript=True)"),
               ("auditor/ui/compact.py", "st.html(REVIEW_CSS)"),
               ("auditor/ui/grid.py", "st.html(GRID_SCRIPT, unsafe_allow_javascript=True)"),
               ("auditor/ui/grid.py", 'st.html(SOUND_HTML, width="content")'),
               ("auditor/ui/map_thumbs.py", "st.html(MAP_SCRIPT, unsafe_allow_javascript=True)"),
               ("auditor/ui/map_thumbs.py", "st.html(f'<div data-clips=\"{html.escape(names, quote=True)}\"></div>')")}
    pattern = re.compile(r"unsafe_allow_html|st\.html\(|components\.v1|components\.html|\.markdown\([^)]*html")
    offenders = []
    for path in sorted([*(REPO / "auditor").rglob("*.py"), *(REPO / "pages").rglob("*.py")]):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            name = str(path.relative_to(REPO))
            if pattern.search(line) and (name, line.strip()) not in allowed:
                offenders.append(f"{name}:{n}: {line.strip()}")
    assert offenders == []


def test_app_binds_to_localhost_by_default():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    # and Streamlit, started from the repository (as `make app` does), reads it
    code = ("import streamlit.config as c; c.get_config_options(force_reparse=True); "
            "print(c.get_option('server.address'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "localhost", proc.stderr[-2000:]


# ------------------------------------------------------------------------- paths out of the data set
@pytest.fixture()
def jail(tmp_path) -> tuple[Path, Path]:
    """(data set folder, a folder beside it holding a 'secret' video)."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    write_clip(data / "clips" / "ok.mp4", seconds=1.0)
    write_clip(outside / "secret.mp4", seconds=1.0)
    (data / "clips" / "out.mp4").symlink_to(outside / "secret.mp4")
    (data / "clips" / "outdir").symlink_to(outside, target_is_directory=True)
    (data / "clips" / "alias.mp4").symlink_to(data / "clips" / "ok.mp4")
    return data, outside


@pytest.mark.parametrize("clip", ["../../etc/passwd", "../outside/secret.mp4", "/etc/passwd", "{outside}/secret.mp4",
                                  "clips/out.mp4", "clips/outdir/secret.mp4", "clips/../../outside/secret.mp4",
                                  "clips/ok.mp4\x00.txt"],
                         ids=["dotdot_etc_passwd", "dotdot_sibling", "absolute_etc_passwd", "absolute_sibling",
                              "symlinked_file_out", "symlinked_folder_out", "dotdot_inside_path", "nul_byte"])
def test_clip_paths_outside_the_data_set_are_refused(jail, clip):
    data, outside = jail
    with pytest.raises(ValueError, match="outside the data set folder|null byte"):
        review_queue.clip_path(data, clip.format(outside=outside))


def test_clip_paths_inside_the_data_set_open(jail):
    data, _ = jail
    assert review_queue.clip_path(data, "clips/ok.mp4") == (data / "clips" / "ok.mp4").resolve()
    assert review_queue.clip_path(data, "clips/alias.mp4") == (data / "clips" / "ok.mp4").resolve()  # link inside


def test_review_page_refuses_a_flags_row_pointing_outside(tmp_path, monkeypatch):
    """A run folder someone sent: its top flagged clip is ../../etc/passwd. The Review page says so and shows
    no media; nothing is read from outside the data set."""
    data = tmp_path / "data"
    run = make_fake_run(data / ".auditor" / "runs" / "default", data_dir=data, n_clips=8, n_classes=2, seed=3,
                        with_files=True)
    flags = pd.read_csv(run / "flags.csv", dtype=str, keep_default_na=False)
    top = flags["label_noise_score"].astype(float).idxmax()
    flags.loc[top, "clip"] = "../../../../../../etc/passwd"
    flags.to_csv(run / "flags.csv", index=False)
    monkeypatch.setenv("AUDITOR_DATA", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    at = _goto(_app(data, curator="me"), "review")
    assert at.session_state["review_current"] == "../../../../../../etc/passwd"
    assert any("points outside the data set folder" in e.value for e in at.error), [e.value for e in at.error]
    kinds = {getattr(el, "type", "") for el in _walk(at._tree)}
    assert not kinds & {"video", "audio", "imgs", "image"}, kinds


def test_run_selection_cannot_leave_the_runs_folder(tmp_path, monkeypatch):
    data = tmp_path / "data"
    make_fake_run(data / ".auditor" / "runs" / "default", data_dir=data, n_clips=8, n_classes=2, seed=1)
    make_fake_run(tmp_path / "elsewhere", data_dir=data, n_clips=8, n_classes=2, seed=2)
    monkeypatch.setenv("AUDITOR_DATA", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["run_name"] = "../../../elsewhere"  # as a crafted session or a stale URL would set it
    at.run()
    assert at.session_state["run_name"] == "default"
