"""Where a data set's decode cache lives (:func:`auditor.workspace.cache_root`). A light module (no PyAV, no
torch): the app asks it on every page."""

from __future__ import annotations

from pathlib import Path

from auditor.workspace import cache_root


def default_cache_root(data_dir: Path) -> Path:
    """DIR/.auditor/cache when DIR is writable, WORKDIR/<name>-<hash>/cache with a work directory set, else
    $XDG_CACHE_HOME/av-auditor/<sha1 of DIR's absolute path>; the folder is not created here (ingest does)."""
    return cache_root(data_dir)
