"""The targets: ntl against a reference method on selected settings of the results table, each 'met',
'not met' or 'not run' (no (setting, seed) where both methods have the metric). Reads results only: no torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from auditor.bench.results import TARGET_COLUMNS

TOLERANCE = 1e-6  # rates (picking a target's settings) and a target's bound are compared with this slack
# Target.kind -> met(mean ntl, mean reference, amount)
_MET = {"diff": lambda ntl, ref, amount: ntl >= ref + amount - TOLERANCE,
        "ratio": lambda ntl, ref, amount: ntl <= amount * ref + TOLERANCE}


@dataclass(frozen=True)
class Target:
    """ntl's ``metric`` against ``reference``'s on the selected settings: met when
    mean(ntl) >= mean(ref) + margin (kind "diff") or mean(ntl) <= factor * mean(ref) (kind "ratio")."""

    name: str
    metric: str
    reference: str
    kind: str  # a key of _MET: "diff" | "ratio"
    amount: float
    noise_type: str | None = None  # None = any
    label_noise: float | None = None
    mismatch: float | None = None


TARGETS: tuple[Target, ...] = (
    Target("ntl label AP ≥ cleanlab + 0.05 at 40% symmetric noise", "label_ap", "cleanlab", "diff", 0.05,
           noise_type="symmetric", label_noise=0.4),
    Target("ntl mismatch AP ≥ cosine + 0.10 at 20% mismatch", "mismatch_ap", "cosine", "diff", 0.10,
           mismatch=0.2),
    Target("ntl clean-test accuracy within 3 points of ce_clean at 40% symmetric noise", "test_acc", "ce_clean",
           "diff", -0.03, noise_type="symmetric", label_noise=0.4),
    Target("ntl train seconds ≤ 1.5 × ce", "train_seconds", "ce", "ratio", 1.5),
)


def evaluate_targets(results: pd.DataFrame, targets: tuple[Target, ...] = TARGETS) -> pd.DataFrame:
    """One row per target: target, status ('met' | 'not met' | 'not run'), ntl, reference (means over the
    (setting, seed) pairs where both methods have the metric), detail (pairs used and per-setting values)."""
    rows = []
    for t in targets:
        sel = results
        if t.noise_type is not None:
            sel = sel[sel["noise_type"] == t.noise_type]
        if t.label_noise is not None:
            sel = sel[(sel["label_noise"] - t.label_noise).abs() < TOLERANCE]
        if t.mismatch is not None:
            sel = sel[(sel["mismatch"] - t.mismatch).abs() < TOLERANCE]
        pair = _paired(sel, t.metric, t.reference)
        row = {"target": t.name, "status": "not run", "ntl": np.nan, "reference": np.nan, "detail": ""}
        if not pair.empty:
            ntl, ref = float(pair["ntl"].mean()), float(pair["ref"].mean())
            ok = _MET[t.kind](ntl, ref, t.amount)
            per = pair.groupby("setting")[["ntl", "ref"]].mean()
            detail = "; ".join(f"{s}: {a:.3f} vs {b:.3f}" for s, (a, b) in per.iterrows())
            row |= {"status": "met" if ok else "not met", "ntl": ntl, "reference": ref,
                    "detail": f"{len(pair)} setting×seed run(s); {detail}"}
            if t.kind == "ratio":
                row["detail"] = f"ratio {ntl / ref:.2f}; " + row["detail"]
        rows.append(row)
    return pd.DataFrame(rows, columns=TARGET_COLUMNS)


def _paired(sel: pd.DataFrame, metric: str, reference: str) -> pd.DataFrame:
    """setting, seed, ntl, ref: ``metric`` of ntl and of ``reference`` where both have it."""
    keys = ["setting", "seed"]
    a = sel.loc[sel["method"] == "ntl", keys + [metric]].rename(columns={metric: "ntl"})
    b = sel.loc[sel["method"] == reference, keys + [metric]].rename(columns={metric: "ref"})
    return a.merge(b, on=keys).dropna(subset=["ntl", "ref"])
