"""The layout of the code base: what imports what."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from tests.conftest import REPO

# Imported only by the code that decodes clips or trains: seconds to import, and never needed to draw a page.
HEAVY_MODULES = ("torch", "torchaudio", "torchvision", "av", "umap")


def _app_import_statements() -> list[str]:
    """Every import statement of auditor/app.py and pages/*.py, as source (the pages' own imports, not run)."""
    statements = []
    for path in [REPO / "auditor" / "app.py", *sorted((REPO / "pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom) and getattr(node, "module", "") != "__future__":
                statements.append(ast.unparse(node))
    return statements


def test_the_app_and_its_pages_do_not_import_torch():
    """In a fresh interpreter: every import of the app and its pages, and every module of auditor.ui, loads
    without torch, PyAV or UMAP (the app's ingest and clip playback import those when they run)."""
    code = "\n".join([
        "import importlib, json, pkgutil, sys",
        *_app_import_statements(),
        "import auditor.ui",
        "for m in pkgutil.iter_modules(auditor.ui.__path__):",
        "    importlib.import_module(f'auditor.ui.{m.name}')",
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))",
    ])
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
