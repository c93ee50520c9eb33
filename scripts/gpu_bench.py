"""Many bench runs side by side on one GPU machine: the report split's table in one call of a lent GPU.

A unit is (setting, seed, methods): its data generated once under a lock, then its methods in order, each by the
bench's own code (auditor.bench.run: the same run folders, metrics.json and reuse as ``python -m auditor bench``),
in a process of its own. PARALLEL units run at a time, in the plan's order (the most wanted first), until the
deadline; after each unit the run folders' small files (metrics.json, flags.csv, progress.jsonl, config.json) and
the data sets' truth tables are packed into OUT/runs.tar.gz, so what finished comes back even when the call is cut.
The tarball unpacks into a bench folder whose runs ``/tmp/table.py``-style readers and ``bench`` itself reuse;
``--measure DIR`` measures the runs in it that wrote their final flags.csv but were cut before the bench's own
measuring (no metrics.json: the clean-test accuracy, which needs the checkpoint, is then missing).

    python3 scripts/gpu_bench.py --out "$OUT" --deadline-s 540 --parallel 12          # on the GPU machine
    python3 scripts/gpu_bench.py --out /tmp/o --plan smoke --device cpu --clips 24 --test-clips 8   # a check here
    python3 scripts/gpu_bench.py --out /tmp/o --measure /tmp/unpacked   # flags.csv of cut runs -> /tmp/o/measured.csv

Each unit's training gets one DataLoader worker (auditor.model.loader.GPU_WORKERS): a dozen trainings share the
machine's 16 cores (12 at a time is what ran well on an H100 machine: 24 made each data set's generation 3.6 x
slower, 200 s instead of 55 s, and no unit finished in 565 s); the runs' UMAP maps are left as zeros unless --umap
(they are not measured). PyAV, plotly, cleanlab, umap-learn and their small needs come as wheels in .whl/ (see
scripts/gpu_scale.sh); install them first. ``--unit JSON`` runs one unit in this process (also on a CPU, with
``--device cpu``): ``{"setting": "sym0.4+mm0.2", "seed": 1001, "methods": ["ntl", "ce"]}``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

SEEDS = (1000, 1001, 1002)  # the report split's first three seeds (auditor.bench.settings.SPLITS)
GOAL_SETTINGS = ("sym0.1+mm0.05+lt8+mute0.04", "sym0.1+mm0+lt10", "asym0.4", "clean")
HEADLINE = "sym0.4+mm0.2"
HARDER = ("sym0.6+mm0.2", "sym0.3+cls32", "sym0.3+mm0.15")
ABLATIONS = ("ntl_no_cat", "ntl_no_w", "ntl_no_phase2", "ntl_classifier_evidence", "ntl_sce_hybrid", "ce_clean")
SHAPES = ("sym0.1+mm0.1+dur10-30", "sym0.1+mm0.05+mixed")


def full_plan() -> list[dict]:
    """Units in the order wanted: the issues' goal settings (ntl and ce), the headline setting with every
    baseline, the harder settings, the ablations, then long clips and mixed media."""
    units = [{"setting": s, "seed": seed, "methods": [m]} for s in GOAL_SETTINGS for seed in SEEDS
             for m in ("ntl", "ce")]
    for seed in SEEDS:
        units += [{"setting": HEADLINE, "seed": seed, "methods": ms}
                  for ms in (["ntl"], ["small_loss"], ["infonce_loss"], ["ce"], ["cosine", "knn"], ["cleanlab"])]
    units += [{"setting": s, "seed": seed, "methods": [m]} for s in HARDER for seed in SEEDS for m in ("ntl", "ce")]
    units += [{"setting": HEADLINE, "seed": seed, "methods": [m]} for m in ABLATIONS for seed in SEEDS]
    units += [{"setting": s, "seed": seed, "methods": [m], **({"test_clips": 80} if "dur" in s else {})}
              for s in SHAPES for seed in SEEDS for m in ("ntl", "ce")]
    return units


def smoke_plan() -> list[dict]:
    """Two settings, one seed: the harness's own check on a CPU."""
    return [{"setting": HEADLINE, "seed": SEEDS[0], "methods": ["ntl", "small_loss"]},
            {"setting": HEADLINE, "seed": SEEDS[0], "methods": ["ce"]},
            {"setting": "clean", "seed": SEEDS[0], "methods": ["ntl"]}]


def head_plan() -> list[dict]:
    """The goal settings re-run at the current code: ntl on every (setting, seed) first, then the headline setting's
    early-stopped baselines, then ce beside each, then the embedding baselines."""
    settings = (*GOAL_SETTINGS, *HARDER)
    units = [{"setting": s, "seed": seed, "methods": ["ntl"]} for s in settings for seed in SEEDS]
    units += [{"setting": HEADLINE, "seed": seed, "methods": [m]} for seed in SEEDS for m in ("small_loss", "infonce_loss")]
    units += [{"setting": s, "seed": seed, "methods": ["ce"]} for s in (*settings, HEADLINE) for seed in SEEDS]
    units += [{"setting": HEADLINE, "seed": seed, "methods": ["cosine", "knn"]} for seed in SEEDS]
    return units


PLANS = {"full": full_plan, "head": head_plan, "smoke": smoke_plan}


def run_unit(unit: dict, args: argparse.Namespace) -> int:
    """One unit in this process: its data (generated under a lock), then its methods by the bench's code."""
    import auditor.model.loader as loader

    loader.GPU_WORKERS = args.loader_workers
    if not args.umap:  # the maps are not measured; each fresh process would compile umap's numba code first
        import numpy as np

        import auditor.scoring as scoring

        scoring.umap_maps = lambda vectors, seed=0: {k: np.zeros((len(v), 2), np.float32) for k, v in vectors.items()}
    from auditor.bench.run import method_metrics, setting_data
    from auditor.bench.settings import BenchConfig, parse_settings

    setting = parse_settings(unit["setting"])[0]
    extra = {k: v for k, v in (("epochs_phase1", args.epochs_phase1), ("epochs_phase2", args.epochs_phase2),
                               ("warmup_epochs", args.warmup_epochs)) if v is not None}
    cfg = BenchConfig(out=Path(args.bench), settings=[setting], seeds=len(SEEDS), split="report",
                      clips=args.clips, test_clips=unit.get("test_clips", args.test_clips), speed=False,
                      workers=args.data_workers, device=args.device, **extra)
    cfg.validate()
    seed = unit["seed"]

    def log(message: str) -> None:
        print(f"{time.strftime('%T')} {message}", flush=True)

    locks = Path(args.bench) / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / cfg.data_name(setting, seed), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = setting_data(cfg, setting, seed, log)
    for method in unit["methods"]:
        method_metrics(cfg, method, setting, seed, data, f"{setting.name} seed {seed} {method}", log)
    return 0


def pack(bench: Path, out: Path) -> None:
    """OUT/runs.tar.gz: every run folder's small files and every data set's truth tables, written atomically."""
    tmp = out / "runs.tar.gz.part"
    with tarfile.open(tmp, "w:gz") as tar:
        for pattern in ("runs/**/metrics.json", "runs/**/flags.csv", "runs/**/progress.jsonl",
                        "runs/**/config.json", "data/*/truth.csv", "data/*/test/truth.csv", "data/*/bench_data.json"):
            for path in sorted(bench.glob(pattern)):
                if "/folds/" not in str(path) or path.name == "metrics.json":
                    tar.add(path, arcname=str(path.relative_to(bench)))
    tmp.replace(out / "runs.tar.gz")


def measure(bench: Path, out: Path) -> pd.DataFrame:
    """OUT/measured.csv: auditor.metrics.flag_metrics of each finished run's flags.csv (progress.jsonl ends with
    "done") that has no metrics.json, on the scores its method is measured on, against its data set's truth."""
    import pandas as pd

    from auditor.bench.methods import measured_flags
    from auditor.bench.settings import METHOD_SPECS
    from auditor.metrics import flag_metrics
    from auditor.run_folder import read_progress

    rows = []
    for flags_csv in sorted(bench.glob("runs/*/*/flags.csv")):
        run, name, method = flags_csv.parent, flags_csv.parent.parent.name, flags_csv.parent.name
        events = read_progress(run)
        if (run / "metrics.json").exists() or not events or events[-1].get("event") != "done":
            continue
        truth = pd.read_csv(bench / "data" / name / "truth.csv")
        metrics = flag_metrics(measured_flags(pd.read_csv(flags_csv), METHOD_SPECS[method].scores), truth)
        setting, _, seed = name.rpartition("-s")
        rows.append({"setting": setting.rsplit("-n", 1)[0], "seed": int(seed), "method": method, **metrics})
    table = pd.DataFrame(rows)
    table.to_csv(out / "measured.csv", index=False)
    return table


def schedule(args: argparse.Namespace) -> int:
    """Run the plan's units PARALLEL at a time until the deadline; the summary and the packed runs go to OUT."""
    out, bench = Path(args.out), Path(args.bench)
    out.mkdir(parents=True, exist_ok=True)
    logs = bench / "unit_logs"
    logs.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.txt"
    started = time.monotonic()
    deadline = started + args.deadline_s

    def note(line: str) -> None:
        text = f"[{time.monotonic() - started:5.0f}s] {line}"
        print(text, flush=True)
        with open(summary, "a") as f:
            f.write(text + "\n")

    plan = [(i, u) for i, u in enumerate(PLANS[args.plan]()) if i >= args.first]
    note(f"plan {args.plan}: {len(plan)} units, {args.parallel} at a time, deadline {args.deadline_s} s")
    running: dict[subprocess.Popen, tuple[int, dict, float]] = {}
    ok = failed = 0
    repo = str(Path(__file__).resolve().parents[1])  # auditor importable from the unit processes
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
                        "PYTHONPATH": os.pathsep.join(filter(None, (repo, os.environ.get("PYTHONPATH"))))}
    while plan or running:
        now = time.monotonic()
        while plan and len(running) < args.parallel and deadline - now > args.min_left_s:
            i, unit = plan.pop(0)
            cmd = [sys.executable, __file__, *sys.argv[1:], "--unit", json.dumps(unit)]
            with open(logs / f"{i:03d}.log", "w") as f:
                running[subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)] = (i, unit, now)
            note(f"start {i}: {unit}")
        for proc in [p for p in running if p.poll() is not None]:
            i, unit, t0 = running.pop(proc)
            ok, failed = ok + (proc.returncode == 0), failed + (proc.returncode != 0)
            tail = (logs / f"{i:03d}.log").read_text().strip().splitlines()[-3:]
            note(f"end {i} rc={proc.returncode} {time.monotonic() - t0:.0f} s: {unit}\n    " + "\n    ".join(tail))
            pack(bench, out)
        if (failed >= 3 and ok == 0) or time.monotonic() > deadline:
            for proc in running:
                proc.kill()
            note(f"stopped: {failed} failed, {ok} done, {len(running)} killed, {len(plan)} not started")
            break
        if not running and (not plan or deadline - time.monotonic() <= args.min_left_s):
            break
        time.sleep(1)
    with open(out / "units.log", "w") as f:
        for path in sorted(logs.glob("*.log")):
            lines = path.read_text().splitlines()
            f.write(f"== {path.name}\n" + "\n".join(lines[-40:]) + "\n")
    pack(bench, out)
    note(f"done: {ok} units finished, {failed} failed, {len(plan)} not started")
    return 0 if failed == 0 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="where summary.txt, units.log and runs.tar.gz go")
    p.add_argument("--bench", default="/tmp/gpu_bench", help="the bench folder (data, cache, runs)")
    p.add_argument("--plan", default="full", choices=list(PLANS))
    p.add_argument("--first", type=int, default=0, help="start at this unit of the plan (0-based)")
    p.add_argument("--parallel", type=int, default=12)
    p.add_argument("--deadline-s", type=float, default=540)
    p.add_argument("--min-left-s", type=float, default=90, help="start no unit with less time than this left")
    p.add_argument("--device", default="cuda")
    p.add_argument("--clips", type=int, default=600)
    p.add_argument("--test-clips", type=int, default=200)
    p.add_argument("--epochs-phase1", type=int, default=None)
    p.add_argument("--epochs-phase2", type=int, default=None)
    p.add_argument("--warmup-epochs", type=int, default=None)
    p.add_argument("--data-workers", type=int, default=2, help="render / decode processes of each unit")
    p.add_argument("--loader-workers", type=int, default=1, help="DataLoader workers of each GPU training")
    p.add_argument("--umap", action="store_true", help="compute the UMAP maps of each run (default: zeros)")
    p.add_argument("--measure", default=None, metavar="DIR",
                   help="measure the cut runs of an unpacked runs.tar.gz in DIR (OUT/measured.csv), run nothing")
    p.add_argument("--unit", default=None, metavar="JSON", help="run this one unit here, in this process")
    args = p.parse_args()
    if args.measure is not None:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        print(measure(Path(args.measure), Path(args.out)).to_string(index=False))
        return 0
    if args.unit is not None:
        return run_unit(json.loads(args.unit), args)
    with contextlib.suppress(KeyboardInterrupt):
        return schedule(args)
    return 130


if __name__ == "__main__":
    sys.exit(main())
