"""The Model page's features file: a path typed by the curator, checked against the data set before any training
starts (data/feature_file.check_features)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from auditor.errors import UserError
from auditor.text import md_literal
from auditor.ui import widgets

FEATURES_KEY = "train_features"


@st.cache_data(show_spinner="Checking the features file…", max_entries=8)
def _check(data: str, path: str, version: tuple[int, int]):
    """check_features, cached per (data set, file, its modification time and size)."""
    from auditor.data.feature_file import check_features  # torch (through the ingest cache): only when used

    return check_features(data, path)


def features_input(data: Path) -> tuple[str, bool]:
    """Draw the features-file input and the result of its check. Returns (the path typed, stripped; whether
    training may start): no path = train on the decoded clips; a path must pass the check (else the reason is
    shown)."""
    path = st.text_input("Features file (optional)", key=FEATURES_KEY, placeholder="/path/to/features.parquet",
                         help="Per-clip vectors from a pretrained model (Parquet or .npz with columns clip, visual, "
                              "audio; README, 'Pretrained features'): the model trains small encoders on them "
                              "instead of decoding the clips.").strip()
    if not path:
        return "", True
    stat = Path(path).stat() if Path(path).is_file() else None
    try:
        check = _check(str(data), path, (stat.st_mtime_ns, stat.st_size) if stat else (0, 0))
    except UserError as err:
        widgets.show_error("Not usable: this features file does not fit the data set.", err)
        return path, False
    st.success(md_literal(check.summary()), icon=":material/check_circle:")
    for note in check.notes:
        st.info(md_literal(note))
    return path, True
