"""Shared fixtures: small generated data sets (session-scoped: rendered once per test run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
