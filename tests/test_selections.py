"""Clip selections sent to Review, kept so that a reload finds them (auditor.selections)."""

from __future__ import annotations

from auditor import selections


def test_a_selection_is_kept_and_read_back_by_its_id(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    sel_id = selections.save(data, ["clips/b.mp4", "clips/a.mp4"])
    assert selections.load(data, sel_id) == ["clips/b.mp4", "clips/a.mp4"]
    assert selections.save(data, ["clips/b.mp4", "clips/a.mp4"]) == sel_id  # the same clips, the same id
    assert len(list((data / ".auditor" / "selections").iterdir())) == 1


def test_an_id_that_is_not_one_reads_nothing(tmp_path):
    data = tmp_path / "data"
    (data / ".auditor").mkdir(parents=True)
    (data / ".auditor" / "secret.json").write_text('{"clips": ["x"]}')
    for bad in ("../secret", "0123456789abcdef0", "", "ffffffffffffffff"):
        assert selections.load(data, bad) is None
