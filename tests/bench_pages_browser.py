"""Browser benchmark of the app's pages on a large run (a script, not a test).

    python -m tests.bench_pages_browser --data DIR [--pages data,explore,review,classes,export,model]
        [--repeat 2] [--out test-output/pages_speed.txt]

Starts the app as tests/bench_review_browser.py does (empty config, data and cache folders) on ``--data``, which
needs a scored run in its work folder (the newest is opened), and measures for each page in headless Chromium,
opened by its address in a fresh tab: (1) first content, from the navigation to the page's title (h1) on screen;
(2) idle, to the page's script finished with nothing left loading. ``--repeat`` opens every page that many times
(the first opening reads the run's files; later ones hit the app's caches). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.bench_review_browser import CHROMIUM, IDLE_JS, REPO, VIEWPORT, start_app

PAGES = ("data", "explore", "review", "classes", "export", "model")


def open_page(browser, url: str) -> tuple[float, float]:
    """(seconds to the first h1, seconds to the page idle) of ``url`` in a new tab."""
    page = browser.new_page(viewport=VIEWPORT)
    try:
        t0 = time.monotonic()
        page.goto(url)
        page.wait_for_selector("h1", timeout=120_000)
        first = time.monotonic() - t0
        page.wait_for_function(IDLE_JS, timeout=300_000, polling=100)
        return first, time.monotonic() - t0
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pages", default=",".join(PAGES))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "test-output" / "pages_speed.txt")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    lines = []
    with tempfile.TemporaryDirectory(prefix="av-bench-") as tmp:
        proc, url = start_app(REPO, args.data, Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                for i in range(args.repeat):
                    for name in args.pages.split(","):
                        first, idle = open_page(browser, f"{url}/{name}")
                        lines.append(f"{name} (opening {i + 1}): first content {first:.2f} s, idle {idle:.2f} s")
                        print(lines[-1], flush=True)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
