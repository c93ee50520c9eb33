"""The Model page's job panel: start a background train or score job for a run, and show its status,
progress, estimated noise rates, loss curves and log, with Cancel and Resume.

:mod:`auditor.jobs` starts, watches and stops the process; everything shown is read back from the run folder
(job.json, progress.jsonl, job.log), so the panel is the same after a rerun, a page switch or a new tab.
"""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from auditor import jobs, run_folder
from auditor.errors import UserError
from auditor.progress_view import progress_view
from auditor.text import format_seconds, md_literal
from auditor.ui.figures import loss_figure
from auditor.ui.state import run_names, runs_root, select_run
from auditor.ui.widgets import flash, show_error

# auditor.jobs.STATES -> (badge text, colour).
STATE_BADGES = {"none": ("no job yet", "gray"), "running": ("running", "blue"), "finished": ("finished", "green"),
                "failed": ("failed", "red"), "cancelled": ("cancelled", "orange")}
# The first argument of a job's command line -> what the panel calls it.
JOB_KINDS = {"train": "training", "score": "scoring with a trained model"}
REFRESH_S = 2  # how often the panel of a running job redraws itself


def running_runs(data: Path) -> list[str]:
    """Names of the data set's runs with a job running now."""
    return [n for n in run_names(data) if jobs.job_status(runs_root(data) / n).state == "running"]


def start_job(run: Path, args: list[str], what: str) -> bool:
    """Start ``python -m auditor *args`` in the background for ``run`` and select that run; shows the refusal
    (a job already running there) or any other UserError instead. Returns True when started."""
    try:
        jobs.start_job(run, args)
    except UserError as err:
        show_error(f"Could not start {what}.", err)
        return False
    select_run(run.name)
    flash(f"Started {what} in run {md_literal(run.name)}. It runs in the background: you can switch "
          "pages or close the tab.", "info")
    return True


def job_panel(run: Path) -> None:
    """Status, progress, loss curves and Cancel / Resume of ``run``'s job; refreshes itself every REFRESH_S
    while the job runs (st.fragment), and the whole app once when it ends."""
    state = jobs.job_status(run).state
    st.fragment(run_every=REFRESH_S if state == "running" else None)(_job_panel_body)(run, state)


def _job_panel_body(run: Path, state_at_load: str) -> None:
    status = jobs.job_status(run)
    if state_at_load == "running" and status.state != "running":
        st.rerun(scope="app")  # outputs, run list and the Explore/Review pages change now
    view = progress_view(run_folder.read_progress(run), now=time.time())
    label, colour = STATE_BADGES.get(status.state, (status.state, "gray"))
    kind = JOB_KINDS.get(status.args[0] if status.args else "", "")
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown(f"#### Run {md_literal(run.name)}")
        st.badge(label, color=colour)
        if kind:
            st.caption(kind)
    if status.state == "none":
        st.caption("No job has run in this folder yet.")
        return
    st.progress(view.fraction, text=view.caption)
    cols = st.columns(4)
    cols[0].metric("Elapsed", format_seconds(view.elapsed_s))
    cols[1].metric("Time left", format_seconds(view.eta_s) if status.state == "running" else "–")
    cols[2].metric("Estimated wrong labels", "–" if view.est_label_noise is None else f"{view.est_label_noise:.1%}")
    cols[3].metric("Estimated mismatched sound", "–" if view.est_mismatch is None else f"{view.est_mismatch:.1%}")
    if not view.losses.empty:
        st.plotly_chart(loss_figure(view.losses), config={"displayModeBar": False}, key=f"loss_{run.name}")
    if status.state == "failed":
        reason = view.message or (status.log_tail[-1] if status.log_tail else "the process ended without a word")
        show_error("The job failed. Resume continues a training run from its last completed epoch.", reason)
    _job_buttons(run, status)
    if status.log_tail:
        with st.expander("Job log (last lines)"):
            st.code("\n".join(status.log_tail), language=None)


def _job_buttons(run: Path, status: jobs.JobStatus) -> None:
    """Cancel a running job; Resume a failed or cancelled training run (from its last completed epoch)."""
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
