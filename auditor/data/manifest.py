"""Read a data set's clip list and labels, validate it, and say what is wrong with it.

A data set is a folder DIR in one of two layouts, detected automatically:

* ``DIR/labels.csv`` with a header holding at least ``clip`` and ``label`` (``clip`` = a path relative to DIR;
  further columns are kept). Delimiter ``,``, ``;``, tab or ``|``; UTF-8 with or without BOM; any line ends.
* a folder-per-class tree ``DIR/<label>/<clip>`` (as UCF101), used when there is no ``labels.csv``.

:func:`load_manifest` returns the usable rows and a list of :class:`Problem` (one per skipped row or doubtful
value). It raises :class:`ManifestError` when nothing usable is left, the file cannot be read at all, or fewer
than ``MIN_CLASSES`` classes are left (the message names the folder and the layout detected).
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from auditor.errors import UserError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
LABELS_FILE = "labels.csv"
# More distinct labels than this is almost always the wrong column (e.g. a file name or a free-text caption).
MAX_CLASSES = 2000
# Fewer classes than this cannot be audited: nothing to confuse a label with (e.g. one folder ``clips/``).
MIN_CLASSES = 2
# The folder the auditor writes beside the data (cache, review store); never scanned for clips.
AUDITOR_DIR = ".auditor"
_DELIMITERS = ",;\t|"


class ManifestError(UserError):
    """The labels file or folder cannot be used at all; the message names the file and the problem."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: ``where`` names the file or row, ``message`` says what is wrong."""

    where: str
    message: str
    kind: str = "error"  # "error": the row was skipped; "warning": kept, but worth a look

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Manifest:
    """The usable clips of a data set.

    ``rows`` has one row per usable clip: ``clip`` (POSIX path relative to ``root``), ``label`` (str), plus any
    extra columns of labels.csv; ``classes`` is the sorted list of distinct labels.
    """

    root: Path
    rows: pd.DataFrame
    source: str  # "labels.csv" or "folders"
    problems: list[Problem] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return sorted(self.rows["label"].unique().tolist())

    def path_of(self, clip: str) -> Path:
        return self.root / clip


def load_manifest(data_dir: str | os.PathLike[str]) -> Manifest:
    """Read DIR/labels.csv or the folder-per-class tree under DIR and validate every row.

    Skipped (one :class:`Problem` each): empty clip or label, a path outside DIR (absolute or through ``..``),
    a missing file, a file that is not a video by extension, a repeated clip (the first row wins). Warned:
    labels that differ only by case or surrounding whitespace (kept as separate classes, never merged).
    Raises :class:`ManifestError` when DIR is missing, labels.csv is unreadable or lacks a column, there are
    more than ``MAX_CLASSES`` or fewer than ``MIN_CLASSES`` labels, or no usable row is left.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise ManifestError(f"{root}: not a folder (expected a data set folder with labels.csv or class folders)")
    root = root.resolve()
    labels_path = root / LABELS_FILE
    if labels_path.is_file():
        raw, problems = _read_labels_csv(labels_path)
        source = LABELS_FILE
    else:
        raw, problems = _scan_class_folders(root), []
        source = "folders"
        if raw.empty:
            raise ManifestError(
                f"{root}: no {LABELS_FILE} and no class folders with video files "
                f"({', '.join(VIDEO_EXTENSIONS)}) found"
            )
    rows = _validate_rows(root, raw, problems, source)
    n_classes = rows["label"].nunique()
    if n_classes > MAX_CLASSES:
        raise ManifestError(
            f"{labels_path if source == LABELS_FILE else root}: {n_classes} distinct labels is more than the "
            f"limit of {MAX_CLASSES} classes; is the label column the right one?"
        )
    if rows.empty:
        shown = "; ".join(str(p) for p in problems[:3])
        raise ManifestError(f"{root}: no usable clips left after validation ({len(problems)} problems: {shown})")
    if n_classes < MIN_CLASSES:
        raise ManifestError(_too_few_classes(root, rows, source))
    _warn_near_duplicate_labels(rows, problems, source)
    return Manifest(root=root, rows=rows.reset_index(drop=True), source=source, problems=problems)


def _too_few_classes(root: Path, rows: pd.DataFrame, source: str) -> str:
    """Why a data set with one class is refused: the layout detected, the class found, and what to do."""
    label, count = rows["label"].iloc[0], len(rows)
    clips = f"{count:,} clip{'s' if count != 1 else ''}"
    if source == LABELS_FILE:
        layout = f"{LABELS_FILE} gives every usable clip the same label {label!r} ({clips})"
    else:
        layout = (f"no {LABELS_FILE}, so each sub-folder is read as a class, and only one holds clips: "
                  f"{label + '/'!r} ({clips})")
    return (f"{root}: {layout}. A data set needs at least {MIN_CLASSES} classes; add a {LABELS_FILE} "
            "(clip,label) that gives each clip its class, or put the clips into one sub-folder per class.")


def _read_labels_csv(path: Path) -> tuple[pd.DataFrame, list[Problem]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ManifestError(
            f"{path}: not UTF-8 text (invalid byte 0x{data[err.start]:02x} at offset {err.start}); "
            "save it as UTF-8"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ManifestError(f"{path}: the file is empty (expected a header 'clip,label' and one row per clip)")
    header = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=header.count)
    if header.count(delimiter) == 0:
        raise ManifestError(
            f"{path}: cannot find a delimiter in the header {header[:80]!r} (expected 'clip,label'; "
            "',', ';', tab or '|' separated)"
        )
    try:
        table = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False,
                            quoting=csv.QUOTE_MINIMAL, skip_blank_lines=True)
    except (pd.errors.ParserError, csv.Error) as err:
        raise ManifestError(f"{path}: cannot parse as CSV with delimiter {delimiter!r}: {err}") from None
    table.columns = [str(c).strip() for c in table.columns]
    lower = {c.lower(): c for c in table.columns}
    missing = [c for c in ("clip", "label") if c not in lower]
    if missing:
        raise ManifestError(
            f"{path}: missing column {', '.join(repr(m) for m in missing)} "
            f"(found columns: {', '.join(repr(c) for c in table.columns)}; delimiter {delimiter!r})"
        )
    table = table.rename(columns={lower["clip"]: "clip", lower["label"]: "label"})
    # Row numbers as a person sees them in an editor: the header is line 1.
    table.insert(0, "_row", [f"{path.name}:{i + 2}" for i in range(len(table))])
    return table, []


def _scan_class_folders(root: Path) -> pd.DataFrame:
    records = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.lower().endswith(VIDEO_EXTENSIONS):
                    rel = Path(dirpath, name).relative_to(root).as_posix()
                    records.append({"_row": rel, "clip": rel, "label": class_dir.name})
    return pd.DataFrame(records, columns=["_row", "clip", "label"])


def _validate_rows(root: Path, table: pd.DataFrame, problems: list[Problem], source: str) -> pd.DataFrame:
    keep: list[int] = []
    normalised: list[str] = []
    first_row_of: dict[str, str] = {}
    is_file = _FileLookup(root)
    columns = (table["_row"].tolist(), table["clip"].tolist(), table["label"].tolist())
    for idx, (where, clip, label) in enumerate(zip(*columns, strict=True)):
        clip, label = str(clip).strip(), str(label)
        if not clip:
            problems.append(Problem(where, "empty clip path; row skipped"))
            continue
        if not label.strip():
            problems.append(Problem(where, f"empty label for {clip!r}; row skipped"))
            continue
        normal = normalise_relative(clip)
        if normal is None:
            problems.append(Problem(where, f"path {clip!r} is outside the data set folder; refused"))
            continue
        if normal in first_row_of:
            problems.append(Problem(where, f"duplicate row for {normal!r} (first at {first_row_of[normal]}); skipped"))
            continue
        if not is_file(normal):
            problems.append(Problem(where, f"file {normal!r} not found; row skipped"))
            continue
        if not normal.lower().endswith(VIDEO_EXTENSIONS):
            problems.append(Problem(where, f"{normal!r} is not a video file by its extension "
                                           f"(accepted: {', '.join(VIDEO_EXTENSIONS)}); row skipped"))
            continue
        first_row_of[normal] = where
        keep.append(idx)
        normalised.append(normal)
    rows = table.iloc[keep].drop(columns="_row")
    rows["clip"] = normalised
    return rows


class _FileLookup:
    """``lookup(rel)`` = ``(root / rel).is_file()`` for a normalised relative path, with one directory listing per
    folder instead of one ``stat`` per clip (a folder is listed when first asked about). A name missing from its
    folder's listing is checked with ``is_file`` (a case-insensitive file system finds ``Clip.MP4`` as
    ``clip.mp4``), so the answer is ``is_file``'s."""

    def __init__(self, root: Path):
        self.root = root
        self.listed: dict[str, frozenset[str]] = {}

    def __call__(self, rel: str) -> bool:
        folder, _, name = rel.rpartition("/")
        names = self.listed.get(folder)
        if names is None:
            names = self.listed[folder] = _files_in(self.root / folder)
        return name in names or (self.root / rel).is_file()


def _files_in(folder: Path) -> frozenset[str]:
    """The names of the regular files (or links to them) directly in ``folder``; empty when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return frozenset(entry.name for entry in entries if entry.is_file())
    except OSError:
        return frozenset()


def normalise_relative(clip: str) -> str | None:
    """POSIX path relative to the data set root, or None when it is absolute or climbs out through '..'."""
    clip = clip.replace("\\", "/")
    if clip.startswith("/") or (len(clip) > 1 and clip[1] == ":"):
        return None
    parts: list[str] = []
    for part in clip.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    if not parts or parts[0] == AUDITOR_DIR:
        return None
    return "/".join(parts)


def _warn_near_duplicate_labels(rows: pd.DataFrame, problems: list[Problem], source: str) -> None:
    groups: dict[str, list[str]] = defaultdict(list)
    for label in rows["label"].unique():
        groups[label.strip().casefold()].append(label)
    for variants in groups.values():
        if len(variants) > 1:
            shown = ", ".join(repr(v) for v in sorted(variants))
            problems.append(Problem(source, f"labels {shown} differ only by case or whitespace; "
                                            "kept as separate classes", kind="warning"))
