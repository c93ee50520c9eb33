"""Which run an export takes the model's suggestions from when it is not told (``python -m auditor export``
without ``--run``): the run the curators' decisions were made on, else the newest scored run.

A run is named by the decisions through its run id (config.json's ``run_id``, the folder name when it has none);
only runs with results (run_folder.run_outputs_ready) count.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from auditor.run_folder import list_runs, read_config, run_outputs_ready
from auditor.workspace import runs_root


def review_run(data_dir: str | os.PathLike[str], history: pd.DataFrame) -> Path | None:
    """The run folder of ``data_dir`` to export with: the scored run named by the newest decision of
    ``history`` (reviews.read_decisions' history: ``id``, ``run_id``) that names one, else the newest scored
    run (run_folder.list_runs' order); None when the data set has no scored run."""
    scored = [run for run in list_runs(runs_root(data_dir)) if run_outputs_ready(run)]
    by_id: dict[str, Path] = {}
    for run in scored:  # newest first: a run id used twice names the newer run
        by_id.setdefault(str((read_config(run) or {}).get("run_id", run.name)), run)
    if len(history):
        for run_id in history.sort_values("id", ascending=False)["run_id"].astype(object).fillna("").astype(str):
            if run_id in by_id:
                return by_id[run_id]
    return scored[0] if scored else None
