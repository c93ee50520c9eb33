"""The reviewed data set in the formats other tools load, so that a team can go on in the tool it has.

Notation: ``table`` = :func:`auditor.export.final_labels` (one row per clip: clip, given_label, final_label,
decision, excluded, mismatch); ``flags`` = the run's flags.csv (clip, suggested_label, suggested_confidence,
label_noise_score, mismatch_score), or None without a run.

* Label Studio: :func:`label_studio_tasks` = a tasks JSON (Label Studio's "basic JSON format": a list of
  ``{"data": {...}, "annotations": [...], "predictions": [...]}``): the curator's label decision (accept, keep,
  relabel) as a ``choices`` annotation of control ``label`` on object ``video`` (a relabel shows the curator's
  label), the model's suggestion as a ``choices`` prediction; :func:`label_studio_config` = the labeling config
  those names refer to; :func:`label_studio_readme` = the steps that make Label Studio play the clips. Clips are
  addressed as Label Studio's local files relative to the data set's parent folder
  (``/data/local-files/?d=<data set folder name>/<clip>``, URL-quoted): Label Studio refuses a "Local files"
  storage equal to its document root, so the document root is the parent and the one storage the data set.
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
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import pandas as pd

LS_OBJECT, LS_CONTROL = "video", "label"  # the names of the labeling config's Video and Choices tags
LS_LOCAL_FILES = "/data/local-files/?d="
# Decisions whose reviewed label is the curator's own (an annotation); excluded and skipped clips get none.
LABEL_DECISIONS = ("accept", "keep", "relabel")
FIFTYONE_DIR = "fiftyone"


def label_studio_tasks(table: pd.DataFrame, flags: pd.DataFrame | None, *, run_id: str = "",
                       folder: str = "") -> bytes:
    """One task per clip of ``table`` (excluded clips too, marked): ``data`` holds the video address (local
    files under ``folder``, the data set folder's name), the clip, the given and the reviewed label, the
    decision, ``excluded``, ``mismatch`` and the two scores; ``annotations`` holds the reviewed label when the
    clip's decision is a label decision (LABEL_DECISIONS); ``predictions`` holds the suggested label (score = its
    confidence) when the run suggests one. UTF-8 JSON."""
    by_clip = flags.set_index("clip") if flags is not None and len(flags) else None
    prefix = f"{folder}/" if folder else ""
    tasks = []
    for row in table.to_dict("records"):
        scored = by_clip.loc[row["clip"]] if by_clip is not None and row["clip"] in by_clip.index else None
        data = {LS_OBJECT: LS_LOCAL_FILES + quote(prefix + row["clip"], safe="/"), "clip": row["clip"],
                "given_label": row["given_label"],
                "reviewed_label": row["final_label"], "decision": row["decision"], "excluded": bool(row["excluded"]),
                "mismatch": row["mismatch"],
                "label_noise_score": _number(None if scored is None else scored.get("label_noise_score")),
                "mismatch_score": _number(None if scored is None else scored.get("mismatch_score"))}
        task: dict = {"data": data}
        if row["decision"] in LABEL_DECISIONS:
            task["annotations"] = [{"result": [_choice(row["final_label"])], "ground_truth": False}]
        suggested = "" if scored is None else str(scored.get("suggested_label") or "")
        if suggested:
            task["predictions"] = [{
                "model_version": run_id or "av-auditor",
                "score": _number(scored.get("suggested_confidence")),
                "result": [_choice(suggested)]}]
        tasks.append(task)
    return json.dumps(tasks, ensure_ascii=False, indent=1).encode("utf-8")


def _choice(label: str) -> dict:
    """A ``choices`` result of the labeling config's control, choosing ``label``."""
    return {"from_name": LS_CONTROL, "to_name": LS_OBJECT, "type": "choices", "value": {"choices": [label]}}


def label_studio_readme(data_dir: str | os.PathLike[str]) -> bytes:
    """The steps that open the exported tasks in Label Studio with their clips playing (plain text): local
    files served from the data set's parent folder, one "Local files" storage = the data set folder."""
    data = Path(data_dir).resolve()
    return f"""Opening these tasks in Label Studio (1.23) with the clips playing

Label Studio serves a clip from this computer only through a "Local files" source storage whose folder holds it,
below the folder named by LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, and it refuses a storage equal to that folder.
The tasks address each clip as /data/local-files/?d={data.name}/<clip>, so:

1. Start Label Studio with the data set's parent folder as the document root:
     LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true \\
     LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={data.parent} \\
     label-studio start
2. Create a project; in Settings > Labeling Interface > Code, paste label_studio_config.xml.
3. In Settings > Cloud Storage > Add Source Storage, choose "Local files", set the absolute local path to
     {data}
   and add it (no sync needed: the tasks come from the JSON file).
4. Import label_studio_tasks.json (Import > Upload files).

Each task shows the curator's label as an annotation (accept, keep or relabel decisions) and the model's
suggestion as a prediction. Excluded clips are kept, marked "excluded": true in the task data, without an
annotation. Moving the data set folder, or renaming it, breaks the addresses: export again.
""".encode()


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
