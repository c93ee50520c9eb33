"""Shared fixtures: small generated data sets (session-scoped: rendered once per test run), and the order the
tests run in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (the end-to-end trainings, then the browser tests), otherwise in file order. `make test`
    spreads the files over parallel workers (pytest-xdist, ``--dist loadfile``), which take the files in the order
    of their first test: the longest ones then start at once instead of leaving one worker busy at the end."""
    def group(item: pytest.Item) -> int:
        if item.get_closest_marker("browser"):
            return 1
        return 0 if item.get_closest_marker("slow") else 2

    items.sort(key=group)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """40 generated clips, 8 classes, 30% symmetric label noise, 15% mismatch, with truth.csv."""
    from auditor.data.generate import generate_dataset

    out = tmp_path_factory.mktemp("small") / "data"
    generate_dataset(out, clips=40, label_noise=0.3, mismatch=0.15, seed=5)
    return out


def run_cli(*args: str, check: bool = True, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m auditor *args`` in a subprocess from the repo root."""
    full_env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
    proc = subprocess.run([sys.executable, "-m", "auditor", *args], cwd=REPO, capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"auditor {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc
