"""The bench's tables and their columns: results.csv (one row per method x setting x seed, ID_COLUMNS then
METRICS, NaN where a metric does not apply to a method or is undefined on the data), speed.csv (SPEED_COLUMNS)
and targets.csv (TARGET_COLUMNS); and the summary of results over seeds."""

from __future__ import annotations

import pandas as pd

# Metric columns of results.csv, in order: name -> (header in results.md, digits shown, its table in results.md).
# label_* / mismatch_*: auditor.metrics.flag_metrics of the label / mismatch score; test_*: the method's classifier
# on the clean held-out split; then the cost.
_SCORE_METRICS = (("ap", "AP"), ("auroc", "AUROC"), ("f1", "F1"), ("precision", "precision"), ("recall", "recall"),
                  ("false_alarm", "false alarms"), ("flagged", "flagged"),
                  ("class_false_alarm_max", "max class false alarms"))
METRICS: dict[str, tuple[str, int, str]] = (
    {f"label_{k}": (f"label {h}", 3, "label") for k, h in _SCORE_METRICS}
    | {"suggestion_acc_noisy": ("suggestion acc (noisy)", 3, "label")}
    | {f"mismatch_{k}": (f"mismatch {h}", 3, "mismatch") for k, h in _SCORE_METRICS}
    | {"muted_flagged_mismatch": ("muted flagged as mismatch", 3, "mismatch"),
       "test_acc": ("clean-test acc", 3, "classifier and cost"),
       "test_min_class_recall": ("clean-test min class recall", 3, "classifier and cost"),
       "train_seconds": ("train s", 1, "classifier and cost"),
       "train_throughput": ("clips·epochs/s", 1, "classifier and cost"),
       "wall_seconds": ("train+score wall s", 1, "classifier and cost")})
ID_COLUMNS = ["setting", "noise_type", "label_noise", "mismatch", "imbalance", "muted", "seed", "clips", "method"]
SPEED_COLUMNS = ["measure", "value", "detail"]
TARGET_COLUMNS = ["target", "status", "ntl", "reference", "detail"]


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (setting, method): columns ``<metric>`` (mean), ``<metric>_std``, ``seeds``."""
    keys = [c for c in ID_COLUMNS if c not in ("seed", "clips")]
    grouped = results.groupby(keys, sort=False)
    mean = grouped[list(METRICS)].mean()
    std = grouped[list(METRICS)].std(ddof=1).add_suffix("_std")
    return pd.concat([mean, std, grouped.size().rename("seeds")], axis=1).reset_index()
