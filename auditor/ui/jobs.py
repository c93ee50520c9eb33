"""The Model page's job panel: start a background train or score job for a run, and show its status,
progress, estimated noise rates (training) or what was flagged (a finished run), loss curves and log, with
Cancel, Resume and "use this run".

:mod:`auditor.jobs` starts, watches and stops the process; everything shown is read back from the run folder
(job.json, progress.jsonl, job.log), so the panel is the same after a rerun, a page switch or a new tab.
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from auditor import first_run, jobs, run_folder, workspace
from auditor.errors import UserError
from auditor.progress_view import job_events, progress_view
from auditor.review_queue import flag_counts, flag_summary
from auditor.text import format_seconds, md_literal
from auditor.ui.figures import loss_figure
from auditor.ui.loaders import flags
from auditor.ui.state import page_file, run_names, runs_root, select_run
from auditor.ui.widgets import flash, show_error

# auditor.jobs.STATES -> (badge text, colour).
STATE_BADGES = {"none": ("no job yet", "gray"), "running": ("running", "blue"), "finished": ("finished", "green"),
                "failed": ("failed", "red"), "cancelled": ("cancelled", "orange")}
# The first argument of a job's command line -> what the panel calls it.
JOB_KINDS = {"train": "training", "score": "scoring with a trained model"}
# The first argument of a failed job's command line -> the headline of its error box.
FAILURE_TEXT = {"train": "Training failed. Resume continues it from its last completed epoch.",
                "score": "Scoring failed."}
REFRESH_S = 2  # how often the panel of a running job redraws itself
WATCHED_KEY = "_model_run"  # the run whose panel the Model page shows (the sidebar's run when unset)
STARTED_KEY = "_started_runs"  # runs this tab started a job in: the sidebar offers them when they finish


def running_runs(data: Path) -> list[str]:
    """Names of the data set's runs with a job running now."""
    return [n for n in run_names(data) if jobs.job_status(runs_root(data) / n).state == "running"]


def watched_run(data: Path, selected: Path | None) -> Path | None:
    """The run the Model page shows: the one chosen there (a job just started, "Show it"), else ``selected``."""
    name = st.session_state.get(WATCHED_KEY)
    run = runs_root(data) / name if name else None
    return run if run is not None and run.is_dir() else selected


def watch(name: str) -> None:
    st.session_state[WATCHED_KEY] = name


def start_job(run: Path, args: list[str], what: str) -> bool:
    """Start ``python -m auditor *args`` in the background for ``run`` and show it on the Model page; the
    sidebar's run (what Explore and Review show) stays as it is until the job finishes and the curator switches.
    Shows the refusal (a job already running there) or any other UserError instead. Returns True when started."""
    workdir = workspace.workdir()
    if workdir is not None and "--workdir" not in args:
        args = [*args, "--workdir", str(workdir)]
    try:
        jobs.start_job(run, args)
    except UserError as err:
        show_error(f"Could not start {what}.", err)
        return False
    watch(run.name)
    started = st.session_state.setdefault(STARTED_KEY, [])
    if run.name not in started:
        started.append(run.name)
    flash(f"Started {what} in run {md_literal(run.name)}. It runs in the background: you can switch "
          "pages or close the tab. Explore and Review keep showing the run chosen in the sidebar until you "
          "switch.", "info")
    return True


def finished_runs_to_offer(data: Path, selected: str | None) -> list[str]:
    """Runs this tab started a job in whose results are now ready and that are not the sidebar's run."""
    started = st.session_state.get(STARTED_KEY) or []
    root = runs_root(data)
    return [n for n in started if n != selected and jobs.job_status(root / n).state == "finished"
            and run_folder.run_outputs_ready(root / n)]


def offer_finished_runs(data: Path | None, selected: Path | None) -> None:
    """In the sidebar: a button per run this tab started that has finished and is not the sidebar's run."""
    if data is None:
        return
    for name in finished_runs_to_offer(data, selected.name if selected else None):
        with st.sidebar:
            st.success(f"Run {md_literal(name)} finished.", icon=":material/task_alt:")
            st.button("Use it for Explore and Review", key=f"offer_{name}", on_click=use_run, args=(name,),
                      width="stretch")


def use_run(name: str) -> None:
    """Button callback: make ``name`` the sidebar's run and stop offering it."""
    select_run(name)
    started = st.session_state.get(STARTED_KEY) or []
    st.session_state[STARTED_KEY] = [n for n in started if n != name]


def job_panel(run: Path, selected: Path | None) -> None:
    """Status, progress, results and Cancel / Resume of ``run``'s latest job; refreshes itself every REFRESH_S
    while the job runs (st.fragment), and the whole app once when it ends. ``selected`` is the sidebar's run:
    a finished run that is not it offers the switch."""
    state = jobs.job_status(run).state
    st.fragment(run_every=REFRESH_S if state == "running" else None)(_job_panel_body)(run, state, selected)


def _job_panel_body(run: Path, state_at_load: str, selected: Path | None) -> None:
    status = jobs.job_status(run)
    if state_at_load == "running" and status.state != "running":
        st.rerun(scope="app")  # outputs, run list and the Explore/Review pages change now
    kind = status.args[0] if status.args else ""
    since = None if "--resume" in status.args else status.started  # a resumed training continues its curves
    view = progress_view(job_events(run_folder.read_progress(run), since), now=time.time(),
                         kind="score" if kind == "score" else "train")
    label, colour = STATE_BADGES.get(status.state, (status.state, "gray"))
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown(f"#### Run {md_literal(run.name)}")
        st.badge(label, color=colour)
        if kind in JOB_KINDS:
            st.caption(JOB_KINDS[kind])
    if status.state == "none":
        st.caption("No job has run in this folder yet.")
        return
    st.progress(view.fraction, text=view.caption)
    if view.mirroring:
        st.caption(view.mirroring)
    _job_metrics(run, status, view, kind)
    if not view.losses.empty:
        st.plotly_chart(loss_figure(view.losses), config={"displayModeBar": False}, key=f"loss_{run.name}")
    if status.state == "failed":
        reason = view.message or (status.log_tail[-1] if status.log_tail else "the process ended without a word")
        show_error(FAILURE_TEXT.get(kind, "The job failed."), reason)
    _job_buttons(run, status, selected)
    if status.log_tail:
        with st.expander("Job log (last lines)"):
            st.code("\n".join(status.log_tail), language=None)


def _job_metrics(run: Path, status: jobs.JobStatus, view, kind: str) -> None:
    """Elapsed time of this job; while training, the time left and the latest estimates; when the run has
    results, what was flagged."""
    end = status.ended if status.state != "running" else time.time()
    elapsed = end - status.started if end and status.started else view.elapsed_s
    ready = run_folder.run_outputs_ready(run) and status.state == "finished"
    if ready:
        counts = flag_counts(flags(run))
        cols = st.columns(5)
        cols[0].metric("Elapsed", format_seconds(elapsed))
        cols[1].metric("Flagged clips", f"{counts['flagged']:,} of {counts['clips']:,}")
        cols[2].metric("Wrong label", f"{counts['wrong_label']:,}", help="Only the label looks wrong.")
        cols[3].metric("Sound mismatch", f"{counts['mismatch']:,}", help="Only the sound looks wrong.")
        cols[4].metric("Both", f"{counts['both']:,}", help="Label and sound both look wrong.")
        return
    cols = st.columns(4 if kind != "score" else 1)
    cols[0].metric("Elapsed", format_seconds(elapsed))
    if kind == "score":
        return
    cols[1].metric("Time left", format_seconds(view.eta_s) if status.state == "running" else "–")
    cols[2].metric("Estimated wrong labels", "–" if view.est_label_noise is None else f"{view.est_label_noise:.1%}")
    cols[3].metric("Estimated mismatched sound", "–" if view.est_mismatch is None else f"{view.est_mismatch:.1%}")


def _job_buttons(run: Path, status: jobs.JobStatus, selected: Path | None) -> None:
    """Cancel a running job; Resume a failed or cancelled training run (from its last completed epoch); use a
    finished run for Explore and Review."""
    with st.container(horizontal=True):
        if status.state == "running" and st.button("Cancel", icon=":material/stop:", key=f"cancel_{run.name}"):
            with st.spinner("Stopping the job…"):
                jobs.cancel_job(run)
            st.rerun(scope="app")
        can_resume = status.state in ("failed", "cancelled") and status.args[:1] == ["train"]
        if can_resume and st.button("Resume", icon=":material/replay:", key=f"resume_{run.name}", type="primary"):
            args = [a for a in status.args if a not in ("--resume", "--overwrite")] + ["--resume"]
            if start_job(run, args, "resuming training"):
                st.rerun(scope="app")
        if run_folder.run_outputs_ready(run) and (selected is None or selected.name != run.name):
            st.button("Use this run for Explore and Review", type="primary", icon=":material/swap_horiz:",
                      key=f"use_{run.name}", on_click=use_run, args=(run.name,))



def results_banner(data: Path, selected: Path | None) -> None:
    """The Data page's way on: what the sidebar's run flagged, with a link to Review; for the bundled sample
    without a run, its scoring by the shipped model (started once, in the background: auditor.first_run)."""
    if data == first_run.BUNDLED_SAMPLE and not (selected and run_folder.run_outputs_ready(selected)):
        _sample_run_status()
        return
    if selected is None or not run_folder.run_outputs_ready(selected):
        st.info("No scored run yet: train a model or score with the shipped model on the **Model** page.",
                icon=":material/model_training:")
        return
    with st.container(horizontal=True, vertical_alignment="center"):
        st.success(f"Run {md_literal(selected.name)}: {flag_summary(flags(selected))}.", icon=":material/task_alt:")
        st.page_link(page_file("review"), label="Review the flagged clips", icon=":material/fact_check:")


def _sample_run_status() -> None:
    try:
        state, run = first_run.ensure_sample_run()
    except UserError as err:
        show_error("The bundled sample could not be scored.", err)
        return
    if state == "ready":
        select_run(run.name)
        st.rerun()
    elif state == "running":
        st.fragment(run_every=REFRESH_S)(_sample_run_progress)(run)
    elif state == "failed":
        status = jobs.job_status(run)
        show_error("Scoring the bundled sample with the shipped model failed.",
                   status.log_tail[-1] if status.log_tail else "the job left no log")


def _sample_run_progress(run: Path) -> None:
    if jobs.job_status(run).state != "running":
        st.rerun(scope="app")
    st.info("Scoring the bundled sample with the shipped model: once, in the background (about a minute). "
            "Explore and Review open as soon as it is done.", icon=":material/hourglass_top:")
