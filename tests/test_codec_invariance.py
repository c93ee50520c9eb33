"""Flags must not depend on the container or codec: the bundled sample's clips re-encoded with PyAV (MPEG-4 Part 2
+ MP3 in AVI, H.264 + FLAC 44.1 kHz stereo in Matroska, VP9 + Opus 48 kHz stereo in WebM) and scored by the shipped
model get the same flags as the original mp4 clips, and nearly the same scores (margins, not tuned figures:
scoring a fixed model on fixed files is deterministic). Every clip of the sample is scored: a batch's scores come
from estimates fitted on the batch itself (cross-fitted heads, the mixtures), and on a batch of a few dozen clips
they move with any small change of the evidence, whatever its cause (BENCHMARKS.md, eighteenth session)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from auditor.data.cache import prepare_data
from auditor.data.mux import transcode
from auditor.flags import FLAG_THRESHOLD
from auditor.model.checkpoint import load_trained
from auditor.model.presets import preprocess_params
from auditor.scoring import score_and_write
from tests.conftest import REPO

ENCODINGS = [(".avi", {"video_codec": "mpeg4", "audio_codec": "mp3"}),
             (".mkv", {"video_codec": "libx264", "audio_codec": "flac", "sample_rate": 44_100, "stereo": True}),
             (".webm", {"video_codec": "libvpx-vp9", "audio_codec": "libopus", "sample_rate": 48_000, "stereo": True})]
SCORE_TOLERANCE = 0.1  # per clip, on label_noise_score and mismatch_score
MIN_AGREEMENT = 0.9  # share of clips with the same flag decision and within SCORE_TOLERANCE


def _score(model, ckpt, data, out):
    result, arrays = prepare_data(data, preprocess_params(ckpt["config"]["preset"]), workers=1, show_bar=False,
                                  cache_root=out / "cache")
    return score_and_write(model, ckpt["config"], result, arrays, out, classes=ckpt["classes"], umap=False)


@pytest.mark.slow
def test_reencoded_clips_get_the_same_flags(tmp_path):
    labels = pd.read_csv(REPO / "sample_data" / "labels.csv")
    original, reencoded = tmp_path / "mp4", tmp_path / "other"
    rows = []
    for i, (clip, label) in enumerate(labels.itertuples(index=False)):
        (original / clip).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "sample_data" / clip, original / clip)
        suffix, codecs = ENCODINGS[i % len(ENCODINGS)]
        transcode(REPO / "sample_data" / clip, reencoded / clip, **codecs)
        rows.append((clip, label, clip.removesuffix(".mp4") + suffix))
    for clip, _, new in rows:
        (reencoded / clip).rename(reencoded / new)
    pd.DataFrame({"clip": [c for c, _, _ in rows], "label": [lab for _, lab, _ in rows]}).to_csv(
        original / "labels.csv", index=False)
    pd.DataFrame({"clip": [n for _, _, n in rows], "label": [lab for _, lab, _ in rows]}).to_csv(
        reencoded / "labels.csv", index=False)

    model, ckpt = load_trained(REPO / "models" / "sample")
    a = _score(model, ckpt, original, tmp_path / "run_a").set_index("clip")
    b = _score(model, ckpt, reencoded, tmp_path / "run_b")
    b["clip"] = [c for c, _, _ in rows]
    b = b.set_index("clip").loc[a.index]
    assert (a["problem"] == "").all() and (b["problem"] == "").all()
    agree = np.ones(len(a), bool)
    for col in ("label_noise_score", "mismatch_score"):
        agree &= (a[col] >= FLAG_THRESHOLD) == (b[col] >= FLAG_THRESHOLD)
        agree &= (a[col] - b[col]).abs() <= SCORE_TOLERANCE
    assert agree.mean() >= MIN_AGREEMENT, pd.concat([a, b], axis=1, keys=["mp4", "other"])[~agree]
