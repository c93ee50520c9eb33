"""The ``bench`` sub-command of ``python -m auditor``: methods side by side on data with injected, known noise.

Register in ``auditor/__main__.py``::

    @command("bench", "benchmark ntl against ce, cleanlab, cosine and ablations on data with known noise",
             "auditor.cli_bench:run_bench")
    def _bench_args(p): from auditor.cli_bench import add_bench_arguments; add_bench_arguments(p)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from auditor.errors import UserError


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    from auditor.bench.settings import METHODS

    p.add_argument("--out", required=True, help="folder for results.csv, results.md, plots, data and runs "
                                                "(re-running with the same folder continues a killed bench)")
    p.add_argument("--quick", action="store_true",
                   help="one setting (sym0.4+mm0.2), 64 + 32 test clips, 1+1 epochs (warm-up 1), batch 16, "
                        "no UMAP timing: a few minutes on 2 cores")
    p.add_argument("--data", default=None, help="benchmark this data set (labels.csv + truth.csv; DIR/test with "
                                                "truth.csv for the clean-test accuracy) instead of generating")
    p.add_argument("--settings", default=None,
                   help="comma-separated noise settings: [sym|asym]R[+mmM] or mmM (R = label-noise rate in [0, 1), "
                        "M = mismatch rate), 'grid' (sym 0.2/0.4/0.6, asym 0.2/0.4, each with mm 0 and 0.2) or "
                        "'quick'; e.g. sym0.4+mm0.2,asym0.2. Default: grid (--quick: sym0.4+mm0.2)")
    p.add_argument("--methods", default=None, help=f"comma-separated subset of: {','.join(METHODS)} (default: all)")
    p.add_argument("--seeds", type=int, default=1, help="repeat every setting with seeds 0..K-1 (mean ± std)")
    p.add_argument("--clips", type=int, default=None, help="generated clips per setting (default 480; quick 64)")
    p.add_argument("--test-clips", type=int, default=None, help="clean held-out clips (default 160; quick 32)")
    p.add_argument("--epochs-phase1", type=int, default=None, help="ntl phase-1 epochs (default: automatic for the data size; quick 1)")
    p.add_argument("--epochs-phase2", type=int, default=None,
                   help="ntl phase-2 epochs (default: automatic; quick 1); other methods train E1 + E2 epochs")
    p.add_argument("--warmup-epochs", type=int, default=None, help="ntl warm-up epochs (default: automatic; quick 1)")
    p.add_argument("--batch-size", type=int, default=None, help="0 = the preset's (default; quick 16)")
    p.add_argument("--preset", default="cpu", choices=["cpu", "resnet18"])
    p.add_argument("--folds", type=int, default=3, help="K folds for cleanlab's out-of-sample probabilities")
    p.add_argument("--no-speed", action="store_true", help="skip the speed table's measurements")
    p.add_argument("--umap-points", default=None,
                   help="comma-separated UMAP timing sizes (default 10000,50000; quick: none)")
    p.add_argument("--workers", type=int, default=None, help="render / decode processes (default: all cores)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def config_from_args(args: argparse.Namespace):
    from auditor.bench.settings import (
        BenchConfig,
        parse_methods,
        parse_settings,
        quick_config,
        with_overrides,
    )

    base = quick_config(args.out) if args.quick else BenchConfig(out=Path(args.out))
    umap_points = None
    if args.umap_points is not None:
        try:
            umap_points = tuple(int(x) for x in args.umap_points.split(",") if x.strip())
        except ValueError:
            raise UserError(f"--umap-points: expected comma-separated integers, got {args.umap_points!r}") from None
    return with_overrides(
        base, data=Path(args.data) if args.data else None,
        settings=parse_settings(args.settings) if args.settings else None,
        methods=parse_methods(args.methods) if args.methods else None, seeds=args.seeds, clips=args.clips,
        test_clips=args.test_clips, epochs_phase1=args.epochs_phase1, epochs_phase2=args.epochs_phase2,
        warmup_epochs=args.warmup_epochs, batch_size=args.batch_size, preset=args.preset, folds=args.folds, speed=not args.no_speed,
        umap_points=umap_points, workers=args.workers, device=args.device)


def run_bench(args: argparse.Namespace) -> int:
    from auditor.bench.run import run_benchmark

    result = run_benchmark(config_from_args(args))
    print(result.targets[["target", "status"]].to_string(index=False))
    print("wrote " + ", ".join(str(p) for p in result.files))
    return 0
