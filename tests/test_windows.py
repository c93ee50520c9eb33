"""Long clips as aligned windows: decode (frames and sound of the same time span), the store's window rows,
training draws and the evaluation's per-clip summary, and windows.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from auditor.data.cache import ingest, load_arrays
from auditor.data.decode import WINDOW_TOLERANCE, decode_clip, window_spans
from auditor.data.features import audio_level_dbfs
from auditor.data.params import PreprocessParams
from auditor.model.config import TrainConfig
from auditor.model.estimate import evaluate
from auditor.model.inputs import MEL_OFFSET, MEL_SCALE, draw_batch, make_inputs, window_draw_weights
from auditor.model.network import AudioVisualNet
from auditor.model.presets import get_preset
from tests.conftest import run_cli
from tests.media import write_clip

PARAMS = PreprocessParams(num_frames=4, frame_size=32)
TONE = (15.0, 17.0)  # seconds: the only loud sound of the long test clips


def _frame_times(frames: np.ndarray, seconds: float) -> np.ndarray:
    """The times written into gray_clock frames."""
    return frames[:, 16, 16, 0].astype(float) / 255 * seconds


@pytest.mark.parametrize("duration", [2.0, 10.0, 10.0 * (1 + WINDOW_TOLERANCE) - 0.01, 26.0, 45.0, 600.0])
def test_window_spans_cover_the_clip_in_equal_aligned_parts(duration):
    spans = window_spans(duration, 10.0, 8)
    if duration <= 10.0 * (1 + WINDOW_TOLERANCE):
        assert spans == [(0.0, duration)]
        return
    count = len(spans)
    assert count == min(8, int(np.ceil(duration / 10.0 - WINDOW_TOLERANCE)))
    part = duration / count
    for w, (start, end) in enumerate(spans):
        assert w * part <= start < end <= (w + 1) * part + 1e-9
        assert end - start == pytest.approx(min(part, 10.0))
        assert (start + end) / 2 == pytest.approx((w + 0.5) * part)
    assert window_spans(duration, 10.0, 1) == [(0.0, duration)]


@pytest.mark.parametrize("seconds", [26.0, 45.0])  # 45 s: frames fetched by seeking (SEEK_ABOVE_SECONDS)
def test_decode_gives_frames_and_sound_of_the_same_span(tmp_path, seconds):
    path = write_clip(tmp_path / "long.mp4", seconds=seconds, tone_between=TONE, gray_clock=True)
    dec = decode_clip(path, num_frames=4, size=32, max_windows=8)
    assert [(round(w.start, 6), round(w.end, 6)) for w in dec.windows] == \
        [(round(a, 6), round(b, 6)) for a, b in window_spans(dec.duration, 10.0, 8)]
    assert dec.frames is dec.windows[0].frames and not dec.warning
    levels = []
    for win in dec.windows:
        times = _frame_times(win.frames, seconds)
        assert (times > win.start - 0.3).all() and (times < win.end + 0.3).all(), (win.start, win.end, times)
        assert win.audio.size == pytest.approx((win.end - win.start) * 16_000, abs=2)
        levels.append(audio_level_dbfs(win.audio))
    loud = [i for i, w in enumerate(dec.windows) if w.start < TONE[1] and w.end > TONE[0]]
    assert loud and all(levels[i] > -20 for i in loud)
    assert all(-60 < levels[i] < -40 for i in range(len(levels)) if i not in loud)
    single = decode_clip(path, num_frames=4, size=32)  # the default: one window, as before
    assert len(single.windows) == 1 and single.windows[0].end == single.duration


def _dataset(root, seconds: list[float]):
    for i, s in enumerate(seconds):
        write_clip(root / "clips" / f"c{i}.mp4", seconds=s, tone_between=(s / 2 - 0.5, s / 2 + 0.5) if s > 13 else None,
                   tone_hz=300.0 + 50 * i)
    (root / "labels.csv").write_text("clip,label\n" + "".join(f"clips/c{i}.mp4,{'ab'[i % 2]}\n"
                                                              for i in range(len(seconds))))


def test_ingest_stores_one_row_per_window_and_reuses_them(tmp_path):
    _dataset(tmp_path, [26.0, 1.0, 14.0, 1.5])
    first = ingest(tmp_path, PARAMS, workers=1)
    arrays = load_arrays(first)
    assert arrays.windows is not None and arrays.windows.shape == (4, 3)
    assert arrays.window_counts().tolist() == [3, 1, 2, 1]
    assert (arrays.windows[:, 0] == arrays.rows).all() and arrays.store.rows == 7
    index = arrays.store.index.set_index("key")
    key0 = first.clips["key"].iat[0]
    spans = [(index.at[k, "start_s"], index.at[k, "end_s"]) for k in (key0, f"{key0}@1", f"{key0}@2")]
    want = window_spans(first.clips["duration"].iat[0], 10.0, 8)
    assert np.allclose(np.array(spans), np.array(want), atol=1e-4)
    dec = decode_clip(tmp_path / "clips/c0.mp4", num_frames=4, size=32, max_windows=8)
    for w in range(3):
        assert np.array_equal(arrays.frames[arrays.windows[0, w]], dec.windows[w].frames)
    view = arrays.at_windows(np.array([0, 2]), np.array([2, 1]))
    assert view.rows.tolist() == [arrays.windows[0, 2], arrays.windows[2, 1]]
    again = ingest(tmp_path, PARAMS, workers=1)
    assert again.decoded_now == 0 and again.clips["audio"].tolist() == first.clips["audio"].tolist()
    assert load_arrays(again).windows.tolist() == arrays.windows.tolist()
    # a data set of short clips has no window matrix: everything reads as before
    _dataset(tmp_path / "short", [1.0, 1.2])
    assert load_arrays(ingest(tmp_path / "short", PARAMS, workers=1)).windows is None


def test_training_draws_a_window_per_clip_and_evaluation_summarises_them(tmp_path):
    _dataset(tmp_path, [26.0, 1.0, 14.0, 1.5])
    arrays = load_arrays(ingest(tmp_path, PARAMS, workers=1))
    preset = get_preset("cpu")
    idx = np.array([0, 1, 2, 3])
    weights = window_draw_weights(arrays.window_levels(idx))
    assert weights[0].argmax() == 1  # the window of clip 0's tone
    drawn = []
    for seed in range(300):
        draws = draw_batch(arrays, idx, preset.num_frames, preset.audio_frames, np.random.default_rng(seed))
        assert ((draws.windows >= 0) & (draws.windows < arrays.window_counts())).all()
        drawn.append(draws.windows)
    share = (np.array(drawn)[:, 0, None] == np.arange(3)).mean(0)
    assert np.abs(share - weights[0]).max() < 0.08
    frames, _ = make_inputs(arrays, idx, draws, preset.audio_frames)
    assert frames.shape[0] == 4

    torch.manual_seed(0)
    model = AudioVisualNet(preset, 2, 16, False)
    cfg = TrainConfig(embed_dim=16)
    out: dict = {}
    ev = evaluate(model, arrays, idx, cfg, torch.device("cpu"), windows_out=out)
    assert ev["z_v"].shape == (4, 16) and ev["logits_av"].shape == (4, 2)
    assert out["owner"].tolist() == [0, 0, 0, 1, 2, 2, 3] and out["window"].tolist() == [0, 1, 2, 0, 0, 1, 0]
    items, owner, _ = arrays.window_items(idx)
    per_item = evaluate(model, items, np.arange(len(owner)), cfg, torch.device("cpu"))
    levels = arrays.window_levels(idx)
    for i in range(4):
        mine = np.flatnonzero(owner == i)
        loudest = levels[i].max()
        present = [j for j in mine if items.has_audio[j] and levels[i, out["window"][j]] >= loudest - 10]
        present = present or [mine[0]]
        best = min(present, key=lambda j: out["ell"][j])
        assert out["best"][mine].tolist() == [j == best for j in mine]
        assert out["audible"][mine].tolist() == [j in present and bool(items.has_audio[j]) for j in mine]
        assert np.array_equal(out["level"][mine], levels[i, out["window"][mine]], equal_nan=True)
        assert torch.allclose(ev["z_v"][i], per_item["z_v"][best], atol=1e-6)
        assert torch.allclose(ev["logits_av"][i], per_item["logits_av"][mine].mean(0), atol=1e-5)


def test_window_draw_weights_follow_the_sound_amplitude():
    inf = np.inf
    nan = np.nan
    w = window_draw_weights(np.array([[-20.0, -20.0, -inf], [-20.0, -40.0, -inf], [nan, nan, -inf],
                                      [-30.0, -inf, -inf], [-200.0, -200.0, -200.0]]))
    assert np.allclose(w.sum(1), 1)
    assert np.allclose(w[0], [0.5, 0.5, 0])  # equally loud: equally likely; no third window: never
    assert w[1, 0] == pytest.approx(10 / 11)  # 20 dB louder: 10 times the amplitude
    assert np.allclose(w[2], [0.5, 0.5, 0])  # no sound track: uniform over the clip's windows
    assert np.allclose(w[3], [1, 0, 0])
    assert np.allclose(w[4], 1 / 3)  # digital silence throughout: equally (im)probable


@pytest.mark.slow
def test_train_and_score_write_windows_csv(tmp_path):
    _dataset(tmp_path / "data", [26.0, 1.0, 14.0, 1.5, 22.0, 1.0])
    run = tmp_path / "run"
    run_cli("train", "--data", str(tmp_path / "data"), "--run", str(run), "--epochs-phase1", "2",
            "--warmup-epochs", "1", "--epochs-phase2", "0", "--batch-size", "4", "--quiet")
    windows = pd.read_csv(run / "windows.csv")
    assert windows.groupby("clip").size().to_dict() == {"clips/c0.mp4": 3, "clips/c1.mp4": 1, "clips/c2.mp4": 2,
                                                        "clips/c3.mp4": 1, "clips/c4.mp4": 2, "clips/c5.mp4": 1}
    assert (windows.groupby("clip")["best_aligned"].sum() == 1).all()
    assert (windows["end_s"] > windows["start_s"]).all() and windows["infonce_loss"].notna().all()
    assert windows.columns.tolist() == ["clip", "window", "start_s", "end_s", "audio", "infonce_loss", "cosine",
                                        "level_dbfs", "audible", "best_aligned"]
    assert (windows["audible"] >= windows["best_aligned"]).all()  # the judged window is an audible one
    assert windows.loc[windows["clip"] == "clips/c0.mp4", "audible"].tolist() == [0, 1, 0]  # its tone's window
    flags = pd.read_csv(run / "flags.csv")
    assert len(flags) == 6 and flags["mismatch_score"].between(0, 1).all()


def test_the_sound_crop_goes_where_the_window_is_loud():
    from auditor.data.features import SILENCE
    from auditor.model.inputs import loud_crop_offset

    mel = np.full((64, 1000), -7.0, np.float16)  # quiet background
    mel[:, 600:700] = 2.0  # the event
    best = loud_crop_offset(mel, 256, np.nan)
    assert best <= 600 and best + 256 >= 700  # the whole event in the loudest crop
    rng = np.random.default_rng(0)
    drawn = np.array([loud_crop_offset(mel, 256, u) for u in rng.random(400)])
    assert ((drawn <= 700) & (drawn + 256 >= 600)).mean() > 0.9  # training crops hear the event
    assert len(set(drawn.tolist())) > 20  # still random
    short = np.full((64, 100), SILENCE, np.float16)
    assert loud_crop_offset(short, 256, np.nan) == (256 - 100) // 2  # evaluation: padded, centred
    placed = np.array([loud_crop_offset(short, 256, u) for u in rng.random(2000)])
    assert placed.min() == 0 and placed.max() == 256 - 100  # training: every placement, the clip inside the crop
    assert len(set(placed.tolist())) > 100


def test_a_short_clips_sound_crop_hears_its_event_wherever_it_is(tmp_path):
    """A clip of one window whose sound event lies outside the middle 2.56 s: evaluation hears the event, and
    most training crops do."""
    write_clip(tmp_path / "clips" / "early.mp4", seconds=7.0, tone_between=(0.2, 0.7), tone_hz=500.0)
    write_clip(tmp_path / "clips" / "other.mp4", seconds=1.0)  # a data set has two classes
    (tmp_path / "labels.csv").write_text("clip,label\nclips/early.mp4,a\nclips/other.mp4,b\n")
    arrays = load_arrays(ingest(tmp_path, PARAMS, workers=1))
    assert arrays.windows is None
    preset = get_preset("cpu")
    loudest = float(arrays.read_mel(0).astype(np.float32).max())
    _, mel = make_inputs(arrays, np.array([0]), draw_batch(arrays, np.array([0]), 2, preset.audio_frames, None),
                         preset.audio_frames)
    assert float(mel.max()) * MEL_SCALE + MEL_OFFSET == pytest.approx(loudest, abs=1e-3)
    heard = []
    for seed in range(40):
        draws = draw_batch(arrays, np.array([0]), 2, preset.audio_frames, np.random.default_rng(seed))
        draws.gain[:] = 0
        _, mel = make_inputs(arrays, np.array([0]), draws, preset.audio_frames)
        heard.append(float(mel.max()) * MEL_SCALE + MEL_OFFSET >= loudest - 1e-3)
    assert np.mean(heard) > 0.5  # a crop placed uniformly: about 1 in 10
