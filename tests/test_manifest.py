"""labels.csv / folder-tree validation: every bad-input case gets one line naming the row or file."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.data.manifest import MAX_CLASSES, ManifestError, load_manifest
from tests.conftest import run_cli


def _touch(root: Path, *names: str) -> None:
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def _write(root: Path, text: str | bytes, name: str = "labels.csv") -> None:
    data = text.encode("utf-8") if isinstance(text, str) else text
    (root / name).write_bytes(data)


def test_valid_csv_keeps_extra_columns(tmp_path):
    _touch(tmp_path, "clips/a.mp4", "clips/b.mkv")
    _write(tmp_path, "clip,label,source\nclips/a.mp4,dog,web\nclips/b.mkv,cat,cam\n")
    m = load_manifest(tmp_path)
    assert m.source == "labels.csv" and m.classes == ["cat", "dog"]
    assert m.rows["source"].tolist() == ["web", "cam"] and not m.problems


@pytest.mark.parametrize("text", [
    "\ufeffclip,label\r\nclips/a.mp4,dog\r\nclips/b.mp4,cat\r\n",  # BOM + Windows line ends
    "clip;label\nclips/a.mp4;dog\nclips/b.mp4;cat\n",  # semicolon
    "Clip\tLabel\nclips/a.mp4\tdog\nclips/b.mp4\tcat\n",  # tab, capitalised header
])
def test_csv_dialects(tmp_path, text):
    _touch(tmp_path, "clips/a.mp4", "clips/b.mp4")
    _write(tmp_path, text)
    m = load_manifest(tmp_path)
    assert m.rows["clip"].tolist() == ["clips/a.mp4", "clips/b.mp4"] and m.classes == ["cat", "dog"]


def test_bad_rows_are_reported_and_skipped(tmp_path):
    _touch(tmp_path, "clips/a.mp4", "clips/b.mp4", "clips/c.mp4", "notes.txt")
    _write(tmp_path, "clip,label\n"
                     "clips/a.mp4,dog\n"
                     "clips/a.mp4,dog\n"  # duplicate
                     "clips/b.mp4,\n"  # empty label
                     "../../etc/passwd,dog\n"  # escapes
                     "/etc/passwd,dog\n"  # absolute
                     "clips/missing.mp4,cat\n"  # missing
                     "notes.txt,cat\n"  # not a video
                     "clips/c.mp4,cat\n")
    m = load_manifest(tmp_path)
    assert m.rows["clip"].tolist() == ["clips/a.mp4", "clips/c.mp4"]
    text = "\n".join(str(p) for p in m.problems)
    assert "labels.csv:3: duplicate row for 'clips/a.mp4'" in text
    assert "labels.csv:4: empty label" in text
    assert "labels.csv:5: path '../../etc/passwd' is outside the data set folder; refused" in text
    assert "labels.csv:6: path '/etc/passwd' is outside" in text
    assert "labels.csv:7: file 'clips/missing.mp4' not found" in text
    assert "labels.csv:8: 'notes.txt' is not a video file" in text
    assert len(m.problems) == 6


def test_a_clip_is_kept_exactly_when_it_is_a_file(tmp_path):
    """The folder listings that replace one stat per clip answer as Path.is_file: links to files count, a folder
    named like a clip, a broken link and a clip in a missing or unlistable folder do not."""
    _touch(tmp_path, "top.mp4", "clips/a.mp4", "clips/deep/b.mp4", "elsewhere/target.mp4")
    (tmp_path / "clips" / "folder.mp4").mkdir()
    (tmp_path / "clips" / "link.mp4").symlink_to(tmp_path / "elsewhere" / "target.mp4")
    (tmp_path / "clips" / "broken.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (tmp_path / "clips" / "file_as_folder.mp4").write_bytes(b"x")
    names = ["top.mp4", "clips/a.mp4", "clips/deep/b.mp4", "clips/folder.mp4", "clips/link.mp4",
             "clips/broken.mp4", "missing/c.mp4", "clips/file_as_folder.mp4/d.mp4", "clips/./deep/../a2.mp4"]
    _write(tmp_path, "clip,label\n" + "".join(f"{n},{'ab'[i % 2]}\n" for i, n in enumerate(names)))
    m = load_manifest(tmp_path)
    expected = [n for n in names if (tmp_path / n).is_file()]
    assert expected == ["top.mp4", "clips/a.mp4", "clips/deep/b.mp4", "clips/link.mp4"]
    assert m.rows["clip"].tolist() == expected
    not_found = sorted(p.message for p in m.problems if "not found" in p.message)
    assert len(not_found) == len(names) - len(expected)


def test_case_and_whitespace_variants_are_reported_not_merged(tmp_path):
    _touch(tmp_path, "a.mp4", "b.mp4", "c.mp4")
    _write(tmp_path, "clip,label\na.mp4,Dog\nb.mp4,dog \nc.mp4,dog\n")
    m = load_manifest(tmp_path)
    assert m.classes == ["Dog", "dog", "dog "]
    warnings = [p for p in m.problems if p.kind == "warning"]
    assert len(warnings) == 1 and "differ only by case or whitespace" in warnings[0].message


@pytest.mark.parametrize("content,message", [
    ("clip,name\na.mp4,dog\n", "missing column 'label'"),
    ("", "the file is empty"),
    (b"clip,label\na.mp4,caf\xe9\n", "not UTF-8"),
    ("justoneheader\na.mp4\n", "cannot find a delimiter"),
])
def test_unreadable_csv_is_one_clear_error(tmp_path, content, message):
    _touch(tmp_path, "a.mp4")
    _write(tmp_path, content)
    with pytest.raises(ManifestError, match=message) as err:
        load_manifest(tmp_path)
    assert "labels.csv" in str(err.value)


def test_nothing_usable_is_an_error(tmp_path):
    _write(tmp_path, "clip,label\nmissing.mp4,dog\n")
    with pytest.raises(ManifestError, match="no usable clips"):
        load_manifest(tmp_path)
    with pytest.raises(ManifestError, match="not a folder"):
        load_manifest(tmp_path / "nope")


def test_too_many_classes_is_a_clear_limit(tmp_path):
    n = MAX_CLASSES + 5
    for i in range(n):
        _touch(tmp_path, f"c/{i}.mp4")
    _write(tmp_path, "clip,label\n" + "".join(f"c/{i}.mp4,junk{i}\n" for i in range(n)))
    with pytest.raises(ManifestError, match=f"{n} distinct labels is more than the limit of {MAX_CLASSES}"):
        load_manifest(tmp_path)


def test_folder_per_class_tree(tmp_path):
    _touch(tmp_path, "dog/x.mp4", "dog/sub/y.MOV", "cat/z.webm", "cat/readme.txt", ".auditor/cache/q.mp4")
    m = load_manifest(tmp_path)
    assert m.source == "folders"
    assert sorted(m.rows["clip"]) == ["cat/z.webm", "dog/sub/y.MOV", "dog/x.mp4"]
    assert dict(zip(m.rows["clip"], m.rows["label"], strict=True))["dog/sub/y.MOV"] == "dog"


def test_non_ascii_and_spaces_in_names(tmp_path):
    _touch(tmp_path, "clips/café au lait.mp4", "clips/日本.mp4")
    _write(tmp_path, "clip,label\nclips/café au lait.mp4,drink\nclips/日本.mp4,place\n")
    assert len(load_manifest(tmp_path).rows) == 2


def test_one_class_folder_is_refused_naming_the_layout(tmp_path):
    """Issue 24 bug 2: one sub-folder `clips/` without labels.csv was accepted as a one-class data set."""
    _touch(tmp_path, "clips/a.mp4", "clips/b.mp4")
    with pytest.raises(ManifestError) as err:
        load_manifest(tmp_path)
    text = str(err.value)
    assert str(tmp_path.resolve()) in text and "no labels.csv" in text and "'clips/'" in text
    assert "at least 2 classes" in text
    _write(tmp_path, "clip,label\nclips/a.mp4,dog\nclips/b.mp4,dog\n")
    with pytest.raises(ManifestError, match="the same label 'dog'"):
        load_manifest(tmp_path)


@pytest.mark.parametrize("command", ["ingest", "train"])
def test_ingest_and_train_refuse_a_one_class_folder(tmp_path, command):
    _touch(tmp_path, "data/clips/a.mp4", "data/clips/b.mp4")
    extra = ["--run", str(tmp_path / "run")] if command == "train" else []
    proc = run_cli(command, "--data", str(tmp_path / "data"), *extra, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "only one holds clips: 'clips/'" in proc.stderr and "at least 2 classes" in proc.stderr
    assert not (tmp_path / "run" / "config.json").exists()  # nothing trained
