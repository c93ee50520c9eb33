"""From a run's flags.csv to the clips a curator reviews, in order (pure pandas/numpy; no Streamlit).

Notation: N scored clips. flags.csv (columns :data:`auditor.flags.FLAGS_COLUMNS`) gives per clip
``label_noise_score`` and ``mismatch_score`` in [0, 1], higher = more suspicious. This module reads it with each
clip's flag kind, adds each clip's review status (its latest decision in :mod:`auditor.reviews`), orders the
review queue, finds a clip's nearest neighbours in the fused embedding, explains both scores in plain words,
and resolves a clip's file inside the data set folder. Labels in the explanations are :func:`md_literal` spans.
"""

from __future__ import annotations

from collections import defaultdict
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
NOT_REVIEWED = "not reviewed"
STATUS_TEXT = {"accept": "accepted suggestion", "keep": "kept given label", "relabel": "relabelled",
               "exclude": "excluded", "skip": "skipped", "undo": NOT_REVIEWED}
# The statuses of a decided clip (auditor.reviews.FINAL_DECISIONS): "skipped" is not decided.
DECIDED_STATUSES = frozenset(STATUS_TEXT[d] for d in FINAL_DECISIONS)
# What the latest row of a clip's decision log did, in words: a skip or an undo is no decision.
LATEST_TEXT = {"skip": "skipped", "undo": "decision undone"}


def latest_text(decision: str) -> str:
    """The latest row of a clip's log as the clip's caption says it ("... by <curator>"): "latest decision:
    accept", but "skipped" and "decision undone" (neither is a decision)."""
    return LATEST_TEXT.get(decision, f"latest decision: {decision}")


# ----------------------------------------------------------------------------------------------- flags.csv
def read_flags(path: str | Path, threshold: float = FLAG_THRESHOLD) -> pd.DataFrame:
    """flags.csv -> DataFrame with FLAGS_COLUMNS (labels kept as text: a class called "NA" stays "NA"), numeric
    scores (NaN for problem rows), and added ``flag_kind`` (clean|wrong_label|mismatch|both|unscored),
    ``kind_text``, ``max_score`` = max(label_noise_score, mismatch_score) and ``max_rank`` = max of the two
    ranks (derived from the scores for an older flags.csv without rank columns)."""
    numeric = SCORE_COLUMNS + list(RANK_COLUMNS)
    try:  # the numbers parsed as they are read: several times faster than text converted afterwards
        table = pd.read_csv(path, dtype=defaultdict(lambda: str, dict.fromkeys(numeric, "float64")),
                            keep_default_na=False, na_values=dict.fromkeys(numeric, [""]))
    except ValueError:  # a value that is not a number: read as text, and that value becomes NaN below
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in FLAGS_COLUMNS if c not in table.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(table.columns)})")
    if "problem" not in table.columns:
        table["problem"] = ""
    for col in [c for c in numeric if c in table.columns and table[c].dtype != np.float64]:
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
# Queue orders: key -> (what the curator reads, [(column, ascending), ...]); clip name breaks ties last.
# "suspicious": the higher of the two scores, then the higher rank (scores saturate near 1; ranks keep order).
SORTS = {
    "suspicious": ("most suspicious first", [("_score", False), ("_rank", False)]),
    "label": ("wrong-label score", [("label_noise_score", False), ("label_noise_rank", False)]),
    "mismatch": ("mismatch score", [("mismatch_score", False), ("mismatch_rank", False)]),
    "confidence": ("suggestion confidence", [("suggested_confidence", False)]),
    "class": ("class (given label)", [("given_label", True), ("_score", False)]),
    "clip": ("clip name", []),
}


def review_queue(points: pd.DataFrame, *, kinds: list[str] | None = None, classes: list[str] | None = None,
                 threshold: float = 0.0, unreviewed_only: bool = True,
                 clips: list[str] | None = None, sort: str = "suspicious", search: str = "") -> pd.DataFrame:
    """Rows of ``points`` (needs flag_kind, given_label, max_score, review_status) to review, in order.

    With ``clips`` (an explicit selection, e.g. from Explore) only those clips are kept and ``kinds``,
    ``classes`` and ``threshold`` are ignored. Otherwise a row is kept when its flag_kind is in ``kinds``, its
    given label in ``classes`` (None = all) and max_score >= ``threshold``. ``unreviewed_only`` drops decided
    clips (is_decided: a skipped clip stays). ``search`` keeps rows whose clip, given or suggested label
    contains it (case-insensitive). Order: not yet looked at first, skipped last; then by ``sort`` (a key of
    SORTS; missing values last), then clip. Raises ValueError for an unknown ``sort``.
    """
    if sort not in SORTS:
        raise ValueError(f"sort {sort!r} is not one of {', '.join(SORTS)}")
    table = points
    if clips is not None:
        table = table[table["clip"].isin(set(clips))]
    else:
        if kinds is not None:
            table = table[table["flag_kind"].isin(kinds)]
        if classes:
            table = table[table["given_label"].isin(classes)]
        table = table[table["max_score"].fillna(-1.0) >= threshold]
    if search.strip():
        needle = search.strip().lower()
        hay = table["clip"].astype(str) + "\n" + table["given_label"].astype(str) + "\n" + \
            table.get("suggested_label", pd.Series("", index=table.index)).astype(str)
        table = table[hay.str.lower().str.contains(needle, regex=False)]
    if unreviewed_only:
        table = table[~is_decided(table["review_status"])]
    rank = table["max_rank"] if "max_rank" in table.columns else pd.Series(-1.0, index=table.index)
    order = table.assign(_skipped=(table["review_status"] == STATUS_TEXT["skip"]).to_numpy(),
                         _score=table["max_score"].fillna(-1.0), _rank=rank.fillna(-1.0))
    keys = [("_skipped", True), *[(c, up) for c, up in SORTS[sort][1] if c in order.columns], ("clip", True)]
    order = order.sort_values([c for c, _ in keys], ascending=[up for _, up in keys], kind="stable",
                              na_position="last")
    return order.drop(columns=["_skipped", "_score", "_rank"])


# What a batch action does to each clip it applies to -> how the confirmation names it.
BATCH_ACTIONS = {"accept": "accept the suggested label", "keep": "mark as checked (keep the given label)",
                 "exclude": "exclude"}


def batch_rows(points: pd.DataFrame, decision: str) -> pd.DataFrame:
    """The rows of ``points`` a batch ``decision`` (a key of BATCH_ACTIONS) applies to: scored clips; for
    "accept" only those whose suggested label differs from the given one (accepting the others would only keep
    their label). Raises ValueError for an unknown decision."""
    if decision not in BATCH_ACTIONS:
        raise ValueError(f"batch decision {decision!r} is not one of {', '.join(BATCH_ACTIONS)}")
    rows = points[points["flag_kind"] != UNSCORED]
    if decision == "accept":
        sugg = rows["suggested_label"].fillna("").astype(str)
        rows = rows[(sugg != "") & (sugg != rows["given_label"].astype(str))]
    return rows


def batch_decisions(rows: pd.DataFrame, decision: str, *, curator: str, run_id: str, note: str = "") -> list[dict]:
    """One ReviewStore.record_many item per row of ``rows`` (batch_rows), in row order."""
    return [{"clip": r["clip"], "decision": decision, "given_label": r["given_label"],
             "suggested_label": r.get("suggested_label") or None, "curator": curator, "run_id": run_id,
             "label_noise_score": r.get("label_noise_score"), "mismatch_score": r.get("mismatch_score"),
             "note": note} for r in rows.to_dict("records")]


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
def primary_action(row: pd.Series | dict) -> str:
    """The decision the Review page highlights for a flags row: "accept" when the suggested label differs from
    the given one; else, for a clip flagged for its sound, "exclude" (the sound verdict: accepting would change
    nothing); else "keep"."""
    suggested = row.get("suggested_label")
    if suggested and suggested == suggested and suggested != row.get("given_label"):
        return "accept"
    return "exclude" if row.get("flag_kind") in ("mismatch", "both") else "keep"


def explain(row: pd.Series | dict, threshold: float = FLAG_THRESHOLD) -> dict[str, str]:
    """One plain-language Markdown sentence per score: {"label": ..., "mismatch": ...}; labels as md_literal.

    Each sentence says what the evidence is, never a reason that the rest of the sentence contradicts: the
    mismatch score measures how far a clip's sound is from the sounds of clips whose picture looks like its own
    (cross-modal distance), so a flagged clip whose sound and picture each point to the same class is explained
    as such (the class fits; this pairing does not)."""
    row = dict(row)
    noise, mism = row.get("label_noise_score"), row.get("mismatch_score")
    if pd.isna(noise) and pd.isna(mism):
        problem = row.get("problem") or "not scored"
        return {"label": f"Not scored ({md_literal(problem)}).", "mismatch": ""}
    return {"label": _explain_label(row, noise, threshold), "mismatch": _explain_mismatch(row, mism, threshold)}


def _explain_label(row: dict, noise: float, threshold: float) -> str:
    given, sugg = md_literal(row.get("given_label", "")), md_literal(row.get("suggested_label", ""))
    conf = row.get("suggested_confidence")
    conf_text = "" if pd.isna(conf) else f" (confidence {conf:.0%})"
    other = bool(row.get("suggested_label")) and row.get("suggested_label") != row.get("given_label")
    if noise >= threshold and other:
        return (f"**Likely wrong label** (score {noise:.2f}): the model and similar clips say {sugg}{conf_text}, "
                f"not {given}.")
    if noise >= threshold:
        return (f"**Doubtful label** (score {noise:.2f}): {given} fits this clip worse than it fits most clips "
                f"of its class, and no other class is clearly better{conf_text}.")
    if other:
        return (f"**Label probably right** (score {noise:.2f}): the model leans to {sugg}{conf_text}, but the "
                f"evidence against {given} is too weak to flag it.")
    return f"**Label looks right** (score {noise:.2f}): the model agrees with {given}{conf_text}."


def _explain_mismatch(row: dict, mism: float, threshold: float) -> str:
    if pd.isna(mism):
        return ""
    audio, visual = md_literal(row.get("audio_pred", "")), md_literal(row.get("visual_pred", ""))
    same = row.get("audio_pred") == row.get("visual_pred")
    if mism >= threshold:
        why = (f"**Sound may not belong to the picture** (score {mism:.2f}): this sound is far from the sounds "
               "of clips whose picture looks like this one.")
        if same:
            return why + (f" Heard alone it still suggests {audio}, as the picture does: the class fits, this "
                          "pairing does not (another clip's sound, dubbing, music or an off-screen source).")
        return why + f" Heard alone it suggests {audio}; the picture alone suggests {visual}."
    if same:
        return f"**Sound fits the picture** (score {mism:.2f}): sound alone and picture alone both suggest {audio}."
    return (f"**Sound fits the picture** (score {mism:.2f}): it is close to the sounds of clips that look like "
            f"this one, though heard alone it suggests {audio} and the picture alone {visual}.")


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


def clip_paths(data_dir: str | Path, clips: list[str]) -> list[Path]:
    """The files of ``clips`` (:func:`clip_path`), in order, leaving out each that it refuses (outside the data
    set, or not a file)."""
    paths = []
    for clip in clips:
        try:
            paths.append(clip_path(data_dir, clip))
        except ValueError:
            continue
    return paths
