"""The one library module that imports Streamlit: session defaults, the shared sidebar, cached loaders, figures.

Pages (``pages/*.py``) call these and the pure functions of :mod:`auditor.review_queue`, :mod:`auditor.explore_maps`; nothing here computes a
model quantity. What must outlive a browser tab (jobs, decisions) lives on disk (:mod:`auditor.runs`,
:mod:`auditor.reviews`); ``st.session_state`` only holds per-tab choices. User data (labels, file names) is
never rendered as HTML: it goes through ``st.text``/``st.dataframe``, :func:`auditor.text.md_literal` in
Markdown, or :func:`auditor.text.escape_hover` in Plotly.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from auditor import explore_maps, progress_view, review_queue, run_folder, text
from auditor.errors import UserError
from auditor.flags import FLAG_THRESHOLD

REPO = Path(__file__).resolve().parent.parent
PAGES_DIR = REPO / "pages"
SAMPLE_DATA = REPO / "sample_data"
SHIPPED_MODEL = REPO / "models" / "sample"
RUNS_SUBDIR = Path(".auditor") / "runs"
DEFAULT_RUN = "default"
SHIPPED_RUN = "shipped"
MAX_RECENT = 8
REVIEW_FRAMES = 8  # frames in the Review page's strip
REVIEW_FRAME_SIZE = 128
REVIEW_SAMPLE_RATE = 16_000  # what decode_clip returns

PAGES = {  # name -> (file, title, icon)
    "data": ("data.py", "Data", ":material/folder_open:"),
    "model": ("model.py", "Model", ":material/model_training:"),
    "explore": ("explore.py", "Explore", ":material/scatter_plot:"),
    "review": ("review.py", "Review", ":material/fact_check:"),
    "export": ("export.py", "Export", ":material/download:"),
}

# Session-state keys shared by several pages.
DATA_KEY = "data_dir"  # the sidebar's data set text input
RUN_KEY = "run_name"  # the sidebar's run selectbox
CURATOR_KEY = "curator"
PENDING_RUN_KEY = "_pending_run"  # a run to select on the next rerun (the selectbox is already drawn)
REVIEW_CLIPS_KEY = "review_clips"  # clips sent from Explore to Review, or absent
FLASH_KEY = "_flash"


def page_file(name: str) -> str:
    """Absolute path of a page script (what ``st.Page`` and ``st.switch_page`` take)."""
    return str(PAGES_DIR / PAGES[name][0])


def navigation_pages() -> list:
    """Every page, registered explicitly (st.navigation turns the automatic pages/ discovery off)."""
    return [st.Page(page_file(name), title=title, icon=icon, default=(name == "data"), url_path=name)
            for name, (_, title, icon) in PAGES.items()]


# ----------------------------------------------------------------------------------------- session, recent
def startup_data_dir(argv: list[str] | None = None, environ: dict | None = None) -> str | None:
    """``--data DIR`` (or ``--data=DIR``) after ``--`` on the ``streamlit run`` line, else $AUDITOR_DATA."""
    argv = sys.argv[1:] if argv is None else argv
    for i, arg in enumerate(argv):
        if arg == "--data" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--data="):
            return arg.split("=", 1)[1]
    return (os.environ if environ is None else environ).get("AUDITOR_DATA") or None


def config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "av-auditor"


def recent_data_dirs() -> list[str]:
    """Recently used data set folders, newest first (from ~/.config/av-auditor/recent.json)."""
    try:
        items = json.loads((config_dir() / "recent.json").read_text()).get("recent", [])
        return [str(p) for p in items if isinstance(p, str)][:MAX_RECENT]
    except (OSError, ValueError, AttributeError):
        return []


def remember_data_dir(path: str) -> None:
    """Put ``path`` first in the recent list; a read-only home only loses the list, never the app."""
    items = [path] + [p for p in recent_data_dirs() if p != path]
    target = config_dir() / "recent.json"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"recent": items[:MAX_RECENT]}, indent=1))
        tmp.replace(target)
    except OSError:
        pass


def init_session() -> None:
    """Defaults for a new tab: the data set from the command line / $AUDITOR_DATA / the recent list."""
    ss = st.session_state
    if DATA_KEY not in ss:
        start = startup_data_dir()
        if not start:
            start = next((p for p in recent_data_dirs() if Path(p).is_dir()), "")
        ss[DATA_KEY] = str(Path(start).expanduser().resolve()) if start else ""
        if start and Path(start).is_dir():
            remember_data_dir(ss[DATA_KEY])
    ss.setdefault(CURATOR_KEY, "")


def flash(message: str, kind: str = "success") -> None:
    """Show ``message`` (Markdown, user text already escaped) once, at the top of the next page run."""
    st.session_state[FLASH_KEY] = (kind, message)


def show_flash() -> None:
    kind, message = st.session_state.pop(FLASH_KEY, (None, None))
    if message:
        {"success": st.success, "error": st.error, "info": st.info, "warning": st.warning}[kind](message)


def select_run(name: str) -> None:
    """Select run ``name`` in the sidebar from the next rerun on (its selectbox is already drawn)."""
    st.session_state[PENDING_RUN_KEY] = name


# ------------------------------------------------------------------------------------------ data and runs
def data_dir() -> Path | None:
    """The chosen data set folder (resolved), or None when none is chosen or it is not a folder."""
    value = st.session_state.get(DATA_KEY, "")
    if not value:
        return None
    path = Path(value).expanduser()
    return path.resolve() if path.is_dir() else None


def runs_root(data: Path) -> Path:
    return data / RUNS_SUBDIR


def run_names(data: Path) -> list[str]:
    """Run folders under DIR/.auditor/runs (default first, then by name)."""
    from auditor import jobs

    root = runs_root(data)
    names = {Path(p).name for p in run_folder.list_runs(root)}
    if root.is_dir():  # a job still ingesting has written no config.json yet: it is a run too
        names |= {p.name for p in root.iterdir() if (p / jobs.JOB_FILE).is_file()}
    return sorted(names, key=lambda n: (n != DEFAULT_RUN, n))


def run_dir() -> Path | None:
    """The selected run folder, or None."""
    data, name = data_dir(), st.session_state.get(RUN_KEY)
    if data is None or not name:
        return None
    path = runs_root(data) / name
    return path if path.is_dir() else None


def outputs_ready(run: Path | None) -> bool:
    if run is None:
        return False
    return bool(run_folder.run_outputs_ready(run))


def require_data() -> Path:
    """The data set folder, or stop the page with a hint."""
    data = data_dir()
    if data is None:
        st.info("Choose a data set folder in the sidebar (or use the bundled sample) to begin.")
        st.stop()
    return data


def require_scored_run() -> tuple[Path, Path]:
    """(data folder, run folder with flags + embeddings), or stop the page with a hint."""
    data = require_data()
    run = run_dir()
    if not outputs_ready(run):
        st.info("No scored run yet for this data set. Train a model or score it with the shipped model on "
                "the **Model** page; the results appear here when the job finishes.")
        st.page_link(page_file("model"), label="Go to Model", icon=":material/model_training:")
        st.stop()
    return data, run


# --------------------------------------------------------------------------------------------- the sidebar
def _use_sample() -> None:
    st.session_state[DATA_KEY] = str(SAMPLE_DATA)
    _data_changed()


def _use_recent() -> None:
    pick = st.session_state.get("_recent_pick")
    if pick:
        st.session_state[DATA_KEY] = pick
        _data_changed()
    st.session_state["_recent_pick"] = None


def _data_changed() -> None:
    value = st.session_state.get(DATA_KEY, "").strip()
    if value and Path(value).expanduser().is_dir():
        st.session_state[DATA_KEY] = str(Path(value).expanduser().resolve())
        remember_data_dir(st.session_state[DATA_KEY])
    st.session_state.pop(RUN_KEY, None)
    st.session_state.pop(REVIEW_CLIPS_KEY, None)


def _default_run(data: Path, names: list[str]) -> str | None:
    """A running job's run if there is one, else 'default', else the first run with outputs, else the first."""
    from auditor import jobs

    for name in names:
        if jobs.job_status(runs_root(data) / name).state == "running":
            return name
    ready = [n for n in names if run_folder.run_outputs_ready(runs_root(data) / n)]
    if DEFAULT_RUN in ready:
        return DEFAULT_RUN
    return (ready or names or [None])[0]


def sidebar() -> None:
    """Data set folder (+ recent list, bundled sample), run selector, curator name."""
    ss = st.session_state
    with st.sidebar:
        st.text_input("Data set folder", key=DATA_KEY, on_change=_data_changed,
                      placeholder="/path/to/videos (labels.csv or class folders)",
                      help="A folder with labels.csv (clip,label) or one sub-folder per class.")
        recent = [p for p in recent_data_dirs() if p != ss.get(DATA_KEY)]
        if recent:
            st.selectbox("Recent", recent, index=None, key="_recent_pick", on_change=_use_recent,
                         placeholder="Recently used…", label_visibility="collapsed")
        st.button("Use the bundled sample", on_click=_use_sample, icon=":material/library_music:",
                  disabled=not (SAMPLE_DATA / "labels.csv").is_file(), width="stretch",
                  help="The sample data set that ships with AV Auditor (sample_data/)")
        value = ss.get(DATA_KEY, "")
        data = data_dir()
        if value and data is None:
            st.error("That folder does not exist.")
        if data is not None:
            names = run_names(data)
            if PENDING_RUN_KEY in ss:
                pending = ss.pop(PENDING_RUN_KEY)
                names = sorted(set(names) | {pending}, key=lambda n: (n != DEFAULT_RUN, n))
                ss[RUN_KEY] = pending
            if ss.get(RUN_KEY) not in names:
                ss[RUN_KEY] = _default_run(data, names)
            if names:
                st.selectbox("Run", names, key=RUN_KEY, help="Model runs of this data set (DIR/.auditor/runs)")
            else:
                st.caption("No runs yet: start one on the Model page.")
        st.text_input("Curator name", key=CURATOR_KEY, placeholder="required to record decisions",
                      help="Stored with every review decision.")


# ----------------------------------------------------------------------------------------- messages
def show_error(headline: str, err: BaseException | str) -> None:
    """An error box: ``headline`` (our words) plus the error text, which may name user files, shown literally."""
    st.error(f"{headline}  \n{text.md_literal(err)}", icon=":material/error:")


format_seconds = text.format_seconds


# ------------------------------------------------------------------------------------- data set and ingest
def _labels_mtime(data: Path) -> int:
    return _mtime(data / "labels.csv") or _mtime(data)


@st.cache_data(show_spinner=False, max_entries=4, ttl=300)
def _manifest(path: str, mtime: int):
    from auditor.data.manifest import load_manifest

    return load_manifest(path)


def manifest(data: Path):
    """The data set's validated manifest (auditor.data.manifest.load_manifest), cached per labels.csv version.
    Raises ManifestError (a UserError) for an unusable folder."""
    return _manifest(str(data), _labels_mtime(data))


def _ingest_params():
    from auditor.model.presets import preprocess_params

    return preprocess_params("cpu")


def _cache_dir(data: Path) -> Path:
    from auditor.data.cache import default_cache_root

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
    from auditor.data.cache import ingest, summary

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


# ------------------------------------------------------------------------------------------ cached loaders
def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_data(show_spinner=False, max_entries=8)
def _flags(path: str, mtime: int, threshold: float) -> pd.DataFrame:
    return review_queue.read_flags(path, threshold)


@st.cache_data(show_spinner=False, max_entries=8)
def _umap(path: str, mtime: int) -> pd.DataFrame:
    return explore_maps.read_umap(path)


@st.cache_resource(show_spinner=False, max_entries=4)
def _embedding_matrix(path: str, mtime: int) -> tuple[list[str], np.ndarray]:
    return review_queue.read_embedding_matrix(path, "fused")  # shared across sessions: never mutate


def flags(run: Path) -> pd.DataFrame:
    """The run's flags.csv, annotated (review_queue.read_flags)."""
    path = run / "flags.csv"
    return _flags(str(path), _mtime(path), FLAG_THRESHOLD)


def umap(run: Path) -> pd.DataFrame:
    path = run / "embeddings.parquet"
    return _umap(str(path), _mtime(path))


def embedding_matrix(run: Path) -> tuple[list[str], np.ndarray]:
    path = run / "embeddings.parquet"
    return _embedding_matrix(str(path), _mtime(path))


def review_store(data: Path):
    """The data set's ReviewStore; use as a context manager (``with ui.review_store(data) as store``)."""
    from auditor.reviews import ReviewStore

    return ReviewStore(data)


def latest_reviews(data: Path) -> pd.DataFrame:
    with review_store(data) as store:
        return store.latest()


def scored_clips(data: Path, run: Path) -> pd.DataFrame:
    """flags + current review status, one row per clip of flags.csv."""
    table = flags(run)
    table["review_status"] = review_queue.review_status(table["clip"], latest_reviews(data)).to_numpy()
    return table


def run_id(run: Path) -> str:
    return str((run_folder.read_config(run) or {}).get("run_id", run.name))


@st.cache_data(show_spinner=False, max_entries=16)
def _clip_media(path: str, mtime: int) -> dict:
    from auditor.data.decode import decode_clip
    from auditor.data.features import log_mel

    clip = decode_clip(path, num_frames=REVIEW_FRAMES, size=REVIEW_FRAME_SIZE)
    return {"frames": clip.frames, "wav": _wav_bytes(clip.audio, REVIEW_SAMPLE_RATE), "mel": log_mel(clip.audio),
            "duration": clip.duration, "has_audio": clip.has_audio}


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono float audio in [-1, 1] -> 16-bit PCM WAV bytes, at the level the model heard (not normalised)."""
    import io
    import wave

    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


def clip_media(path: Path) -> dict:
    """Decoded frames (T, S, S, 3), the sound as WAV bytes, log-mel (64, L) of a clip file (already checked to be
    inside the data set with review_queue.clip_path)."""
    return _clip_media(str(path), _mtime(path))


# ------------------------------------------------------------------------------------------------ figures
def point_size(n: int) -> float:
    """Marker size for a map of ``n`` points: smaller as the map fills, so that clusters stay readable."""
    return 6.0 if n <= 1_000 else 4.5 if n <= 5_000 else 3.0


def map_figure(points: pd.DataFrame, plan: explore_maps.TracePlan, modality: str, customdata: np.ndarray,
               highlight: np.ndarray | None, *, height: int = 430) -> go.Figure:
    """A UMAP map as WebGL scatter traces following ``plan``; rows in ``highlight`` are drawn selected and the
    rest faded (Plotly's ``selectedpoints``)."""
    size = point_size(len(points))
    x = points[f"umap_{modality}_x"].to_numpy()
    y = points[f"umap_{modality}_y"].to_numpy()
    chosen = None if highlight is None or len(highlight) == 0 else np.zeros(len(points), bool)
    if chosen is not None:
        chosen[highlight] = True
    traces = []
    for k, rows in enumerate(plan.rows):
        if plan.mode == "legend":
            marker = {"color": plan.colours[k], "size": size}
            name = text.escape_hover(plan.names[k])
        else:
            marker = {"color": plan.codes, "colorscale": "Turbo", "cmin": 0, "cmax": max(1, len(plan.names) - 1),
                      "size": size, "showscale": False}
            name = "clips"
        selected = None if chosen is None else np.flatnonzero(chosen[rows]).tolist()
        traces.append(go.Scattergl(
            x=x[rows], y=y[rows], mode="markers", name=name, marker=marker, customdata=customdata[rows],
            hovertemplate=explore_maps.HOVER_TEMPLATE, selectedpoints=selected,
            selected={"marker": {"size": size + 3, "opacity": 1.0}},
            unselected={"marker": {"opacity": 0.12}}))
    fig = go.Figure(traces)
    fig.update_layout(
        height=height, margin={"l": 8, "r": 8, "t": 8, "b": 8}, dragmode="lasso", uirevision=modality,
        showlegend=plan.mode == "legend", legend={"itemsizing": "constant", "orientation": "h", "y": -0.02,
                                                  "yanchor": "top", "x": 0},
        hoverlabel={"align": "left"})
    fig.update_xaxes(showticklabels=False, title=None, zeroline=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, title=None, zeroline=False, showgrid=False)
    return fig


def class_histogram(per_class: dict[str, int]) -> go.Figure:
    names = [text.escape_hover(k) for k in per_class]
    fig = go.Figure(go.Bar(x=names, y=list(per_class.values()), marker_color="#4c78a8",
                           hovertemplate="%{x}: %{y} clips<extra></extra>"))
    fig.update_layout(height=300, margin={"l": 8, "r": 8, "t": 8, "b": 8}, yaxis_title="clips",
                      xaxis={"type": "category", "showticklabels": len(names) <= 60})
    return fig


def loss_figure(losses: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for term, part in losses.groupby("term", sort=False):
        fig.add_trace(go.Scatter(x=part["step"], y=part["value"], mode="lines", name=str(term)))
    fig.update_layout(height=300, margin={"l": 8, "r": 8, "t": 8, "b": 8}, xaxis_title="step",
                      yaxis_title="loss", legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0})
    return fig


def spectrogram_figure(mel: np.ndarray, hop_seconds: float = 0.010) -> go.Figure:
    t = np.arange(mel.shape[1]) * hop_seconds
    fig = go.Figure(go.Heatmap(z=mel, x=t, colorscale="Magma", showscale=False,
                               hovertemplate="%{x:.2f} s · mel %{y}<extra></extra>"))
    fig.update_layout(height=180, margin={"l": 8, "r": 8, "t": 4, "b": 4}, xaxis_title="seconds",
                      yaxis_title="mel bin")
    return fig


def frame_strip(frames: np.ndarray) -> np.ndarray:
    """(T, S, S, 3) frames -> one (S, T*S, 3) image, left to right."""
    return np.concatenate(list(frames), axis=1) if len(frames) else np.zeros((1, 1, 3), np.uint8)


# Clip tables (Explore selection, Review queue, neighbours): columns and how they are shown.
CLIP_TABLE = ["clip", "given_label", "suggested_label", "kind_text", "label_noise_score", "mismatch_score",
              "review_status"]
TABLE_COLUMNS = {
    "clip": st.column_config.TextColumn("clip"),
    "given_label": st.column_config.TextColumn("given label"),
    "suggested_label": st.column_config.TextColumn("suggested"),
    "kind_text": st.column_config.TextColumn("flag"),
    "label_noise_score": st.column_config.NumberColumn("wrong-label score", format="%.2f"),
    "mismatch_score": st.column_config.NumberColumn("mismatch score", format="%.2f"),
    "similarity": st.column_config.NumberColumn("similarity", format="%.2f"),
    "review_status": st.column_config.TextColumn("status"),
}


def show_table(df: pd.DataFrame, **kwargs) -> None:
    """A read-only table without the index (text cells are rendered as text)."""
    st.dataframe(df, hide_index=True, width="stretch", **kwargs)


# ------------------------------------------------------------------------------------------ background jobs
STATE_BADGES = {"none": ("no job yet", "gray"), "running": ("running", "blue"), "finished": ("finished", "green"),
                "failed": ("failed", "red"), "cancelled": ("cancelled", "orange")}


def job_state(run: Path):
    """auditor.jobs.job_status of a run folder (train and score jobs both write start/done/error events)."""
    from auditor import jobs

    return jobs.job_status(run)


def running_runs(data: Path) -> list[str]:
    return [n for n in run_names(data) if job_state(runs_root(data) / n).state == "running"]


def start_job(run: Path, args: list[str], what: str) -> bool:
    """Start ``python -m auditor *args`` in the background for ``run`` and select that run; shows the refusal
    (a job already running there) or any other UserError instead. Returns True when started."""
    from auditor import jobs

    try:
        jobs.start_job(run, args)
    except UserError as err:
        show_error(f"Could not start {what}.", err)
        return False
    select_run(run.name)
    flash(f"Started {what} in run {text.md_literal(run.name)}. It runs in the background: you can switch "
          "pages or close the tab.", "info")
    return True


def job_panel(run: Path) -> None:
    """Status, progress, loss curves and Cancel / Resume of ``run``'s job; refreshes itself every 2 s while the
    job runs (st.fragment), and the whole app once when it ends."""
    state = job_state(run).state
    st.fragment(run_every=2 if state == "running" else None)(_job_panel_body)(run, state)


def _job_panel_body(run: Path, state_at_load: str) -> None:
    from auditor import jobs

    status = job_state(run)
    if state_at_load == "running" and status.state != "running":
        st.rerun(scope="app")  # outputs, run list and the Explore/Review pages change now
    events = run_folder.read_progress(run)
    view = progress_view.progress_view(events, now=time.time())
    label, colour = STATE_BADGES.get(status.state, (status.state, "gray"))
    kind = {"train": "training", "score": "scoring with a trained model"}.get(status.args[0] if status.args else "",
                                                                           "")
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown(f"#### Run {text.md_literal(run.name)}")
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
    if status.log_tail:
        with st.expander("Job log (last lines)"):
            st.code("\n".join(status.log_tail), language=None)


# ---------------------------------------------------------------------------------------------- explore maps
EXPLORE_SELECTED_KEY = "explore_selected"  # clips selected on a map (list[str])
_EXPLORE_RENDER_KEY = "_explore_render"  # (TracePlan, clips array) of the maps as last drawn
def points(data: Path, run: Path) -> pd.DataFrame:
    """Scored clips with UMAP coordinates and review status (explore_maps.points_table)."""
    return explore_maps.points_table(flags(run), umap(run), latest_reviews(data))


def remember_maps(plan: explore_maps.TracePlan, clips: np.ndarray) -> None:
    """What the maps show now, so that a selection event (which names traces and points) maps back to clips."""
    st.session_state[_EXPLORE_RENDER_KEY] = (plan, clips)


def on_map_select(chart_key: str) -> None:
    """Selection callback of a map: the selected points become the selected clips (on all maps)."""
    state = st.session_state.get(chart_key)
    render = st.session_state.get(_EXPLORE_RENDER_KEY)
    if state is None or render is None:
        return
    plan, clips = render
    rows = explore_maps.selected_rows(plan, list(state.selection.points))
    st.session_state[EXPLORE_SELECTED_KEY] = [str(c) for c in clips[rows]]


# ------------------------------------------------------------------------------------------------- review
REVIEW_CURRENT_KEY = "review_current"  # the clip on screen
_REVIEW_SHOWN_KEY = "_review_shown"  # {"clip", "id"}: the clip's latest decision id when it was first shown
_REVIEW_QUEUE_KEY = "_review_queue"  # the queue's clips as last drawn (to find the next one)
REVIEW_CONFLICT_KEY = "_review_conflict"


def show_clip(data: Path, clip: str, queue: list[str]) -> dict | None:
    """Make ``clip`` the clip on screen and return its latest decision (or None). The first time it is shown,
    that decision's id is remembered as the ``expected_last_id`` of the decision the curator will record."""
    ss = st.session_state
    ss[REVIEW_CURRENT_KEY] = clip
    ss[_REVIEW_QUEUE_KEY] = queue
    with review_store(data) as store:
        latest = store.latest_for(clip)
    shown = ss.get(_REVIEW_SHOWN_KEY)
    if not shown or shown["clip"] != clip:
        ss[_REVIEW_SHOWN_KEY] = {"clip": clip, "id": latest["id"] if latest else None}
    return latest


def _advance(clip: str) -> None:
    queue = st.session_state.get(_REVIEW_QUEUE_KEY) or []
    i = queue.index(clip) if clip in queue else -1
    st.session_state[REVIEW_CURRENT_KEY] = queue[i + 1] if 0 <= i < len(queue) - 1 else None
    st.session_state.pop(_REVIEW_SHOWN_KEY, None)
    st.session_state["relabel_to"] = None


def record_decision(data: Path, run_id_: str, row: dict, decision: str, relabel_key: str | None = None,
                    expected_last_id: object = "shown") -> None:
    """Button callback: record ``decision`` for the clip of ``row`` (a flags row) with the curator's name and
    the run id, checked against the id shown; on success the next clip follows, on a ReviewConflict the
    conflict is kept for the page to show."""
    from auditor.reviews import ReviewConflict

    ss = st.session_state
    clip = row["clip"]
    final = ss.get(relabel_key) if decision == "relabel" and relabel_key else None
    if expected_last_id == "shown":
        shown = ss.get(_REVIEW_SHOWN_KEY) or {}
        expected_last_id = shown.get("id") if shown.get("clip") == clip else None
    try:
        with review_store(data) as store:
            store.record(clip, decision, given_label=row["given_label"],
                         suggested_label=row.get("suggested_label") or None, final_label=final,
                         curator=ss.get(CURATOR_KEY, "").strip(), run_id=run_id_,
                         label_noise_score=row.get("label_noise_score"), mismatch_score=row.get("mismatch_score"),
                         expected_last_id=expected_last_id)
    except ReviewConflict as err:
        ss[REVIEW_CONFLICT_KEY] = {"row": row, "decision": decision, "final": final, "theirs": dict(err.theirs)}
        return
    except (UserError, ValueError) as err:
        flash(f"Not recorded: {text.md_literal(err)}", "error")
        return
    ss.pop(REVIEW_CONFLICT_KEY, None)
    _advance(clip)
    st.toast(f"{review_queue.STATUS_TEXT.get(decision, decision).capitalize()}: {text.md_literal(clip)}",
             icon=":material/check:")


def keep_theirs() -> None:
    """Conflict resolution: leave the other curator's decision and go on."""
    conflict = st.session_state.pop(REVIEW_CONFLICT_KEY, None)
    if conflict:
        _advance(conflict["row"]["clip"])


def record_mine(data: Path, run_id_: str) -> None:
    """Conflict resolution: record my decision on top of theirs."""
    conflict = st.session_state.pop(REVIEW_CONFLICT_KEY, None)
    if conflict:
        key = "_conflict_final"
        st.session_state[key] = conflict["final"]
        record_decision(data, run_id_, conflict["row"], conflict["decision"], key,
                        expected_last_id=conflict["theirs"].get("id"))


def jump_to_queue_row() -> None:
    """Queue table selection callback: show the selected clip."""
    state = st.session_state.get("queue_table")
    queue = st.session_state.get(_REVIEW_QUEUE_KEY) or []
    rows = list(state.selection.rows) if state is not None else []
    if rows and rows[0] < len(queue):
        st.session_state[REVIEW_CURRENT_KEY] = queue[rows[0]]


# ------------------------------------------------------------------------------------------------- export
def export_files(data: Path, run: Path | None, excluded: str) -> dict[str, bytes]:
    """auditor.export.export_bytes for the data set (and the selected run, when it has a config)."""
    from auditor.export import export_bytes

    run_arg = run if run is not None and (run / "config.json").is_file() else None
    return export_bytes(data, run_dir=run_arg, excluded=excluded)


def write_export(data: Path, run: Path | None, out_dir: str, excluded: str) -> dict | None:
    """auditor.export.export_reviewed into ``out_dir``; shows the error and returns None when it fails."""
    from auditor.export import export_reviewed

    if not out_dir:
        show_error("Not written.", "enter an output folder")
        return None
    run_arg = run if run is not None and (run / "config.json").is_file() else None
    try:
        return export_reviewed(data, Path(out_dir).expanduser(), run_dir=run_arg, excluded=excluded)
    except (UserError, OSError) as err:
        show_error("Not written.", err)
        return None
