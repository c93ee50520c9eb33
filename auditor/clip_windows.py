"""Where a long clip's sound stops matching its picture: the Review page's reading of a run's windows.csv.

A clip cut into aligned windows (data/decode.window_spans) has one row per window in windows.csv (scoring module
docstring): its span, the window's InfoNCE loss l (model/estimate.evaluate), the cosine of its two embeddings,
its sound level and whether it is ``audible`` (sound within estimate.AUDIBLE_WITHIN_DB of the clip's loudest
window). The clip's mismatch score is judged on the best of its audible windows (``best_aligned``); the other
audible windows say where else in the clip the sound does or does not fit the picture. A window that is not audible
holds the quiet between a clip's sounds: its loss says nothing about the match and is not compared.

Reference (:func:`reference_losses`): for class c, the REFERENCE_QUANTILE quantile of l over the judged windows of
the clips given label c that are not flagged for sound (mismatch_score < FLAG_THRESHOLD, sound present). A class
with fewer than POOL_CLIPS (noise_estimation's) such clips uses the quantile over all classes' (the mixtures pool small
classes the same way). A window "sounds unlike matching clips" when it has sound and its l is above its class's
reference: a statement about where the clip differs, not a second verdict (the mismatch score is the verdict).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from auditor.flags import FLAG_THRESHOLD
from auditor.run_folder import WINDOWS_FILE

REFERENCE_QUANTILE = 0.95
# A class with fewer unflagged clips uses the pooled reference: the size at which the mixtures pool a class
# (model/noise_estimation.POOL_CLIPS, not imported: the Review page would pay for scikit-learn's import).
POOL_CLIPS = 20
POOLED = ""  # the key of the all-classes reference in reference_losses' result
COLUMNS = ("clip", "window", "start_s", "end_s", "audio", "infonce_loss", "cosine", "best_aligned")
# Columns a windows.csv written before they existed lacks: level_dbfs (NaN) and audible (= sound present).
LATER_COLUMNS = ("level_dbfs", "audible")


def read_windows(run: str | Path) -> pd.DataFrame | None:
    """The run's windows.csv (clips as text, sorted by clip and window, ``audible`` as bool), or None when the run
    has none. Raises ValueError naming the file when it lacks a column of COLUMNS."""
    path = Path(run) / WINDOWS_FILE
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"clip": str, "audio": str}, keep_default_na=False,
                        na_values={"infonce_loss": [""], "cosine": [""], "level_dbfs": [""]})
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise ValueError(f"{path}: not a windows file, missing column(s) {', '.join(missing)}")
    if "level_dbfs" not in table:
        table["level_dbfs"] = np.nan
    table["audible"] = table["audible"].astype(bool) if "audible" in table else table["audio"] == "present"
    return table.sort_values(["clip", "window"], kind="stable").reset_index(drop=True)


def reference_losses(windows: pd.DataFrame, flags: pd.DataFrame) -> dict[str, float]:
    """{given label: the REFERENCE_QUANTILE quantile of the judged-window loss of its clips not flagged for sound}
    for classes with at least POOL_CLIPS such clips, and POOLED: the same over all classes (NaN when none).

    ``flags`` needs clip, given_label, mismatch_score and problem (flags.csv)."""
    sound = flags[(flags["mismatch_score"] < FLAG_THRESHOLD) & ~flags["problem"].fillna("").astype(bool)]
    judged = windows[windows["best_aligned"].astype(bool) & windows["audible"]]
    losses = judged.merge(sound[["clip", "given_label"]], on="clip")
    out = {POOLED: float(losses["infonce_loss"].quantile(REFERENCE_QUANTILE)) if len(losses) else float("nan")}
    for label, group in losses.groupby("given_label"):
        if len(group) >= POOL_CLIPS:
            out[str(label)] = float(group["infonce_loss"].quantile(REFERENCE_QUANTILE))
    return out


def clip_windows(windows: pd.DataFrame, clip: str, reference: float) -> pd.DataFrame:
    """The windows of ``clip`` in time order, with ``unlike`` (audible and l > reference) added."""
    rows = windows[windows["clip"] == clip].sort_values("window").reset_index(drop=True)
    return rows.assign(unlike=rows["audible"] & (rows["infonce_loss"] > reference))


def class_reference(references: dict[str, float], label: str) -> tuple[float, str]:
    """(reference loss, what it is in words) for a clip of given label ``label``."""
    if label in references:
        return references[label], "this class's clips not flagged for sound"
    return references[POOLED], "the clips not flagged for sound (this class has too few of its own)"


def span_text(start: float, end: float) -> str:
    """``12.5–22.5 s``."""
    return f"{start:.1f}–{end:.1f} s"


def describe(rows: pd.DataFrame, reference_text: str) -> str:
    """Plain words for :func:`clip_windows`' rows: which window the score is judged on, which audible windows
    sound unlike matching clips, which are quiet (not audible)."""
    spans = [span_text(r.start_s, r.end_s) for r in rows.itertuples()]
    judged = [s for s, b in zip(spans, rows["best_aligned"].astype(bool), strict=True) if b]
    unlike = [s for s, u in zip(spans, rows["unlike"], strict=True) if u]
    quiet = [s for s, a in zip(spans, rows["audible"], strict=True) if not a]
    share = f"{REFERENCE_QUANTILE:.0%}"
    text = [f"The clip was compared in {len(rows)} windows; its mismatch score is judged on "
            f"{judged[0] if judged else 'none of them (no sound)'}."]
    if unlike:
        text.append(f"Sound further from the picture than in {share} of {reference_text}: **{', '.join(unlike)}**.")
    elif len(rows) > len(quiet):
        text.append(f"No audible window's sound is further from the picture than in {share} of {reference_text}.")
    if quiet:
        text.append(f"Quiet (well below the loudest part of the clip, not compared): {', '.join(quiet)}.")
    return " ".join(text)


def has_windows(windows: pd.DataFrame | None, clip: str) -> bool:
    """Whether ``clip`` was cut into more than one window."""
    return windows is not None and int(np.sum(windows["clip"].to_numpy() == clip)) > 1
