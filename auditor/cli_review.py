"""The review sub-commands of ``python -m auditor``: export (argument parsing is registered in __main__)."""

from __future__ import annotations

import argparse

from auditor.errors import UserError
from auditor.export import EXCLUDED_MODES, ExportIntoDataError, export_reviewed
from auditor.export_run import review_run
from auditor.reviews import read_decisions
from auditor.workspace import add_workdir_argument


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="the data set folder (with labels.csv or class folders)")
    p.add_argument("--out", required=True, help="folder to write labels.csv, decisions.csv/.jsonl, summary.csv")
    p.add_argument("--run", default=None,
                   help="the run folder whose suggestions go into the Label Studio tasks (default: the run the "
                        "decisions were made on, else the newest scored run)")
    p.add_argument("--excluded", choices=EXCLUDED_MODES, default=EXCLUDED_MODES[0],
                   help="leave excluded clips out of labels.csv, or keep them with a column excluded=1")
    p.add_argument("--curator", action="append", default=None,
                   help="only count this curator's decisions (repeat for several; default: everyone)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --out to be the data set folder itself (replaces its labels.csv)")
    add_workdir_argument(p)


def run_export(args: argparse.Namespace) -> int:
    """Export the reviewed labels; without ``--run``, with the run of export_run.review_run (none when the data
    set has no scored run). Prints one line."""
    run = args.run if args.run is not None else review_run(args.data, read_decisions(args.data, curators=args.curator)[0])
    try:
        s = export_reviewed(args.data, args.out, run_dir=run, excluded=args.excluded,
                            curator_filter=args.curator, overwrite=args.overwrite)
    except ExportIntoDataError as err:
        raise UserError(f"{err} (or add --overwrite to replace it)") from None
    print(f"exported {s['rows_written']} of {s['clips']} clips to {s['out_dir']}: {s['relabelled']} relabelled, "
          f"{s['excluded']} excluded, {s['unchanged']} unchanged ({s['decided']} decided, "
          f"{s['history']} decisions in the history; suggestions from run {s['run_id'] or '(none)'})")
    return 0
