"""Where AV Auditor keeps what it writes about a data set DIR: its *work folder* (runs, review store, playback
copies, exports) and its decode cache. A light module (no PyAV, no torch): the app asks it on every page.

The work folder of DIR is

* ``WORKDIR/<name>-<hash>`` when a work directory is set (``--workdir`` of the app and of the commands, which
  set $AUDITOR_WORKDIR for the process and the jobs it starts): the data set folder is never written;
* ``DIR/.auditor`` when DIR can be written and is not the sample inside the installation;
* ``$XDG_DATA_HOME/av-auditor/<name>-<hash>`` (default ``~/.local/share/...``) otherwise: a read-only data set,
  or the bundled ``sample_data/``, is left as it is.

The decode cache is ``<work folder>/cache`` in the first two cases and ``$XDG_CACHE_HOME/av-auditor/<hash>``
(default ``~/.cache/...``) in the third. ``<hash>`` is derived from DIR's absolute path. Nothing here creates a
folder: the code that writes a file creates its folder then, so looking at a data set writes nothing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from auditor.data.manifest import AUDITOR_DIR

WORKDIR_ENV = "AUDITOR_WORKDIR"
APP_NAME = "av-auditor"
BUNDLED_SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
RUNS = "runs"
CACHE = "cache"
PLAYBACK = "playback"


def set_workdir(path: str | os.PathLike[str] | None) -> Path | None:
    """Use ``path`` as the work directory of this process and of the jobs it starts ($AUDITOR_WORKDIR); None
    leaves the setting as it is. Returns the work directory in use (absolute), or None."""
    if path:
        os.environ[WORKDIR_ENV] = str(Path(path).expanduser().resolve())
    return workdir()


def add_workdir_argument(parser) -> None:
    """The ``--workdir`` option of the commands that write about a data set (an argparse parser)."""
    parser.add_argument("--workdir", default=None,
                        help=f"keep the cache, runs and reviews here instead of in DATA/{AUDITOR_DIR} (for a "
                             f"read-only or shared data set; same as ${WORKDIR_ENV})")


def workdir() -> Path | None:
    """The work directory set for this process ($AUDITOR_WORKDIR), or None."""
    value = os.environ.get(WORKDIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def work_folder(data_dir: str | os.PathLike[str]) -> Path:
    """Where runs, the review store, playback copies and exports of data set ``data_dir`` go (see the module
    docstring); not created here."""
    data = Path(data_dir)
    chosen = workdir()
    if chosen is not None:
        return chosen / _slug(data)
    if writes_into_data(data):
        return data / AUDITOR_DIR
    return _xdg("XDG_DATA_HOME", ".local/share") / _slug(data)


def cache_root(data_dir: str | os.PathLike[str]) -> Path:
    """Where the decode cache of ``data_dir`` goes (see the module docstring); not created here."""
    data = Path(data_dir)
    if workdir() is not None or writes_into_data(data):
        return work_folder(data) / CACHE
    return _xdg("XDG_CACHE_HOME", ".cache") / _digest(data, 16)


def runs_root(data_dir: str | os.PathLike[str]) -> Path:
    """The folder that holds the data set's run folders (``<work folder>/runs``)."""
    return work_folder(data_dir) / RUNS


def writes_into_data(data_dir: str | os.PathLike[str]) -> bool:
    """True when AV Auditor keeps its files inside the data set folder (DIR/.auditor): no work directory is
    set, DIR is not the bundled sample and DIR (or its .auditor folder, when it exists) can be written."""
    data = Path(data_dir)
    if workdir() is not None or _same_folder(data, BUNDLED_SAMPLE):
        return False
    target = data / AUDITOR_DIR
    while not target.exists() and target != target.parent:
        target = target.parent
    return os.access(target, os.W_OK)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _slug(data: Path) -> str:
    """``<folder name>-<10 hex digits of its absolute path>``: readable, and unique per data set."""
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in data.resolve().name)[:40] or "data"
    return f"{name}-{_digest(data, 10)}"


def _digest(data: Path, n: int) -> str:
    return hashlib.sha1(str(data.resolve()).encode()).hexdigest()[:n]


def _xdg(variable: str, default: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / default) / APP_NAME
