"""From a run's flags.csv to the clips a curator reviews, in order (pure pandas/numpy; no Streamlit).

Notation: N scored clips. flags.csv (columns :data:`auditor.flags.FLAGS_COLUMNS`) gives per clip
``label_noise_score`` and ``mismatch_score`` in [0, 1], higher = more suspicious. This module reads it with each
clip's flag kind, adds each clip's review status (its latest decision in :mod:`auditor.reviews`), orders the
review queue, finds a clip's nearest neighbours in the fused embedding, explains both scores in plain words,
and resolves a clip's file inside the data set folder. Labels in the explanations are :func:`md_literal` spans.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from auditor.flags import (
    FLAG_THRESHOLD,
    FLAGGED_KINDS,
    FLAGS_COLUMNS,
    RANK_COLUMNS,
    add_missing_ranks,
    flag_kind,
)
from auditor.reviews import FINAL_DECISIONS
from auditor.text import md_literal

SCORE_COLUMNS = ["suggested_confidence", "label_noise_score", "mismatch_score"]
# Columns an older flags.csv may lack: problem (empty), the ranks (derived from the scores).
OPTIONAL_COLUMNS = ("problem", *RANK_COLUMNS)
UNSCORED = "unscored"  # the flag kind of a problem row (a clip that could not be scored)
# Flag kinds (auditor.flags.FLAG_KINDS and UNSCORED) as a curator reads them.
KIND_TEXT = {"clean": "looks fine", UNSCORED: "not scored", "mismatch": "sound mismatch?",
             "wrong_label": "wrong label?", "both": "wrong label + mismatch"}
# A clip's latest decision (auditor.reviews.DECISIONS) as a curator reads it; NOT_REVIEWED when it has none.
STATUS_TEXT = {"accept": "accepted suggestion", "keep": "kept given label", "relabel": "relabelled",
               "exclude": "excluded", "skip": "skipped"}
NOT_REVIEWED = "not reviewed"
# The statuses of a decided clip (auditor.reviews.FINAL_DECISIONS): "skipped" is not decided.
DECIDED_STATUSES = frozenset(STATUS_TEXT[d] for d in FINAL_DECISIONS)


# ----------------------------------------------------------------------------------------------- flags.csv
def read_flags(path: str | Path, threshold: float = FLAG_THRESHOLD) -> pd.DataFrame:
    """flags.csv -> DataFrame with FLAGS_COLUMNS (labels kept as text: a class called "NA" stays "NA"), numeric
    scores (NaN for problem rows), and added ``flag_kind`` (clean|wrong_label|mismatch|both|unscored),
    ``kind_text``, ``max_score`` = max(label_noise_score, mismatch_score) and ``max_rank`` = max of the two
    ranks (derived from the scores for an older flags.csv without rank columns)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in FLAGS_COLUMNS if c not in table.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(table.columns)})")
    if "problem" not in table.columns:
        table["problem"] = ""
    for col in SCORE_COLUMNS + [c for c in RANK_COLUMNS if c in table.columns]:
        table[col] = pd.to_numeric(table[col].replace("", np.nan), errors="coerce")
    return annotate_flags(add_missing_ranks(table), threshold)


def annotate_flags(flags: pd.DataFrame, threshold: float = FLAG_THRESHOLD) -> pd.DataFrame:
    """Add ``flag_kind``, ``kind_text``, ``max_score`` and ``max_rank`` (see :func:`read_flags`) to a copy of
    ``flags``."""
    out = flags.copy()
    kind = flag_kind(out, threshold).astype(object)
    unscored = out["label_noise_score"].isna() & out["mismatch_score"].isna()
    kind[unscored] = UNSCORED
    out["flag_kind"] = kind.to_numpy()
    out["kind_text"] = out["flag_kind"].map(KIND_TEXT)
    out["max_score"] = out[["label_noise_score", "mismatch_score"]].max(axis=1)
    out["max_rank"] = out[list(RANK_COLUMNS)].max(axis=1) if set(RANK_COLUMNS) <= set(out.columns) else np.nan
    return out


def review_status(clips: pd.Series, latest: pd.DataFrame | None) -> pd.Series:
    """(N,) str: the clip's latest decision as STATUS_TEXT, or NOT_REVIEWED."""
    if latest is None or latest.empty:
        return pd.Series(NOT_REVIEWED, index=clips.index, name="review_status")
    by_clip = latest.set_index("clip")["decision"].map(STATUS_TEXT)
    return clips.map(by_clip).fillna(NOT_REVIEWED).rename("review_status")


def is_decided(status: pd.Series) -> pd.Series:
    """(N,) bool: the clip has a decision that settles it (accept, keep, relabel, exclude). The one definition
    of "decided" every count uses: a skipped clip is not decided."""
    return status.isin(DECIDED_STATUSES)


def flag_counts(points: pd.DataFrame) -> dict[str, int]:
    """Clips per flag kind of an annotated flags table: ``clips`` (rows), ``flagged`` (any of FLAGGED_KINDS),
    and one count per flag kind (clean, wrong_label, mismatch, both, unscored); ``flagged`` = wrong_label +
    mismatch + both."""
    counts = points["flag_kind"].value_counts()
    out = {"clips": len(points), "flagged": int(points["flag_kind"].isin(FLAGGED_KINDS).sum())}
    out.update({k: int(counts.get(k, 0)) for k in KIND_TEXT})
    return out


def flag_summary(points: pd.DataFrame) -> str:
    """One line: "73 of 240 clips flagged: 58 wrong label, 12 sound mismatch, 3 both" (kinds with no clip left
    out; unscored clips named at the end)."""
    c = flag_counts(points)
    parts = [f"{c[k]:,} {name}" for k, name in (("wrong_label", "wrong label"), ("mismatch", "sound mismatch"),
                                                  ("both", "both")) if c[k]]
    text = f"{c['flagged']:,} of {c['clips']:,} clips flagged" + (": " + ", ".join(parts) if parts else "")
    return text + (f"; {c[UNSCORED]:,} could not be scored" if c[UNSCORED] else "")


# -------------------------------------------------------------------------------------------- review queue
def review_queue(points: pd.DataFrame, *, kinds: list[str] | None = None, classes: list[str] | None = None,
                 threshold: float = 0.0, unreviewed_only: bool = True,
                 clips: list[str] | None = None) -> pd.DataFrame:
    """Rows of ``points`` (needs flag_kind, given_label, max_score, review_status) to review, in order.

    With ``clips`` (an explicit selection, e.g. from Explore) only those clips are kept and ``kinds``,
    ``classes`` and ``threshold`` are ignored. Otherwise a row is kept when its flag_kind is in ``kinds``, its
    given label in ``classes`` (None = all) and max_score >= ``threshold``. ``unreviewed_only`` drops clips
    with a decision other than "skip". Order: not yet looked at first, skipped last; then max_score
    descending, then max_rank descending (the scores saturate near 1; the ranks keep their order), then clip.
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
    rank = table["max_rank"] if "max_rank" in table.columns else pd.Series(-1.0, index=table.index)
    order = table.assign(_skipped=skipped.to_numpy(), _score=table["max_score"].fillna(-1.0), _rank=rank.fillna(-1.0))
    order = order.sort_values(["_skipped", "_score", "_rank", "clip"], ascending=[True, False, False, True],
                              kind="stable")
    return order.drop(columns=["_skipped", "_score", "_rank"])


# ---------------------------------------------------------------------------------------------- neighbours
def read_embedding_matrix(path: str | Path, column: str = "fused") -> tuple[list[str], np.ndarray]:
    """embeddings.parquet -> (clips, (N, d) float32 with unit-length rows) of one embedding column."""
    table = pd.read_parquet(path, columns=["clip", column])
    matrix = np.stack([np.asarray(v, dtype=np.float32) for v in table[column]]) if len(table) else \
        np.zeros((0, 1), np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return table["clip"].astype(str).tolist(), matrix / np.maximum(norms, 1e-12)


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
