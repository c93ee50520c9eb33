"""The review store: every curator decision on a clip, one SQLite file per data set, ``reviews.sqlite`` in its work
folder (DIR/.auditor, or one under the work directory: :mod:`auditor.workspace`).

Table ``decisions`` is append-only (rows are never updated or deleted): a clip's *current* decision is its latest
row (highest ``id``), its history is all its rows in ``id`` order. Decisions (``DECISIONS``):

* ``accept``: take the suggested label (``final_label`` = ``suggested_label``);
* ``keep``: the given label is right (``final_label`` = ``given_label``);
* ``relabel``: the curator typed another label (``final_label`` required);
* ``exclude``: drop the clip from the data set (``final_label`` NULL);
* ``skip``: looked at, undecided (``final_label`` NULL; the clip keeps its given label on export);
* ``undo``: the clip's decisions are withdrawn, it is undecided again (written by :meth:`ReviewStore.undo` when
  the undone decision was the clip's first).

A decision may also say that the sound does not belong to the picture (``mismatch``, one of
``MISMATCH_KINDS``), on its own (exclude) or together with a label (accept, keep, relabel): both problems of one
clip in one row. ``note`` is the curator's free text.

Durability: WAL journal with ``synchronous=FULL``, so a row is on disk when :meth:`ReviewStore.record` returns; a
process killed right after loses nothing. Concurrency: several stores (browser sessions, processes) may open the
same file; each write is one ``BEGIN IMMEDIATE`` transaction, and ``expected_last_id`` detects two curators
deciding the same clip differently (:class:`ReviewConflict`; the same decision twice is no conflict). Within one process a store holds one connection
(``check_same_thread=False``) guarded by a lock, so one store may be shared by Streamlit's threads.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import EllipsisType

import pandas as pd

from auditor.errors import UserError
from auditor.workspace import work_folder

DECISIONS = ("accept", "keep", "relabel", "exclude", "skip", "undo")
# Decisions that settle a clip ("decided"); a skip or an undo leaves it undecided.
FINAL_DECISIONS = ("accept", "keep", "relabel", "exclude")
# Decisions that change nothing about the clip's label: no final label is stored.
NO_LABEL_DECISIONS = ("exclude", "skip", "undo")
# Why the sound does not belong to the picture (the ``mismatch`` column), as curators tell it apart.
MISMATCH_KINDS = ("dubbed_or_music", "off_screen", "swapped", "silent", "other")
STORE_FILE = "reviews.sqlite"
SCHEMA_VERSION = 2  # 2: the mismatch column
COLUMNS = ("id", "clip", "decision", "given_label", "suggested_label", "final_label", "curator", "run_id",
           "label_noise_score", "mismatch_score", "timestamp", "note", "mismatch")
# A writer waits this long for another writer's transaction before giving up (SQLite holds one writer at a time).
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    clip TEXT NOT NULL,
    decision TEXT NOT NULL,
    given_label TEXT,
    suggested_label TEXT,
    final_label TEXT,
    curator TEXT NOT NULL,
    run_id TEXT,
    label_noise_score REAL,
    mismatch_score REAL,
    timestamp TEXT NOT NULL,
    note TEXT,
    mismatch TEXT
);
CREATE INDEX IF NOT EXISTS decisions_clip_id ON decisions (clip, id);
"""
_INSERT = f"INSERT INTO decisions ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * (len(COLUMNS) - 1))})"
_UNDOABLE = """
SELECT d.* FROM decisions AS d
WHERE d.curator = ? AND d.decision != 'undo' AND COALESCE(d.note, '') NOT LIKE 'undo of #%'
  AND d.id = (SELECT MAX(e.id) FROM decisions AS e WHERE e.clip = d.clip)
ORDER BY d.id DESC LIMIT ?
"""
_LATEST = """
SELECT d.* FROM decisions AS d
JOIN (SELECT clip, MAX(id) AS id FROM decisions {where} GROUP BY clip) AS m ON d.id = m.id
ORDER BY d.clip
"""


class ReviewConflict(UserError):
    """Another curator decided the clip after it was shown: ``theirs`` is their decision (a row as a dict)."""

    def __init__(self, clip: str, theirs: dict):
        self.clip = clip
        self.theirs = theirs
        super().__init__(f"{clip}: {theirs['curator']} decided {theirs['decision']!r} at {theirs['timestamp']} "
                         "after this clip was shown; reload it to see their decision")


class ReviewStoreVersionError(UserError):
    """The store was written by a newer AV Auditor; the message names both schema versions."""


def store_path(data_dir: str | os.PathLike[str]) -> Path:
    """Where the review store of data set ``data_dir`` lives: reviews.sqlite in its work folder."""
    return work_folder(data_dir) / STORE_FILE


def read_decisions(data_dir: str | os.PathLike[str], *,
                   curators: Iterable[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, latest) of the data set's decisions (:meth:`ReviewStore.history`, :meth:`ReviewStore.latest`);
    two empty frames with ``COLUMNS`` when nobody decided anything yet (and no store file is created)."""
    if not store_path(data_dir).is_file():
        empty = pd.DataFrame(columns=list(COLUMNS))
        return empty, empty.copy()
    with ReviewStore(data_dir) as store:
        return store.history(curators=curators), store.latest(curators=curators)


class ReviewStore:
    """The decisions of one data set. ``with ReviewStore(data_dir) as store: store.record(...)``.

    ``db_path`` overrides the file (default :func:`store_path`); its folder is created. Raises
    :class:`UserError` when the data set folder is missing or the file is not a review store, and
    :class:`ReviewStoreVersionError` when the file has a newer schema than ``SCHEMA_VERSION``.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, db_path: str | os.PathLike[str] | None = None):
        self.data_dir = Path(data_dir)
        if db_path is None and not self.data_dir.is_dir():
            raise UserError(f"{self.data_dir}: not a folder (expected the data set folder)")
        self.path = Path(db_path) if db_path is not None else store_path(self.data_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                     check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        try:
            self._open_schema()
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise UserError(f"{self.path}: not a usable review store ({err})") from None
        except BaseException:
            self._conn.close()
            raise

    def _open_schema(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            if row[0] is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] == 1:  # version 1 had no mismatch column
                conn.execute("ALTER TABLE decisions ADD COLUMN mismatch TEXT")
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise ReviewStoreVersionError(
                    f"{self.path}: review store schema version {row[0]} is newer than version {SCHEMA_VERSION} "
                    "that this AV Auditor reads; update AV Auditor"
                )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` write transaction (held under this store's thread lock);
        any exception rolls it back and propagates."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def record(self, clip: str, decision: str, *, given_label: str, suggested_label: str | None = None,
               final_label: str | None = None, curator: str, run_id: str = "",
               label_noise_score: float | None = None, mismatch_score: float | None = None, note: str = "",
               mismatch: str | None = None, expected_last_id: int | None | EllipsisType = ...) -> int:
        """Append one decision and return its row id; the row is committed to disk before this returns.

        ``final_label`` defaults by decision: accept -> ``suggested_label``, keep -> ``given_label``; relabel
        requires it; exclude/skip/undo store NULL (giving one is an error). ``mismatch`` (one of MISMATCH_KINDS)
        marks the sound as not belonging to the picture, with any decision but skip and undo.
        ``expected_last_id`` = the id of the clip's latest decision when the curator was shown the clip (None:
        there was none); if the clip's latest decision is newer and says something else (another decision,
        label or mismatch), nothing is written and :class:`ReviewConflict` is raised; the same decision is
        recorded (both curators agreed). Leave it out to skip the check. Raises ValueError for an unknown
        decision or mismatch kind, an empty clip or curator, or a missing/extra final label.
        """
        row = _make_row(clip, decision, given_label=given_label, suggested_label=suggested_label,
                        final_label=final_label, curator=curator, run_id=run_id,
                        label_noise_score=label_noise_score, mismatch_score=mismatch_score, note=note,
                        mismatch=mismatch)
        with self._transaction() as conn:
            if expected_last_id is not ...:
                theirs = self._latest_row(row[0])
                if (theirs["id"] if theirs else None) != expected_last_id and not _same_decision(theirs, row):
                    raise ReviewConflict(row[0], theirs or {"curator": "?", "decision": "(none)", "timestamp": "?"})
            new_id = conn.execute(_INSERT, row).lastrowid
        return int(new_id)

    def undo(self, decision_id: int, *, curator: str, run_id: str = "") -> int:
        """Withdraw decision ``decision_id``, which must still be its clip's latest: append a row that restores
        the clip's decision before it (a copy of that row, noted as an undo) or, when there was none, an
        ``undo`` row (the clip is undecided again). Returns the new row id. Raises ReviewConflict when someone
        decided the clip since, and ValueError for an unknown id."""
        with self._transaction() as conn:
            undone = conn.execute("SELECT * FROM decisions WHERE id = ?", (decision_id,)).fetchone()
            if undone is None:
                raise ValueError(f"no decision #{decision_id} to undo")
            undone = dict(undone)
            latest = self._latest_row(undone["clip"])
            if latest["id"] != decision_id:
                raise ReviewConflict(undone["clip"], latest)
            before = conn.execute("SELECT * FROM decisions WHERE clip = ? AND id < ? ORDER BY id DESC LIMIT 1",
                                  (undone["clip"], decision_id)).fetchone()
            note = f"undo of #{decision_id}"
            if before is None:
                row = _make_row(undone["clip"], "undo", given_label=undone["given_label"],
                                suggested_label=undone["suggested_label"], curator=curator, run_id=run_id,
                                label_noise_score=undone["label_noise_score"],
                                mismatch_score=undone["mismatch_score"], note=note)
            else:
                before = dict(before)
                row = _make_row(before["clip"], before["decision"], given_label=before["given_label"],
                                suggested_label=before["suggested_label"], final_label=before["final_label"],
                                curator=curator, run_id=run_id, label_noise_score=before["label_noise_score"],
                                mismatch_score=before["mismatch_score"], mismatch=before["mismatch"],
                                note=f"{note}: restores #{before['id']} by {before['curator']}")
            return int(conn.execute(_INSERT, row).lastrowid)

    def record_many(self, decisions: Iterable[Mapping]) -> list[int]:
        """Append many decisions in one transaction (bulk actions, imports); all or none are written.

        Each mapping holds :meth:`record`'s arguments (``clip``, ``decision``, ``given_label``, ``curator``, ...);
        no conflict check. Returns the new row ids in order. Raises ValueError as :meth:`record` does, naming
        the position of the bad item, before anything is written.
        """
        rows = []
        for i, item in enumerate(decisions):
            item = dict(item)
            item.pop("expected_last_id", None)
            try:
                rows.append(_make_row(item.pop("clip"), item.pop("decision"), **item))
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"decision #{i}: {err}") from None
        with self._transaction() as conn:
            ids = [int(conn.execute(_INSERT, row).lastrowid) for row in rows]
        return ids

    def latest(self, *, curators: Iterable[str] | None = None) -> pd.DataFrame:
        """The current decision of every decided clip: one row per clip (its highest id), sorted by clip.

        Includes ``skip`` rows (a skip after an accept means the clip is undecided again). Columns ``COLUMNS``.
        With ``curators``, only those curators' decisions count (each clip's latest among them).
        """
        where, params = _curator_filter(curators)
        return self._frame(_LATEST.format(where=where), params)

    def latest_for(self, clip: str) -> dict | None:
        """The current decision of ``clip`` as a dict (keys ``COLUMNS``), or None if it was never decided."""
        with self._lock:
            return self._latest_row(clip)

    def undoable(self, curator: str, limit: int) -> list[dict]:
        """What ``curator`` can still undo, newest first, at most ``limit`` rows (dicts, keys ``COLUMNS``): their
        decisions (skips included) that are still their clip's latest. An ``undo`` row, and a row that an undo
        wrote back (its note starts with "undo of #"), are no decisions to undo."""
        with self._lock:
            rows = self._conn.execute(_UNDOABLE, (curator.strip(), limit)).fetchall()
        return [dict(r) for r in rows]

    def history(self, clip: str | None = None, *, curators: Iterable[str] | None = None) -> pd.DataFrame:
        """All decisions (of ``clip`` when given; of ``curators`` when given) in the order they were made."""
        where, params = _curator_filter(curators)
        if clip is not None:
            where = (where + " AND" if where else "WHERE") + " clip = ?"
            params = [*params, clip]
        return self._frame(f"SELECT * FROM decisions {where} ORDER BY id", params)

    def counts(self) -> dict[str, int]:
        """Clips per current decision: ``{decision: n}`` for every name in ``DECISIONS`` (0 when none)."""
        latest = self.latest()
        counts = latest["decision"].value_counts()
        return {d: int(counts.get(d, 0)) for d in DECISIONS}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _latest_row(self, clip: str) -> dict | None:
        row = self._conn.execute("SELECT * FROM decisions WHERE clip = ? ORDER BY id DESC LIMIT 1",
                                 (clip,)).fetchone()
        return dict(row) if row is not None else None

    def _frame(self, sql: str, params) -> pd.DataFrame:
        with self._lock:
            rows = self._conn.execute(sql, list(params)).fetchall()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=list(COLUMNS))
        frame["id"] = frame["id"].astype("int64")
        for col in ("label_noise_score", "mismatch_score"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        return frame


def _make_row(clip: str, decision: str, *, given_label: str, suggested_label: str | None = None,
              final_label: str | None = None, curator: str, run_id: str = "",
              label_noise_score: float | None = None, mismatch_score: float | None = None,
              note: str = "", mismatch: str | None = None) -> tuple:
    """Validate one decision and return the values for ``_INSERT``."""
    if decision not in DECISIONS:
        raise ValueError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
    if mismatch is not None and mismatch not in MISMATCH_KINDS:
        raise ValueError(f"mismatch {mismatch!r} is not one of {', '.join(MISMATCH_KINDS)}")
    if mismatch is not None and decision in ("skip", "undo"):
        raise ValueError(f"decision {decision!r} decides nothing; it cannot mark a mismatch")
    if not isinstance(clip, str) or not clip.strip():
        raise ValueError(f"clip {clip!r} is empty; expected the clip path as in labels.csv")
    if not isinstance(curator, str) or not curator.strip():
        raise ValueError(f"curator {curator!r} is empty; every decision needs the curator's name")
    if decision in NO_LABEL_DECISIONS:
        if final_label is not None:
            raise ValueError(f"final_label {final_label!r} given for decision {decision!r}, which keeps none")
    else:
        default = {"accept": suggested_label, "keep": given_label, "relabel": None}[decision]
        final_label = final_label if final_label is not None else default
        if final_label is None or not str(final_label).strip():
            needed = "suggested_label" if decision == "accept" else "final_label"
            raise ValueError(f"decision {decision!r} for {clip!r} needs a {needed}, got {final_label!r}")
    return (clip, decision, _text(given_label), _text(suggested_label), _text(final_label), curator.strip(),
            str(run_id or ""), _score(label_noise_score), _score(mismatch_score),
            datetime.now(UTC).isoformat(timespec="milliseconds"), str(note or ""), mismatch)


def _same_decision(theirs: dict | None, row: tuple) -> bool:
    """Whether the stored decision ``theirs`` says what the new ``row`` (``_make_row``'s values) says."""
    if theirs is None:
        return False
    mine = dict(zip(COLUMNS[1:], row, strict=True))
    return all(theirs.get(k) == mine[k] for k in ("decision", "final_label", "mismatch"))


def _text(value) -> str | None:
    return None if value is None else str(value)


def _score(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _curator_filter(curators: Iterable[str] | None) -> tuple[str, list[str]]:
    if curators is None:
        return "", []
    names = [curators] if isinstance(curators, str) else list(curators)
    return f"WHERE curator IN ({', '.join('?' * len(names))})", names
