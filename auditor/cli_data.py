"""The data sub-commands of ``python -m auditor``: sample, inject, ingest (argument parsing is in __main__)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from auditor.data.generate import generate_dataset
from auditor.data.inject import inject_dataset
from auditor.data.synth import MAX_CLIP_SECONDS
from auditor.errors import UserError
from auditor.model.presets import preprocess_params

# How many problems the terminal shows before summarising the rest as a count.
SHOWN_PROBLEMS = 20


def run_sample(args: argparse.Namespace) -> int:
    summary = generate_dataset(args.out, clips=args.clips, label_noise=args.label_noise,
                               noise_type=args.noise_type, mismatch=args.mismatch, seed=args.seed,
                               test_clips=args.test_clips, imbalance=args.imbalance, muted=args.muted,
                               num_classes=args.classes, clip_seconds=parse_clip_seconds(args.clip_seconds),
                               event_seconds=parse_clip_seconds(args.event_seconds, "--event-seconds"),
                               media=args.media, content=args.content, real_data=args.fsdd, workers=args.workers)
    print(", ".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


_CLIP_SECONDS = re.compile(r"^\s*(\d*\.?\d+)\s*(?:-\s*(\d*\.?\d+)\s*)?$")


def parse_clip_seconds(text: str | None, option: str = "--clip-seconds") -> tuple[float, float] | None:
    """``--clip-seconds`` (or ``option``): "A-B" -> (A, B), "S" -> (S, S), None -> None; UserError naming the
    option unless 0 < A <= B <= synth.MAX_CLIP_SECONDS."""
    if text is None:
        return None
    m = _CLIP_SECONDS.match(text)
    if m is None:
        raise UserError(f"{option}: cannot read {text!r}; expected A-B or S seconds, e.g. 10-30 or 8")
    a = float(m[1])
    b = float(m[2]) if m[2] else a
    if not 0.0 < a <= b <= MAX_CLIP_SECONDS:
        raise UserError(f"{option} {text!r}: needs A-B with 0 < A <= B <= {MAX_CLIP_SECONDS:g} seconds")
    return a, b


def run_inject(args: argparse.Namespace) -> int:
    summary = inject_dataset(args.data, args.out, label_noise=args.label_noise, noise_type=args.noise_type,
                             mismatch=args.mismatch, seed=args.seed)
    print(", ".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


def run_ingest(args: argparse.Namespace) -> int:
    from auditor.data.cache import ingest, summary  # torch and torchaudio: not for `sample` or `inject`

    if args.visual_encoder or args.audio_encoder:
        return _run_encode(args)
    result = ingest(args.data, preprocess_params(args.preset), cache_root=args.cache, workers=args.workers,
                    show_bar=True)
    print_ingest_summary(result, summary(result))
    return 0  # nothing usable: print_ingest_summary raised UserError (exit status 2)


def _run_encode(args: argparse.Namespace) -> int:
    """``ingest`` with encoder files: decode, encode, write the features file (auditor/encode.py)."""
    from auditor.data.cache import summary
    from auditor.encode import encode_data_set

    if not (args.visual_encoder and args.audio_encoder):
        raise UserError("--visual-encoder and --audio-encoder go together: give both")
    path, result = encode_data_set(args.data, args.visual_encoder, args.audio_encoder, args.out, frames=args.frames,
                                   frame_size=args.frame_size, audio_frames=args.audio_frames, workers=args.workers,
                                   cache_root=args.cache)
    print_ingest_summary(result, summary(result))
    print(f"wrote {path}\ntrain on it: python -m auditor train --data {args.data} --run RUN --features {path}")
    return 0


def print_ingest_summary(result, info: dict, out=sys.stdout) -> None:
    """The terminal summary: counts, clips per class, then problems (first SHOWN_PROBLEMS, then a count)."""
    print(f"{info['clips']} clips usable, {info['classes']} classes, "
          f"{info['total_duration_s'] / 60:.1f} min of video, decoded now: {info['decoded_now']}", file=out)
    per_class = ", ".join(f"{k}: {v}" for k, v in info["clips_per_class"].items())
    print(f"clips per class: {per_class}", file=out)
    lines = [str(p) for p in result.problems]
    lines += [f"{r.clip}: {r.problem}: {r.detail}" + ("" if r.kept else " (skipped)")
              for r in result.report.itertuples(index=False)]
    if lines:
        print(f"{len(lines)} problems:", file=out)
        for line in lines[:SHOWN_PROBLEMS]:
            print(f"  {line}", file=out)
        if len(lines) > SHOWN_PROBLEMS:
            print(f"  ... and {len(lines) - SHOWN_PROBLEMS} more (see {result.cache_dir / 'decode_report.csv'})",
                  file=out)
    if not len(result.clips):
        raise UserError(f"{result.manifest.root}: no clip could be decoded")


def data_dir_arg(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise UserError(f"{value}: no such data set folder")
    return path
