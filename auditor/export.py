"""Reviewed labels out: the data set's labels with the curators' decisions applied, plus the decision history.

Notation: N = usable clips of the data set (its manifest). :func:`final_labels` applies each clip's current
decision; :func:`export_bytes` renders the four export files in memory (the app's download buttons);
:func:`export_reviewed` writes them to a folder, atomically:

* ``labels.csv``: the input format: ``clip,label`` plus the input's extra columns, clip paths as in the input
  (relative to the data set folder, normalised to POSIX ``a/b.mp4``); excluded clips dropped or marked; a
  ``mismatch`` column (the kind, or empty) when a current decision says that a clip's sound does not belong;
* ``decisions.csv`` / ``decisions.jsonl``: the full decision history (``reviews.COLUMNS``), oldest first;
* ``summary.csv``: per given class, how many clips got each decision, and where labels moved;
* ``label_studio_tasks.json`` + ``label_studio_config.xml`` + ``label_studio_README.txt`` (the steps that make
  Label Studio play the clips) and, written to a folder only, ``fiftyone/`` (a FiftyOne
  VideoClassificationDirectoryTree of links to the clips): :mod:`auditor.export_tools`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from auditor.atomic import atomic_write_bytes
from auditor.data.manifest import LABELS_FILE, load_manifest
from auditor.errors import UserError
from auditor.export_tools import (  # LABEL_DECISIONS: the decisions whose final_label replaces the given label
    LABEL_DECISIONS,
    label_studio_config,
    label_studio_readme,
    label_studio_tasks,
    write_fiftyone_tree,
)
from auditor.reviews import FINAL_DECISIONS, read_decisions

# How excluded clips appear in the exported labels.csv.
EXCLUDED_MODES = ("drop", "column")
# Export file key (export_bytes) -> file name (export_reviewed).
EXPORT_FILES = {"labels_csv": LABELS_FILE, "decisions_csv": "decisions.csv",
                "decisions_jsonl": "decisions.jsonl", "summary_csv": "summary.csv",
                "labelstudio_tasks": "label_studio_tasks.json", "labelstudio_config": "label_studio_config.xml",
                "labelstudio_readme": "label_studio_README.txt"}
# The decisions summary.csv and the summary count ("undo" leaves a clip undecided, counted there).
SUMMARY_DECISIONS = (*FINAL_DECISIONS, "skip")
# The label of the all-classes row of summary.csv.
TOTAL_ROW = "(all)"


class ExportIntoDataError(UserError):
    """The output folder is the data set folder (its labels.csv would be replaced)."""


def final_labels(manifest_rows: pd.DataFrame, latest: pd.DataFrame) -> pd.DataFrame:
    """The label every manifest clip ends up with.

    Returns one row per row of ``manifest_rows`` (same order): ``clip``, ``given_label`` (the manifest label),
    ``final_label``, ``decision`` ("" when none or withdrawn by an undo), ``excluded`` (bool) and ``mismatch``
    (the kind of sound mismatch the decision marks, or ""). accept/keep/relabel -> their ``final_label``;
    exclude -> ``excluded`` True and ``final_label`` = given label; skip or no decision -> the given label.
    Decisions on clips not in the manifest are ignored.
    """
    current = latest.drop_duplicates("clip", keep="last").set_index("clip")
    out = pd.DataFrame({"clip": manifest_rows["clip"].astype(str).to_numpy(),
                        "given_label": manifest_rows["label"].astype(str).to_numpy()})
    decision = out["clip"].map(current["decision"]).astype(object).fillna("").astype(str).replace("undo", "")
    chosen = out["clip"].map(current["final_label"]).astype(object)
    use_final = decision.isin(LABEL_DECISIONS) & chosen.notna()
    out["final_label"] = chosen.where(use_final, out["given_label"]).astype(str)
    out["decision"] = decision
    out["excluded"] = (decision == "exclude").to_numpy(dtype=bool)
    mismatch = current["mismatch"] if "mismatch" in current else pd.Series(dtype=object)
    out["mismatch"] = out["clip"].map(mismatch).astype(object).where(decision != "", None).fillna("").astype(str)
    return out


def export_bytes(data_dir: str | os.PathLike[str], *, run_dir: str | os.PathLike[str] | None = None,
                 excluded: str = "drop", curator_filter: str | Iterable[str] | None = None) -> dict[str, bytes]:
    """The export files as bytes, one per key of EXPORT_FILES.

    Same contents as :func:`export_reviewed` writes; nothing is written.
    """
    files, _ = _build(data_dir, run_dir=run_dir, excluded=excluded, curator_filter=curator_filter)
    return files


def export_reviewed(data_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                    run_dir: str | os.PathLike[str] | None = None, excluded: str = "drop",
                    curator_filter: str | Iterable[str] | None = None, overwrite: bool = False,
                    fiftyone: bool = True) -> dict:
    """Write the EXPORT_FILES into ``out_dir`` (each atomically) and, with ``fiftyone``, the FiftyOne tree
    ``out_dir``/fiftyone (export_tools.write_fiftyone_tree).

    ``excluded``: "drop" leaves excluded clips out of labels.csv, "column" keeps them with ``excluded`` = 1
    (0 for the others). ``curator_filter``: only these curators' decisions count (all when None).
    ``run_dir``: the run the review was based on; it must hold config.json, its run id goes into the summary.
    Refuses (ExportIntoDataError, a UserError) to write into the data set folder itself, which would replace
    the input labels.csv, unless ``overwrite=True``. Raises ValueError for an unknown ``excluded``.

    Returns the summary: ``clips`` (N), ``decided`` (accept, keep, relabel or exclude: a skip is not decided),
    one count per decision of SUMMARY_DECISIONS (current decisions), ``mismatch`` (sound marked), ``relabelled``
    + ``excluded`` + ``unchanged`` == ``clips``, ``rows_written`` (labels.csv rows), ``history`` (decision rows),
    ``not_in_data`` (decided clips that are no longer in the data set; ignored), ``run_id``, ``out_dir``.
    """
    out_dir = Path(out_dir)
    if out_dir.resolve() == Path(data_dir).resolve() and not overwrite:
        raise ExportIntoDataError(f"{out_dir}: this is the data set folder; exporting there would replace its "
                                  f"{LABELS_FILE}. Choose another output folder")
    files, summary = _build(data_dir, run_dir=run_dir, excluded=excluded, curator_filter=curator_filter)
    for key, name in EXPORT_FILES.items():
        atomic_write_bytes(out_dir / name, files[key])
    if fiftyone:
        table = final_labels(load_manifest(data_dir).rows, read_decisions(data_dir, curators=curator_filter)[1])
        summary["fiftyone_dir"] = str(write_fiftyone_tree(out_dir, data_dir, table))
    summary["out_dir"] = str(out_dir)
    return summary


def _build(data_dir, *, run_dir, excluded: str, curator_filter) -> tuple[dict[str, bytes], dict]:
    if excluded not in EXCLUDED_MODES:
        raise ValueError(f"excluded {excluded!r} is not one of {', '.join(EXCLUDED_MODES)}")
    run_id = _run_id(run_dir) if run_dir is not None else ""
    manifest = load_manifest(data_dir)
    history, latest = read_decisions(data_dir, curators=curator_filter)
    table = final_labels(manifest.rows, latest)
    flags = _run_flags(run_dir)
    files = {
        "labels_csv": _labels_csv(manifest.rows, table, excluded),
        "decisions_csv": history.to_csv(index=False, lineterminator="\n").encode("utf-8"),
        "decisions_jsonl": _jsonl(history),
        "summary_csv": _summary_table(table).to_csv(index=False, lineterminator="\n").encode("utf-8"),
        "labelstudio_tasks": label_studio_tasks(table, flags, run_id=run_id, folder=Path(data_dir).resolve().name),
        "labelstudio_config": label_studio_config(_classes(run_dir, table)),
        "labelstudio_readme": label_studio_readme(data_dir),
    }
    summary = _summary(table, excluded)
    summary.update(history=len(history), not_in_data=int((~latest["clip"].isin(table["clip"])).sum()),
                   run_id=run_id)
    return files, summary


def _run_flags(run_dir) -> pd.DataFrame | None:
    """The run's flags.csv (labels as text), or None without a run or flags."""
    path = Path(run_dir) / "flags.csv" if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    return pd.read_csv(path, dtype={"clip": str, "suggested_label": str}, keep_default_na=False,
                       na_values={c: [""] for c in ("suggested_confidence", "label_noise_score", "mismatch_score")})


def _classes(run_dir, table: pd.DataFrame) -> list[str]:
    """The class list a labeling tool offers: the run's classes plus every given and reviewed label."""
    config = {}
    if run_dir is not None:
        try:
            config = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
    known = config.get("classes") if isinstance(config, dict) else None
    return sorted(set(map(str, known or [])) | set(table["given_label"]) | set(table["final_label"]))


def _run_id(run_dir) -> str:
    config_path = Path(run_dir) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{run_dir}: not a run folder (no config.json)") from None
    except ValueError as err:
        raise UserError(f"{config_path}: not valid JSON ({err})") from None
    return str(config.get("run_id", Path(run_dir).name)) if isinstance(config, dict) else Path(run_dir).name


def _labels_csv(rows: pd.DataFrame, table: pd.DataFrame, excluded: str) -> bytes:
    out = rows.copy()
    out["label"] = table["final_label"].to_numpy()
    extra = [c for c in out.columns if c not in ("clip", "label", "excluded", "mismatch")]
    out = out[["clip", "label", *extra]]
    if table["mismatch"].ne("").any():
        out["mismatch"] = table["mismatch"].to_numpy()
    if excluded == "drop":
        out = out[~table["excluded"].to_numpy()]
    else:
        out["excluded"] = table["excluded"].astype(int).to_numpy()
    return out.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _jsonl(history: pd.DataFrame) -> bytes:
    columns = {c: [None if _missing(v) else v for v in history[c].tolist()] for c in history.columns}
    lines = [json.dumps(dict(zip(columns, values, strict=True)), ensure_ascii=False)
             for values in zip(*columns.values(), strict=True)]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per class (given labels, then new labels from relabels): ``clips`` with that given label, one column per
    decision of SUMMARY_DECISIONS, ``undecided`` (no decision), ``mismatch`` (sound marked as not belonging),
    ``relabelled_away`` (final != given, not excluded), ``relabelled_in`` (clips of other classes that now
    carry this label); the last row, ``TOTAL_ROW``, holds the column sums."""
    decided = table.assign(decision=table["decision"].replace("", "undecided"))
    counts = pd.crosstab(decided["given_label"], decided["decision"])
    moved = table[(table["final_label"] != table["given_label"]) & ~table["excluded"]]
    classes = sorted(set(table["given_label"]) | set(moved["final_label"]))
    counts = counts.reindex(index=classes, columns=[*SUMMARY_DECISIONS, "undecided"], fill_value=0)
    counts.columns.name = None
    counts["mismatch"] = table.loc[table["mismatch"] != "", "given_label"].value_counts()
    counts["relabelled_away"] = moved["given_label"].value_counts()
    counts["relabelled_in"] = moved["final_label"].value_counts()
    counts.insert(0, "clips", table["given_label"].value_counts())
    counts = counts.fillna(0).astype(int)
    counts.loc[TOTAL_ROW] = counts.sum()
    counts.index.name = "class"
    return counts.reset_index()


def _summary(table: pd.DataFrame, excluded: str) -> dict:
    counts = table["decision"].value_counts()
    relabelled = int(((table["final_label"] != table["given_label"]) & ~table["excluded"]).sum())
    n_excluded = int(table["excluded"].sum())
    summary = {"clips": len(table), "decided": int(table["decision"].isin(FINAL_DECISIONS).sum())}
    summary.update({d: int(counts.get(d, 0)) for d in SUMMARY_DECISIONS})
    summary["mismatch"] = int((table["mismatch"] != "").sum())
    summary.update(relabelled=relabelled, excluded=n_excluded,
                   unchanged=len(table) - relabelled - n_excluded,
                   rows_written=len(table) - (n_excluded if excluded == "drop" else 0))
    return summary

