"""The targets (issue 12's goals): ntl's metric on selected settings of the results table, against the best of
some reference methods or a fixed bound, each 'met', 'not met' or 'not run' (no run where ntl, and every
reference, has the metric). Reads results only: no torch.

A mean is taken over the (setting, seed) runs that the target selects; against references, over the runs where
ntl and that reference both have the metric. A per-setting target gives one row per selected setting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from auditor.bench.results import TARGET_COLUMNS
from auditor.bench.settings import LABEL_BASELINES

TOLERANCE = 1e-6  # rates (picking a target's settings) and a target's bound are compared with this slack


def _near(column: str, value: float) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda df: (df[column] - value).abs() < TOLERANCE


# Target.where -> the rows of the results it uses.
SELECT: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "any": lambda df: pd.Series(True, index=df.index),
    "sym40": lambda df: (df["noise_type"] == "symmetric") & _near("label_noise", 0.4)(df),
    "mm20": _near("mismatch", 0.2),
    "clean": lambda df: _near("label_noise", 0.0)(df) & _near("mismatch", 0.0)(df) & _near("muted", 0.0)(df),
    "muted": lambda df: df["muted"] > TOLERANCE,
}
# Target.kind -> met(mean ntl, reference value, amount); the reference value is the best reference's mean
# (the highest for "diff", the only one for "ratio", unused for "at_most").
_MET = {"diff": lambda ntl, ref, amount: ntl >= ref + amount - TOLERANCE,
        "ratio": lambda ntl, ref, amount: ntl <= amount * ref + TOLERANCE,
        "at_most": lambda ntl, ref, amount: ntl <= amount + TOLERANCE}


@dataclass(frozen=True)
class Target:
    """ntl's ``metric`` on the rows SELECT[where] picks: met when mean(ntl) >= max over ``references`` of their
    mean + amount (kind "diff"), mean(ntl) <= amount * mean(reference) ("ratio", one reference), or
    mean(ntl) <= amount ("at_most", no reference)."""

    name: str
    metric: str
    kind: str  # a key of _MET
    amount: float
    references: tuple[str, ...] = ()
    where: str = "any"  # a key of SELECT
    per_setting: bool = False  # one row per selected setting, named "<name> (<setting>)"


TARGETS: tuple[Target, ...] = (
    Target("ntl label AP ≥ best label baseline + 0.05 at 40% symmetric noise", "label_ap", "diff", 0.05,
           LABEL_BASELINES, "sym40"),
    Target("ntl mismatch AP ≥ infonce_loss + 0.05 at 20% mismatch", "mismatch_ap", "diff", 0.05,
           ("infonce_loss",), "mm20"),
    Target("ntl label AP ≥ ce", "label_ap", "diff", 0.0, ("ce",), per_setting=True),
    Target("ntl suggestion acc (noisy) ≥ ce", "suggestion_acc_noisy", "diff", 0.0, ("ce",), per_setting=True),
    Target("ntl label score flags ≤ 1% of clips on clean data", "label_flagged", "at_most", 0.01, where="clean"),
    Target("ntl mismatch score flags ≤ 1% of clips on clean data", "mismatch_flagged", "at_most", 0.01,
           where="clean"),
    Target("ntl flags ≤ 2% of muted clips as mismatched", "muted_flagged_mismatch", "at_most", 0.02,
           where="muted"),
    Target("ntl clean-test accuracy within 3 points of ce_clean at 40% symmetric noise", "test_acc", "diff", -0.03,
           ("ce_clean",), "sym40"),
    Target("ntl train seconds ≤ 1.5 × ce (same run; an otherwise idle machine)", "train_seconds", "ratio", 1.5,
           ("ce",)),
)


def evaluate_targets(results: pd.DataFrame, targets: tuple[Target, ...] = TARGETS) -> pd.DataFrame:
    """One row per target (per selected setting for a per-setting one): target, status ('met' | 'not met' |
    'not run'), ntl, reference (the means compared; reference NaN for "at_most"), detail (runs used, per-setting
    values, every reference's mean)."""
    rows = []
    for t in targets:
        sel = results[SELECT[t.where](results)] if len(results) else results
        if not t.per_setting:
            rows.append(_evaluate(t, t.name, sel))
            continue
        settings = list(dict.fromkeys(sel["setting"]))
        rows += [_evaluate(t, f"{t.name} ({s})", sel[sel["setting"] == s]) for s in settings]
        if not settings:
            rows.append(_evaluate(t, t.name, sel))
    return pd.DataFrame(rows, columns=TARGET_COLUMNS)


def _evaluate(t: Target, name: str, sel: pd.DataFrame) -> dict:
    row = {"target": name, "status": "not run", "ntl": np.nan, "reference": np.nan, "detail": ""}
    if not t.references:
        ntl = sel.loc[sel["method"] == "ntl", ["setting", "seed", t.metric]].dropna()
        if ntl.empty:
            return row
        mean = float(ntl[t.metric].mean())
        per = ntl.groupby("setting", sort=False)[t.metric].mean()
        return row | {"status": "met" if _MET[t.kind](mean, np.nan, t.amount) else "not met", "ntl": mean,
                      "detail": f"{len(ntl)} setting×seed run(s); " + "; ".join(f"{s}: {v:.3f}"
                                                                                   for s, v in per.items())}
    pairs = {ref: _paired(sel, t.metric, ref) for ref in t.references}
    if any(p.empty for p in pairs.values()):
        missing = [ref for ref, p in pairs.items() if p.empty]
        return row | {"detail": f"no run with ntl and {', '.join(missing)}"}
    means = {ref: (float(p["ntl"].mean()), float(p["ref"].mean())) for ref, p in pairs.items()}
    best = max(means, key=lambda ref: means[ref][1])
    ntl, ref = means[best]
    per = pairs[best].groupby("setting", sort=False)[["ntl", "ref"]].mean()
    detail = f"{len(pairs[best])} setting×seed run(s) against {best}; " + "; ".join(
        f"{s}: {a:.3f} vs {b:.3f}" for s, (a, b) in per.iterrows())
    if len(means) > 1:
        detail += "; references: " + ", ".join(f"{r} {m[1]:.3f}" for r, m in means.items())
    if t.kind == "ratio":
        detail = f"ratio {ntl / ref:.2f}; " + detail
    return row | {"status": "met" if _MET[t.kind](ntl, ref, t.amount) else "not met", "ntl": ntl,
                  "reference": ref, "detail": detail}


def _paired(sel: pd.DataFrame, metric: str, reference: str) -> pd.DataFrame:
    """setting, seed, ntl, ref: ``metric`` of ntl and of ``reference`` where both have it."""
    keys = ["setting", "seed"]
    a = sel.loc[sel["method"] == "ntl", keys + [metric]].rename(columns={metric: "ntl"})
    b = sel.loc[sel["method"] == reference, keys + [metric]].rename(columns={metric: "ref"})
    return a.merge(b, on=keys).dropna(subset=["ntl", "ref"])
