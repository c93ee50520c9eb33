"""Where a data set's decode cache lives. A light module (no PyAV, no torch): the app asks it on every page."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from auditor.data.manifest import AUDITOR_DIR


def default_cache_root(data_dir: Path) -> Path:
    """DIR/.auditor/cache when DIR is writable (probed with a temporary file), else
    $XDG_CACHE_HOME/av-auditor/<sha1 of DIR's absolute path>."""
    local = data_dir / AUDITOR_DIR / "cache"
    try:
        local.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=local, prefix=".probe-", delete=True)
        probe.close()
        return local
    except OSError:
        digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:16]
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "av-auditor" / digest
