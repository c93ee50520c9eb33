"""Tests for auditor.reviews: the append-only decision store, conflicts between curators, crash safety, scale."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from auditor.errors import UserError
from auditor.reviews import (
    COLUMNS,
    DECISIONS,
    ReviewConflict,
    ReviewStore,
    ReviewStoreVersionError,
    store_path,
)


@pytest.fixture
def store(tmp_path):
    with ReviewStore(tmp_path) as s:
        yield s


def test_history_is_append_only_and_latest_is_the_last_row(store, tmp_path):
    first = store.record("clips/a.mp4", "accept", given_label="dog", suggested_label="cat", curator="ann",
                         run_id="r1", label_noise_score=0.9, mismatch_score=0.1)
    second = store.record("clips/a.mp4", "relabel", given_label="dog", suggested_label="cat",
                          final_label="bird", curator="bob", note="it flies")
    store.record("clips/b.mp4", "keep", given_label="cat", curator="ann")
    assert second > first
    history = store.history("clips/a.mp4")
    assert list(history.columns) == list(COLUMNS)
    assert history["decision"].tolist() == ["accept", "relabel"]
    assert history["final_label"].tolist() == ["cat", "bird"]  # accept defaults to the suggestion
    assert history.loc[0, "label_noise_score"] == pytest.approx(0.9)
    assert history.loc[0, "timestamp"].endswith("+00:00")
    latest = store.latest()
    assert latest["clip"].tolist() == ["clips/a.mp4", "clips/b.mp4"]
    assert latest.set_index("clip").loc["clips/a.mp4", "final_label"] == "bird"
    assert latest.set_index("clip").loc["clips/b.mp4", "final_label"] == "cat"  # keep -> the given label
    assert store.latest_for("clips/a.mp4")["id"] == second
    assert store.latest_for("nope.mp4") is None
    assert store.counts() == {"accept": 0, "keep": 1, "relabel": 1, "exclude": 0, "skip": 0, "undo": 0}
    assert len(store.history()) == 3
    # A later skip makes it the current decision; nothing earlier is lost.
    store.record("clips/b.mp4", "skip", given_label="cat", curator="ann")
    assert store.latest_for("clips/b.mp4")["final_label"] is None
    assert len(store.history()) == 4
    assert store_path(tmp_path).is_file()
    assert store.latest(curators=["ann"]).set_index("clip")["decision"].to_dict() == {
        "clips/a.mp4": "accept", "clips/b.mp4": "skip"}


@pytest.mark.parametrize("kwargs, message", [
    (dict(decision="approve"), "'approve' is not one of accept, keep, relabel, exclude, skip"),
    (dict(curator=" "), "curator ' ' is empty"),
    (dict(decision="relabel"), "needs a final_label"),
    (dict(decision="accept", suggested_label=None), "needs a suggested_label"),
    (dict(decision="exclude", final_label="cat"), "final_label 'cat' given for decision 'exclude'"),
    (dict(clip=""), "clip '' is empty"),
])
def test_bad_decisions_are_refused_and_not_written(store, kwargs, message):
    args = dict(clip="a.mp4", decision="accept", given_label="dog", suggested_label="cat", curator="ann") | kwargs
    with pytest.raises(ValueError, match=message):
        store.record(args.pop("clip"), args.pop("decision"), **args)
    assert store.history().empty


def test_two_curators_on_one_clip_conflict(tmp_path):
    # Two browser sessions, each with its own store, are shown the undecided clip.
    with ReviewStore(tmp_path) as ann, ReviewStore(tmp_path) as bob:
        seen_by_ann = ann.latest_for("a.mp4")
        seen_by_bob = bob.latest_for("a.mp4")
        assert seen_by_ann is seen_by_bob is None
        bob_id = bob.record("a.mp4", "keep", given_label="dog", curator="bob", expected_last_id=None)
        with pytest.raises(ReviewConflict) as caught:
            ann.record("a.mp4", "exclude", given_label="dog", curator="ann", expected_last_id=None)
        assert caught.value.theirs["curator"] == "bob"
        assert caught.value.theirs["id"] == bob_id
        assert "bob decided 'keep'" in str(caught.value)
        assert len(ann.history()) == 1  # the refused decision was not written
        # Ann reloads the clip, sees Bob's decision and overrides it knowingly.
        ann_id = ann.record("a.mp4", "exclude", given_label="dog", curator="ann",
                            expected_last_id=ann.latest_for("a.mp4")["id"])
        assert bob.latest_for("a.mp4")["id"] == ann_id
        # Bob's view is stale now.
        with pytest.raises(ReviewConflict):
            bob.record("a.mp4", "keep", given_label="dog", curator="bob", expected_last_id=bob_id)
        # Without expected_last_id there is no check (last writer wins).
        bob.record("a.mp4", "keep", given_label="dog", curator="bob")
        assert ann.latest_for("a.mp4")["curator"] == "bob"


def test_one_store_shared_by_threads(store):
    def work(name: str) -> None:
        for i in range(20):
            store.record(f"{name}-{i}.mp4", "keep", given_label="dog", curator=name)

    threads = [threading.Thread(target=work, args=(f"t{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = store.history()
    assert len(history) == 80
    assert history["id"].is_unique


_RECORD_THEN_DIE = """
import os, signal, sys
from auditor.reviews import ReviewStore
store = ReviewStore(sys.argv[1])
for i in range(int(sys.argv[2])):
    row = store.record(f"c{i}.mp4", "relabel", given_label="dog", final_label="cat", curator="ann")
print(row, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_decision_survives_kill_9_right_after_record(tmp_path):
    done = subprocess.run([sys.executable, "-c", _RECORD_THEN_DIE, str(tmp_path), "25"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    last_id = int(done.stdout.strip())
    assert store_path(tmp_path).with_name("reviews.sqlite-wal").exists()  # the rows live in the WAL
    with sqlite3.connect(store_path(tmp_path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with ReviewStore(tmp_path) as store:
        assert store.latest_for("c24.mp4")["id"] == last_id
        assert len(store.history()) == 25


def test_a_newer_schema_is_refused_naming_both_versions(tmp_path):
    ReviewStore(tmp_path).close()
    with sqlite3.connect(store_path(tmp_path)) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (7)")
    with pytest.raises(ReviewStoreVersionError, match="version 7 is newer than version 2"):
        ReviewStore(tmp_path)


def test_not_a_store_or_no_folder_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match="bad.sqlite: not a usable review store"):
        ReviewStore(tmp_path, db_path=bad)
    with pytest.raises(UserError, match="not a folder"):
        ReviewStore(tmp_path / "missing")


def test_20k_decisions_bulk_latest(store):
    n = 20_000
    t0 = time.perf_counter()
    ids = store.record_many({"clip": f"clips/{i:05d}.mp4", "decision": DECISIONS[i % 5], "given_label": "dog",
                             "suggested_label": "cat", "final_label": "bird" if i % 5 == 2 else None,
                             "curator": "ann", "label_noise_score": i / n} for i in range(n))
    # A second look at every tenth clip: the latest decision must win.
    store.record_many({"clip": f"clips/{i:05d}.mp4", "decision": "keep", "given_label": "dog", "curator": "bob"}
                      for i in range(0, n, 10))
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    latest = store.latest()
    t_latest = time.perf_counter() - t0
    print(f"\n20k decisions: record_many {t_write:.2f} s, latest() {t_latest:.3f} s")
    assert ids == list(range(1, n + 1))
    assert len(latest) == n
    by_clip = latest.set_index("clip")
    assert by_clip.loc["clips/00010.mp4", "curator"] == "bob"
    assert by_clip.loc["clips/00011.mp4", "decision"] == "keep"
    assert by_clip.loc["clips/00012.mp4", "final_label"] == "bird"
    assert by_clip.loc["clips/00013.mp4", "decision"] == "exclude"
    assert (latest["curator"] == "bob").sum() == n // 10
    # keep: the clips with i % 5 == 1, plus bob's (i % 10 == 0, all accepted before, so no overlap).
    assert store.counts() == {"accept": n // 5 - n // 10, "keep": n // 5 + n // 10, "relabel": n // 5,
                              "exclude": n // 5, "skip": n // 5, "undo": 0}


def test_record_many_is_all_or_nothing(store):
    good = {"clip": "a.mp4", "decision": "keep", "given_label": "dog", "curator": "ann"}
    with pytest.raises(ValueError, match="decision #1: decision 'nope'"):
        store.record_many([good, good | {"decision": "nope"}])
    assert store.history().empty


def test_the_same_decision_twice_is_no_conflict(tmp_path):
    """Two curators both accept the shown clip: the second accept is recorded, not reported as a conflict."""
    with ReviewStore(tmp_path) as ann, ReviewStore(tmp_path) as bob:
        ann.record("a.mp4", "accept", given_label="dog", suggested_label="cat", curator="ann", expected_last_id=None)
        bob.record("a.mp4", "accept", given_label="dog", suggested_label="cat", curator="bob", expected_last_id=None)
        with pytest.raises(ReviewConflict):  # a different decision still conflicts
            bob.record("a.mp4", "keep", given_label="dog", curator="bob", expected_last_id=None)
        assert ann.history("a.mp4")["curator"].tolist() == ["ann", "bob"]


def test_undo_restores_the_decision_before_or_none(store):
    first = store.record("a.mp4", "accept", given_label="dog", suggested_label="cat", curator="ann")
    second = store.record("a.mp4", "relabel", given_label="dog", final_label="bird", curator="ann",
                          mismatch="dubbed_or_music", note="music over it")
    restored = store.undo(second, curator="ann")
    latest = store.latest_for("a.mp4")
    assert latest["id"] == restored and latest["decision"] == "accept" and latest["final_label"] == "cat"
    assert latest["note"] == f"undo of #{second}: restores #{first} by ann" and latest["mismatch"] is None
    with pytest.raises(ReviewConflict):  # only the latest decision can be undone
        store.undo(first, curator="ann")
    store.undo(restored, curator="ann")  # undoing the undo brings the relabel back (a redo)
    assert store.latest_for("a.mp4")["final_label"] == "bird"
    assert store.latest_for("a.mp4")["mismatch"] == "dubbed_or_music"
    only = store.record("b.mp4", "keep", given_label="cat", curator="ann")
    store.undo(only, curator="ann")
    assert store.latest_for("b.mp4")["decision"] == "undo" and store.latest_for("b.mp4")["final_label"] is None
    assert len(store.history()) == 6


def test_a_version_1_store_gains_the_mismatch_column(tmp_path):
    path = store_path(tmp_path)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);
            CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, clip TEXT NOT NULL, decision TEXT NOT NULL,
              given_label TEXT, suggested_label TEXT, final_label TEXT, curator TEXT NOT NULL, run_id TEXT,
              label_noise_score REAL, mismatch_score REAL, timestamp TEXT NOT NULL, note TEXT);
            INSERT INTO decisions (clip, decision, given_label, final_label, curator, timestamp)
              VALUES ('a.mp4', 'keep', 'dog', 'dog', 'ann', '2024-01-01T00:00:00+00:00');""")
    with ReviewStore(tmp_path) as store:
        assert store.latest_for("a.mp4")["mismatch"] is None
        store.record("a.mp4", "exclude", given_label="dog", curator="bob", mismatch="swapped")
        assert store.latest()["mismatch"].tolist() == ["swapped"]


def test_undoable_is_the_curators_decisions_still_latest_newest_first(store):
    """Issue 24 bug 7: undo after a reload reads the curator's last decisions from the log."""
    a = store.record("a.mp4", "keep", given_label="dog", curator="ann")
    b = store.record("b.mp4", "skip", given_label="dog", curator="ann")
    store.record("c.mp4", "keep", given_label="dog", curator="ann")
    store.record("c.mp4", "exclude", given_label="dog", curator="bob")  # bob decided since: not ann's to undo
    d = store.record("d.mp4", "keep", given_label="dog", curator="ann")
    store.undo(d, curator="ann")  # undone: neither the decision nor the undo row is undoable
    assert [r["id"] for r in store.undoable("ann", 10)] == [b, a]
    assert [r["id"] for r in store.undoable(" ann ", 1)] == [b]
    e = store.record("e.mp4", "keep", given_label="dog", curator="ann")
    f = store.record("e.mp4", "exclude", given_label="dog", curator="ann")
    store.undo(f, curator="ann")  # restores ann's keep as a new row: that row is the undo's, not a decision
    assert e not in [r["id"] for r in store.undoable("ann", 10)] and store.undoable("bob", 10)[0]["clip"] == "c.mp4"
