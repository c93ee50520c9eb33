"""Build a synthetic scored run directory (and optionally a tiny real data set) for UI and load tests.

:func:`make_fake_run` writes what a finished ``python -m auditor train`` leaves in a run folder — ``config.json``,
``progress.jsonl``, ``flags.csv``, ``embeddings.parquet`` (per-class clustered 2-D UMAP coordinates) and
``class_report.csv`` — with random but self-consistent numbers, so the app can be exercised without training.
With ``with_files=True`` it also writes one real 1-second mp4 per clip (64x64 H.264 + 16 kHz mono AAC) and
``labels.csv`` into ``data_dir``.

``hostile_labels=True`` names two classes ``<script>alert(1)</script>`` and ``<b>x</b>`` and makes the most
suspicious clip carry them, so tests can check that labels are rendered as text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

HOSTILE_LABELS = ("<b>x</b>", "<script>alert(1)</script>")
# Clip suffix -> (container, video codec, audio codec, sample rate) of the files written for it; .mp4 clips are
# write_tiny_clip's H.264 + AAC. UCF101's AVI (MPEG-4 Part 2 + MP3), Matroska with FLAC sound, WebM.
CONTAINERS = {".avi": ("avi", "mpeg4", "mp3", 16_000), ".mkv": ("matroska", "libx264", "flac", 16_000),
              ".webm": ("webm", "libvpx-vp9", "libopus", 48_000)}
EMBED_DIMS = {"audio": 128, "visual": 128, "fused": 256}


def class_names(n_classes: int, *, hostile_labels: bool = False) -> list[str]:
    """``class_000 ...`` (zero-padded so they sort), the first two replaced by HOSTILE_LABELS when asked."""
    width = max(3, len(str(n_classes - 1)))
    names = [f"class_{i:0{width}d}" for i in range(n_classes)]
    if hostile_labels:
        names[: len(HOSTILE_LABELS)] = HOSTILE_LABELS
    return names


def make_fake_run(run_dir: str | Path, *, data_dir: str | Path | None = None, n_clips: int = 200,
                  n_classes: int = 8, seed: int = 0, with_files: bool = False,
                  hostile_labels: bool = False, n_problems: int = 0, suffixes: tuple[str, ...] = (".mp4",)) -> Path:
    """Write a fake finished run into ``run_dir`` and return it.

    Clip ``i`` is ``clips/clip_{i:05d}<suffixes[i % len(suffixes)]>`` (files as CONTAINERS says) with given label ``classes[i % n_classes]``; about 15 % of clips get
    a high label-noise score (and a different suggested label), about 10 % a high mismatch score. The last
    ``n_problems`` clips are problem rows (empty scores, ``problem`` set), as scoring writes for undecodable clips.
    """
    if n_classes < 2 or n_clips < n_classes:
        raise ValueError(f"need n_classes >= 2 and n_clips >= n_classes, got {n_clips=} {n_classes=}")
    rng = np.random.default_rng(seed)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    data = Path(data_dir) if data_dir is not None else run.parent / "data"
    classes = class_names(n_classes, hostile_labels=hostile_labels)

    idx = np.arange(n_clips)
    given_i = idx % n_classes
    clips = [f"clips/clip_{i:05d}{suffixes[i % len(suffixes)]}" for i in idx]
    noisy = rng.random(n_clips) < 0.15
    mismatched = rng.random(n_clips) < 0.10
    label_noise = np.where(noisy, rng.uniform(0.55, 0.99, n_clips), rng.uniform(0.0, 0.45, n_clips))
    mismatch = np.where(mismatched, rng.uniform(0.55, 0.99, n_clips), rng.uniform(0.0, 0.45, n_clips))
    other = (given_i + rng.integers(1, n_classes, n_clips)) % n_classes
    suggested_i = np.where(noisy, other, given_i)
    audio_i = np.where(mismatched, (given_i + 1) % n_classes, suggested_i)
    if hostile_labels:  # the top clip of the review queue shows both hostile labels
        top = 0  # given classes[0] = "<b>x</b>"
        noisy[top], label_noise[top], mismatch[top] = True, 0.999, 0.2
        suggested_i[top] = audio_i[top] = 1  # "<script>alert(1)</script>"
    confidence = np.where(noisy, rng.uniform(0.5, 0.95, n_clips), rng.uniform(0.6, 0.99, n_clips))

    flags = pd.DataFrame({
        "clip": clips,
        "given_label": [classes[i] for i in given_i],
        "suggested_label": [classes[i] for i in suggested_i],
        "suggested_confidence": confidence.round(4),
        "label_noise_score": label_noise.round(4),
        "mismatch_score": mismatch.round(4),
        "audio_pred": [classes[i] for i in audio_i],
        "visual_pred": [classes[i] for i in suggested_i],
        "problem": "",
    })
    if n_problems:
        tail = flags.index[-n_problems:]
        flags.loc[tail, ["suggested_label", "audio_pred", "visual_pred"]] = ""
        flags["suggested_confidence"] = flags["suggested_confidence"].astype(object)
        for col in ("suggested_confidence", "label_noise_score", "mismatch_score"):
            flags[col] = flags[col].astype(object)
            flags.loc[tail, col] = ""
        flags.loc[tail, "problem"] = "corrupt"
    flags.to_csv(run / "flags.csv", index=False)

    scored = flags["problem"] == ""
    centres = {m: rng.normal(0, 10, (n_classes, 2)) for m in ("audio", "visual", "fused")}
    cls_for = {"audio": audio_i, "visual": suggested_i, "fused": suggested_i}
    emb: dict[str, object] = {"clip": [c for c, ok in zip(clips, scored, strict=True) if ok]}
    for modality, dim in EMBED_DIMS.items():
        protos = rng.normal(0, 1, (n_classes, dim)).astype(np.float32)
        vecs = protos[cls_for[modality]] + 0.3 * rng.normal(0, 1, (n_clips, dim)).astype(np.float32)
        emb[modality] = list(vecs[scored.to_numpy()])
        xy = centres[modality][cls_for[modality]] + rng.normal(0, 1, (n_clips, 2))
        emb[f"umap_{modality}_x"] = xy[scored.to_numpy(), 0].astype(np.float32)
        emb[f"umap_{modality}_y"] = xy[scored.to_numpy(), 1].astype(np.float32)
    pd.DataFrame(emb).to_parquet(run / "embeddings.parquet", index=False)

    report = []
    for k, name in enumerate(classes):
        mask = (given_i == k) & scored.to_numpy()
        swaps = pd.Series(suggested_i[mask & noisy]).map(lambda j: classes[j]).value_counts()
        report.append({"class": name, "clips": int(mask.sum()),
                       "estimated_noise_rate": round(float(noisy[mask].mean()) if mask.any() else 0.0, 4),
                       "top_suggested_replacement": swaps.index[0] if len(swaps) else "",
                       "estimated_mismatch_rate": round(float(mismatched[mask].mean()) if mask.any() else 0.0, 4)})
    pd.DataFrame(report).to_csv(run / "class_report.csv", index=False)

    run_id = f"fake-{seed}-{n_clips}x{n_classes}"
    config = {"data_dir": str(data), "classes": classes, "preset": "cpu", "run_id": run_id,
              "epochs_phase1": 2, "epochs_phase2": 2}
    (run / "config.json").write_text(json.dumps(config, indent=2))
    _write_progress(run / "progress.jsonl", rng, est_noise=float(noisy.mean()), est_mismatch=float(mismatched.mean()))

    if with_files:
        clip_dir = data / "clips"
        clip_dir.mkdir(parents=True, exist_ok=True)
        for i, clip in enumerate(clips):
            suffix = Path(clip).suffix
            if suffix in CONTAINERS:
                from tests.media import write_clip

                container, vcodec, acodec, rate = CONTAINERS[suffix]
                write_clip(data / clip, container=container, vcodec=vcodec, acodec=acodec, sample_rate=rate,
                           tone_hz=220.0 * (1 + given_i[i] % 4))
            else:
                write_tiny_clip(data / clip, tone_hz=220.0 * (1 + given_i[i] % 4), colour=_colour(given_i[i]))
        pd.DataFrame({"clip": clips, "label": flags["given_label"]}).to_csv(data / "labels.csv", index=False)
    return run


def make_quick_run(run_dir: str | Path, *, data_dir: str | Path, n_clips: int, n_classes: int, seed: int,
                   started: float) -> Path:
    """A fake finished run (:func:`make_fake_run`, no clip files) of a short training (1 + 1 epochs, its clip
    count in config.json) that flagged nothing (every score 0.1), its config.json dated ``started`` (epoch
    seconds): the newer run that the app must not open instead of the one being reviewed. Returns it."""
    run = make_fake_run(run_dir, data_dir=data_dir, n_clips=n_clips, n_classes=n_classes, seed=seed)
    flags = pd.read_csv(run / "flags.csv")
    flags[["label_noise_score", "mismatch_score"]] = 0.1
    flags.to_csv(run / "flags.csv", index=False)
    config = json.loads((run / "config.json").read_text())
    config |= {"clips": n_clips, "train": {"preset": "cpu", "method": "ntl", "epochs_phase1": 1, "epochs_phase2": 1}}
    (run / "config.json").write_text(json.dumps(config))
    os.utime(run / "config.json", (started, started))
    return run


def _colour(k: int) -> tuple[int, int, int]:
    return (60 + 50 * (k % 4), 60 + 40 * (k // 4 % 4), 200 - 30 * (k % 5))


def _write_progress(path: Path, rng: np.random.Generator, *, est_noise: float, est_mismatch: float) -> None:
    """Events in train.py's format: epochs counted over both phases (0-based in step events)."""
    epochs_phase1, epochs_total, steps = 2, 4, 3
    t = 1_700_000_000.0
    lines = [{"time": t, "event": "start", "epoch": 0, "epochs_total": epochs_total}]
    for epoch in range(epochs_total):
        phase = 1 if epoch < epochs_phase1 else 2
        for step in range(1, steps + 1):
            t += 1.5
            decay = np.exp(-(epoch * steps + step) / 6)
            terms = ("cls" if phase == 1 else "hyb", "inst", "cat")
            losses = {term: round(float(1.0 + decay + 0.05 * rng.random()), 4) for term in terms}
            losses["total"] = round(sum(losses.values()), 4)
            lines.append({"time": t, "event": "step", "phase": phase, "epoch": epoch, "epochs_total": epochs_total,
                          "step": step, "steps_per_epoch": steps, "losses": losses, "elapsed_s": t - 1.7e9})
        lines.append({"time": t, "event": "epoch", "phase": phase, "epoch": epoch + 1, "epochs_total": epochs_total,
                      "losses": losses, "est_label_noise": round(est_noise, 4), "est_mismatch": round(est_mismatch, 4),
                      "elapsed_s": t - 1.7e9, "eta_s": 4.5 * (epochs_total - epoch - 1)})
    lines.append({"time": t + 1, "event": "done", "message": "wrote flags.csv"})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def write_tiny_clip(path: str | Path, *, seconds: float = 1.0, tone_hz: float = 440.0,
                    colour: tuple[int, int, int] = (200, 80, 40), size: int = 64, fps: int = 25,
                    sample_rate: int = 16_000) -> Path:
    """A real mp4: ``size``x``size`` H.264 yuv420p at ``fps`` plus mono AAC at ``sample_rate`` (a sine tone)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=sample_rate, layout="mono")
        n_frames = int(round(seconds * fps))
        for i in range(n_frames):
            img = np.empty((size, size, 3), np.uint8)
            img[:] = colour
            img[:, (i * 2) % size] = 255  # a moving bar, so frames differ
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        wave = (0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
        chunk = 1024
        for start in range(0, wave.size, chunk):
            frame = av.AudioFrame.from_ndarray(wave[None, start:start + chunk], format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path
