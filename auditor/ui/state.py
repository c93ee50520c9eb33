"""Session state of one browser tab: its defaults, the recent data set folders, the chosen data set and run, the
page registry, and the shared sidebar that sets them.

Session-state keys read by several pages are named here (``*_KEY``). ``st.session_state`` dies with the tab;
the recent list lives in ~/.config/av-auditor/recent.json, the last curator name and each data set's last picked
run in settings.json beside it, and the runs on disk, in the data set's work folder
(:mod:`auditor.workspace`: DIR/.auditor, or under ``--workdir``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import streamlit as st

from auditor import jobs, run_choice, run_folder, selections, workspace
from auditor.ui import loaders

REPO = Path(__file__).resolve().parents[2]
PAGES_DIR = REPO / "pages"
SAMPLE_DATA = workspace.BUNDLED_SAMPLE
SHIPPED_MODEL = REPO / "models" / "sample"
# model.checkpoint.CHECKPOINT_FILE in it (that module imports torch, which the pages do not load)
SHIPPED_CHECKPOINT = SHIPPED_MODEL / run_folder.CHECKPOINT_FILE
SHIPPED_RUN = "shipped"
MAX_RECENT = 8

PAGES = {  # name -> (file, title, icon)
    "data": ("data.py", "Data", ":material/folder_open:"),
    "model": ("model.py", "Model", ":material/model_training:"),
    "explore": ("explore.py", "Explore", ":material/scatter_plot:"),
    "classes": ("classes.py", "Classes", ":material/grid_view:"),
    "review": ("review.py", "Review", ":material/fact_check:"),
    "export": ("export.py", "Export", ":material/download:"),
}

# Session-state keys shared by several pages.
DATA_KEY = "data_dir"  # the sidebar's data set text input
RUN_KEY = "run_name"  # the sidebar's run selectbox
CURATOR_KEY = "curator"
PENDING_RUN_KEY = "_pending_run"  # a run to select on the next rerun (the selectbox is already drawn)
REVIEW_CLIPS_KEY = "review_clips"  # clips sent from Explore to Review, or absent
_SELECTION_ID_KEY = "_review_selection_id"  # the id of those clips as kept on disk (auditor.selections), or None
SELECTION_PARAM = "sel"  # ?sel=<id>: the clips sent to Review, so that a reload keeps them
_RECENT_KEY = "_recent_pick"  # the sidebar's recent-folders selectbox
_URL_BOUND_KEY = "_url_bound"  # session keys already read from the address bar in this tab
DATA_PARAM, RUN_PARAM = "data", "run"  # ?data=<folder>&run=<name>: the data set and run in the address bar
CURATOR_PARAM = "curator"  # ?curator=<name>: this tab's curator, so that a reload keeps it (not another tab's)
RECENT_FILE, SETTINGS_FILE = "recent.json", "settings.json"  # in config_dir()
_URL_BINDS_KEY = "_url_binds"  # this script run's bind_to_url keys -> (param, default), written by write_url
# bind_to_url keys -> their last value (written by write_url): Streamlit forgets the state of a widget that a run
# does not draw (the curator is on another page), so the widget gets this back when its page is shown again.
_URL_KEPT_KEY = "_url_kept"


def page_file(name: str) -> str:
    """Absolute path of a page script (what ``st.Page`` and ``st.switch_page`` take)."""
    return str(PAGES_DIR / PAGES[name][0])


def navigation_pages() -> list:
    """Every page, registered explicitly (st.navigation turns the automatic pages/ discovery off)."""
    return [st.Page(page_file(name), title=title, icon=icon, default=(name == "data"), url_path=name)
            for name, (_, title, icon) in PAGES.items()]


# ----------------------------------------------------------------------------------------- session, recent
def startup_option(name: str, argv: list[str] | None = None) -> str | None:
    """``--<name> VALUE`` (or ``--<name>=VALUE``) after ``--`` on the ``streamlit run`` line, or None."""
    argv = sys.argv[1:] if argv is None else argv
    flag = f"--{name}"
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def startup_data_dir(argv: list[str] | None = None, environ: dict | None = None) -> str | None:
    """``--data DIR`` (or ``--data=DIR``) after ``--`` on the ``streamlit run`` line, else $AUDITOR_DATA."""
    return startup_option("data", argv) or (os.environ if environ is None else environ).get("AUDITOR_DATA") or None


def config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "av-auditor"


def _read_config_json(name: str) -> dict:
    """A JSON object from the user's config folder ({} when missing or unreadable)."""
    try:
        value = json.loads((config_dir() / name).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write_config_json(name: str, value: dict) -> None:
    """Write a JSON object into the user's config folder; a read-only home only loses it, never the app."""
    target = config_dir() / name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=1))
        tmp.replace(target)
    except OSError:
        pass


def recent_data_dirs() -> list[str]:
    """Recently used data set folders, newest first (from ~/.config/av-auditor/recent.json)."""
    items = _read_config_json(RECENT_FILE).get("recent", [])
    return [str(p) for p in items if isinstance(p, str)][:MAX_RECENT] if isinstance(items, list) else []


def remember_data_dir(path: str) -> None:
    """Put ``path`` first in the recent list."""
    items = [path] + [p for p in recent_data_dirs() if p != path]
    _write_config_json(RECENT_FILE, {"recent": items[:MAX_RECENT]})


def _remember_run() -> None:
    """Run picker callback: the scored run picked is what this data set opens with next time, unless a
    decision names another run (settings.json, ``runs``: data set folder -> run name)."""
    data, name = data_dir(), st.session_state.get(RUN_KEY)
    if data is None or not name or not run_folder.run_outputs_ready(runs_root(data) / name):
        return
    settings = _read_config_json(SETTINGS_FILE)
    runs = settings.get("runs") if isinstance(settings.get("runs"), dict) else {}
    _write_config_json(SETTINGS_FILE, settings | {"runs": runs | {str(data): name}})


def _picked_run(data: Path) -> str | None:
    """The scored run last picked for ``data`` (see _remember_run), or None."""
    runs = _read_config_json(SETTINGS_FILE).get("runs")
    name = runs.get(str(data)) if isinstance(runs, dict) else None
    return name if isinstance(name, str) else None


def remember_curator() -> None:
    """Curator name callback: the name is proposed to the next new tab and the next start (settings.json);
    this tab keeps its own (session state and ?curator=), whatever another tab enters later."""
    _write_config_json(SETTINGS_FILE, _read_config_json(SETTINGS_FILE) | {
        "curator": st.session_state.get(CURATOR_KEY, "").strip()})


def init_session() -> None:
    """Defaults for a new tab: the data set from the address bar (?data=), the command line, $AUDITOR_DATA or
    the recent list; the run from the address bar (?run=); the curator name from the address bar (?curator=, a
    reload of this tab), else the last one entered (settings.json) as a proposal; the work directory from
    ``--workdir`` (auditor.workspace: where runs, reviews and the cache go)."""
    workspace.set_workdir(startup_option("workdir"))
    ss = st.session_state
    if DATA_KEY not in ss:
        start = st.query_params.get(DATA_PARAM) or startup_data_dir()
        if not start:
            start = next((p for p in recent_data_dirs() if Path(p).is_dir()), "")
        ss[DATA_KEY] = str(Path(start).expanduser().resolve()) if start else ""
        if start and Path(start).is_dir():
            remember_data_dir(ss[DATA_KEY])
        if st.query_params.get(RUN_PARAM):
            ss[PENDING_RUN_KEY] = st.query_params[RUN_PARAM]
    if CURATOR_KEY not in ss:
        name = st.query_params.get(CURATOR_PARAM) or _read_config_json(SETTINGS_FILE).get("curator", "")
        ss[CURATOR_KEY] = name if isinstance(name, str) else ""


def bind_to_url(key: str, param: str, default, *, parse=str, hidden: bool = False) -> None:
    """Keep session key ``key`` (a widget's) in the address bar as ``?param=``: a new tab (a reload, a shared
    link) starts from the address bar, and a page shown again in this tab (after another page) starts from the
    value it had when last drawn (:func:`write_url` keeps it); call before the widget is drawn. ``parse`` turns
    the text (a list of
    texts for a list ``default``) back into a value and raises ValueError for one that is not allowed (it is
    ignored). The widget gets its value from the session (or ``default``): draw it without a default.
    ``hidden``: the widget is inside something closed (a popover) that the browser draws only when opened; its
    value is then sent on every run, or the browser would draw it with the widget's own default (e.g. a
    slider's minimum) while the page uses the session's value."""
    ss = st.session_state
    seen = ss.setdefault(_URL_BOUND_KEY, set())
    if key not in seen:
        seen.add(key)
        if param in st.query_params and key not in ss:
            raw = st.query_params.get_all(param) if isinstance(default, list) else st.query_params[param]
            try:
                ss[key] = parse(raw)
            except (TypeError, ValueError):
                pass
    if key not in ss:  # the widget takes its value from here: draw it without a default of its own
        ss[key] = ss.get(_URL_KEPT_KEY, {}).get(key, default)
    elif hidden:
        ss[key] = ss[key]  # a value set through the session is sent to the browser with the widget
    ss.setdefault(_URL_BINDS_KEY, {})[key] = (param, default)


def one_of(options) -> object:
    """A ``parse`` for bind_to_url: the text itself when it is one of ``options``, else ValueError."""
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(map(str, options))}")
        return value
    return parse


def write_url() -> None:
    """Put the bound session keys (bind_to_url) into the address bar, a default value left out, and keep their
    values for the next time their page is shown in this tab."""
    kept = st.session_state.setdefault(_URL_KEPT_KEY, {})
    for key, (param, default) in st.session_state.pop(_URL_BINDS_KEY, {}).items():
        value = st.session_state.get(key, default)
        kept[key] = value
        if value is None or value == default:
            st.query_params.pop(param, None)
        elif isinstance(value, list):
            st.query_params[param] = [str(v) for v in value]
        else:
            st.query_params[param] = str(value)


def send_to_review(data: Path, clips: list[str]) -> None:
    """ "Review these": make ``clips`` the Review page's queue and open Review. The selection is kept in the
    data set's work folder (auditor.selections) and named in Review's address bar, so that a reload keeps it."""
    st.session_state[REVIEW_CLIPS_KEY] = list(clips)
    st.session_state[_SELECTION_ID_KEY] = selections.save(data, clips)
    st.switch_page(page_file("review"))


def review_selection(data: Path) -> list[str] | None:
    """The clips sent to Review (:func:`send_to_review`), or None: from the session, else from the address bar's
    ?sel= (a reload); ?sel= is kept in the address bar while there is a selection."""
    ss = st.session_state
    sel_id = st.query_params.get(SELECTION_PARAM)
    if REVIEW_CLIPS_KEY not in ss and sel_id:
        clips = selections.load(data, sel_id)
        if clips:
            ss[REVIEW_CLIPS_KEY], ss[_SELECTION_ID_KEY] = clips, sel_id
    kept = ss.get(_SELECTION_ID_KEY) if ss.get(REVIEW_CLIPS_KEY) else None
    if kept:
        st.query_params[SELECTION_PARAM] = kept
    else:
        st.query_params.pop(SELECTION_PARAM, None)
    return ss.get(REVIEW_CLIPS_KEY)


def leave_selection() -> None:
    """Forget the clips sent to Review (and their ?sel=): Review shows its filtered queue again."""
    st.session_state.pop(REVIEW_CLIPS_KEY, None)
    st.session_state.pop(_SELECTION_ID_KEY, None)
    st.query_params.pop(SELECTION_PARAM, None)


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
    """The folder of the data set's runs (auditor.workspace.runs_root)."""
    return workspace.runs_root(data)


def run_names(data: Path) -> list[str]:
    """The data set's run folders, newest first (a job still ingesting has no config.json yet: it is listed
    by its job.json)."""
    root = runs_root(data)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if (p / run_folder.CONFIG_FILE).is_file() or (p / jobs.JOB_FILE).is_file()]
    return [p.name for p in sorted(runs, key=lambda p: (_started(p), p.name), reverse=True)]


def _started(run: Path) -> float:
    """When the run was made: its config.json or job.json, whichever is older (0 when unreadable)."""
    times = []
    for name in (run_folder.CONFIG_FILE, jobs.JOB_FILE):
        try:
            times.append((run / name).stat().st_mtime)
        except OSError:
            pass
    return min(times, default=0.0)


def run_dir() -> Path | None:
    """The selected run folder, or None."""
    data, name = data_dir(), st.session_state.get(RUN_KEY)
    if data is None or not name:
        return None
    path = runs_root(data) / name
    return path if path.is_dir() else None


def run_label(data: Path, name: str, summary: run_choice.RunSummary | None) -> str:
    """A run as the sidebar lists it: run_choice.label (flagged, decided, finished, a short training) for a run
    with results, else its name and "running" or "no results yet"."""
    if summary is not None and summary.ready:
        return run_choice.label(summary)
    run = runs_root(data) / name
    return f"{name} · {'running' if jobs.job_status(run).state == 'running' else 'no results yet'}"


def outputs_ready(run: Path | None) -> bool:
    return run is not None and run_folder.run_outputs_ready(run)


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
    pick = st.session_state.get(_RECENT_KEY)
    if pick:
        st.session_state[DATA_KEY] = pick
        _data_changed()
    st.session_state[_RECENT_KEY] = None


def _data_changed() -> None:
    value = st.session_state.get(DATA_KEY, "").strip()
    if value and Path(value).expanduser().is_dir():
        st.session_state[DATA_KEY] = str(Path(value).expanduser().resolve())
        remember_data_dir(st.session_state[DATA_KEY])
    st.session_state.pop(RUN_KEY, None)
    st.session_state.pop(_URL_KEPT_KEY, None)  # another data set's filters (its classes) do not carry over
    leave_selection()


def sidebar() -> None:
    """Data set folder (+ recent list, bundled sample), run selector, curator name."""
    ss = st.session_state
    with st.sidebar:
        st.text_input("Data set folder", key=DATA_KEY, on_change=_data_changed,
                      placeholder="/path/to/videos (labels.csv or class folders)",
                      help="A folder with labels.csv (clip,label) or one sub-folder per class.")
        recent = [p for p in recent_data_dirs() if p != ss.get(DATA_KEY)]
        if recent:
            st.selectbox("Recent", recent, index=None, key=_RECENT_KEY, on_change=_use_recent,
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
                names = names if pending in names else [pending, *names]
                ss[RUN_KEY] = pending
            summaries, decided_run = loaders.run_summaries(data, names)
            if ss.get(RUN_KEY) not in names:
                ss[RUN_KEY] = run_choice.choose(summaries, decided_run, _picked_run(data))
            if names:
                by_name = {r.name: r for r in summaries}
                st.selectbox("Run", names, key=RUN_KEY, format_func=lambda n: run_label(data, n, by_name.get(n)),
                             on_change=_remember_run,
                             help="The model run whose results Explore, Review and Export use (newest first). "
                                  "Opens with the run of the latest decision, else the one you last picked.")
                chosen = by_name.get(ss.get(RUN_KEY))
                if chosen is not None and chosen.ready:  # the box is too narrow for the whole line
                    st.caption(run_choice.details(chosen))
                _warn_short(chosen)
            else:
                st.caption("No runs yet: start one on the Model page.")
        st.text_input("Curator name", key=CURATOR_KEY, placeholder="required to record decisions",
                      help="Stored with every review decision; this tab keeps it (also in the address bar), "
                           "and a new tab starts from the last name entered.",
                      on_change=remember_curator)
    _url_state(data)


def _warn_short(run: run_choice.RunSummary | None) -> None:
    """A warning under the run picker when the selected run's training was short (run_choice.RunSummary.short)."""
    if run is not None and run.short:
        st.warning(f"This run trained {run.epochs} epochs; the automatic schedule for its clips is "
                   f"{run.auto_epochs}. Its scores are rough: train again with automatic epochs before trusting "
                   "what it flags (or does not flag).", icon=":material/warning:")


def _url_state(data: Path | None) -> None:
    """The data set, run and curator in the address bar (?data=...&run=...&curator=...), so that a reload or
    a link opens them."""
    if data is None:
        st.query_params.pop(DATA_PARAM, None)
    else:
        st.query_params[DATA_PARAM] = str(data)
    run = st.session_state.get(RUN_KEY)
    if data is not None and run:
        st.query_params[RUN_PARAM] = run
    else:
        st.query_params.pop(RUN_PARAM, None)
    curator = st.session_state.get(CURATOR_KEY, "").strip()
    if curator:
        st.query_params[CURATOR_PARAM] = curator
    else:
        st.query_params.pop(CURATOR_PARAM, None)
