"""Quality of a run's flags against injected truth (truth.csv written by ``sample`` or ``inject``).

:func:`flag_metrics` returns, for the scored clips present in both tables (a clip is scored when it has a label
or a mismatch score; each score is measured on the clips that have it), with ``S`` = label | mismatch, its truth
column label_is_noisy | is_mismatched, and "flagged" = score >= threshold:
  S_ap, S_auroc                 average precision / AUROC of the score for its truth
  S_f1, S_precision, S_recall   of the flag for its truth
  S_false_alarm                 share of the clips without that problem (truth 0) that are flagged
  S_flagged                     share of all clips with the score that are flagged
  S_class_false_alarm_max       the largest S_false_alarm of one true class
  suggestion_acc_noisy          share of truly-noisy clips whose suggested_label == true_label
  muted_flagged_mismatch        share of the clips with a silent sound track (truth's is_muted) flagged as
                                mismatched
Undefined metrics are NaN: a score column all empty; AP / AUROC / F1 / recall when one class of truth is absent;
precision when nothing is flagged; suggestion accuracy when no clip is noisy or no suggestion is given; the muted
share when truth has no is_muted column or no muted clip.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from auditor.flags import FLAG_THRESHOLD

SCORES = (("label", "label_is_noisy", "label_noise_score"), ("mismatch", "is_mismatched", "mismatch_score"))
FLAG_RATES = ("f1", "precision", "recall", "false_alarm", "flagged", "class_false_alarm_max")  # of the flag alone


def _ranking_metrics(truth: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """ap, auroc, f1, precision, recall of one score against a 0/1 truth (no NaN in either)."""
    flagged = score >= threshold
    precision = float(truth[flagged].mean()) if flagged.any() else np.nan
    if truth.size == 0 or truth.all() or not truth.any():
        return {"ap": np.nan, "auroc": np.nan, "f1": np.nan, "precision": precision, "recall": np.nan}
    return {"ap": float(average_precision_score(truth, score)), "auroc": float(roc_auc_score(truth, score)),
            "f1": float(f1_score(truth, flagged)), "precision": precision, "recall": float(flagged[truth].mean())}


def _alarm_metrics(truth: np.ndarray, flagged: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """false_alarm, flagged and class_false_alarm_max of one score's flags (see the module docstring)."""
    clean = ~truth
    if not flagged.size:
        return {"false_alarm": np.nan, "flagged": np.nan, "class_false_alarm_max": np.nan}
    per_class = pd.Series(flagged[clean]).groupby(classes[clean]).mean()
    return {"false_alarm": float(flagged[clean].mean()) if clean.any() else np.nan,
            "flagged": float(flagged.mean()),
            "class_false_alarm_max": float(per_class.max()) if len(per_class) else np.nan}


def flag_metrics(flags: pd.DataFrame, truth: pd.DataFrame, threshold: float = FLAG_THRESHOLD) -> dict[str, float]:
    """See the module docstring. ``flags`` follows flags.csv, ``truth`` follows truth.csv."""
    df = flags.merge(truth, on="clip", how="inner")
    df = df[df["label_noise_score"].notna() | df["mismatch_score"].notna()]
    out: dict[str, float] = {"clips": float(len(df))}
    for name, truth_col, score_col in SCORES:
        score = df[score_col].to_numpy(float)
        ok = ~np.isnan(score)
        y, flagged = df[truth_col].to_numpy()[ok].astype(bool), score[ok] >= threshold
        metrics = _ranking_metrics(y, score[ok], threshold) | _alarm_metrics(y, flagged,
                                                                             df["true_label"].to_numpy()[ok])
        out |= {f"{name}_{k}": v for k, v in metrics.items()}
    out["suggestion_acc_noisy"] = _suggestion_accuracy(df)
    out["muted_flagged_mismatch"] = _muted_flagged(df, threshold)
    return out


def _suggestion_accuracy(df: pd.DataFrame) -> float:
    noisy = df[df["label_is_noisy"].astype(bool)]
    given = df["suggested_label"].notna() & (df["suggested_label"] != "")
    if not len(noisy) or not given.any():
        return np.nan
    return float((noisy["suggested_label"] == noisy["true_label"]).mean())


def _muted_flagged(df: pd.DataFrame, threshold: float) -> float:
    if "is_muted" not in df:
        return np.nan
    muted = df[df["is_muted"].astype(bool) & df["mismatch_score"].notna()]
    return float((muted["mismatch_score"] >= threshold).mean()) if len(muted) else np.nan


def accuracy(flags: pd.DataFrame, truth: pd.DataFrame, column: str = "suggested_label") -> float:
    """Share of clips whose ``column`` equals the true (visual) label, e.g. on a clean held-out split."""
    df = flags.merge(truth, on="clip", how="inner")
    df = df[df[column].notna() & (df[column] != "")]
    return float((df[column] == df["true_label"]).mean()) if len(df) else np.nan


def class_recall(flags: pd.DataFrame, truth: pd.DataFrame, column: str = "suggested_label") -> pd.Series:
    """Per true class, the share of its clips whose ``column`` equals the true label (index: class, sorted);
    clips without a prediction count as wrong."""
    df = truth[["clip", "true_label"]].merge(flags[["clip", column]], on="clip", how="inner")
    return (df[column] == df["true_label"]).groupby(df["true_label"]).mean().sort_index()
