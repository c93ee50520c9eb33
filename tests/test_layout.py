"""The layout of the code base: what imports what."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

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


def _auditor_imports() -> dict[str, set[str]]:
    """module -> the auditor modules it imports anywhere (top level or inside a function)."""
    root = REPO
    graph: dict[str, set[str]] = {}
    for path in sorted((root / "auditor").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("auditor"):
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("auditor")}
        graph[module] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def test_no_import_cycle_in_the_package():
    graph = _auditor_imports()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_scoring_does_not_need_the_training_loop():
    graph = _auditor_imports()
    seen, todo = set(), ["auditor.scoring"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    assert "auditor.train" not in seen and "auditor.pipeline" not in seen
    code = "import sys, auditor.scoring; print('auditor.train' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
