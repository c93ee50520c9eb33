"""Model: train in the background (the job survives page switches, reruns and a closed tab), follow it live,
cancel or resume it, or score the data set with the shipped model."""

import streamlit as st

from auditor.model.presets import PRESETS
from auditor.run_folder import run_name_problem
from auditor.text import md_literal
from auditor.ui import jobs, state, widgets

st.title("Model")
data = state.require_data()
selected = state.run_dir()

busy = [n for n in jobs.running_runs(data) if selected is None or n != selected.name]
for name in busy:
    with st.container(horizontal=True, vertical_alignment="center"):
        st.info(f"A job is running in run {md_literal(name)}.", icon=":material/hourglass_top:")
        if st.button("Show it", key=f"show_{name}"):
            state.select_run(name)
            st.rerun()

train_col, shipped_col = st.columns([3, 2], gap="large")
with train_col:
    st.subheader("Train a model")
    with st.form("train"):
        name = st.text_input("Run name", value=selected.name if selected else state.DEFAULT_RUN,
                             help="A folder under DIR/.auditor/runs; a new name keeps the older runs.")
        preset = st.selectbox("Preset", list(PRESETS), format_func=lambda p: {
            "cpu": "cpu — small CNNs, 64 px frames (fast on a laptop)",
            "resnet18": "resnet18 — ResNet-18 encoders, 112 px frames (GPU)"}.get(p, p))
        c1, c2 = st.columns(2)
        epochs1 = c1.number_input("Warm-up epochs (phase 1)", min_value=1, max_value=500, value=None,
                                  placeholder="default", step=1)
        epochs2 = c2.number_input("Correction epochs (phase 2)", min_value=0, max_value=500, value=None,
                                  placeholder="default", step=1)
        restart = st.checkbox("Discard what this run folder already holds and start again", value=False)
        submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
    if submitted:
        problem = run_name_problem(name.strip())
        if problem:
            widgets.show_error("Choose another run name.", problem)
        else:
            run = state.runs_root(data) / name.strip()
            args = ["train", "--data", str(data), "--run", str(run), "--preset", preset]
            if epochs1 is not None:
                args += ["--epochs-phase1", str(int(epochs1))]
            if epochs2 is not None:
                args += ["--epochs-phase2", str(int(epochs2))]
            if restart:
                args.append("--overwrite")
            if jobs.start_job(run, args, "training"):
                st.rerun()

with shipped_col:
    st.subheader("Use the shipped model")
    st.write("Score this data set with the model that comes with AV Auditor (trained on the bundled sample). "
             "Quick, but it only knows the sample's classes.")
    ready = state.SHIPPED_CHECKPOINT.is_file()
    if st.button("Score with the shipped model", disabled=not ready, icon=":material/bolt:"):
        run = state.runs_root(data) / state.SHIPPED_RUN
        if jobs.start_job(run, ["score", "--run", str(state.SHIPPED_MODEL), "--data", str(data), "--out", str(run)],
                          "scoring with the shipped model"):
            st.rerun()
    if not ready:
        st.caption("No shipped model in models/sample/ in this installation.")

st.divider()
if selected is None:
    st.caption("No run selected. Start one above; it appears in the sidebar's run list.")
else:
    jobs.job_panel(selected)
