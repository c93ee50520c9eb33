"""Command line: ``python -m auditor {sample,inject,ingest,train,score,export-encoders,bench,export} ...``.

Each sub-command is a thin wrapper over a library function; errors in the user's input are printed as one line
(``error: <file>: <problem>``) with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

# Before torch loads OpenMP: its threads sleep between parallel regions instead of spinning. On cores shared with
# other processes a spinning thread waits for one that is descheduled: measured on this 2-core machine at load
# 15, a features training step took 1.8 s and 513 ms of CPU with spinning threads, 35 ms and 26 ms without
# (BENCHMARKS.md). An OMP_WAIT_POLICY of the caller's own is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The parser modules are light (no torch): the command's own module is imported only when it runs (main).
from auditor.cli_bench import add_bench_arguments
from auditor.cli_model import add_train_arguments
from auditor.cli_review import add_export_arguments
from auditor.data.digits import DIGIT_CLIP_SECONDS, NONSPEECH_SHARE
from auditor.data.generate import CONTENTS
from auditor.data.noise import NOISE_TYPES
from auditor.data.synth import CLASSES as SAMPLE_CLASSES
from auditor.data.synth import MAX_CLASSES, MEDIA
from auditor.errors import UserError
from auditor.model.config import DEVICES
from auditor.model.presets import FRAME_PRESETS
from auditor.workspace import add_workdir_argument, set_workdir

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help_text: str, target: str):
    """Register ``name``: the decorated function adds its arguments; ``target`` = 'module:function' to run."""

    def register(add_arguments: Callable[[argparse.ArgumentParser], None]):
        COMMANDS[name] = (help_text, add_arguments, target)
        return add_arguments

    return register


@command("sample", "render the sample data set (procedural, or real digits with --content digits)",
         "auditor.cli_data:run_sample")
def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder to write clips/, labels.csv, truth.csv into")
    p.add_argument("--clips", type=int, default=240)
    p.add_argument("--label-noise", type=float, default=0.0, help="fraction of flipped labels, in [0, 1)")
    p.add_argument("--noise-type", choices=NOISE_TYPES, default="symmetric")
    p.add_argument("--mismatch", type=float, default=0.0, help="fraction of clips with another class's sound")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-clips", type=int, default=0, help="clips in a clean DIR/test split")
    p.add_argument("--imbalance", type=float, default=1.0,
                   help="largest : smallest class size, sizes falling geometrically (1 = balanced; e.g. 10)")
    p.add_argument("--classes", type=int, default=None,
                   help=f"number of classes, 1-{MAX_CLASSES} (default {len(SAMPLE_CLASSES)}): beyond "
                        f"{len(SAMPLE_CLASSES)}, pictures combined with other classes' sounds; --content digits: "
                        "1-10 (default 10)")
    p.add_argument("--muted", type=float, default=0.0,
                   help="fraction of clips whose sound track is present but silent (truth.csv: is_muted)")
    p.add_argument("--clip-seconds", default=None, metavar="A-B",
                   help="clips of A-B seconds (or S: all S seconds) whose class sound is one short event (2-3 s) at "
                        "a random place over a quiet background (truth.csv: event_start_s, event_end_s; "
                        "default: 2-5 s clips with sound throughout; --content digits: the clips' length, default "
                        f"{DIGIT_CLIP_SECONDS[0]:g}-{DIGIT_CLIP_SECONDS[1]:g}, the event being the spoken recording)")
    p.add_argument("--event-seconds", default=None, metavar="A-B",
                   help="with --clip-seconds: the sound event lasts A-B seconds (or S: S seconds; default 2-3)")
    p.add_argument("--media", choices=MEDIA, default=MEDIA[0],
                   help="uniform: every clip H.264 + AAC .mp4, 128x128, 25 fps, 16 kHz mono; mixed: each clip in a "
                        "random container (.mp4/.mkv/.webm/.mov), frame size, frame rate, sample rate "
                        "(16/44.1/48 kHz) and mono/stereo, as scraped collections are (truth.csv: container, width, "
                        "height, fps, sample_rate, channels, video_codec, audio_codec)")
    p.add_argument("--content", choices=CONTENTS, default=CONTENTS[0],
                   help="procedural: the synthetic motions and sounds; digits: real content, a handwritten digit "
                        "(scikit-learn's digits) moving on screen with a recording of that digit spoken (Free Spoken "
                        f"Digit Dataset, CC BY-SA 4.0) at a random place in a {DIGIT_CLIP_SECONDS[0]:g}-"
                        f"{DIGIT_CLIP_SECONDS[1]:g} s clip, classes zero..nine, a share {NONSPEECH_SHARE:g} of the "
                        "mismatched sounds non-speech (truth.csv: image, recording, speaker, audio_kind, "
                        "event_start_s, event_end_s)")
    p.add_argument("--fsdd", default=None, metavar="DIR",
                   help="with --content digits: the Free Spoken Digit Dataset folder (DIR/recordings/*.wav; default "
                        "$AUDITOR_FSDD, else ../shared/data/fsdd beside the repository)")
    p.add_argument("--workers", type=int, default=None)


@command("inject", "write a copy of a data set with injected label noise / mismatch and truth.csv",
         "auditor.cli_data:run_inject")
def _inject_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--label-noise", type=float, default=0.0)
    p.add_argument("--noise-type", choices=NOISE_TYPES, default="symmetric")
    p.add_argument("--mismatch", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)


@command("ingest", "validate a data set and decode every clip into the cache", "auditor.cli_data:run_ingest")
def _ingest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder with labels.csv or one sub-folder per class")
    p.add_argument("--preset", default="cpu", choices=list(FRAME_PRESETS),
                   help="model preset whose input size is cached")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    p.add_argument("--cache", default=None, help="cache folder (default: in the data set's work folder)")
    p.add_argument("--visual-encoder", default=None, metavar="PATH",
                   help="with --audio-encoder: a TorchScript (.pt) or ONNX (.onnx) encoder of the clips' frames; "
                        "every clip's vectors go into a features file for train --features (README, 'Pretrained "
                        "features'); the frame size and sample rate decoded are the encoders' (--preset is not used)")
    p.add_argument("--audio-encoder", default=None, metavar="PATH", help="the encoder of the clips' log-mel")
    p.add_argument("--out", default=None, help="with the encoders: the features file to write (.parquet; "
                                               "default: beside the decode cache)")
    p.add_argument("--frames", type=int, default=None,
                   help="T frames of an encoder file that carries no contract (default 4)")
    p.add_argument("--frame-size", type=int, default=None, help="S pixels, likewise (default 64)")
    p.add_argument("--audio-frames", type=int, default=None, help="L log-mel frames of 10 ms, likewise (default 256)")
    add_workdir_argument(p)


@command("train", "train the two-phase noise-tolerant model and write flags, embeddings and class report",
         "auditor.cli_model:run_train")
def _train_args(p: argparse.ArgumentParser) -> None:
    add_train_arguments(p)


@command("score", "score a data set with a trained model (writes flags.csv, embeddings.parquet, class_report.csv)",
         "auditor.cli_model:run_score")
def _score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder holding the trained model (checkpoint.pt)")
    p.add_argument("--data", required=True, help="data set folder to score")
    p.add_argument("--out", default=None, help="where to write the outputs (default: the --run folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the outputs of another scoring (another model or data set) already in --out")
    p.add_argument("--features", default=None,
                   help="for a model trained with --features: this data set's features file (same vector sizes)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--workers", type=int, default=None)
    add_workdir_argument(p)


@command("export-encoders", "write a trained run's two encoders as TorchScript with their input contract "
         "(encoders.json), to encode new clips elsewhere (ingest --visual-encoder --audio-encoder)",
         "auditor.cli_model:run_export_encoders")
def _export_encoders_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder holding the trained model (checkpoint.pt)")
    p.add_argument("--out", required=True, help="folder to write visual_encoder.pt, audio_encoder.pt, encoders.json")


@command("export", "write the reviewed labels.csv, the decision history and a summary",
         "auditor.cli_review:run_export")
def _export_args(p: argparse.ArgumentParser) -> None:
    add_export_arguments(p)


@command("bench", "benchmark ntl against its baselines (ce, cleanlab, small-loss, kNN, cosine, InfoNCE loss) "
         "and ablations on data with known noise, mean ± std over seeds",
         "auditor.cli_bench:run_bench")
def _bench_args(p: argparse.ArgumentParser) -> None:
    add_bench_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditor", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_workdir(getattr(args, "workdir", None))
    module_name, func_name = COMMANDS[args.command][2].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, read-only folder, permissions: the file and the reason, one line
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
