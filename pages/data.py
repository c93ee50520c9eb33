"""Data: check the data set, decode every clip into the cache with a progress bar, and show what is in it."""

import pandas as pd
import streamlit as st

from auditor.errors import UserError
from auditor.text import decoded_text, format_seconds, md_literal
from auditor.ui import figures, ingest, jobs, loaders, state, widgets

st.title("Data")
data = state.require_data()
st.caption(f"Data set folder {md_literal(data)}")
jobs.results_banner(data, state.run_dir())

try:
    manifest = loaders.manifest(data)
except UserError as err:
    widgets.show_error("This folder cannot be used as a data set.", err)
    st.stop()

ingested = ingest.ingest_summary(data)
with st.container(horizontal=True, vertical_alignment="center"):
    start = st.button("Decode all clips" if ingested is None else "Check again", type="primary",
                      icon=":material/play_arrow:",
                      help="Opens every clip, samples frames and sound into the cache and reports what fails. "
                           "Clips already in the cache are not decoded again.")
    if ingested is None:
        st.caption("Decoding checks every file and measures durations; the Model page trains from the cache.")
    else:
        checked = ingested["clips"] + ingested["decode_problems"]  # undecodable clips were checked too
        st.caption(f"Last checked: {decoded_text(checked, ingested['decoded_now'])}.")
if start and ingest.run_ingest(data) is not None:
    st.rerun()  # the button, its caption and the summary above describe the check just made

st.subheader("Summary")
labels = manifest.rows["label"]
per_class = ingested["clips_per_class"] if ingested else labels.value_counts().sort_index().to_dict()
silent = ingested.get("clips_with_silent_audio", 0) if ingested else 0
with st.container(horizontal=True, gap="medium"):  # wraps onto a second row in a narrow window
    for label, value, tip in (
            ("Clips", f"{ingested['clips'] if ingested else len(manifest.rows):,}", None),
            ("Classes", f"{len(per_class):,}", None),
            ("Duration", format_seconds(ingested["total_duration_s"]) if ingested else "–",
             "Total duration of the decoded clips."),
            ("Undecodable", f"{ingested['decode_problems']:,}" if ingested else "–",
             "Clips that could not be decoded (listed under Decode problems)."),
            ("Without sound", f"{ingested['clips_without_audio'] + silent:,}" if ingested else "–",
             "No sound track, or a silent one (muted, below -60 dBFS): never flagged as mismatched."),
            ("Label problems", f"{sum(p.kind == 'error' for p in manifest.problems):,}", None)):
        st.metric(label, value, help=tip, width="content")

st.subheader("Clips per class")
st.plotly_chart(figures.class_histogram(per_class), config={"displayModeBar": False})

left, right = st.columns(2)
with left:
    st.subheader("Decode problems")
    report = ingest.decode_report(data) if ingested else None
    if report is None:
        st.caption("Decode the clips to see which files cannot be read.")
    elif report.empty:
        st.success("Every clip decoded.")
    else:
        widgets.show_table(report, column_config={"kept": st.column_config.CheckboxColumn("kept")})
with right:
    st.subheader("Label problems")
    if not manifest.problems:
        st.success(f"No problems in {manifest.source}.")
    else:
        widgets.show_table(pd.DataFrame([{"where": p.where, "problem": p.message, "kind": p.kind}
                                         for p in manifest.problems]))
