"""The Export page's calls to :mod:`auditor.export`: the reviewed files as bytes for download buttons, or
written to a folder with the error shown instead of raised."""

from __future__ import annotations

from pathlib import Path

from auditor.errors import UserError
from auditor.export import export_bytes, export_reviewed
from auditor.run_folder import CONFIG_FILE
from auditor.ui.widgets import show_error


def _run_with_config(run: Path | None) -> Path | None:
    """The selected run when it has a config.json (its run id stamps the export), else None."""
    return run if run is not None and (run / CONFIG_FILE).is_file() else None


def export_files(data: Path, run: Path | None, excluded: str) -> dict[str, bytes]:
    """auditor.export.export_bytes for the data set (and the selected run, when it has a config)."""
    return export_bytes(data, run_dir=_run_with_config(run), excluded=excluded)


def write_export(data: Path, run: Path | None, out_dir: str, excluded: str) -> dict | None:
    """auditor.export.export_reviewed into ``out_dir``; shows the error and returns None when it fails."""
    if not out_dir:
        show_error("Not written.", "enter an output folder")
        return None
    try:
        return export_reviewed(data, Path(out_dir).expanduser(), run_dir=_run_with_config(run), excluded=excluded)
    except (UserError, OSError) as err:
        show_error("Not written.", err)
        return None
