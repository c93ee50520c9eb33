"""Measure trained runs on a generated data set (one with truth.csv): the figures the real-content goals name.

    python scripts/measure_run.py --data DIR [--test] RUN [RUN ...]

One JSON line per run:
* label_ap, mismatch_ap, suggestions_right, muted_flagged: auditor.metrics.flag_metrics (label AP against
  label_is_noisy, mismatch AP against is_mismatched, suggested = true label on the wrongly labelled clips, share of
  muted clips flagged as mismatched);
* label_recall, mismatch_recall, mismatch_precision, mismatch_flagged: flag_metrics' share of the wrong labels
  (swapped sounds) flagged, the share of the sound flags that are swapped sounds, the share of clips flagged for
  their sound;
* clean_flagged_label / _mismatch / _any: share of the clips with no problem (right label, own sound, not muted)
  flagged (score >= 0.5) by the label score, the mismatch score, either;
* visual_acc, audio_acc: flags.csv's visual_pred (resp. audio_pred) = the given label, on the rightly labelled clips
  (audio: with their own, audible sound); visual_min_recall, audio_min_recall: the smallest per-class recall of the
  same, against the true class; audio_recall: per class, in class order;
* est_label_noise_last5, est_mismatch_last5: progress.jsonl's estimated rates at the last five epoch ends;
* train_s, train_cpu_s: wall and CPU seconds of the training (the last epoch's elapsed_s, cpu_s);
* with ``--test`` (a run of the frame presets, DIR/test a clean held-out split as ``sample --test-clips`` writes):
  test_visual_acc, test_audio_acc, test_av_acc: the network's own heads (argmax p^v, p^a, p^av of the final
  checkpoint, evaluation mode) against the labels of DIR/test; test_visual_recall, test_audio_recall: per class, in
  the run's class order; test_visual_min_recall, test_audio_min_recall: their smallest.
Figures of runs in BENCHMARKS.md name this command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from auditor.data.cache import prepare_data
from auditor.metrics import flag_metrics
from auditor.model.checkpoint import load_trained
from auditor.model.config import TrainConfig
from auditor.model.estimate import evaluate
from auditor.model.presets import preprocess_params
from auditor.run_folder import read_progress
from auditor.workspace import cache_root


def measure(data: Path, run: Path) -> dict:
    flags, truth = pd.read_csv(run / "flags.csv"), pd.read_csv(data / "truth.csv")
    m = flags.merge(truth.drop(columns=["given_label"], errors="ignore"), on="clip")
    noisy, mismatched = m["label_is_noisy"] == 1, m["is_mismatched"] == 1
    muted = m["is_muted"] == 1 if "is_muted" in m else pd.Series(False, index=m.index)
    clean = ~noisy & ~mismatched & ~muted
    label, sound = m["label_noise_score"] >= 0.5, m["mismatch_score"] >= 0.5
    metrics = flag_metrics(flags, truth)
    own = ~noisy & ~mismatched & ~muted & (m["problem"].isna() | (m["problem"] == ""))
    out = {"run": run.name, "clips": len(m), "label_ap": metrics.get("label_ap"),
           "mismatch_ap": metrics.get("mismatch_ap"), "suggestions_right": metrics["suggestion_acc_noisy"],
           "muted_flagged": metrics["muted_flagged_mismatch"], "label_recall": metrics.get("label_recall"),
           "mismatch_recall": metrics.get("mismatch_recall"), "mismatch_precision": metrics.get("mismatch_precision"),
           "mismatch_flagged": metrics.get("mismatch_flagged"),
           "clean_flagged_label": label[clean].mean(), "clean_flagged_mismatch": sound[clean].mean(),
           "clean_flagged_any": (label | sound)[clean].mean(),
           "visual_acc": (m["visual_pred"] == m["given_label"])[~noisy].mean(),
           "audio_acc": (m["audio_pred"] == m["given_label"])[own].mean()}
    visual = (m["visual_pred"] == m["true_label"])[~noisy].groupby(m["true_label"][~noisy]).mean()
    audio = (m["audio_pred"] == m["true_label"])[own].groupby(m["true_label"][own]).mean()
    out |= {"visual_min_recall": visual.min(), "audio_min_recall": audio.min(),
            "audio_recall": [round(float(x), 2) for x in audio]}
    epochs = [e for e in read_progress(run) if e.get("event") == "epoch"]
    if epochs and "est_label_noise" in epochs[-1]:
        out["est_label_noise_last5"] = [round(e["est_label_noise"], 3) for e in epochs[-5:]]
        out["est_mismatch_last5"] = [round(e["est_mismatch"], 3) for e in epochs[-5:]]
    if epochs:
        out |= {"train_s": epochs[-1]["elapsed_s"], "train_cpu_s": epochs[-1].get("cpu_s")}
    return {k: round(float(v), 3) if isinstance(v, float) else v for k, v in out.items()}


def measure_test(test_dir: Path, run: Path) -> dict:
    """The network's own heads of ``run`` on the clean test split ``test_dir`` (see the module docstring)."""
    model, ckpt = load_trained(run)
    cfg, classes = TrainConfig(**ckpt["config"]), ckpt["classes"]
    _, arrays = prepare_data(test_dir, preprocess_params(cfg.preset), show_bar=False, cache_root=cache_root(test_dir))
    labels = torch.tensor([classes.index(c) for c in arrays.labels])
    ev = evaluate(model, arrays, np.arange(len(labels)), cfg, torch.device("cpu"))
    out = {}
    for head, name in (("logits_v", "visual"), ("logits_a", "audio"), ("logits_av", "av")):
        right = ev[head].argmax(1) == labels
        out[f"test_{name}_acc"] = float(right.float().mean())
        if name != "av":
            recall = [round(float(right[labels == k].float().mean()), 2) for k in range(len(classes))
                      if (labels == k).any()]
            out |= {f"test_{name}_recall": recall, f"test_{name}_min_recall": min(recall)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="the generated data set (with truth.csv)")
    p.add_argument("--test", action="store_true", help="also the network's heads on DIR/test (clean held-out split)")
    p.add_argument("runs", nargs="+", type=Path, help="run folders trained or scored on it")
    args = p.parse_args()
    for run in args.runs:
        out = measure(args.data, run)
        if args.test:
            out |= {k: round(v, 3) if isinstance(v, float) else v for k, v in measure_test(args.data / "test", run).items()}
        print(json.dumps(out))


if __name__ == "__main__":
    main()
