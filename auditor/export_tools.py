"""The reviewed data set in the formats other tools load, so that a team can go on in the tool it has.

Notation: ``table`` = :func:`auditor.export.final_labels` (one row per clip: clip, given_label, final_label,
decision, excluded, mismatch); ``flags`` = the run's flags.csv (clip, suggested_label, suggested_confidence,
label_noise_score, mismatch_score), or None without a run.

* Label Studio: :func:`label_studio_tasks` = a tasks JSON (Label Studio's "basic JSON format": a list of
  ``{"data": {...}, "predictions": [...]}``) with the model's suggestion as a ``choices`` prediction of control
  ``label`` on object ``video``, and :func:`label_studio_config` = the labeling config those names refer to.
  Clips are addressed as Label Studio's local files (``/data/local-files/?d=<clip>``): start Label Studio with
  LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT = the data set folder.
* FiftyOne: :func:`write_fiftyone_tree` = FiftyOne's ``VideoClassificationDirectoryTree`` layout
  (``<dir>/<label>/<video>``), the videos as symbolic links to the clips, excluded clips left out; load it with
  ``fo.Dataset.from_dir(dataset_dir=DIR, dataset_type=fo.types.VideoClassificationDirectoryTree)``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pandas as pd

LS_OBJECT, LS_CONTROL = "video", "label"  # the names of the labeling config's Video and Choices tags
LS_LOCAL_FILES = "/data/local-files/?d="
FIFTYONE_DIR = "fiftyone"


def label_studio_tasks(table: pd.DataFrame, flags: pd.DataFrame | None, *, run_id: str = "") -> bytes:
    """One task per clip of ``table``: ``data`` holds the video address, the clip, the given and the reviewed
    label, the decision, ``excluded``, ``mismatch`` and the two scores; ``predictions`` holds the suggested
    label (score = its confidence) when the run suggests one. UTF-8 JSON."""
    by_clip = flags.set_index("clip") if flags is not None and len(flags) else None
    tasks = []
    for row in table.to_dict("records"):
        scored = by_clip.loc[row["clip"]] if by_clip is not None and row["clip"] in by_clip.index else None
        data = {LS_OBJECT: LS_LOCAL_FILES + row["clip"], "clip": row["clip"], "given_label": row["given_label"],
                "reviewed_label": row["final_label"], "decision": row["decision"], "excluded": bool(row["excluded"]),
                "mismatch": row["mismatch"],
                "label_noise_score": _number(None if scored is None else scored.get("label_noise_score")),
                "mismatch_score": _number(None if scored is None else scored.get("mismatch_score"))}
        task: dict = {"data": data}
        suggested = "" if scored is None else str(scored.get("suggested_label") or "")
        if suggested:
            task["predictions"] = [{
                "model_version": run_id or "av-auditor",
                "score": _number(scored.get("suggested_confidence")),
                "result": [{"from_name": LS_CONTROL, "to_name": LS_OBJECT, "type": "choices",
                            "value": {"choices": [suggested]}}]}]
        tasks.append(task)
    return json.dumps(tasks, ensure_ascii=False, indent=1).encode("utf-8")


def label_studio_config(classes: list[str]) -> bytes:
    """The labeling config of the tasks: the video, and one single choice among ``classes``."""
    choices = "".join(f"\n    <Choice value={quoteattr(c)}/>" for c in classes)
    return (f'<View>\n  <Video name="{LS_OBJECT}" value="${LS_OBJECT}"/>\n'
            f'  <Choices name="{LS_CONTROL}" toName="{LS_OBJECT}" choice="single" showInline="true">{choices}\n'
            "  </Choices>\n</View>\n").encode()


def write_fiftyone_tree(out_dir: str | os.PathLike[str], data_dir: str | os.PathLike[str],
                        table: pd.DataFrame) -> Path:
    """Write ``out_dir``/fiftyone/<reviewed label>/<clip> as symbolic links to the clips of ``table`` that are
    not excluded, replacing an older tree; returns the tree's folder. A label that cannot be a folder name
    ("", ".", "..", or one with a path separator) gets its separators and dots replaced by "_"; a clip in a
    sub-folder gets its path joined with "__" (FiftyOne reads one folder level per class)."""
    root = Path(data_dir).resolve()
    target = Path(out_dir) / FIFTYONE_DIR
    tmp = Path(out_dir) / f".{FIFTYONE_DIR}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    kept = table[~table["excluded"].astype(bool)]
    for clip, label in zip(kept["clip"], kept["final_label"], strict=True):
        link = tmp / folder_name(label) / clip.replace("/", "__")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(root / clip)
    tmp.mkdir(parents=True, exist_ok=True)  # an empty tree when every clip is excluded
    old = Path(out_dir) / f".{FIFTYONE_DIR}-old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)  # links and folders only: the clips are not touched
    return target


def folder_name(label: str) -> str:
    """``label`` as one folder name (see write_fiftyone_tree)."""
    name = str(label).replace("/", "_").replace("\\", "_").replace("\0", "_")
    return "_" if name in ("", ".", "..") else name


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value
