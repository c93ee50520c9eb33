"""Browser benchmark of the curator's first minute and of the review loop (a script, not a test).

    python -m tests.bench_review_browser [--decisions 20] [--out test-output/review_speed.txt]
        [--repo DIR] [--data DIR] [--mode keys|click]

With the defaults it starts ``streamlit run auditor/app.py -- --data sample_data`` as ``make app`` does, with
empty config, data and cache folders (a fresh install), and measures in headless Chromium:

* first minute: from opening the app's first page to a flagged clip playing in Review (the bundled sample is
  scored by the shipped model in the background on first use, then reused);
* review loop: ``--decisions`` decisions by keyboard (``--mode keys``: a, k, x, s in turn) or by clicking
  "Accept suggestion" (``--mode click``), each from the key press or click to (1) the next clip's name on the
  page, (2) its video ready to play and the page idle.

``--repo`` runs another checkout's app (e.g. an older commit, for a before/after comparison; it needs a scored
run in ``--data``). Numbers are printed and written to ``--out``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 900}
IDLE_JS = ("() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
           " const s = a && a.getAttribute('data-test-script-state');"
           " return s && s !== 'running' && s !== 'initial' && !document.querySelector('[data-testid=\"stSkeleton\"]'); }")
# The clip name heading changed and the page's video can play.
NEXT_CLIP_JS = "(h) => { const e = document.querySelector('h3'); return e && e.innerText !== h; }"
VIDEO_READY_JS = ("(src) => { const v = document.querySelector('video');"
                  " return v && v.currentSrc && v.currentSrc !== src && v.readyState >= 2; }")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start_app(repo: Path, data: Path, home: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = os.environ | {"XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "share"),
                        "XDG_CACHE_HOME": str(home / "cache"), "PYTHONUNBUFFERED": "1"}
    env.pop("AUDITOR_DATA", None)
    env.pop("AUDITOR_WORKDIR", None)
    log = open(home / "streamlit.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "auditor/app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "localhost", "--browser.gatherUsageStats", "false",
         "--", "--data", str(data)], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"streamlit did not start: {(home / 'streamlit.log').read_text()[-2000:]}")


def first_minute(page, url: str) -> dict:
    """Seconds from opening the first page to the Data page, to the scored run, to a flagged clip playing."""
    t0 = time.monotonic()
    page.goto(url)
    page.wait_for_selector("h1", timeout=60_000)
    t_page = time.monotonic() - t0
    page.get_by_role("link", name="Review the flagged clips").wait_for(timeout=300_000)
    t_scored = time.monotonic() - t0
    page.get_by_role("link", name="Review the flagged clips").click()
    page.wait_for_function("() => { const v = document.querySelector('video'); return v && v.readyState >= 2; }",
                           timeout=60_000)
    page.evaluate("() => { const v = document.querySelector('video'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('video').currentTime > 0", timeout=30_000)
    return {"first page shown": t_page, "scored run ready": t_scored, "flagged clip playing": time.monotonic() - t0}


def review_loop(page, n: int, mode: str) -> list[tuple[float, float]]:
    """(to the next clip's name, to its video ready and the page idle) in seconds, per decision."""
    box = page.get_by_role("textbox", name="Curator name")
    if box.input_value() != "bench":
        box.fill("bench")
        box.press("Enter")
    page.wait_for_function(IDLE_JS, timeout=60_000)
    page.wait_for_timeout(1000)
    keys = "akxs"
    times = []
    for i in range(n):
        page.locator("h1").first.click()  # focus on the page, not in a text field
        heading = page.locator("h3").first.inner_text()
        src = page.evaluate("() => { const v = document.querySelector('video'); return v ? v.currentSrc : ''; }")
        t0 = time.monotonic()
        if mode == "keys":
            page.keyboard.press(keys[i % len(keys)])
        else:
            page.get_by_role("button", name="Accept suggestion").click()
        page.wait_for_function(NEXT_CLIP_JS, arg=heading, timeout=60_000)
        t_name = time.monotonic() - t0
        page.wait_for_function(VIDEO_READY_JS, arg=src, timeout=60_000)
        page.wait_for_function(IDLE_JS, timeout=60_000)
        times.append((t_name, time.monotonic() - t0))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20)
    parser.add_argument("--mode", choices=("keys", "click"), default="keys")
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--data", type=Path, default=None, help="default: the bundled sample (fresh install)")
    parser.add_argument("--out", type=Path, default=REPO / "test-output" / "review_speed.txt")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    lines = []
    with tempfile.TemporaryDirectory(prefix="av-bench-") as tmp:
        home = Path(tmp)
        data = args.data or args.repo / "sample_data"
        proc, url = start_app(args.repo, data, home)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport=VIEWPORT)
                if args.data is None:
                    for what, seconds in first_minute(page, url).items():
                        lines.append(f"first minute: {what}: {seconds:.1f} s")
                else:
                    page.goto(f"{url}/review")
                    page.wait_for_selector("video", timeout=120_000)
                times = review_loop(page, args.decisions, args.mode)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
    names, ready = [t[0] for t in times], [t[1] for t in times]
    for label, values in (("next clip's name shown", names), ("next clip playable, page idle", ready)):
        lines.append(f"review loop ({args.mode}, {len(values)} decisions): {label}: median "
                     f"{statistics.median(values):.2f} s, p90 {sorted(values)[int(0.9 * (len(values) - 1))]:.2f} s, "
                     f"max {max(values):.2f} s")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
