"""Quality of a run's flags against injected truth (truth.csv written by ``sample`` or ``inject``).

:func:`flag_metrics` returns, for the clips present in both tables:
  label_ap, label_auroc       average precision / AUROC of label_noise_score for label_is_noisy
  label_f1                    F1 of (label_noise_score >= threshold) for label_is_noisy
  mismatch_ap, mismatch_auroc, mismatch_f1   the same for mismatch_score and is_mismatched
  suggestion_acc_noisy        share of truly-noisy clips whose suggested_label == true_label
Metrics that are undefined (a score column all empty, or one class of truth absent) are NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from auditor.flags import FLAG_THRESHOLD


def _binary_metrics(truth: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float, float]:
    ok = ~np.isnan(score)
    truth, score = truth[ok].astype(bool), score[ok]
    if truth.size == 0 or truth.all() or not truth.any():
        return np.nan, np.nan, np.nan
    return (float(average_precision_score(truth, score)), float(roc_auc_score(truth, score)),
            float(f1_score(truth, score >= threshold)))


def flag_metrics(flags: pd.DataFrame, truth: pd.DataFrame, threshold: float = FLAG_THRESHOLD) -> dict[str, float]:
    """See the module docstring. ``flags`` follows flags.csv, ``truth`` follows truth.csv."""
    df = flags.merge(truth, on="clip", how="inner")
    df = df[df["label_noise_score"].notna()]
    out: dict[str, float] = {"clips": float(len(df))}
    for name, truth_col, score_col in (("label", "label_is_noisy", "label_noise_score"),
                                       ("mismatch", "is_mismatched", "mismatch_score")):
        ap, auc, f1 = _binary_metrics(df[truth_col].to_numpy(), df[score_col].to_numpy(float), threshold)
        out |= {f"{name}_ap": ap, f"{name}_auroc": auc, f"{name}_f1": f1}
    noisy = df[df["label_is_noisy"].astype(bool)]
    out["suggestion_acc_noisy"] = float((noisy["suggested_label"] == noisy["true_label"]).mean()) if len(noisy) else np.nan
    return out


def accuracy(flags: pd.DataFrame, truth: pd.DataFrame, column: str = "suggested_label") -> float:
    """Share of clips whose ``column`` equals the true (visual) label, e.g. on a clean held-out split."""
    df = flags.merge(truth, on="clip", how="inner")
    df = df[df[column].notna() & (df[column] != "")]
    return float((df[column] == df["true_label"]).mean()) if len(df) else np.nan
