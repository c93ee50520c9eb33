"""The bench's tables and their columns: results.csv (one row per method x setting x seed, ID_COLUMNS then
METRICS, NaN where a metric does not apply to a method), speed.csv (SPEED_COLUMNS) and targets.csv
(TARGET_COLUMNS); and the summary of results over seeds."""

from __future__ import annotations

import pandas as pd

# Metric columns of results.csv, in order, with the header results.md gives them and the digits shown.
METRICS: dict[str, tuple[str, int]] = {
    "label_ap": ("label AP", 3), "label_auroc": ("label AUROC", 3), "label_f1": ("label F1", 3),
    "mismatch_ap": ("mismatch AP", 3), "mismatch_auroc": ("mismatch AUROC", 3), "mismatch_f1": ("mismatch F1", 3),
    "suggestion_acc_noisy": ("suggestion acc (noisy)", 3), "test_acc": ("clean-test acc", 3),
    "train_seconds": ("train s", 1), "train_throughput": ("clips·epochs/s", 1),
    "wall_seconds": ("train+score wall s", 1),
}
ID_COLUMNS = ["setting", "noise_type", "label_noise", "mismatch", "seed", "clips", "method"]
SPEED_COLUMNS = ["measure", "value", "detail"]
TARGET_COLUMNS = ["target", "status", "ntl", "reference", "detail"]


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (setting, method): columns ``<metric>`` (mean), ``<metric>_std``, ``seeds``."""
    keys = [c for c in ID_COLUMNS if c not in ("seed", "clips")]
    grouped = results.groupby(keys, sort=False)
    mean = grouped[list(METRICS)].mean()
    std = grouped[list(METRICS)].std(ddof=1).add_suffix("_std")
    return pd.concat([mean, std, grouped.size().rename("seeds")], axis=1).reset_index()
