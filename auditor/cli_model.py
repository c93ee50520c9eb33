"""The model sub-commands of ``python -m auditor``: train, score and export-encoders."""

from __future__ import annotations

import argparse
import dataclasses

from auditor.model.config import DEVICES, FLIP_FRAMES, LABEL_EVIDENCE, METHODS, TrainConfig
from auditor.model.presets import FEATURES_PRESET, FRAME_PRESETS
from auditor.run_folder import CLASS_REPORT_FILE, EMBEDDINGS_FILE, FLAGS_FILE
from auditor.workspace import add_workdir_argument

RUN_RESULTS = (FLAGS_FILE, EMBEDDINGS_FILE, CLASS_REPORT_FILE)

# TrainConfig fields exposed as --flags (the dataclass is the single source of the defaults).
_FLAG_FIELDS = ("preset", "method", "epochs_phase1", "epochs_phase2", "warmup_epochs", "batch_size", "lr",
                "device", "seed", "lambda_inst", "lambda_cat", "label_evidence", "evidence_folds", "init_from",
                "loader_workers", "features", "flip_frames")


_HELP = {"init_from": "a run folder (same preset): start the encoders from its checkpoint, e.g. one trained on a "
                      "large data set on a GPU (default: from scratch)",
         "loader_workers": "processes that make the training batches (default -1: none on the CPU, where they "
                           "would compete with the model for the cores; up to 8 per GPU)",
         "features": "a Parquet or .npz file of per-clip visual and audio vectors from a pretrained model "
                     "(README, 'Pretrained features'): train small MLP encoders on them instead of decoding the "
                     "clips (the features preset; --preset is not used)",
         "evidence_folds": "folds of the linear heads cross-fitted on the encoders' features (with --features: on "
                           "the file's vectors) that judge each label (default 5; 0 = the network's own heads, which "
                           "have fitted every label)",
         "flip_frames": "mirror the frames left-right at random in training: auto (default) = once the first epochs "
                        "show that a mirrored picture keeps its class (not so for text, digits, signs, gestures, a "
                        "direction of motion), always, or never"}
# The valid values of a flag, taken from where they are defined.
_CHOICES = {"preset": FRAME_PRESETS, "device": DEVICES, "method": METHODS, "label_evidence": LABEL_EVIDENCE,
            "flip_frames": FLIP_FRAMES}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="data set folder (labels.csv or one sub-folder per class)")
    # --run-dir is the same option for torchrun, whose own parser claims any abbreviation of --run-path.
    p.add_argument("--run", "--run-dir", dest="run", required=True,
                   help="run folder for config, checkpoint, progress and outputs")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name in _FLAG_FIELDS:
        default = fields[name].default
        auto = {"epochs_phase1": 0, "epochs_phase2": -1, "warmup_epochs": -1, "batch_size": 0}
        note = " (automatic for the data size / preset)" if auto.get(name) == default else ""
        kwargs: dict = {"type": type(default), "default": default,
                        "help": _HELP.get(name, f"default: {default}{note}")}
        if name in _CHOICES:
            kwargs["choices"] = list(_CHOICES[name])
        p.add_argument("--" + name.replace("_", "-"), **kwargs)
    p.add_argument("--no-cat", action="store_true", help="ablation: without the category-level contrastive loss")
    p.add_argument("--no-w", action="store_true", help="ablation: without w re-weighting")
    p.add_argument("--pretrained", action="store_true", help="use cached torchvision weights: ImageNet (resnet18 preset), Kinetics-400 "
                        "(r2plus1d preset); never downloaded")
    p.add_argument("--resume", action="store_true", help="continue from the last completed epoch")
    p.add_argument("--overwrite", action="store_true", help="discard a run already in --run and start again")
    p.add_argument("--workers", type=int, default=None, help="decoding processes for ingest (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_workdir_argument(p)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {name: getattr(args, name) for name in _FLAG_FIELDS}
    if values["features"]:
        values["preset"] = FEATURES_PRESET
    return TrainConfig(**values, use_cat=not args.no_cat, use_w=not args.no_w, pretrained=args.pretrained)


def run_train(args: argparse.Namespace) -> int:
    from auditor.pipeline import train_and_score  # torch: imported only when the command runs

    run_dir = train_and_score(args.data, args.run, config_from_args(args), resume=args.resume, overwrite=args.overwrite,
                    workers=args.workers, quiet=args.quiet)
    print(f"wrote {', '.join(str(run_dir / name) for name in RUN_RESULTS)}")
    return 0


def run_score(args: argparse.Namespace) -> int:
    from auditor.scoring import score_run  # torch: imported only when the command runs

    out = score_run(args.run, args.data, args.out, device=args.device, workers=args.workers, overwrite=args.overwrite,
                    features=args.features)
    print(f"wrote {', '.join(str(out / name) for name in RUN_RESULTS)}")
    return 0


def run_export_encoders(args: argparse.Namespace) -> int:
    from auditor.model.encoder_files import export_encoders  # torch: imported only when the command runs

    print(f"wrote {', '.join(str(p) for p in export_encoders(args.run, args.out))}")
    return 0
