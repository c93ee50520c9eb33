"""auditor.workspace: where AV Auditor writes about a data set; ``--workdir`` of the commands."""

from __future__ import annotations

import os
import stat

from auditor import workspace
from auditor.data.cache_location import default_cache_root
from auditor.reviews import store_path
from tests.conftest import run_cli
from tests.fakerun import make_fake_run


def _files(folder):
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_work_folder_is_inside_a_writable_data_set_and_elsewhere_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv(workspace.WORKDIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    assert workspace.work_folder(data) == data / ".auditor"
    assert default_cache_root(data) == data / ".auditor" / "cache"
    assert store_path(data) == data / ".auditor" / "reviews.sqlite"
    assert not (data / ".auditor").exists()  # asking creates nothing
    data.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if not os.access(data, os.W_OK):  # root can write anyway
            assert workspace.work_folder(data).parent == tmp_path / "share" / "av-auditor"
            assert default_cache_root(data).parent == tmp_path / "cache" / "av-auditor"
    finally:
        data.chmod(stat.S_IRWXU)
    sample = workspace.work_folder(workspace.BUNDLED_SAMPLE)
    assert sample.parent == tmp_path / "share" / "av-auditor" and sample.name.startswith("sample_data-")


def test_a_work_directory_takes_everything(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv(workspace.WORKDIR_ENV, str(tmp_path / "work"))
    folder = workspace.work_folder(data)
    assert folder.parent == tmp_path / "work" and folder.name.startswith("data-")
    assert default_cache_root(data) == folder / "cache" and workspace.runs_root(data) == folder / "runs"
    assert not workspace.writes_into_data(data)


def test_ingest_with_workdir_leaves_the_data_set_untouched(tmp_path):
    data = tmp_path / "data"
    make_fake_run(tmp_path / "run", data_dir=data, n_clips=4, n_classes=2, seed=1, with_files=True)
    before = _files(data)
    work = tmp_path / "work"
    run_cli("ingest", "--data", str(data), "--workers", "1", "--workdir", str(work))
    assert _files(data) == before
    assert list(work.rglob("ingest.json")) and list(work.rglob("store.json"))  # the decoded clips, packed
