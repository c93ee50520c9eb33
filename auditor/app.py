"""Streamlit entry point: ``streamlit run auditor/app.py [-- --data DIR]``.

The router and the frame: page config, session defaults, the shared sidebar, and ``st.navigation`` over the
pages in ``pages/`` (each registered explicitly with ``st.Page``). ``--data DIR`` (or $AUDITOR_DATA) preselects
a data set.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run auditor/app.py` puts auditor/ itself first on sys.path, which would make its modules
# importable under bare names (`import runs`); the package is imported as `auditor` from the repo root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import streamlit as st  # noqa: E402

from auditor.ui import jobs, state, widgets  # noqa: E402

st.set_page_config(page_title="AV Auditor", page_icon=":material/graphic_eq:", layout="wide")
state.init_session()
page = st.navigation(state.navigation_pages())
state.sidebar()
jobs.offer_finished_runs(state.data_dir(), state.run_dir())
widgets.show_flash()
page.run()
