"""The Streamlit app under streamlit.testing (AppTest): every page renders against a fake run with real tiny
clips; Review records decisions (and handles a conflicting one); Export writes the reviewed labels.csv."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from auditor import jobs
from auditor.reviews import ReviewStore
from auditor.run_folder import RunLock
from auditor.ui import loaders
from auditor.ui.jobs import STATE_BADGES
from tests.fakerun import HOSTILE_LABELS, make_fake_run, make_quick_run
from tests.features_data import write_features

APP = Path(__file__).resolve().parents[1] / "auditor" / "app.py"
PAGES = ("data", "model", "explore", "classes", "review", "export")
TIMEOUT = 60  # the first run imports torch (decode / features)


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    data = tmp_path / "data"
    make_fake_run(data / ".auditor" / "runs" / "default", data_dir=data, n_clips=12, n_classes=4, seed=1,
                  with_files=True, hostile_labels=True, n_problems=1)
    monkeypatch.setenv("AUDITOR_DATA", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return data


def app(curator: str = "") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["curator"] = curator
    return at.run()


def goto(at: AppTest, page: str) -> AppTest:
    return at.switch_page(f"../pages/{page}.py").run()


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def badges(at: AppTest) -> list[str]:
    return [m.value.split("[", 1)[1].rstrip("]") for m in at.markdown if "-badge[" in m.value]


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; have {[b.label for b in at.button]}"
    return found[0]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(data_dir, page):
    at = app()
    assert at.session_state["data_dir"] == str(data_dir.resolve())
    assert at.session_state["run_name"] == "default"
    goto(at, page)
    no_errors(at)
    assert at.title[0].value == page.capitalize()


def test_pages_without_a_data_set_ask_for_one(tmp_path, monkeypatch):
    monkeypatch.delenv("AUDITOR_DATA", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    at = app()
    for page in PAGES:
        goto(at, page)
        no_errors(at)
        assert any("Choose a data set folder" in i.value for i in at.info)


def test_data_page_decodes_the_clips(data_dir):
    at = goto(app(), "data")
    button(at, "Decode all clips").click().run()
    no_errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Clips"] == "12" and metrics["Classes"] == "4" and metrics["Undecodable"] == "0"


def test_review_accept_records_a_decision_and_moves_on(data_dir):
    at = goto(app(curator="tester"), "review")
    no_errors(at)
    first = at.session_state["review_current"]
    assert HOSTILE_LABELS[0] in " ".join(m.value for m in at.markdown)  # the top clip, shown literally
    button(at, "Accept suggestion").click().run()
    no_errors(at)
    with ReviewStore(data_dir) as store:
        latest = store.latest()
    assert latest[["clip", "decision", "curator", "final_label"]].values.tolist() == \
        [[first, "accept", "tester", HOSTILE_LABELS[1]]]
    assert latest["run_id"].iloc[0].startswith("fake-")
    assert at.session_state["review_current"] != first


def test_review_needs_a_curator_name(data_dir):
    at = goto(app(curator=""), "review")
    assert button(at, "Accept suggestion").disabled
    assert any("curator" in w.value for w in at.warning)


def test_review_conflict_offers_keep_theirs_or_record_mine(data_dir):
    at = goto(app(curator="me"), "review")
    clip = at.session_state["review_current"]
    with ReviewStore(data_dir) as store:  # someone else decides while the clip is on screen
        store.record(clip, "keep", given_label=HOSTILE_LABELS[0], curator="other", expected_last_id=None)
    button(at, "Accept suggestion").click().run()
    no_errors(at)
    assert any("other" in w.value and "keep" in w.value for w in at.warning)
    button(at, "Record mine").click().run()
    no_errors(at)
    with ReviewStore(data_dir) as store:
        history = store.history(clip)
    assert history[["decision", "curator"]].values.tolist() == [["keep", "other"], ["accept", "me"]]


def test_the_curator_name_belongs_to_the_tab_not_to_the_last_one_typed(data_dir):
    """Issue 24 bug 3: tab A "Other Curator", tab B "Second Curator", reload A: A's field said "Second Curator"
    and A's decision was stored under B's name. settings.json only proposes a name to a new tab."""
    tab_a = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    tab_a.text_input(key="curator").input("Other Curator").run()
    tab_b = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert tab_b.session_state["curator"] == "Other Curator"  # the last name used, proposed to a new tab
    tab_b.text_input(key="curator").input("Second Curator").run()
    reloaded = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    reloaded.query_params = dict(tab_a.query_params)  # a reload of tab A: its address, a new session
    reloaded.run()
    assert reloaded.text_input(key="curator").value == "Other Curator"
    goto(reloaded, "review")
    clip = reloaded.session_state["review_current"]
    button(reloaded, "Keep given label").click().run()
    no_errors(reloaded)
    with ReviewStore(data_dir) as store:
        assert store.latest_for(clip)["curator"] == "Other Curator"


def test_explore_selection_goes_to_review(data_dir):
    at = goto(app(curator="me"), "explore")
    no_errors(at)
    flags = pd.read_csv(data_dir / ".auditor" / "runs" / "default" / "flags.csv")
    chosen = flags["clip"].iloc[[2, 3]].tolist()
    at.session_state["explore_selected"] = chosen
    at.run()
    assert any("2 clips selected" in m.value for m in at.markdown)
    button(at, "Review these").click().run()
    no_errors(at)
    assert at.title[0].value == "Review"
    assert at.session_state["review_clips"] == chosen
    assert at.session_state["review_current"] in chosen


def test_a_reload_keeps_the_clips_sent_to_review(data_dir):
    """Issue 24 bug 7: a reload lost the "Review these" selection (the queue went from 5 clips back to 62)."""
    at = goto(app(curator="me"), "explore")
    flags = pd.read_csv(data_dir / ".auditor" / "runs" / "default" / "flags.csv")
    chosen = flags["clip"].iloc[[2, 3, 5]].tolist()
    at.session_state["explore_selected"] = chosen
    at.run()
    button(at, "Review these").click().run()
    assert at.session_state["_review_queue"] == [c for c in at.session_state["_review_queue"] if c in chosen]
    reloaded = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    reloaded.query_params = dict(at.query_params)  # a reload: the same address, a new session
    goto(reloaded.run(), "review")
    no_errors(reloaded)
    assert reloaded.session_state["review_clips"] == chosen
    assert any("Reviewing the 3 clips selected" in i.value for i in reloaded.info)
    button(reloaded, "Back to all flagged clips").click().run()
    assert "sel" not in reloaded.query_params and not any("Reviewing the" in i.value for i in reloaded.info)


def test_a_newer_run_does_not_hide_the_reviewed_one(data_dir):
    """Issue 24 bug 1: after a short new training that flagged nothing, the app opened on the newest run. It
    opens the run of the latest decision, else the one last picked; the picker shows each run's flagged and
    decided clips and when it finished, and a run trained far fewer epochs than the automatic schedule is
    marked and warned about."""
    runs = data_dir / ".auditor" / "runs"
    make_quick_run(runs / "quick", data_dir=data_dir, n_clips=12, n_classes=4, seed=9, started=2e9)  # the newest
    at = app(curator="me")
    assert at.session_state["run_name"] == "quick"  # no decision, nothing picked: the newest scored run
    at.selectbox(key="run_name").select("default").run()  # the curator picks the scored one ...
    assert app().session_state["run_name"] == "default"  # ... and a new session opens it again
    with ReviewStore(data_dir) as store:  # a decision on the default run outweighs a later pick of quick
        store.record("clips/clip_00001.mp4", "keep", given_label="g", curator="me", run_id="fake-1-12x4")
    at.selectbox(key="run_name").select("quick").run()
    at = app(curator="me")
    no_errors(at)
    assert at.session_state["run_name"] == "default"
    picker = at.selectbox(key="run_name")
    shown = dict(zip(picker.options, ["quick", "default"], strict=True))
    default_flagged = int((pd.read_csv(runs / "default" / "flags.csv")[["label_noise_score", "mismatch_score"]]
                           >= 0.5).any(axis=1).sum())
    [line] = [k for k, v in shown.items() if v == "default"]
    assert f"default · {default_flagged} flagged · 1 decided · finished " in line and "short" not in line
    [line] = [k for k, v in shown.items() if v == "quick"]
    assert "quick · 0 flagged · 0 decided · finished 20" in line and "short training (2 of 100 epochs)" in line
    assert not at.sidebar.warning
    picker.select("quick").run()
    assert any("trained 2 epochs" in w.value and "100" in w.value for w in at.sidebar.warning)


def replace_box(at: AppTest):
    return next(c for c in at.checkbox if c.label.startswith("If a run of this name exists"))


@pytest.fixture()
def started(monkeypatch) -> list:
    """jobs.start_job recorded instead of run: (run folder, args); the folder gets a job.json of a job that
    runs as long as this test: its pid is this process's, its "module" the interpreter's file name, which this
    process's command line starts with whether pytest runs here or in a pytest-xdist worker (``python -c ...``)."""
    calls = []

    def fake_start(run_dir, args):
        calls.append((Path(run_dir), list(args)))
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "module": Path(sys.executable).name, "args": args, "started": 1.0}
        (Path(run_dir) / "job.json").write_text(json.dumps(record))
        return record

    monkeypatch.setattr(jobs, "start_job", fake_start)
    return calls


def test_training_never_replaces_the_reviewed_run_unless_named_and_confirmed(data_dir, started):
    """Bug 1: the run name was pre-filled with the selected run and Start training wiped its results."""
    default = data_dir / ".auditor" / "runs" / "default"
    at = goto(app(), "model")
    proposed = at.text_input(key="train_run_name").value
    assert proposed != "default" and proposed.startswith("train-")
    at.button(key="FormSubmitter:train-Start training").click().run()
    no_errors(at)
    assert [run.name for run, _ in started] == [proposed] and "--overwrite" not in started[0][1]
    assert at.text_input(key="train_run_name").value != proposed  # the next run gets a new name again
    at.text_input(key="train_run_name").set_value("default")
    at.button(key="FormSubmitter:train-Start training").click().run()
    assert len(started) == 1 and any("already holds a run" in e.value for e in at.error)
    replace_box(at).check()
    at.button(key="FormSubmitter:train-Start training").click().run()
    assert started[-1][0] == default and "--overwrite" in started[-1][1]


def test_training_mirrors_the_frames_as_the_run_asks(data_dir, started):
    """The default (auto) passes no option; another choice passes --flip-frames with it."""
    at = goto(app(), "model")
    at.button(key="FormSubmitter:train-Start training").click().run()
    no_errors(at)
    assert "--flip-frames" not in started[-1][1]
    for choice in ("never", "always"):
        next(s for s in at.selectbox if s.label.startswith("Mirror the frames")).set_value(choice)
        at.button(key="FormSubmitter:train-Start training").click().run()
        no_errors(at)
        args = started[-1][1]
        assert args[args.index("--flip-frames") + 1] == choice


def test_scoring_with_the_shipped_model_makes_a_new_run(data_dir, started):
    at = goto(app(), "model")
    button(at, "Score with the shipped model").click().run()
    no_errors(at)
    (run, args), = started
    assert run.parent == data_dir / ".auditor" / "runs" and run.name.startswith("shipped-")
    assert args[args.index("--out") + 1] == str(run)


def test_starting_a_job_keeps_the_reviewed_run_selected(data_dir, started):
    """Bug 2: the sidebar switched to the new, unscored run, and Review said there was no scored run."""
    at = goto(app(curator="me"), "model")
    at.text_input(key="train_run_name").set_value("second")
    at.button(key="FormSubmitter:train-Start training").click().run()
    no_errors(at)
    assert started[0][0].name == "second" and at.session_state["run_name"] == "default"
    goto(at, "review")
    no_errors(at)
    assert not any("No scored run" in i.value for i in at.info)
    assert button(at, "Accept suggestion")


def test_a_finished_run_is_offered_in_the_sidebar(data_dir, started):
    at = goto(app(), "model")
    at.button(key="FormSubmitter:train-Start training").click().run()
    new = started[0][0]
    make_fake_run(new, data_dir=data_dir, n_clips=12, n_classes=4, seed=5)  # the job finished
    (new / "job.json").write_text(json.dumps({"pid": 2 ** 22 + 778, "args": started[0][1], "started": 1.0}))
    at.run()
    offer = [b for b in at.sidebar.button if b.label == "Use it for Explore and Review"]
    assert offer and at.session_state["run_name"] == "default"
    offer[0].click().run()
    assert at.session_state["run_name"] == new.name


def test_a_scoring_job_shows_its_own_summary_not_an_older_training(data_dir):
    """Bug 3: after a cancelled training, a re-score in the same folder showed the training's elapsed time,
    estimates and losses, and said "all epochs done"."""
    run = data_dir / ".auditor" / "runs" / "default"
    with open(run / "progress.jsonl", "a") as fh:  # the fake training ends at 1.7e9 s; then a cancel, then a score
        for event in ({"time": 1.8e9, "event": "cancelled"}, {"time": 1.9e9 + 1, "event": "start", "kind": "score"},
                      {"time": 1.9e9 + 20, "event": "done", "kind": "score", "message": "wrote flags.csv"}):
            fh.write(json.dumps(event) + "\n")
    args = ["score", "--run", "models/sample", "--data", str(data_dir), "--out", str(run)]
    (run / "job.json").write_text(json.dumps({"pid": 2 ** 22 + 779, "args": args, "started": 1.9e9}))
    at = goto(app(), "model")
    no_errors(at)
    assert badges(at) == ["finished"]
    metrics = {m.label: m.value for m in at.metric}
    assert "Estimated wrong labels" not in metrics and metrics["Elapsed"] == "20 s"
    flags = pd.read_csv(run / "flags.csv")
    flagged = int(((flags["label_noise_score"] >= 0.5) | (flags["mismatch_score"] >= 0.5)).sum())
    assert metrics["Flagged clips"] == f"{flagged} of {len(flags)}"
    assert not at.get("plotly_chart") and "all epochs done" not in str(at.get("progress"))


def test_model_page_on_a_rejected_folder_starts_nothing(tmp_path, monkeypatch):
    """Bug 7: jobs could be started on a folder the Data page rejected."""
    data = tmp_path / "nolabels"
    (data / "notes").mkdir(parents=True)
    (data / "notes" / "readme.txt").write_text("no clips here")
    monkeypatch.setenv("AUDITOR_DATA", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    at = goto(app(), "model")
    no_errors(at)
    assert at.button(key="FormSubmitter:train-Start training").disabled
    assert button(at, "Score with the shipped model").disabled
    assert any("cannot be used as a data set" in e.value for e in at.error)


def test_a_one_class_folder_is_refused_by_data_and_model(tmp_path, monkeypatch):
    """Issue 24 bug 2: a folder with one sub-folder `clips/` was "No problems" and could be trained."""
    data = tmp_path / "oneclass"
    for name in ("a.mp4", "b.mp4"):
        (data / "clips").mkdir(parents=True, exist_ok=True)
        (data / "clips" / name).write_bytes(b"x")
    monkeypatch.setenv("AUDITOR_DATA", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    at = goto(app(), "data")
    no_errors(at)
    assert not at.success and any("cannot be used as a data set" in e.value for e in at.error)
    assert "only one holds clips" in " ".join(e.value for e in at.error)
    goto(at, "model")
    assert at.button(key="FormSubmitter:train-Start training").disabled
    assert button(at, "Score with the shipped model").disabled


def test_a_failed_scoring_job_does_not_talk_about_resuming(data_dir):
    run = data_dir / ".auditor" / "runs" / "default"
    args = ["score", "--run", "models/sample", "--data", str(data_dir), "--out", str(run)]
    (run / "job.json").write_text(json.dumps({"pid": 2 ** 22 + 780, "args": args, "started": 1.9e9}))
    with open(run / "progress.jsonl", "a") as fh:
        fh.write(json.dumps({"time": 1.9e9 + 2, "event": "error", "message": "UserError: no clip"}) + "\n")
    at = goto(app(), "model")
    assert badges(at) == ["failed"]
    text = " ".join(e.value for e in at.error)
    assert "Scoring failed" in text and "Resume" not in text and not [b for b in at.button if b.label == "Resume"]


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_looking_at_a_data_set_writes_nothing_into_it(tmp_path, monkeypatch):
    """Bug 9: choosing a data folder wrote .auditor/cache into it before anything was decoded."""
    data = tmp_path / "fresh"
    make_fake_run(tmp_path / "elsewhere", data_dir=data, n_clips=8, n_classes=2, seed=3, with_files=True)
    before = _files(data)
    monkeypatch.setenv("AUDITOR_DATA", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    at = app(curator="me")
    for page in PAGES:
        goto(at, page)
        no_errors(at)
    assert _files(data) == before


def test_a_work_directory_keeps_the_data_folder_untouched(tmp_path, monkeypatch):
    """Bug 9: with a work directory, decoding writes the cache there, not into the data set."""
    data = tmp_path / "readonly-data"
    make_fake_run(tmp_path / "elsewhere", data_dir=data, n_clips=8, n_classes=2, seed=3, with_files=True)
    before = _files(data)
    work = tmp_path / "work"
    monkeypatch.setenv("AUDITOR_DATA", str(data))
    monkeypatch.setenv("AUDITOR_WORKDIR", str(work))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    at = goto(app(), "data")
    button(at, "Decode all clips").click().run()
    no_errors(at)
    assert _files(data) == before
    assert list(work.rglob("ingest.json"))


def test_the_bundled_sample_is_never_written(tmp_path, monkeypatch, started):
    """Bug 9: the sample inside the installation was written to; its files go to the user's data folder."""
    sample = Path(__file__).resolve().parents[1] / "sample_data"
    before = _files(sample)
    monkeypatch.setenv("AUDITOR_DATA", str(sample))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    at = app()
    for page in ("data", "model", "review", "export"):
        goto(at, page)
        no_errors(at)
    assert _files(sample) == before
    (run, args), = started  # the first minute: the sample is scored by the shipped model, once, elsewhere
    assert args[0] == "score" and run.is_relative_to(tmp_path / "share")
    goto(at, "data")
    assert len(started) == 1  # running: not started again
    assert any("Scoring the bundled sample" in i.value for i in at.info)


def test_the_bundled_sample_opens_already_scored(tmp_path, monkeypatch, started):
    """The first minute: a run made earlier is found at the next start and the Data page links to Review."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sample = Path(__file__).resolve().parents[1] / "sample_data"
    monkeypatch.setenv("AUDITOR_DATA", str(sample))
    from auditor import first_run

    run = first_run.runs_root(sample) / "shipped-model-20250101-000000"
    make_fake_run(run, data_dir=sample, n_clips=12, n_classes=4, seed=1)
    (run / first_run.STAMP_FILE).write_text(json.dumps(first_run._stamp()))
    (run / "job.json").write_text(json.dumps({"pid": 2 ** 22 + 781, "args": ["score"], "started": 1.0}))
    at = goto(app(), "data")
    no_errors(at)
    assert not started and at.session_state["run_name"] == run.name
    assert any("clips flagged" in m.value for m in at.success)


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_a_flagged_sound_is_explained_without_contradicting_itself(data_dir):
    """Bug 5: "Sound may not belong to the picture (score 0.92): audio says spinning, picture says spinning"."""
    path = data_dir / ".auditor" / "runs" / "default" / "flags.csv"
    flags = pd.read_csv(path, dtype=str, keep_default_na=False)
    flags.loc[0, ["mismatch_score", "audio_pred", "visual_pred"]] = ["0.92", "class_002", "class_002"]
    flags.to_csv(path, index=False)
    at = goto(app(curator="me"), "review")
    no_errors(at)
    text = " ".join(m.value for m in at.markdown)
    assert "far from the sounds of clips whose picture looks like this one" in text
    assert "says `class_002`, picture says `class_002`" not in text


def test_on_a_sound_only_flag_the_sound_verdict_is_the_primary_action(data_dir):
    """Issue 24 bug 8: "Accept suggestion" was the highlighted action on a sound-only flag whose suggestion is
    the given label (accepting it changes nothing)."""
    path = data_dir / ".auditor" / "runs" / "default" / "flags.csv"
    flags = pd.read_csv(path, dtype=str, keep_default_na=False)
    flags.loc[3, ["label_noise_score", "mismatch_score", "suggested_label"]] = ["0.1", "0.95", flags.loc[3, "given_label"]]
    flags.to_csv(path, index=False)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["curator"] = "me"
    at.query_params["clip"] = flags.loc[3, "clip"]
    goto(at.run(), "review")
    assert at.session_state["review_current"] == flags.loc[3, "clip"]
    assert button(at, "Mismatched / exclude").proto.type == "primary"
    assert button(at, "Accept suggestion").proto.type != "primary"
    open_clip = flags.loc[0, "clip"]  # a wrong-label flag: accepting the suggestion stays the primary action
    at.query_params["clip"] = open_clip
    at.run()
    assert at.session_state["review_current"] == open_clip and button(at, "Accept suggestion").proto.type == "primary"


def test_a_clip_another_curator_decided_asks_before_replacing_it(data_dir):
    """Issue 24 bug 4: opening a clip another curator had decided and pressing a key replaced their decision
    without a word; the second curator is shown the first's decision and chooses."""
    at = goto(app(curator="me"), "review")
    at.toggle(key="review_undecided").set_value(False).run()  # decided clips stay in the queue
    second = at.session_state["_review_queue"][1]
    with ReviewStore(data_dir) as store:
        store.record(second, "keep", given_label="g", curator="other", expected_last_id=None)
    button(at, "Next").click().run()
    assert at.session_state["review_current"] == second
    button(at, "Accept suggestion").click().run()
    no_errors(at)
    assert any("Before you" in w.value and "other" in w.value and "keep" in w.value for w in at.warning)
    with ReviewStore(data_dir) as store:
        assert store.history(second)["curator"].tolist() == ["other"]  # nothing replaced yet
    button(at, "Record mine").click().run()
    no_errors(at)
    with ReviewStore(data_dir) as store:
        assert store.history(second)[["decision", "curator"]].values.tolist() == [["keep", "other"],
                                                                                  ["accept", "me"]]


def test_a_search_never_leaves_a_clip_outside_it_on_screen(data_dir):
    """Issue 24 bug 6: after a reload on a linked clip, a search kept that clip on screen ("Not in this queue")
    and a key decided a clip the curator had not searched for."""
    flags = pd.read_csv(data_dir / ".auditor" / "runs" / "default" / "flags.csv")
    calm = flags[(flags["label_noise_score"] < 0.5) & (flags["mismatch_score"] < 0.5)]["clip"]
    linked = calm.iloc[0]  # outside the default queue: shown because the link names it
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["curator"] = "me"
    at.query_params["clip"] = linked
    goto(at.run(), "review")
    assert at.session_state["review_current"] == linked
    wanted = at.session_state["_review_queue"][1]
    at.text_input(key="review_search").input(Path(wanted).stem).run()
    no_errors(at)
    queue = at.session_state["_review_queue"]
    assert linked not in queue and at.session_state["review_current"] in queue
    assert not any("Not in this queue" in c.value for c in at.caption)
    button(at, "Keep given label").click().run()
    with ReviewStore(data_dir) as store:
        assert store.latest_for(linked) is None and store.latest_for(wanted)["decision"] == "keep"
    at.text_input(key="review_search").input("no clip is called this").run()
    assert any("Nothing left to review" in s.value for s in at.success)
    assert not [b for b in at.button if b.label == "Keep given label"]  # no decision key on screen
    at.text_input(key="review_search").input("clip_").run()
    neighbour = button(at, "Open")
    neighbour.click().run()  # opening a neighbour leaves the search: it is shown, and the search is empty
    assert at.session_state["review_current"] == neighbour.help and at.text_input(key="review_search").value == ""


def test_a_skip_is_not_called_a_decision(data_dir):
    """Issue 24 bug 8: the clip's caption said "latest decision: skip" although a skip is not a decision."""
    flags = pd.read_csv(data_dir / ".auditor" / "runs" / "default" / "flags.csv")
    clip = flags["clip"].iloc[0]
    with ReviewStore(data_dir) as store:
        store.record(clip, "skip", given_label="g", curator="other")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["clip"] = clip
    goto(at.run(), "review")
    assert at.session_state["review_current"] == clip
    text = captions(at)
    assert "skipped by `other`" in text and "decision: skip" not in text


def test_the_loss_chart_names_its_terms_in_words(data_dir):
    """Issue 24 bug 8: the loss chart's legend said cls, inst, cat, hyb."""
    at = goto(app(), "model")
    no_errors(at)
    names = {trace.get("name") for chart in at.get("plotly_chart")
             for trace in json.loads(chart.proto.spec)["data"] if trace.get("mode") == "lines"}
    assert {"classification", "hybrid classification", "sound–picture contrastive", "class contrastive",
            "total"} <= names
    assert not names & {"cls", "inst", "cat", "hyb"}


def test_undo_works_after_a_reload_from_the_decision_log(data_dir):
    """Issue 24 bug 7: after a reload `u` did nothing and the Undo button was greyed; the decision log knows the
    curator's last decisions."""
    at = goto(app(curator="me"), "review")
    first = at.session_state["review_current"]
    button(at, "Keep given label").click().run()
    reloaded = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    reloaded.query_params = dict(at.query_params)  # a reload: the same address, a new session
    goto(reloaded.run(), "review")
    no_errors(reloaded)
    other = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    other.session_state["curator"] = "someone else"
    goto(other.run(), "review")
    assert button(other, "Undo").disabled  # another curator's decisions are not theirs to undo
    undo = button(reloaded, "Undo")
    assert not undo.disabled
    undo.click().run()
    no_errors(reloaded)
    with ReviewStore(data_dir) as store:
        assert store.latest_for(first)["decision"] == "undo"
    assert reloaded.session_state["review_current"] == first
    assert button(reloaded, "Undo").disabled  # nothing of mine left to undo


def test_the_same_decision_from_two_curators_is_no_conflict(data_dir):
    """Bug 6: both tabs pressed Accept and the second was told of a conflict."""
    at = goto(app(curator="me"), "review")
    clip = at.session_state["review_current"]
    with ReviewStore(data_dir) as store:  # the other tab accepts the same suggestion first
        store.record(clip, "accept", given_label=HOSTILE_LABELS[0], suggested_label=HOSTILE_LABELS[1],
                     curator="other", expected_last_id=None)
    button(at, "Accept suggestion").click().run()
    no_errors(at)
    assert not at.warning and at.session_state["review_current"] != clip
    with ReviewStore(data_dir) as store:
        assert store.history(clip)[["decision", "curator"]].values.tolist() == [["accept", "other"],
                                                                                 ["accept", "me"]]


def test_review_and_export_count_decided_clips_the_same_way(data_dir):
    """Bug 8: Export's "Decided" counted a skip, Review did not; "Remaining" counted decided clips."""
    at = goto(app(curator="me"), "review")
    button(at, "Accept suggestion").click().run()
    button(at, "Skip").click().run()
    no_errors(at)
    flags = pd.read_csv(data_dir / ".auditor" / "runs" / "default" / "flags.csv")
    flagged = int(((flags["label_noise_score"] >= 0.5) | (flags["mismatch_score"] >= 0.5)).sum())
    assert f"flagged clips decided: **1 of {flagged}**" in captions(at)
    at.toggle(key="review_undecided").set_value(False).run()
    assert f"**{flagged - 1:,}** left to decide in this queue of {flagged}" in captions(at)
    goto(at, "export")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Decided"] == "1" and metrics["Skipped"] == "1"


def test_export_errors_are_in_words_and_files_are_readable_by_the_team(data_dir, tmp_path):
    """Bug 10: raw "[Errno 17] File exists" and "pass overwrite=True / --overwrite" in the UI; files 0600."""
    at = goto(app(curator="me"), "export")
    at.text_input(key="export_dir").set_value(str(data_dir)).run()
    button(at, "Write files").click().run()
    assert at.error and not any("overwrite" in e.value for e in at.error)
    (tmp_path / "afile").write_text("x")
    at.text_input(key="export_dir").set_value(str(tmp_path / "afile" / "out")).run()
    button(at, "Write files").click().run()
    assert at.error and not any("Errno" in e.value for e in at.error)
    assert any("not a directory" in e.value for e in at.error)
    old = os.umask(0o022)
    try:
        at.text_input(key="export_dir").set_value(str(tmp_path / "out")).run()
        button(at, "Write files").click().run()
    finally:
        os.umask(old)
    assert {oct((tmp_path / "out" / n).stat().st_mode & 0o777) for n in ("labels.csv", "summary.csv")} == {"0o644"}


def test_the_data_page_caption_describes_the_check_just_made(data_dir):
    """Bug 10: "Last checked" lagged one rerun behind the button. Issue 24 bug 8: it said "240 decoded, the rest
    from the cache" when all came from the cache."""
    at = goto(app(), "data")
    button(at, "Decode all clips").click().run()
    assert "Last checked: all 12 clips decoded." in captions(at)
    button(at, "Check again").click().run()
    assert "Last checked: all 12 clips from the cache, none decoded." in captions(at)


def test_job_badges_cover_every_job_state():
    assert set(STATE_BADGES) == set(jobs.STATES)


def test_model_page_refuses_a_second_job(data_dir):
    run = data_dir / ".auditor" / "runs" / "default"
    at = goto(app(), "model")
    no_errors(at)
    assert badges(at) == ["finished"]
    with RunLock(run):  # a job (this test) holds the run
        at.run()
        assert badges(at) == ["running"]
        at.text_input(key="train_run_name").set_value("default")
        replace_box(at).check()
        at.button(key="FormSubmitter:train-Start training").click().run()
    no_errors(at)
    assert any("already running" in e.value for e in at.error)


def test_export_writes_the_reviewed_labels(data_dir, tmp_path):
    at = goto(app(curator="tester"), "review")
    first = at.session_state["review_current"]
    button(at, "Accept suggestion").click().run()
    goto(at, "export")
    no_errors(at)
    out = tmp_path / "out"
    at.text_input(key="export_dir").set_value(str(out)).run()
    button(at, "Write files").click().run()
    no_errors(at)
    labels = pd.read_csv(out / "labels.csv", dtype=str, keep_default_na=False)
    source = pd.read_csv(data_dir / "labels.csv", dtype=str, keep_default_na=False)
    assert len(labels) == len(source)
    assert labels.set_index("clip").loc[first, "label"] == HOSTILE_LABELS[1]
    assert {"decisions.csv", "decisions.jsonl", "summary.csv"} <= {p.name for p in out.iterdir()}


def test_model_page_resumes_a_failed_training_run(data_dir, monkeypatch):
    run = data_dir / ".auditor" / "runs" / "default"
    args = ["train", "--data", str(data_dir), "--run", str(run), "--preset", "cpu"]
    (run / "job.json").write_text(json.dumps({"pid": 2 ** 22 + 12345, "args": args, "started": 1.0}))
    with open(run / "progress.jsonl", "a") as fh:
        fh.write(json.dumps({"time": 2.0, "event": "error", "message": "RuntimeError: out of memory"}) + "\n")
    started = []
    monkeypatch.setattr(jobs, "start_job", lambda run_dir, a: started.append((run_dir, a)) or {"pid": 1})
    at = goto(app(), "model")
    no_errors(at)
    assert badges(at) == ["failed"]
    assert any("out of memory" in e.value for e in at.error)
    button(at, "Resume").click().run()
    no_errors(at)
    assert started == [(run, args + ["--resume"])]


def test_a_long_clip_shows_its_windows_and_plays_the_one_chosen(data_dir):
    at = goto(app(curator="me"), "review")
    clip = at.session_state["review_current"]
    assert "Where the sound fits the picture" not in " ".join(m.value for m in at.markdown)  # no windows.csv
    run = data_dir / ".auditor" / "runs" / "default"
    (run / "windows.csv").write_text(
        "clip,window,start_s,end_s,audio,infonce_loss,cosine,level_dbfs,audible,best_aligned\n"
        f"{clip},0,0.0,8.3,present,1.5,0.8,-20,1,1\n{clip},1,8.3,16.6,present,9.0,0.1,-22,1,0\n"
        f"{clip},2,16.6,24.9,present,4.0,0.2,-50,0,0\n")
    at.run()
    no_errors(at)
    assert "Where the sound fits the picture" in " ".join(m.value for m in at.markdown)
    assert "compared in 3 windows" in captions(at) and "16.6–24.9 s" in captions(at).split("Quiet")[1]
    video = at.get("video")[0].proto
    assert (video.start_time, video.end_time) == (0, 0)  # the whole clip
    picker = [p for p in at.button_group if p.key == "play_window::" + clip]
    assert len(picker) == 1 and picker[0].options == ["0.0–8.3 s", "8.3–16.6 s", "16.6–24.9 s"]
    picker[0].set_value(1).run()
    no_errors(at)
    video = at.get("video")[0].proto
    assert (video.start_time, video.end_time) == (8, 17)  # whole seconds covering 8.3-16.6 s


def test_the_triage_grid_of_an_empty_queue(data_dir):
    """The grid of a queue with no clip (all decided, or a search that finds none) said "Nothing left", not
    KeyError 'flag_kind' (its empty selection lost the queue's columns)."""
    at = app("grid tester")
    at.session_state["review_view"] = "grid"
    at.session_state["review_search"] = "no clip is called this"
    at = goto(at, "review")
    no_errors(at)
    assert any("Nothing left to review" in s.value for s in at.success)


def test_model_page_checks_a_features_file_before_training_on_it(data_dir, started):
    clips = pd.read_csv(data_dir / "labels.csv", dtype=str, keep_default_na=False)["clip"].tolist()
    features = data_dir.parent / "features.parquet"
    write_features(features, clips[:-1], np.ones((len(clips) - 1, 6)), np.ones((len(clips) - 1, 4)))
    at = goto(app(), "model")
    at.text_input(key="train_features").set_value(str(features)).run()
    no_errors(at)
    assert any(f"no vectors for 1 of the {len(clips)} clips" in e.value for e in at.error)
    assert at.button(key="FormSubmitter:train-Start training").disabled
    write_features(features, clips, np.ones((len(clips), 6)), np.ones((len(clips), 4)))
    at.run()
    assert any("visual vectors of 6, audio vectors of 4" in s.value for s in at.success)
    at.button(key="FormSubmitter:train-Start training").click().run()
    no_errors(at)
    (_, args), = started
    assert args[args.index("--features") + 1] == str(features) and "--preset" not in args


def test_the_review_filters_survive_a_visit_to_another_page(data_dir):
    """Issue 24, found later: the Review page's filters (and its order, search and view) were back to their
    defaults after the curator went to Explore and came back (Streamlit forgets the state of widgets a page
    does not draw)."""
    at = goto(app(curator="me"), "review")
    at.slider(key="review_threshold").set_value(0.2).run()
    at.toggle(key="review_undecided").set_value(False).run()
    at.selectbox(key="review_sort").select("clip").run()
    at.text_input(key="review_search").input("clip_0000").run()
    at.button_group(key="review_view").set_value("grid").run()
    goto(at, "explore")
    goto(at, "review")
    no_errors(at)
    assert at.slider(key="review_threshold").value == 0.2 and at.toggle(key="review_undecided").value is False
    assert at.selectbox(key="review_sort").value == "clip" and at.text_input(key="review_search").value == "clip_0000"
    assert at.button_group(key="review_view").value == "grid"
    assert "score ≥ 0.20" in captions(at)
    assert {k: at.query_params.get(k) for k in ("min", "undecided", "sort", "q", "view")} == {
        "min": "0.2", "undecided": "False", "sort": "clip", "q": "clip_0000", "view": "grid"}


def test_the_sidebar_says_what_the_chosen_run_flagged_under_its_box(data_dir):
    """Seen on the screenshots at 1400×900: the sidebar's run box shows only the start of the run's name (its
    flagged and decided counts are cut off); they are written under it."""
    at = app(curator="me")
    flagged = int((pd.read_csv(data_dir / ".auditor" / "runs" / "default" / "flags.csv")[
        ["label_noise_score", "mismatch_score"]] >= 0.5).any(axis=1).sum())
    assert any(c.value.startswith(f"{flagged} flagged · 0 decided · finished ") for c in at.sidebar.caption)


def test_grid_tiles_preview_their_clips_up_to_a_size(data_dir, monkeypatch):
    """The grid's hover previews are the clips themselves, which Streamlit reads whole at every rerun: a clip
    larger than loaders.PREVIEW_MAX_BYTES gets no preview (its thumbnail stays)."""
    at = app("grid tester")
    at.session_state["review_view"] = "grid"
    at = goto(at, "review")
    no_errors(at)
    shown = len(at.get("video"))
    assert shown == len(at.checkbox) > 0 and len(at.get("image")) >= shown
    monkeypatch.setattr(loaders, "PREVIEW_MAX_BYTES", 100)
    at.run()
    assert len(at.get("video")) == 0 and len(at.checkbox) == shown and len(at.get("image")) >= shown
