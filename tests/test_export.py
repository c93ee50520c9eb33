"""Tests for auditor.export and the export command: reviewed labels out, in the input's format."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import pandas as pd
import pytest

from auditor import export
from auditor.cli_review import add_export_arguments, run_export
from auditor.data.manifest import load_manifest
from auditor.errors import UserError
from auditor.export import EXPORT_FILES, export_bytes, export_reviewed, final_labels
from auditor.reviews import ReviewStore, store_path


def make_dataset(root, rows: list[tuple], extra: dict[str, list] | None = None):
    """A labels.csv data set with one tiny stand-in file per clip (the manifest only checks that they exist)."""
    for clip, _ in rows:
        (root / clip).parent.mkdir(parents=True, exist_ok=True)
        (root / clip).write_bytes(b"x")
    table = pd.DataFrame(rows, columns=["clip", "label"])
    for name, values in (extra or {}).items():
        table[name] = values
    table.to_csv(root / "labels.csv", index=False)
    return root


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    make_dataset(root, [("clips/a.mp4", "dog"), ("clips/b.mp4", "dog"), ("clips/c.mp4", "cat"),
                        ("clips/d.mp4", "cat"), ("clips/e.mp4", "bird"), ("clips/f.mp4", "bird")],
                 extra={"split": ["train"] * 3 + ["val"] * 3, "source": list("uvwxyz")})
    with ReviewStore(root) as store:
        store.record("clips/a.mp4", "accept", given_label="dog", suggested_label="cat", curator="ann",
                     run_id="r1", label_noise_score=0.9, mismatch_score=0.2)
        store.record("clips/b.mp4", "exclude", given_label="dog", curator="ann", run_id="r1")
        store.record("clips/c.mp4", "relabel", given_label="cat", final_label="fox", curator="bob")
        store.record("clips/d.mp4", "keep", given_label="cat", suggested_label="dog", curator="bob")
        store.record("clips/e.mp4", "accept", given_label="bird", suggested_label="dog", curator="bob")
        store.record("clips/e.mp4", "skip", given_label="bird", curator="ann", note="not sure")
    return root


def read_labels(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_final_labels_applies_the_latest_decision():
    manifest = pd.DataFrame({"clip": ["a", "b", "c", "d"], "label": ["x", "x", "y", "y"]})
    latest = pd.DataFrame({"clip": ["a", "b", "c"], "decision": ["relabel", "exclude", "skip"],
                           "final_label": ["z", None, None]})
    out = final_labels(manifest, latest)
    assert out.columns.tolist() == ["clip", "given_label", "final_label", "decision", "excluded", "mismatch"]
    assert out["final_label"].tolist() == ["z", "x", "y", "y"]
    assert out["decision"].tolist() == ["relabel", "exclude", "skip", ""]
    assert out["excluded"].tolist() == [False, True, False, False]
    assert out["mismatch"].tolist() == ["", "", "", ""]


def test_both_problems_of_a_clip_and_an_undo_reach_the_export(data, tmp_path):
    with ReviewStore(data) as store:
        store.record("clips/f.mp4", "relabel", given_label="bird", final_label="cat", curator="ann",
                     mismatch="dubbed_or_music", note="cat video, music on top")
        undone = store.record("clips/d.mp4", "exclude", given_label="cat", curator="ann", mismatch="swapped")
        store.undo(undone, curator="ann")  # d goes back to its keep
    summary = export_reviewed(data, tmp_path / "out")
    labels = read_labels(tmp_path / "out" / "labels.csv").set_index("clip")
    assert labels.loc["clips/f.mp4", ["label", "mismatch"]].tolist() == ["cat", "dubbed_or_music"]
    assert labels.loc["clips/d.mp4", ["label", "mismatch"]].tolist() == ["cat", ""]
    assert summary["mismatch"] == 1 and summary["relabel"] == 2 and summary["exclude"] == 1


def test_export_drop_applies_decisions_and_keeps_extra_columns(data, tmp_path):
    out = tmp_path / "out"
    summary = export_reviewed(data, out)
    labels = read_labels(out / "labels.csv")
    assert labels.columns.tolist() == ["clip", "label", "split", "source"]
    assert labels.set_index("clip")["label"].to_dict() == {
        "clips/a.mp4": "cat",    # accept
        "clips/c.mp4": "fox",    # relabel
        "clips/d.mp4": "cat",    # keep
        "clips/e.mp4": "bird",   # accept, then skip: the given label again
        "clips/f.mp4": "bird",   # never decided
    }  # clips/b.mp4 excluded: dropped
    assert labels.set_index("clip").loc["clips/f.mp4", "source"] == "z"
    assert summary | {"out_dir": "", "fiftyone_dir": ""} == {
        "clips": 6, "decided": 4, "accept": 1, "keep": 1, "relabel": 1, "exclude": 1, "skip": 1,  # skip: undecided
        "mismatch": 0, "relabelled": 2, "excluded": 1, "unchanged": 3, "rows_written": 5, "history": 6, "not_in_data": 0,
        "run_id": "",
        "out_dir": "", "fiftyone_dir": ""}
    assert sorted(p.name for p in out.iterdir()) == sorted([*EXPORT_FILES.values(), "fiftyone"])
    assert read_labels(data / "labels.csv")["label"].tolist() == ["dog", "dog", "cat", "cat", "bird", "bird"]


def test_export_column_keeps_excluded_clips_marked(data, tmp_path):
    summary = export_reviewed(data, tmp_path / "out", excluded="column")
    labels = read_labels(tmp_path / "out" / "labels.csv")
    assert labels.columns.tolist() == ["clip", "label", "split", "source", "excluded"]
    assert len(labels) == 6 == summary["rows_written"]
    assert labels.set_index("clip")["excluded"].to_dict() == {
        "clips/a.mp4": "0", "clips/b.mp4": "1", "clips/c.mp4": "0", "clips/d.mp4": "0", "clips/e.mp4": "0",
        "clips/f.mp4": "0"}
    assert labels.set_index("clip").loc["clips/b.mp4", "label"] == "dog"


def test_decisions_files_hold_the_full_history(data, tmp_path):
    export_reviewed(data, tmp_path / "out")
    with ReviewStore(data) as store:
        history = store.history()
    lines = (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 6
    assert records[0] == {k: (None if pd.isna(v) else v) for k, v in history.iloc[0].to_dict().items()}
    assert records[0]["label_noise_score"] == 0.9 and records[1]["final_label"] is None
    assert [r["decision"] for r in records] == history["decision"].tolist()
    assert records[-1]["note"] == "not sure"
    table = pd.read_csv(tmp_path / "out" / "decisions.csv", dtype=str, keep_default_na=False)
    assert table.columns.tolist() == history.columns.tolist()
    assert table["clip"].tolist() == history["clip"].tolist()


def test_summary_csv_counts_decisions_per_class(data, tmp_path):
    export_reviewed(data, tmp_path / "out")
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("class")
    assert summary.loc["dog", ["clips", "accept", "exclude", "undecided", "relabelled_away"]].tolist() == [
        2, 1, 1, 0, 1]
    assert summary.loc["cat", ["relabel", "keep", "relabelled_in", "relabelled_away"]].tolist() == [1, 1, 1, 1]
    assert summary.loc["fox", ["clips", "relabelled_in"]].tolist() == [0, 1]  # a new class from a relabel
    assert summary.loc["(all)", "clips"] == 6
    assert summary.loc["(all)", "skip"] == 1


def test_curator_filter_and_run_dir(data, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(UserError, match="not a run folder"):
        export_reviewed(data, tmp_path / "out", run_dir=run)
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"run_id": "r1"}))
    summary = export_reviewed(data, tmp_path / "out", run_dir=run, curator_filter="ann")
    assert summary["run_id"] == "r1"
    assert (summary["accept"], summary["exclude"], summary["relabel"], summary["history"]) == (1, 1, 0, 3)
    labels = read_labels(tmp_path / "out" / "labels.csv").set_index("clip")["label"]
    assert labels["clips/c.mp4"] == "cat"  # bob's relabel does not count


def test_bytes_match_the_written_files(data, tmp_path):
    files = export_bytes(data, excluded="column")
    export_reviewed(data, tmp_path / "out", excluded="column")
    assert files.keys() == EXPORT_FILES.keys()
    for key, name in EXPORT_FILES.items():
        assert files[key] == (tmp_path / "out" / name).read_bytes()


def test_refuses_to_overwrite_the_input_and_bad_options(data, tmp_path):
    with pytest.raises(UserError, match="data set folder"):
        export_reviewed(data, data)
    with pytest.raises(ValueError, match="excluded 'hide' is not one of drop, column"):
        export_reviewed(data, tmp_path / "out", excluded="hide")
    assert not (tmp_path / "out").exists()
    export_reviewed(data, data, overwrite=True)
    assert read_labels(data / "labels.csv")["label"].tolist() == ["cat", "fox", "cat", "bird", "bird"]


def test_folder_per_class_input_exports_a_labels_csv(tmp_path):
    root = tmp_path / "ucf"
    for clip in ("dog/1.mp4", "dog/2.mp4", "cat/3.avi"):
        (root / clip).parent.mkdir(parents=True, exist_ok=True)
        (root / clip).write_bytes(b"x")
    with ReviewStore(root) as store:
        store.record("dog/2.mp4", "relabel", given_label="dog", final_label="cat", curator="ann")
    summary = export_reviewed(root, tmp_path / "out")
    labels = read_labels(tmp_path / "out" / "labels.csv")
    assert labels.columns.tolist() == ["clip", "label"]
    assert labels.set_index("clip")["label"].to_dict() == {"cat/3.avi": "cat", "dog/1.mp4": "dog",
                                                           "dog/2.mp4": "cat"}
    assert summary["relabelled"] == 1
    assert not (root / "labels.csv").exists()
    (root / "dog" / "2.mp4").unlink()  # a decided clip that left the data set is ignored, and counted
    summary = export_reviewed(root, tmp_path / "out")
    assert (summary["clips"], summary["relabelled"], summary["not_in_data"]) == (2, 0, 1)


def test_no_reviews_yet_exports_the_input_unchanged(tmp_path):
    root = make_dataset(tmp_path / "d", [("a.mp4", "x"), ("b.mkv", "y")])
    summary = export_reviewed(root, tmp_path / "out")
    assert read_labels(tmp_path / "out" / "labels.csv").values.tolist() == [["a.mp4", "x"], ["b.mkv", "y"]]
    assert (summary["unchanged"], summary["history"]) == (2, 0)
    assert (tmp_path / "out" / "decisions.jsonl").read_bytes() == b""
    assert not store_path(root).exists()  # exporting does not create a store


def test_export_command_prints_one_line(data, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_export_arguments(parser)
    args = parser.parse_args(["--data", str(data), "--out", str(tmp_path / "out"), "--excluded", "column"])
    assert run_export(args) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1
    assert printed[0].startswith("exported 6 of 6 clips to ")
    assert "2 relabelled, 1 excluded, 3 unchanged" in printed[0]


def test_20k_clips_export(tmp_path, monkeypatch):
    n = 20_000
    root = make_dataset(tmp_path / "big", [(f"c/{i:05d}.mp4", f"class{i % 50}") for i in range(n)],
                        extra={"weight": [str(i) for i in range(n)]})
    with ReviewStore(root) as store:
        store.record_many({"clip": f"c/{i:05d}.mp4", "decision": ("relabel", "exclude", "keep")[i % 3],
                           "given_label": f"class{i % 50}", "final_label": "new" if i % 3 == 0 else None,
                           "curator": "ann"} for i in range(n))
    manifest_s = []

    def timed_load_manifest(data_dir):
        t0 = time.perf_counter()
        manifest = load_manifest(data_dir)
        manifest_s.append(time.perf_counter() - t0)
        return manifest

    monkeypatch.setattr(export, "load_manifest", timed_load_manifest)
    t0 = time.perf_counter()
    summary = export_reviewed(root, tmp_path / "out")
    elapsed = time.perf_counter() - t0
    print(f"\n20k clips, 20k decisions: export_reviewed {elapsed:.2f} s "
          f"(of which load_manifest {manifest_s[0]:.2f} s)")
    relabelled, excluded = len(range(0, n, 3)), len(range(1, n, 3))
    assert (summary["relabelled"], summary["excluded"], summary["unchanged"]) == (
        relabelled, excluded, n - relabelled - excluded)
    labels = read_labels(tmp_path / "out" / "labels.csv")
    assert len(labels) == n - excluded
    assert (labels["label"] == "new").sum() == relabelled
    assert labels.set_index("clip").loc["c/00002.mp4", "weight"] == "2"
    assert len((tmp_path / "out" / "decisions.jsonl").read_text().splitlines()) == n
    shutil.rmtree(root)  # 20k files would slow down pytest's clean-up of old temporary folders in later runs


# ------------------------------------------------------------------------------ exports for other tools
def test_label_studio_tasks_follow_the_documented_json_and_config(data, tmp_path):
    """Label Studio's basic JSON format: a list of {"data", "predictions"}; each prediction's result names the
    Choices control (from_name) and the Video object (to_name) of the labeling config, with a choice it offers.
    Checked against that documented schema (label-studio is not installed here)."""
    import xml.etree.ElementTree as ET

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"run_id": "r9", "classes": ["bird", "cat", "dog", "fox"]}))
    pd.DataFrame({"clip": ["clips/a.mp4", "clips/f.mp4"], "suggested_label": ["cat", "bird"],
                  "suggested_confidence": [0.8, 0.6], "label_noise_score": [0.9, 0.1],
                  "mismatch_score": [0.2, 0.1]}).to_csv(run / "flags.csv", index=False)
    export_reviewed(data, tmp_path / "out", run_dir=run, excluded="column")
    tasks = json.loads((tmp_path / "out" / "label_studio_tasks.json").read_text(encoding="utf-8"))
    config = ET.fromstring((tmp_path / "out" / "label_studio_config.xml").read_text(encoding="utf-8"))
    video, choices = config.find("Video"), config.find("Choices")
    offered = {c.get("value") for c in choices.findall("Choice")}
    assert video.get("value") == "$" + video.get("name") and choices.get("toName") == video.get("name")
    assert offered == {"bird", "cat", "dog", "fox"}
    assert len(tasks) == 6 and all(t["data"][video.get("name")].startswith("/data/local-files/?d=data/clips/")
                                   for t in tasks)
    by_clip = {t["data"]["clip"]: t for t in tasks}
    assert by_clip["clips/b.mp4"]["data"]["excluded"] is True and "predictions" not in by_clip["clips/b.mp4"]
    (pred,) = by_clip["clips/a.mp4"]["predictions"]
    assert pred["model_version"] == "r9" and pred["score"] == 0.8
    (result,) = pred["result"]
    assert (result["from_name"], result["to_name"], result["type"]) == (choices.get("name"), video.get("name"),
                                                                         "choices")
    assert result["value"]["choices"] == ["cat"] and set(result["value"]["choices"]) <= offered
    assert by_clip["clips/a.mp4"]["data"]["reviewed_label"] == "cat"  # ann accepted the suggestion


def test_the_fiftyone_tree_has_one_folder_per_reviewed_label(data, tmp_path):
    """FiftyOne's VideoClassificationDirectoryTree: <dir>/<label>/<video>; read back as its importer reads it
    (label = the folder's name), it gives the exported labels.csv without the excluded clip."""
    out = tmp_path / "out"
    export_reviewed(data, out)
    export_reviewed(data, out)  # a second export replaces the tree
    tree = out / "fiftyone"
    read_back = {str(p.resolve().relative_to(data.resolve())): p.parent.name for p in tree.glob("*/*")}
    assert all(p.is_symlink() for p in tree.glob("*/*"))
    assert read_back == read_labels(out / "labels.csv").set_index("clip")["label"].to_dict()
    assert "clips/b.mp4" not in read_back  # excluded


# ------------------------------------------------------------------ issue 24: exports that open in the real tools
def make_scored_run(data, name: str, suggestions: dict[str, str], *, run_id: str | None = None):
    """A run folder of ``data`` with results: config.json (run id), flags.csv suggesting ``suggestions``
    (clip -> label, confidence 0.7) and a stand-in embeddings.parquet (only its presence is checked)."""
    run = data / ".auditor" / "runs" / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"run_id": run_id or name}))
    pd.DataFrame({"clip": list(suggestions), "suggested_label": list(suggestions.values()),
                  "suggested_confidence": 0.7, "label_noise_score": 0.5,
                  "mismatch_score": 0.1}).to_csv(run / "flags.csv", index=False)
    (run / "embeddings.parquet").write_bytes(b"")
    return run


def export_command(data, out, *extra: str) -> list[dict]:
    parser = argparse.ArgumentParser()
    add_export_arguments(parser)
    assert run_export(parser.parse_args(["--data", str(data), "--out", str(out), *extra])) == 0
    return json.loads((out / "label_studio_tasks.json").read_text(encoding="utf-8"))


def test_the_export_command_without_run_takes_the_run_of_the_decisions(data, tmp_path, capsys):
    """Issue 24: `python -m auditor export --data DIR --out OUT` (the README's command, no --run) gave no task a
    prediction. It takes the run the decisions were made on (r1: ann's), not the newer r2."""
    make_scored_run(data, "r1", {"clips/a.mp4": "cat", "clips/d.mp4": "dog"})
    time.sleep(0.01)
    newer = make_scored_run(data, "r2", {"clips/a.mp4": "bird", "clips/d.mp4": "bird"})
    os.utime(newer / "config.json", (time.time() + 60, time.time() + 60))  # r2 is the newest run
    tasks = {t["data"]["clip"]: t for t in export_command(data, tmp_path / "out")}
    assert "suggestions from run r1" in capsys.readouterr().out
    assert {c: [p["model_version"] for p in t.get("predictions", [])] for c, t in tasks.items()} == {
        "clips/a.mp4": ["r1"], "clips/b.mp4": [], "clips/c.mp4": [], "clips/d.mp4": ["r1"], "clips/e.mp4": [],
        "clips/f.mp4": []}
    assert tasks["clips/d.mp4"]["predictions"][0]["result"][0]["value"] == {"choices": ["dog"]}
    assert tasks["clips/d.mp4"]["predictions"][0]["score"] == 0.7


def test_the_export_command_without_run_or_decided_run_takes_the_newest_scored_run(tmp_path):
    data = make_dataset(tmp_path / "data", [("clips/a.mp4", "dog"), ("clips/b.mp4", "cat")])
    make_scored_run(data, "old", {"clips/a.mp4": "cat"})
    newest = make_scored_run(data, "new", {"clips/a.mp4": "bird"})
    os.utime(newest / "config.json", (time.time() + 60, time.time() + 60))
    unscored = data / ".auditor" / "runs" / "running"  # newer still, but without results
    unscored.mkdir()
    (unscored / "config.json").write_text(json.dumps({"run_id": "running"}))
    os.utime(unscored / "config.json", (time.time() + 120, time.time() + 120))
    tasks = export_command(data, tmp_path / "out")
    assert [[p["model_version"] for p in t.get("predictions", [])] for t in tasks] == [["new"], []]


def test_label_studio_tasks_hold_the_curators_labels_as_annotations(data, tmp_path):
    """Issue 24: the curators' label decisions are Label Studio annotations (a relabel shows the curator's label,
    not the model's), the model's suggestions predictions; excluded and skipped clips get no annotation."""
    make_scored_run(data, "r1", {"clips/a.mp4": "cat", "clips/c.mp4": "dog", "clips/b.mp4": "cat"})
    tasks = {t["data"]["clip"]: t for t in export_command(data, tmp_path / "out", "--excluded", "column")}
    annotated = {c: [a["result"][0]["value"]["choices"] for a in t.get("annotations", [])]
                 for c, t in tasks.items()}
    assert annotated == {"clips/a.mp4": [["cat"]], "clips/b.mp4": [], "clips/c.mp4": [["fox"]],
                         "clips/d.mp4": [["cat"]], "clips/e.mp4": [], "clips/f.mp4": []}
    relabelled = tasks["clips/c.mp4"]
    (annotation,) = relabelled["annotations"]
    assert annotation == {"result": [{"from_name": "label", "to_name": "video", "type": "choices",
                                      "value": {"choices": ["fox"]}}], "ground_truth": False}
    assert relabelled["predictions"][0]["result"][0]["value"] == {"choices": ["dog"]}  # the model's, apart
    assert tasks["clips/b.mp4"]["data"]["excluded"] is True and "annotations" not in tasks["clips/b.mp4"]


def test_label_studio_media_resolve_under_the_data_sets_parent(tmp_path):
    """Issue 24: clips are addressed relative to the data set's parent folder (Label Studio's document root;
    one "Local files" storage = the data set folder), URL-quoted; the export's README.txt states those steps."""
    data = make_dataset(tmp_path / "my data", [("clips/a b#1.mp4", "dog"), ("clips/c.mp4", "cat")])
    out = tmp_path / "out"
    tasks = export_command(data, out)
    assert [t["data"]["video"] for t in tasks] == ["/data/local-files/?d=my%20data/clips/a%20b%231.mp4",
                                                   "/data/local-files/?d=my%20data/clips/c.mp4"]
    steps = (out / "label_studio_README.txt").read_text(encoding="utf-8")
    assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={data.resolve().parent}" in steps
    assert f"\n     {data.resolve()}\n" in steps and "Local files" in steps
