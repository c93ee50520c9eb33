"""The Streamlit app under streamlit.testing (AppTest): every page renders against a fake run with real tiny
clips; Review records decisions (and handles a conflicting one); Export writes the reviewed labels.csv."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from auditor import jobs
from auditor.reviews import ReviewStore
from auditor.run_folder import RunLock
from auditor.ui.jobs import STATE_BADGES
from tests.fakerun import HOSTILE_LABELS, make_fake_run

APP = Path(__file__).resolve().parents[1] / "auditor" / "app.py"
PAGES = ("data", "model", "explore", "review", "export")
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
    assert metrics["Clips"] == "12" and metrics["Classes"] == "4" and metrics["Undecodable clips"] == "0"


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
