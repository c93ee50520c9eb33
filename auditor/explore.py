"""Pure pandas/numpy logic behind the app's Explore, Review, Model and Export pages (no Streamlit here).

Notation: N scored clips. A run's ``flags.csv`` gives per clip ``label_noise_score`` and ``mismatch_score`` in
[0, 1] (higher = more suspicious) and ``embeddings.parquet`` gives 2-D UMAP coordinates per modality and the
fused embedding. Everything here turns those tables into what a page shows: colour categories, plot traces,
the review queue, nearest neighbours and one-line explanations. Strings that hold user data (labels, file
names) are escaped for the place they are shown: :func:`escape_hover` for Plotly, :func:`md_literal` for
Markdown.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.flags import FLAG_THRESHOLD, flag_kind

FLAG_COLUMNS = ["clip", "given_label", "suggested_label", "suggested_confidence", "label_noise_score",
                "mismatch_score", "audio_pred", "visual_pred", "problem"]
SCORE_COLUMNS = ["suggested_confidence", "label_noise_score", "mismatch_score"]
MODALITIES = ("audio", "visual", "fused")

# Flag kinds as a curator reads them, in legend order (clean first so flagged points are drawn on top).
KIND_TEXT = {"clean": "looks fine", "unscored": "not scored", "mismatch": "sound mismatch?",
             "wrong_label": "wrong label?", "both": "wrong label + mismatch"}
KIND_COLOURS = {"looks fine": "#b8c2cc", "not scored": "#6c757d", "sound mismatch?": "#7b61ff",
                "wrong label?": "#f28e2b", "wrong label + mismatch": "#d62728"}
STATUS_TEXT = {"accept": "accepted suggestion", "keep": "kept given label", "relabel": "relabelled",
               "exclude": "excluded", "skip": "skipped"}
NOT_REVIEWED = "not reviewed"
# Colour options of the Explore maps -> the column of points_table() they colour by.
COLOUR_BY = {"Flag kind": "kind_text", "Given label": "given_label", "Suggested label": "suggested_label",
             "Review status": "review_status"}
# More colour categories than this and the maps use one trace with a numeric colour index and no legend:
# a trace per category costs a WebGL draw call each and a 300-entry legend is unreadable anyway.
MAX_LEGEND_CATEGORIES = 20
QUALITATIVE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf", "#393b79", "#e7ba52", "#637939", "#ad494a", "#a55194", "#6b6ecf",
               "#8ca252", "#bd9e39", "#843c39", "#7b4173"]


# ----------------------------------------------------------------------------------------------- run tables
def read_flags(path: str | Path, threshold: float = FLAG_THRESHOLD) -> pd.DataFrame:
    """flags.csv -> DataFrame with FLAG_COLUMNS (labels kept as text: a class called "NA" stays "NA"), numeric
    scores (NaN for problem rows), and added ``flag_kind`` (clean|wrong_label|mismatch|both|unscored),
    ``kind_text`` and ``max_score`` = max(label_noise_score, mismatch_score)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in FLAG_COLUMNS if c not in table.columns and c != "problem"]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(table.columns)})")
    if "problem" not in table.columns:
        table["problem"] = ""
    for col in SCORE_COLUMNS:
        table[col] = pd.to_numeric(table[col].replace("", np.nan), errors="coerce")
    return annotate_flags(table, threshold)


def annotate_flags(flags: pd.DataFrame, threshold: float = FLAG_THRESHOLD) -> pd.DataFrame:
    """Add ``flag_kind``, ``kind_text`` and ``max_score`` (see :func:`read_flags`) to a copy of ``flags``."""
    out = flags.copy()
    kind = flag_kind(out, threshold).astype(object)
    unscored = out["label_noise_score"].isna() & out["mismatch_score"].isna()
    kind[unscored] = "unscored"
    out["flag_kind"] = kind.to_numpy()
    out["kind_text"] = out["flag_kind"].map(KIND_TEXT)
    out["max_score"] = out[["label_noise_score", "mismatch_score"]].max(axis=1)
    return out


def read_umap(path: str | Path) -> pd.DataFrame:
    """embeddings.parquet -> clip plus the six ``umap_<modality>_<x|y>`` columns (the vectors are not read)."""
    cols = ["clip"] + [f"umap_{m}_{a}" for m in MODALITIES for a in "xy"]
    return pd.read_parquet(path, columns=cols)


def read_embedding_matrix(path: str | Path, column: str = "fused") -> tuple[list[str], np.ndarray]:
    """embeddings.parquet -> (clips, (N, d) float32 with unit-length rows) of one embedding column."""
    table = pd.read_parquet(path, columns=["clip", column])
    matrix = np.stack([np.asarray(v, dtype=np.float32) for v in table[column]]) if len(table) else \
        np.zeros((0, 1), np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return table["clip"].astype(str).tolist(), matrix / np.maximum(norms, 1e-12)


def review_status(clips: pd.Series, latest: pd.DataFrame | None) -> pd.Series:
    """(N,) str: the clip's latest decision as STATUS_TEXT, or NOT_REVIEWED."""
    if latest is None or latest.empty:
        return pd.Series(NOT_REVIEWED, index=clips.index, name="review_status")
    by_clip = latest.set_index("clip")["decision"].map(STATUS_TEXT)
    return clips.map(by_clip).fillna(NOT_REVIEWED).rename("review_status")


def points_table(flags: pd.DataFrame, umap: pd.DataFrame, latest: pd.DataFrame | None = None) -> pd.DataFrame:
    """Scored clips that have UMAP coordinates, one row each: flags columns + umap columns + review_status.
    Row order is that of ``flags``; the index is 0..N-1 (row positions are what the plots refer to)."""
    table = flags.merge(umap, on="clip", how="inner")
    table["review_status"] = review_status(table["clip"], latest).to_numpy()
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------------------------- plot traces
@dataclass
class TracePlan:
    """How the points of a map are split into Plotly traces.

    ``mode`` "legend": one trace per category, ``names[k]`` shown in the legend, ``rows[k]`` the row positions
    (into the points table) of trace k. ``mode`` "index": one trace holding every row, ``rows[0]`` =
    arange(N), ``codes`` (N,) int colour index into ``names``. In both modes point j of trace k is row
    ``rows[k][j]``, which is what :func:`selected_rows` relies on.
    """

    mode: str
    names: list[str]
    rows: list[np.ndarray]
    codes: np.ndarray | None = None
    colours: list[str] | None = None


def plan_traces(categories: pd.Series, *, max_legend: int = MAX_LEGEND_CATEGORIES,
                order: list[str] | None = None, colours: dict[str, str] | None = None) -> TracePlan:
    """Split rows by category. ``order`` fixes the category order (others follow, sorted); ``colours`` maps a
    category to a colour (others get QUALITATIVE colours in turn)."""
    values = categories.astype(str).to_numpy()
    present = set(values)
    names = [c for c in (order or []) if c in present] + sorted(present - set(order or []))
    if len(names) <= max_legend:
        rows = [np.flatnonzero(values == n) for n in names]
        palette = [(colours or {}).get(n, QUALITATIVE[i % len(QUALITATIVE)]) for i, n in enumerate(names)]
        return TracePlan("legend", names, rows, colours=palette)
    code_of = {n: i for i, n in enumerate(names)}
    codes = np.fromiter((code_of[v] for v in values), dtype=np.int32, count=len(values))
    return TracePlan("index", names, [np.arange(len(values))], codes=codes)


def selected_rows(plan: TracePlan, points: list[dict]) -> np.ndarray:
    """Plotly selection ``points`` (dicts with ``curve_number`` and ``point_index``; Streamlit's selection
    state) -> sorted unique row positions. Points on traces the plan does not know (an overlay) are ignored."""
    found: set[int] = set()
    for p in points or []:
        curve = p.get("curve_number", p.get("curveNumber"))
        index = p.get("point_index", p.get("pointIndex", p.get("point_number")))
        if curve is None or index is None or not 0 <= int(curve) < len(plan.rows):
            continue
        trace_rows = plan.rows[int(curve)]
        if 0 <= int(index) < len(trace_rows):
            found.add(int(trace_rows[int(index)]))
    return np.array(sorted(found), dtype=np.int64)


def escape_hover(text: object) -> str:
    """User text for a Plotly hover label or legend: Plotly interprets a subset of HTML tags there, so ``&``,
    ``<`` and ``>`` become entities (shown literally)."""
    return html.escape(str(text), quote=False)


def hover_customdata(points: pd.DataFrame) -> np.ndarray:
    """(N, 4) object array for a ``hovertemplate`` (see HOVER_TEMPLATE): clip, given -> suggested label,
    flag kind, scores; every user string escaped."""
    def score(v: pd.Series) -> pd.Series:
        return v.map(lambda x: "–" if pd.isna(x) else f"{x:.2f}")

    labels = points["given_label"].map(escape_hover) + " → " + points["suggested_label"].map(escape_hover)
    scores = "label " + score(points["label_noise_score"]) + " · mismatch " + score(points["mismatch_score"])
    return np.column_stack([points["clip"].map(escape_hover), labels, points["kind_text"], scores]).astype(object)


HOVER_TEMPLATE = ("%{customdata[0]}<br>label: %{customdata[1]}<br>%{customdata[2]}<br>%{customdata[3]}"
                  "<extra></extra>")


# -------------------------------------------------------------------------------------------- review queue
def review_queue(points: pd.DataFrame, *, kinds: list[str] | None = None, classes: list[str] | None = None,
                 threshold: float = 0.0, unreviewed_only: bool = True,
                 clips: list[str] | None = None) -> pd.DataFrame:
    """Rows of ``points`` (needs flag_kind, given_label, max_score, review_status) to review, in order.

    With ``clips`` (an explicit selection, e.g. from Explore) only those clips are kept and ``kinds``,
    ``classes`` and ``threshold`` are ignored. Otherwise a row is kept when its flag_kind is in ``kinds``, its
    given label in ``classes`` (None = all) and max_score >= ``threshold``. ``unreviewed_only`` drops clips
    with a decision other than "skip". Order: not yet looked at first, skipped last; then max_score
    descending, then clip.
    """
    table = points
    if clips is not None:
        table = table[table["clip"].isin(set(clips))]
    else:
        if kinds is not None:
            table = table[table["flag_kind"].isin(kinds)]
        if classes:
            table = table[table["given_label"].isin(classes)]
        table = table[table["max_score"].fillna(-1.0) >= threshold]
    skipped = table["review_status"] == STATUS_TEXT["skip"]
    if unreviewed_only:
        table = table[(table["review_status"] == NOT_REVIEWED) | skipped]
        skipped = table["review_status"] == STATUS_TEXT["skip"]
    order = table.assign(_skipped=skipped.to_numpy(), _score=table["max_score"].fillna(-1.0))
    order = order.sort_values(["_skipped", "_score", "clip"], ascending=[True, False, True], kind="stable")
    return order.drop(columns=["_skipped", "_score"])


def nearest_neighbours(clips: list[str], matrix: np.ndarray, clip: str, k: int = 5) -> pd.DataFrame:
    """The ``k`` clips nearest to ``clip`` by cosine similarity of unit-length ``matrix`` rows (itself
    excluded): DataFrame(clip, similarity) sorted by similarity descending; empty if ``clip`` is unknown."""
    try:
        i = clips.index(clip)
    except ValueError:
        return pd.DataFrame({"clip": [], "similarity": []})
    sims = matrix @ matrix[i]
    sims[i] = -np.inf
    k = min(k, len(clips) - 1)
    if k <= 0:
        return pd.DataFrame({"clip": [], "similarity": []})
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    return pd.DataFrame({"clip": [clips[j] for j in top], "similarity": sims[top].astype(float).round(3)})


# ------------------------------------------------------------------------------------------- explanations
def md_literal(text: object) -> str:
    """User text as a Markdown inline-code span: shown literally (no HTML, emphasis, links, emoji or maths)."""
    s = re.sub(r"[\r\n]+", " ", str(text))
    if not s:
        return "` `"
    fence = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or s.startswith(" ") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def explain(row: pd.Series | dict, threshold: float = FLAG_THRESHOLD) -> dict[str, str]:
    """One plain-language Markdown sentence per score: {"label": ..., "mismatch": ...}; labels as md_literal."""
    row = dict(row)
    given, sugg = md_literal(row.get("given_label", "")), md_literal(row.get("suggested_label", ""))
    audio, visual = md_literal(row.get("audio_pred", "")), md_literal(row.get("visual_pred", ""))
    noise, mism, conf = row.get("label_noise_score"), row.get("mismatch_score"), row.get("suggested_confidence")
    if pd.isna(noise) and pd.isna(mism):
        problem = row.get("problem") or "not scored"
        return {"label": f"Not scored ({md_literal(problem)}).", "mismatch": ""}
    conf_text = "" if pd.isna(conf) else f" (confidence {conf:.0%})"
    if noise >= threshold and row.get("suggested_label") != row.get("given_label"):
        label = (f"**Likely wrong label** (score {noise:.2f}): the model and similar clips say {sugg}"
                 f"{conf_text}, not {given}.")
    elif noise >= threshold:
        label = f"**Doubtful label** (score {noise:.2f}): the model is unsure about {given}{conf_text}."
    else:
        label = f"**Label looks right** (score {noise:.2f}): the model agrees with {given}{conf_text}."
    if mism >= threshold:
        mismatch = (f"**Sound may not belong to the picture** (score {mism:.2f}): audio says {audio}, "
                    f"picture says {visual}.")
    elif row.get("audio_pred") != row.get("visual_pred"):
        mismatch = (f"**Sound fits the picture** (score {mism:.2f}), though audio alone says {audio} and "
                    f"picture alone says {visual}.")
    else:
        mismatch = f"**Sound fits the picture** (score {mism:.2f}): audio and picture both say {audio}."
    return {"label": label, "mismatch": mismatch}


def clip_path(data_dir: str | Path, clip: str) -> Path:
    """The file of ``clip`` (a path relative to the data set folder, from flags.csv), resolved. Raises
    ValueError if it points outside ``data_dir`` (absolute path, ``..``, a symlink out) or is not a file."""
    root = Path(data_dir).resolve()
    path = (root / clip).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{clip!r} points outside the data set folder {root}; not opened")
    if not path.is_file():
        raise ValueError(f"{clip!r}: file not found in {root}")
    return path


# --------------------------------------------------------------------------------------- training progress
@dataclass
class ProgressView:
    """What the Model page shows of a run's progress.jsonl: ``fraction`` in [0, 1] of all training epochs,
    ``caption`` (phase / epoch / step), ``eta_s`` and ``elapsed_s`` (None if unknown), the latest estimated
    rates, ``losses`` long-form DataFrame(step, term, value) over all step events (``step`` counts optimiser
    steps from the start of training), and the last message."""

    fraction: float
    caption: str
    eta_s: float | None
    elapsed_s: float | None
    est_label_noise: float | None
    est_mismatch: float | None
    losses: pd.DataFrame
    message: str


def progress_view(events: list[dict], now: float | None = None) -> ProgressView:
    """Summarise progress events as train.py writes them: ``epoch`` counts epochs over both phases (0-based in
    "step" events, = epochs completed in "epoch" events), ``epochs_total`` = both phases, ``step`` is 1-based
    within the epoch. ``now`` (unix seconds) counts the ETA of the last "epoch" event down."""
    total = next((int(e["epochs_total"]) for e in reversed(events) if e.get("epochs_total")), 0)
    last = next((e for e in reversed(events) if e.get("event") in ("step", "epoch")), None)
    fraction, caption = 0.0, "preparing: decoding clips and building the model"
    if last is not None and total:
        spe = int(last.get("steps_per_epoch") or 1)
        if last["event"] == "step":
            done = int(last.get("epoch", 0)) + int(last.get("step", 0)) / spe
            current = int(last.get("epoch", 0)) + 1
        else:
            done = current = int(last.get("epoch", 0))
        fraction = min(1.0, done / total)
        caption = f"phase {last.get('phase', '?')} · epoch {min(current, total)} of {total}"
        if last["event"] == "step":
            caption += f" · step {last.get('step')}/{spe}"
    finished = bool(events) and events[-1].get("event") == "done"
    if finished:
        fraction, caption = 1.0, "all epochs done"
    rows = []
    for e in events:
        if e.get("event") == "step":
            x = int(e.get("epoch", 0)) * int(e.get("steps_per_epoch") or 1) + int(e.get("step", 0))
            rows.extend((x, str(term), float(v)) for term, v in (e.get("losses") or {}).items() if v is not None)
    timed = [e for e in events if e.get("eta_s") is not None]
    eta = None
    if finished:
        eta = 0.0
    elif timed:
        eta = float(timed[-1]["eta_s"])
        if now is not None and timed[-1].get("time") is not None:
            eta = max(0.0, eta - (now - float(timed[-1]["time"])))
    rates = [e for e in events if e.get("est_label_noise") is not None or e.get("est_mismatch") is not None]
    elapsed = [e["elapsed_s"] for e in events if e.get("elapsed_s") is not None]
    messages = [e["message"] for e in events if e.get("message")]
    return ProgressView(
        fraction=float(fraction), caption=caption, eta_s=eta, elapsed_s=elapsed[-1] if elapsed else None,
        est_label_noise=rates[-1].get("est_label_noise") if rates else None,
        est_mismatch=rates[-1].get("est_mismatch") if rates else None,
        losses=pd.DataFrame(rows, columns=["step", "term", "value"]),
        message=messages[-1] if messages else "")


def run_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a run folder name (it becomes DIR/.auditor/runs/<name>), or None if it can."""
    if not RUN_NAME.fullmatch(name or ""):
        return ("a run name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit "
                f"(got {name!r})")
    return None


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def format_seconds(seconds: float | None) -> str:
    """85 -> "1 min 25 s"; None -> "–"."""
    if seconds is None or pd.isna(seconds):
        return "–"
    s = int(round(float(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def read_config(run_dir: str | Path) -> dict:
    """config.json of a run, or {} when it is missing or unreadable."""
    try:
        return json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
