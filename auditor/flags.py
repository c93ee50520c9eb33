"""The flags.csv contract and the flag rule, without heavy imports (the app reads these on every page).

flags.csv, one row per ingested clip: clip, given_label, suggested_label, suggested_confidence,
label_noise_score, mismatch_score, audio_pred, visual_pred, problem, label_noise_rank, mismatch_rank. Scores
are in [0, 1], higher = more suspicious; a clip is flagged when a score is at least FLAG_THRESHOLD. The scores
are posteriors and saturate near 0 and 1; the ranks give them resolution: the share of scored clips (for
mismatch_rank, of clips with usable sound) whose score is lower or equal, in (0, 1] (0 for a clip without sound).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FLAG_THRESHOLD = 0.5  # a posterior above one half: the noisy component is the more likely one
FLAGS_COLUMNS = ["clip", "given_label", "suggested_label", "suggested_confidence", "label_noise_score",
                 "mismatch_score", "audio_pred", "visual_pred", "problem", "label_noise_rank", "mismatch_rank"]
RANK_COLUMNS = {"label_noise_rank": "label_noise_score", "mismatch_rank": "mismatch_score"}
FLAG_KINDS = ("clean", "wrong_label", "mismatch", "both")
FLAGGED_KINDS = tuple(k for k in FLAG_KINDS if k != "clean")  # what the review queue shows by default


def percentile_rank(scores: np.ndarray) -> np.ndarray:
    """For each score, the share of ``scores`` that are lower or equal: (N,) in (0, 1], 1 for the highest."""
    return pd.Series(scores, dtype=float).rank(method="max", pct=True).to_numpy()


def add_missing_ranks(flags: pd.DataFrame) -> pd.DataFrame:
    """flags.csv of an older run has no rank columns: derive them from the scores (over the scored rows; the
    mismatch rank over rows with a positive mismatch score or a rank of 0 otherwise, as scoring writes them)."""
    out = flags.copy()
    for rank_col, score_col in RANK_COLUMNS.items():
        if rank_col in out.columns:
            continue
        scores = pd.to_numeric(out[score_col], errors="coerce")
        ranks = pd.Series(np.nan, index=out.index)
        scored = scores.notna()
        ranks[scored] = percentile_rank(scores[scored].to_numpy())
        out[rank_col] = ranks
    return out


def flag_kind(flags: pd.DataFrame, threshold: float = FLAG_THRESHOLD) -> pd.Series:
    """'clean' | 'wrong_label' | 'mismatch' | 'both' per row (score >= threshold); problem rows with no scores
    are 'clean' for the wrong-label/mismatch queues."""
    wrong = flags["label_noise_score"].fillna(0).to_numpy() >= threshold
    mism = flags["mismatch_score"].fillna(0).to_numpy() >= threshold
    kinds = np.where(wrong & mism, "both", np.where(wrong, "wrong_label", np.where(mism, "mismatch", "clean")))
    return pd.Series(kinds, index=flags.index, name="flag")
