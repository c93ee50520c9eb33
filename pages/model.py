"""Model: train in the background on the decoded clips or on a features file (checked before it starts; the job
survives page switches, reruns and a closed tab), follow it live, cancel or resume it, or score the data set with
the shipped model. Every new job gets a run of its own: the
run being reviewed is never replaced unless the curator names it and confirms."""

import streamlit as st

from auditor.errors import UserError
from auditor.model.config import FLIP_FRAMES, TrainConfig
from auditor.model.presets import FRAME_PRESETS
from auditor.run_folder import new_run_name, run_in_use, run_name_problem
from auditor.text import md_literal
from auditor.ui import jobs, loaders, state, widgets
from auditor.ui.features import features_input

RUN_NAME_KEY = "train_run_name"
_FRESH_NAME_KEY = "_train_fresh_name"  # set after a start: the next run gets a new name

st.title("Model")
data = state.require_data()
selected = state.run_dir()
ss = st.session_state

try:
    loaders.manifest(data)
    unusable = None
except UserError as err:
    unusable = err
    widgets.show_error("Jobs are off: this folder cannot be used as a data set (see the Data page).", err)

busy = [n for n in jobs.running_runs(data) if n != getattr(jobs.watched_run(data, selected), "name", None)]
for name in busy:
    with st.container(horizontal=True, vertical_alignment="center"):
        st.info(f"A job is running in run {md_literal(name)}.", icon=":material/hourglass_top:")
        st.button("Show it", key=f"show_{name}", on_click=jobs.watch, args=(name,))

if ss.pop(_FRESH_NAME_KEY, False) or not ss.get(RUN_NAME_KEY):
    ss[RUN_NAME_KEY] = new_run_name(state.runs_root(data), "train")

train_col, shipped_col = st.columns([3, 2], gap="large")
with train_col:
    st.subheader("Train a model")
    features, features_ok = features_input(data)
    with st.form("train"):
        name = st.text_input("Run name", key=RUN_NAME_KEY,
                             help="A new run folder; the runs you already have are kept.")
        preset = st.selectbox("Preset", list(FRAME_PRESETS), disabled=bool(features), format_func=lambda p: {
            "cpu": "cpu — small CNNs, 64 px frames (fast on a laptop)",
            "resnet18": "resnet18 — ResNet-18 encoders, 112 px frames (GPU)"}.get(p, p),
            help="Not used with a features file: the model then trains small encoders on its vectors.")
        c1, c2 = st.columns(2)
        epochs1 = c1.number_input("Warm-up epochs (phase 1)", min_value=1, max_value=500, value=None,
                                  placeholder="default", step=1)
        epochs2 = c2.number_input("Correction epochs (phase 2)", min_value=0, max_value=500, value=None,
                                  placeholder="default", step=1)
        flip = st.selectbox("Mirror the frames left-right at random while training", list(FLIP_FRAMES),
                            disabled=bool(features), format_func=lambda f: {
                                "auto": "auto — if the first epochs show that a mirrored picture keeps its class",
                                "always": "always — right for most natural scenes",
                                "never": "never — the pictures have a handedness"}.get(f, f),
                            help="Where pictures have a handedness (text, digits, signs, gestures, a direction of "
                                 "motion) a mirrored picture is another picture, and mirroring makes the picture "
                                 "head learn your classes worse. Auto trains unmirrored until it can tell, then "
                                 "mirrors only if mirror images are recognised as their own class.")
        replace = st.checkbox("If a run of this name exists, replace it (its results and checkpoint are deleted)",
                              value=False)
        submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:",
                                          disabled=unusable is not None or not features_ok)
    if submitted:
        name = name.strip()
        problem = run_name_problem(name)
        run = state.runs_root(data) / name
        if problem:
            widgets.show_error("Choose another run name.", problem)
        elif run_in_use(run) and not replace:
            widgets.show_error("Not started: a run of this name exists.",
                               f"Run {name} already holds a run. Choose a new name (the proposed one is "
                               "always new), or tick the box to replace it.")
        else:
            args = ["train", "--data", str(data), "--run", str(run),
                    *(["--features", features] if features else ["--preset", preset])]
            if epochs1 is not None:
                args += ["--epochs-phase1", str(int(epochs1))]
            if epochs2 is not None:
                args += ["--epochs-phase2", str(int(epochs2))]
            if flip != TrainConfig.flip_frames and not features:
                args += ["--flip-frames", flip]
            if replace:
                args.append("--overwrite")
            if jobs.start_job(run, args, "training"):
                ss[_FRESH_NAME_KEY] = True
                st.rerun()

with shipped_col:
    st.subheader("Use the shipped model")
    st.write("Score this data set with the model that comes with AV Auditor (trained on the bundled sample). "
             "Quick, but it only knows the sample's classes. The scores go into a new run.")
    ready = state.SHIPPED_CHECKPOINT.is_file()
    if st.button("Score with the shipped model", disabled=not ready or unusable is not None, icon=":material/bolt:"):
        run = state.runs_root(data) / new_run_name(state.runs_root(data), state.SHIPPED_RUN)
        if jobs.start_job(run, ["score", "--run", str(state.SHIPPED_MODEL), "--data", str(data), "--out", str(run)],
                          "scoring with the shipped model"):
            st.rerun()
    if not ready:
        st.caption("No shipped model in models/sample/ in this installation.")

st.divider()
shown = jobs.watched_run(data, selected)
if shown is None:
    st.caption("No run yet. Start one above; it appears in the sidebar's run list.")
else:
    jobs.job_panel(shown, selected)
