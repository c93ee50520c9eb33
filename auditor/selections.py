"""Clip selections sent to Review ("Review these" on Explore or Classes), kept in the data set's work folder so
that a reload finds them again: the Review page's address bar names one as ``?sel=<id>``.

A selection is ``<work folder>/selections/<id>.json`` = ``{"clips": [...]}``; ``<id>`` is derived from the clips
(the same clips give the same id), so that saving one twice writes one file. Light module (no Streamlit).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from auditor.atomic import atomic_write_text
from auditor.workspace import work_folder

SELECTIONS = "selections"
_ID = re.compile(r"[0-9a-f]{16}")


def save(data_dir: str | os.PathLike[str], clips: list[str]) -> str | None:
    """Keep ``clips`` (in their order) and return the selection's id; None when the work folder cannot be
    written (the selection then lives only as long as the browser tab)."""
    text = json.dumps({"clips": list(clips)})
    sel_id = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    path = _path(data_dir, sel_id)
    try:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
    except OSError:
        return None
    return sel_id


def load(data_dir: str | os.PathLike[str], sel_id: str) -> list[str] | None:
    """The clips of selection ``sel_id``, or None when there is no such selection (an id that is not one, a
    missing or unreadable file)."""
    if not isinstance(sel_id, str) or not _ID.fullmatch(sel_id):
        return None
    try:
        clips = json.loads(_path(data_dir, sel_id).read_text(encoding="utf-8")).get("clips")
    except (OSError, ValueError, AttributeError):
        return None
    return [str(c) for c in clips] if isinstance(clips, list) else None


def _path(data_dir: str | os.PathLike[str], sel_id: str) -> Path:
    return work_folder(data_dir) / SELECTIONS / f"{sel_id}.json"
