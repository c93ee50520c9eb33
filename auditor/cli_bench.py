"""The ``bench`` sub-command of ``python -m auditor``: methods side by side on data with injected, known noise.

Registered in ``auditor/__main__.py``. The choices, defaults and help numbers come from their sources:
auditor.bench.settings (methods, settings grid, BenchConfig and --quick defaults), auditor.model.presets.FRAME_PRESETS
and auditor.model.config.DEVICES. An option left out (None) keeps BenchConfig's or --quick's value.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from auditor.bench.settings import (
    MAX_SEEDS,
    METHODS,
    QUICK,
    QUICK_SETTING,
    SPLITS,
    TABLE,
    BenchConfig,
    describe_grid,
    describe_settings,
    parse_methods,
    parse_settings,
    quick_config,
    with_overrides,
)
from auditor.data.digits import NONSPEECH_SHARE
from auditor.errors import UserError
from auditor.model.config import DEVICES
from auditor.model.presets import FRAME_PRESETS


def _sizes(sizes: tuple[int, ...]) -> str:
    return ",".join(map(str, sizes)) or "none"


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """The bench options; light: imports no torch."""
    q = QUICK
    p.add_argument("--out", required=True, help="folder for results.csv, results.md, plots, data and runs "
                                                "(re-running with the same folder continues a killed bench)")
    p.add_argument("--quick", action="store_true",
                   help=f"one setting ({QUICK_SETTING.name}), {q['clips']} + {q['test_clips']} test clips, "
                        f"{q['epochs_phase1']}+{q['epochs_phase2']} epochs (warm-up {q['warmup_epochs']}), "
                        f"batch {q['batch_size']}, one seed, no UMAP timing: a smoke test of minutes, not evidence")
    p.add_argument("--data", default=None, help="benchmark this data set (labels.csv + truth.csv; DIR/test with "
                                                "truth.csv for the clean-test accuracy) instead of generating")
    p.add_argument("--settings", default=None,
                   help="comma-separated data settings, each 'clean' or parts joined by '+' in this order: real "
                        "(real content: a handwritten digit moving on screen, a recording of that digit spoken "
                        f"somewhere in the sound, ten classes, a share {NONSPEECH_SHARE:g} of the mismatched "
                        "sounds non-speech; needs the Free Spoken Digit Dataset in ../shared/data/fsdd or $AUDITOR_FSDD; "
                        "'real' alone = clean), symR | asymR (label-noise rate R in [0, 1)), mmM (mismatch rate), ltX "
                        "(long-tailed class sizes, largest:smallest = X), muteF (share of clips with a silent sound "
                        "track), durA-B (clips of A-B s whose class sound is one short event at a random place), "
                        "clsK (K classes) and mixed (each clip in its own container, codecs, frame size, frame rate "
                        "and sample rate); or a suite: 'table' (the default: "
                        f"{describe_settings(TABLE)}), 'grid' ({describe_grid()}), 'quick' ({QUICK_SETTING.name}). "
                        "E.g. sym0.4+mm0.2,asym0.2,sym0.2+lt8+mute0.04,sym0.1+mm0.05+mixed,"
                        "real+sym0.1+mm0.08+lt8+mute0.04+mixed")
    p.add_argument("--methods", default=None, help=f"comma-separated subset of: {','.join(METHODS)} (default: all)")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"repeat every setting with K seeds of the split, data and training alike (mean ± std; "
                        f"default {BenchConfig.seeds}, quick {q['seeds']}; at most {MAX_SEEDS})")
    p.add_argument("--split", default=None, choices=list(SPLITS),
                   help="which seeds: " + ", ".join(f"{k} from {v}" for k, v in SPLITS.items())
                        + f" (default {BenchConfig.split}): choose defaults on dev, report numbers of report; the "
                          "split is written into results.md")
    p.add_argument("--clips", type=int, default=None,
                   help=f"generated clips per setting (default {BenchConfig.clips}; quick {q['clips']})")
    p.add_argument("--test-clips", type=int, default=None,
                   help=f"clean held-out clips (default {BenchConfig.test_clips}; quick {q['test_clips']})")
    p.add_argument("--epochs-phase1", type=int, default=None,
                   help=f"ntl phase-1 epochs (default: automatic for the data size; quick {q['epochs_phase1']})")
    p.add_argument("--epochs-phase2", type=int, default=None,
                   help=f"ntl phase-2 epochs (default: automatic; quick {q['epochs_phase2']}); other methods "
                        "train E1 + E2 epochs")
    p.add_argument("--warmup-epochs", type=int, default=None,
                   help=f"ntl warm-up epochs (default: automatic; quick {q['warmup_epochs']})")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"0 = the preset's (default; quick {q['batch_size']})")
    p.add_argument("--preset", default=None, choices=list(FRAME_PRESETS))
    p.add_argument("--folds", type=int, default=None,
                   help=f"K folds for cleanlab's out-of-sample probabilities (default {BenchConfig.folds})")
    p.add_argument("--knn-k", type=int, default=None,
                   help=f"neighbours of the knn baseline (default {BenchConfig.knn_k}, ntl's own)")
    p.add_argument("--no-speed", action="store_true", help="skip the speed table's measurements")
    p.add_argument("--umap-points", default=None,
                   help=f"comma-separated UMAP timing sizes (default {_sizes(BenchConfig.umap_points)}; "
                        f"quick: {_sizes(q['umap_points'])})")
    p.add_argument("--workers", type=int, default=None, help="render / decode processes (default: all cores)")
    p.add_argument("--device", default=None, choices=DEVICES)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The BenchConfig of the parsed options: --quick's or the default one, with every given option applied."""
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
        methods=parse_methods(args.methods) if args.methods else None, seeds=args.seeds, split=args.split,
        knn_k=args.knn_k, clips=args.clips,
        test_clips=args.test_clips, epochs_phase1=args.epochs_phase1, epochs_phase2=args.epochs_phase2,
        warmup_epochs=args.warmup_epochs, batch_size=args.batch_size, preset=args.preset, folds=args.folds,
        speed=not args.no_speed, umap_points=umap_points, workers=args.workers, device=args.device)


def run_bench(args: argparse.Namespace) -> int:
    from auditor.bench.run import run_benchmark  # torch and the training: not when only the parser is built

    result = run_benchmark(config_from_args(args))
    print(result.targets[["target", "status"]].to_string(index=False))
    print("wrote " + ", ".join(str(p) for p in result.files))
    return 0
