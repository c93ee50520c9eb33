"""The data set's decode cache as the Data page shows and fills it: the last ingest's summary and decode
report, and a new ingest with a progress bar (:mod:`auditor.data.cache` does the work).

The app decodes with the preprocessing of preset INGEST_PRESET; training or scoring with another preset decodes
into that preset's own cache folder when the job starts.
:mod:`auditor.data.cache` imports the decoder and the features (PyAV, torch, torchaudio: seconds to import), so
it is imported inside the functions that need it, not when a page loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from auditor.data.cache_location import default_cache_root
from auditor.data.params import PreprocessParams
from auditor.errors import UserError
from auditor.model.presets import preprocess_params
from auditor.ui.widgets import show_error

INGEST_PRESET = "cpu"  # the default preset (the Model page's first), fast on a laptop


def _ingest_params() -> PreprocessParams:
    return preprocess_params(INGEST_PRESET)


def _cache_dir(data: Path) -> Path:
    return default_cache_root(data) / _ingest_params().digest()


def ingest_summary(data: Path) -> dict | None:
    """The summary of this data set's last ingest (auditor.data.cache.summary, as the ingest wrote it to its
    cache folder), or None when it was never decoded."""
    try:
        summary = json.loads((_cache_dir(data) / "ingest.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and "clips" in summary else None


def decode_report(data: Path) -> pd.DataFrame | None:
    """decode_report.csv of the last ingest (clip, problem, detail, kept), or None."""
    path = _cache_dir(data) / "decode_report.csv"
    if not path.is_file():
        return None
    report = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "kept" in report:
        report["kept"] = report["kept"].str.lower().eq("true")
    return report


def run_ingest(data: Path) -> dict | None:
    """Decode every clip not yet cached, with a progress bar; returns the summary (None after an error)."""
    from auditor.data.cache import ingest, summary  # imports PyAV and torch (see the module docstring)

    bar = st.progress(0.0, text="Opening the data set…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(1, total), text=f"Decoded {done:,} of {total:,} clips")

    try:
        result = ingest(data, _ingest_params(), progress=progress)
    except UserError as err:
        bar.empty()
        show_error("Decoding stopped.", err)
        return None
    bar.empty()
    st.toast(f"Checked {len(result.clips):,} clips.", icon=":material/check_circle:")
    return summary(result)
