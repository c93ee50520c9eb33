"""Export: the reviewed labels (excluded clips dropped or marked), the decision log and a summary, as downloads
or written to a folder."""

import io

import pandas as pd
import streamlit as st

from auditor.errors import UserError
from auditor.export import EXCLUDED_MODES, EXPORT_FILES, TOTAL_ROW
from auditor.reviews import FINAL_DECISIONS
from auditor.text import md_literal
from auditor.ui import export, state, widgets
from auditor.workspace import work_folder

MODE_TEXT = {"drop": "Leave them out of labels.csv", "column": "Keep them, with an excluded column"}
DOWNLOADS = {  # export file key -> (button label, MIME type)
    "labels_csv": ("labels.csv", "text/csv"),
    "decisions_csv": ("Decisions (CSV)", "text/csv"),
    "decisions_jsonl": ("Decisions (JSON lines)", "application/jsonl"),
    "summary_csv": ("Summary", "text/csv"),
    "labelstudio_tasks": ("Label Studio tasks", "application/json"),
    "labelstudio_config": ("Label Studio config", "application/xml"),
    "labelstudio_readme": ("Label Studio steps", "text/plain"),
}

st.title("Export")
data = state.require_data()
run = state.run_dir()

mode = st.radio("Excluded clips", list(EXCLUDED_MODES), horizontal=True, key="export_excluded",
                format_func=MODE_TEXT.get)
try:
    files = export.export_files(data, run, mode)
except UserError as err:
    widgets.show_error("Nothing to export.", err)
    st.stop()

summary = pd.read_csv(io.BytesIO(files["summary_csv"]), dtype={"class": str}, keep_default_na=False)
if run is not None:
    st.caption(f"Decisions are stamped with the run they were made from; the selected run is "
               f"{md_literal(run.name)}.")

st.subheader("Download")
with st.container(horizontal=True):
    for key, (label, mime) in DOWNLOADS.items():
        st.download_button(label, files[key], EXPORT_FILES[key], mime, icon=":material/download:",
                           type="primary" if key == "labels_csv" else "secondary", on_click="ignore")

st.subheader("Write to a folder")
default_out = str(work_folder(data) / "export")
c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
out_dir = c1.text_input("Output folder", value=default_out, key="export_dir",
                        help="labels.csv, the decisions, the summary, the Label Studio files and a FiftyOne "
                             "folder tree (links to the clips) are written here.")
if c2.button("Write files", icon=":material/save:", width="stretch"):
    result = export.write_export(data, run, out_dir.strip(), mode)
    if result is not None:
        st.success(f"Wrote {result['rows_written']:,} labels and {result['history']:,} decisions to "
                   f"{md_literal(result['out_dir'])}.", icon=":material/check_circle:")
st.caption("**Label Studio**: the curators' labels come as annotations, the model's suggestions as predictions; "
           "`label_studio_README.txt` gives the steps (the document root is the data set's parent folder, one "
           "\"Local files\" storage the data set folder). **FiftyOne**: the folder's `fiftyone/` (links to the "
           "clips, excluded clips left out) loads with `fo.Dataset.from_dir(dataset_dir=…, "
           "dataset_type=fo.types.VideoClassificationDirectoryTree)`; moving the data set breaks the links.")

st.subheader("Decisions by class")
total = summary[summary["class"] == TOTAL_ROW].iloc[0] if len(summary) else None
if total is not None:
    with st.container(horizontal=True, gap="medium"):
        for label, value, tip in (
                ("Clips", int(total["clips"]), None),
                ("Decided", sum(int(total[d]) for d in FINAL_DECISIONS),
                 "Accepted, kept, relabelled or excluded; a skipped clip is not decided."),
                ("Skipped", int(total["skip"]), "Looked at, decision postponed: exported with the given label."),
                ("Relabelled", int(total["relabelled_away"]), None),
                ("Excluded", int(total["exclude"]), None),
                ("Sound mismatch", int(total["mismatch"]), "Decisions that mark the sound as not belonging.")):
            st.metric(label, f"{value:,}", help=tip, width="content")
widgets.show_table(summary)
