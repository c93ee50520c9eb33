"""The Classes page without Streamlit: per-class rates and the confusion of given and suggested labels.

Notation: ``points`` = annotated flags (:func:`auditor.review_queue.read_flags`: clip, given_label,
suggested_label, flag_kind, ...), one row per clip of a run; ``report`` = the run's class_report.csv (class,
clips, estimated_noise_rate, top_suggested_replacement, estimated_mismatch_rate), or None.
"""

from __future__ import annotations

import pandas as pd

from auditor.review_queue import UNSCORED

# The columns of class_table() -> what the page calls them.
CLASS_COLUMNS = {"class": "class", "clips": "clips", "flagged_wrong_label": "flagged: wrong label",
                 "flagged_mismatch": "flagged: sound mismatch", "estimated_noise_rate": "estimated noise rate",
                 "estimated_mismatch_rate": "estimated mismatch rate",
                 "top_suggested_replacement": "most suggested instead"}


def class_table(points: pd.DataFrame, report: pd.DataFrame | None) -> pd.DataFrame:
    """One row per given class: ``clips`` (scored), ``flagged_wrong_label`` and ``flagged_mismatch`` (shares
    in [0, 1] of its scored clips flagged as such; "both" counts for each), and the class report's estimated
    rates and most suggested replacement where the run has one (NaN / "" otherwise); sorted by class."""
    scored = points[points["flag_kind"] != UNSCORED]
    kind = scored["flag_kind"]
    table = pd.DataFrame({
        "clips": scored.groupby("given_label").size(),
        "flagged_wrong_label": kind.isin(["wrong_label", "both"]).groupby(scored["given_label"]).mean(),
        "flagged_mismatch": kind.isin(["mismatch", "both"]).groupby(scored["given_label"]).mean(),
    })
    table.index.name = "class"
    table = table.reset_index()
    if report is not None and len(report):
        extra = report[["class", "estimated_noise_rate", "estimated_mismatch_rate", "top_suggested_replacement"]]
        table = table.merge(extra.astype({"class": str}), on="class", how="left")
    else:
        table["estimated_noise_rate"] = table["estimated_mismatch_rate"] = float("nan")
        table["top_suggested_replacement"] = ""
    table["top_suggested_replacement"] = table["top_suggested_replacement"].fillna("")
    return table.sort_values("class", kind="stable").reset_index(drop=True)[list(CLASS_COLUMNS)]


def confusion_cells(points: pd.DataFrame) -> pd.DataFrame:
    """The non-empty cells of the given x suggested label matrix of the scored clips: DataFrame(given_label,
    suggested_label, clips), sorted by given then suggested label; the clips sum to the scored clips."""
    scored = points[(points["flag_kind"] != UNSCORED) & (points["suggested_label"].fillna("") != "")]
    cells = scored.groupby(["given_label", "suggested_label"]).size().rename("clips").reset_index()
    return cells.sort_values(["given_label", "suggested_label"], kind="stable").reset_index(drop=True)


def cell_clips(points: pd.DataFrame, given: str, suggested: str) -> list[str]:
    """The clips whose given label is ``given`` and suggested label ``suggested``, in the points' order."""
    mask = (points["given_label"] == given) & (points["suggested_label"] == suggested)
    return points.loc[mask, "clip"].tolist()
