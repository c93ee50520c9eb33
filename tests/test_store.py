"""The memory-mapped array store (data/store.py) and the DataLoader path that reads it (model/loader.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from auditor.data.cache import ingest, load_arrays
from auditor.data.decode import decode_clip
from auditor.data.features import SILENCE, log_mel
from auditor.data.params import PreprocessParams
from auditor.data.store import open_store
from auditor.model.inputs import batch_inputs, make_inputs
from auditor.model.loader import EpochPlan, evaluation_batches, loader_workers, training_batches
from tests.conftest import REPO
from tests.media import write_clip

PARAMS = PreprocessParams(num_frames=4, frame_size=32)


def _clips(root, seconds: dict[str, float]) -> None:
    """Clips named by ``seconds`` (name -> duration), labels a/b alternating, in this order in labels.csv."""
    for i, (name, dur) in enumerate(seconds.items()):
        if not (root / "clips" / f"{name}.mp4").exists():
            write_clip(root / "clips" / f"{name}.mp4", seconds=dur, tone_hz=300.0 + 60 * i)
    (root / "labels.csv").write_text("clip,label\n" + "".join(f"clips/{name}.mp4,{'ab'[i % 2]}\n"
                                                              for i, name in enumerate(seconds)))


def _manifest(result) -> dict:
    return json.loads((result.store_dir / "store.json").read_text())


def _touch(path) -> None:
    later = time.time() + 5
    os.utime(path, (later, later))


def test_store_holds_the_decoded_tensors_and_is_reused(tmp_path):
    _clips(tmp_path, {"c0": 1.0, "c1": 0.6, "c2": 1.2})
    first = ingest(tmp_path, PARAMS, workers=1)
    assert not list(first.cache_dir.rglob("*.npz")), "packed entries are deleted: the store is their copy"
    arrays = load_arrays(first)
    assert arrays.frames.shape == (3, 4, 32, 32, 3) and arrays.mel.shape[:2] == (3, 64)
    for i, clip in enumerate(arrays.clips):
        dec = decode_clip(tmp_path / clip, num_frames=4, size=32)
        mel = log_mel(dec.audio).astype(np.float16)
        assert np.array_equal(arrays.frames[arrays.rows[i]], dec.frames)
        assert arrays.mel_lengths[i] == mel.shape[-1]
        assert np.array_equal(arrays.mel[arrays.rows[i], :, :mel.shape[-1]], mel)
        assert (arrays.mel[arrays.rows[i], :, mel.shape[-1]:] == np.float16(SILENCE)).all()

    again = ingest(tmp_path, PARAMS, workers=1)
    assert again.decoded_now == 0 and _manifest(again) == _manifest(first)
    assert again.clips.drop(columns="key").equals(first.clips.drop(columns="key"))


def test_changed_and_added_clips_are_appended_and_a_longer_one_rewrites(tmp_path):
    _clips(tmp_path, {"c0": 1.0, "c1": 1.0})
    first = _manifest(ingest(tmp_path, PARAMS, workers=1))
    write_clip(tmp_path / "clips" / "c0.mp4", seconds=0.8, tone_hz=900.0)
    _touch(tmp_path / "clips" / "c0.mp4")
    _clips(tmp_path, {"c0": 0.8, "c1": 1.0, "c2": 0.6})
    result = ingest(tmp_path, PARAMS, workers=1)
    appended = _manifest(result)
    assert result.decoded_now == 2
    assert appended["rows"] == 4 and appended["frames"] == first["frames"] and appended["commit"] == 2
    arrays = load_arrays(result)
    assert arrays.rows.tolist() == [2, 1, 3]  # the changed c0 is a new row; its old row is dead
    changed = decode_clip(tmp_path / "clips/c0.mp4", num_frames=4, size=32)
    assert arrays.mel_lengths[0] == log_mel(changed.audio).shape[-1]

    _clips(tmp_path, {"c0": 0.8, "c1": 1.0, "c2": 0.6, "long": 2.0})
    rewritten = _manifest(longer := ingest(tmp_path, PARAMS, workers=1))
    assert longer.decoded_now == 1 and rewritten["frames"] != first["frames"]
    assert rewritten["rows"] == 4 and rewritten["mel_length"] > appended["mel_length"]
    assert sorted(p.name for p in longer.store_dir.iterdir()) == sorted(
        ["store.json", rewritten["frames"], rewritten["mel"], rewritten["index"]]), "old commits are deleted"
    moved = load_arrays(longer)
    assert np.array_equal(moved.read_frames(np.arange(3), np.zeros((3, 1), int)),
                          arrays.read_frames(np.arange(3), np.zeros((3, 1), int)))


def test_dead_rows_are_compacted_and_another_data_set_copies_rows_instead_of_decoding(tmp_path):
    names = {f"c{i}": 0.6 for i in range(6)}
    _clips(tmp_path / "full", names)
    ingest(tmp_path / "full", PARAMS, workers=1, cache_root=tmp_path / "cache")
    subset = tmp_path / "subset"
    (subset / "clips").mkdir(parents=True)
    for name in ("c0", "c1"):
        os.link(tmp_path / "full" / "clips" / f"{name}.mp4", subset / "clips" / f"{name}.mp4")
    _clips(subset, {"c0": 0.6, "c1": 0.6})
    other = ingest(subset, PARAMS, workers=1, cache_root=tmp_path / "cache")
    assert other.decoded_now == 0 and _manifest(other)["rows"] == 2

    _clips(tmp_path / "full", {"c4": 0.6, "c5": 0.6})  # four of six clips leave: dead rows outnumber live ones
    shrunk = ingest(tmp_path / "full", PARAMS, workers=1, cache_root=tmp_path / "cache")
    assert shrunk.decoded_now == 0 and _manifest(shrunk)["rows"] == 2
    assert load_arrays(shrunk).mel_lengths.tolist() == load_arrays(other).mel_lengths.tolist()


# Code run before a child's ingest: it SIGKILLs itself at one point of writing the store.
_KILL_AT = {
    "rows": """
read, calls = store._Source.read, []
def second_read_dies(source):
    calls.append(source)
    if len(calls) == 2:
        os.kill(os.getpid(), 9)
    return read(source)
store._Source.read = second_read_dies
""",
    "manifest": "store.atomic_write_text = lambda *args: os.kill(os.getpid(), 9)",
}


@pytest.mark.parametrize("point", sorted(_KILL_AT))
@pytest.mark.parametrize("when", ["first ingest", "append"])
def test_kill_9_while_writing_the_store_leaves_nothing_trusted(tmp_path, point, when):
    _clips(tmp_path, {"c0": 1.0, "c1": 0.6, "c2": 1.0})
    if when == "append":
        before = _manifest(ingest(tmp_path, PARAMS, workers=1))
        _clips(tmp_path, {"c0": 1.0, "c1": 0.6, "c2": 1.0, "c3": 0.9, "c4": 0.7})
    code = ("import os, sys\nfrom auditor.data import store\nfrom auditor.data.cache import ingest\n"
            "from auditor.data.params import PreprocessParams\n" + _KILL_AT[point] +
            "\ningest(sys.argv[1], PreprocessParams(num_frames=4, frame_size=32), workers=1)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    cache = tmp_path / ".auditor" / "cache" / PARAMS.digest()
    stores = list(cache.glob("stores/*"))
    committed = [open_store(s) for s in stores if (s / "store.json").exists()]
    if when == "append":  # the last commit is intact
        assert [s.manifest for s in committed] == [before]
    else:
        assert committed == []
    assert len(list(cache.rglob("*.npz"))) == (2 if when == "append" else 3), "entries survive until a commit"

    result = ingest(tmp_path, PARAMS, workers=1)
    assert result.decoded_now == 0
    arrays = load_arrays(result)
    assert len(arrays.clips) == len(result.clips) and arrays.rows.max() < _manifest(result)["rows"]
    assert not [p for p in result.store_dir.iterdir() if p.name.startswith(".tmp-")]
    size = (result.store_dir / _manifest(result)["frames"]).stat().st_size
    assert size == _manifest(result)["rows"] * 4 * 32 * 32 * 3, "bytes of the killed write are cut off"


def test_a_long_ingest_packs_as_it_goes_and_a_kill_loses_only_the_clip_being_decoded(tmp_path):
    _clips(tmp_path, {f"c{i}": 0.6 for i in range(7)})
    code = ("import os, sys\nfrom auditor.data import cache\nfrom auditor.data.params import PreprocessParams\n"
            "cache.PACK_EVERY = 2\ndecode, calls = cache.decode_to_cache, []\n"
            "def fifth_dies(*args):\n    calls.append(1)\n    if len(calls) == 5:\n        os.kill(os.getpid(), 9)\n"
            "    return decode(*args)\ncache.decode_to_cache = fifth_dies\n"
            "cache.ingest(sys.argv[1], PreprocessParams(num_frames=4, frame_size=32), workers=1)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    store = open_store(next((tmp_path / ".auditor" / "cache" / PARAMS.digest() / "stores").iterdir()))
    assert store.rows == 4 and store.manifest["commit"] == 2
    result = ingest(tmp_path, PARAMS, workers=1)
    assert result.decoded_now == 3
    fresh = load_arrays(ingest(tmp_path, PARAMS, workers=1, cache_root=tmp_path / "fresh"))
    arrays = load_arrays(result)
    picks = np.zeros((7, 4), int) + np.arange(4)
    assert np.array_equal(arrays.read_frames(np.arange(7), picks), fresh.read_frames(np.arange(7), picks))
    assert all(np.array_equal(arrays.read_mel(i), fresh.read_mel(i)) for i in range(7))


def test_arrays_pickle_by_reference_to_the_store(tmp_path):
    _clips(tmp_path, {"c0": 1.0, "c1": 0.6})
    arrays = load_arrays(ingest(tmp_path, PARAMS, workers=1))
    blob = pickle.dumps(arrays)
    assert len(blob) < 10_000
    back = pickle.loads(blob)
    assert np.array_equal(back.mel, arrays.mel) and np.array_equal(back.frames, arrays.frames)


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    _clips(root, {f"c{i}": 0.5 + 0.12 * i for i in range(10)})
    return load_arrays(ingest(root, PARAMS, workers=1))


def _in_process_batches(arrays, seed: int, epoch: int, batch: int, steps: int):
    """The training loop's batches before the DataLoader: per (seed, epoch) one stream orders the clips, another
    draws the whole batch's augmentation."""
    rng = np.random.default_rng([seed, epoch, 1])
    perm = np.random.default_rng([seed, epoch, 0]).permutation(len(arrays.clips))
    for step in range(steps):
        rows = perm[step * batch:(step + 1) * batch]
        yield rows, *batch_inputs(arrays, rows, 3, 40, rng)


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_gives_the_in_process_batches_for_any_workers_and_ranks(arrays, workers):
    batch, steps, world = 4, 2, 2
    plans = [EpochPlan(arrays, seed=7, batch_size=batch, local_batch=batch // world, rank=rank, steps=steps,
                       num_frames=3, audio_frames=40, flip_frames=True) for rank in range(world)]
    single = EpochPlan(arrays, seed=7, batch_size=batch, local_batch=batch, rank=0, steps=steps, num_frames=3,
                       audio_frames=40, flip_frames=True)
    loaders = [training_batches(arrays, p, workers, pin_memory=False) for p in [single, *plans]]
    for epoch in (0, 3):
        for p in [single, *plans]:
            p.set_epoch(epoch)
        expected = list(_in_process_batches(arrays, 7, epoch, batch, steps))
        got_single = list(loaders[0])
        got_ranks = list(zip(*(list(loader) for loader in loaders[1:]), strict=True))
        assert len(got_single) == len(got_ranks) == steps
        for want, one, ranks in zip(expected, got_single, got_ranks, strict=True):
            for k in range(3):
                want_k = torch.as_tensor(want[k])
                assert torch.equal(one[k], want_k)
                assert torch.equal(torch.cat([r[k] for r in ranks]), want_k)


def test_order_and_augmentation_come_from_independent_streams(arrays):
    """The augmentation of an epoch is not drawn from the stream that ordered its clips (the same seed for both
    would tie each clip's flips, shifts and gains to its place in the order)."""
    plan = EpochPlan(arrays, seed=7, batch_size=4, local_batch=4, rank=0, steps=2, num_frames=3, audio_frames=40,
                     flip_frames=True)
    plan.set_epoch(2)
    rows, _ = next(iter(plan))
    tied = batch_inputs(arrays, rows, 3, 40, np.random.default_rng([7, 2]))
    frames, mel = batch_inputs(arrays, rows, 3, 40, np.random.default_rng([7, 2, 1]))
    ours = training_batches(arrays, plan, 0, pin_memory=False)
    _, got_frames, got_mel = next(iter(ours))
    assert torch.equal(got_frames, frames) and torch.equal(got_mel, mel)
    assert not (torch.equal(got_frames, tied[0]) and torch.equal(got_mel, tied[1]))
    order = np.random.default_rng([7, 2, 0]).permutation(len(arrays.clips))
    assert np.array_equal(rows, order[:4])


def test_frames_are_mirrored_only_where_the_run_asks_for_it(arrays):
    """EpochPlan.flip_frames off (before the mirror test has decided, or train --flip-frames never): the epoch's draws are those of the same stream with every flip
    off, and every other choice (frames, shift, crop, gain) unchanged; on: some clips of the epoch are mirrored."""
    kwargs = dict(seed=7, batch_size=4, local_batch=4, rank=0, steps=2, num_frames=3, audio_frames=40)
    plain, mirrored = EpochPlan(arrays, **kwargs, flip_frames=False), EpochPlan(arrays, **kwargs, flip_frames=True)
    flips = []
    for (rows, draws), (rows_m, draws_m) in zip(plain, mirrored, strict=True):
        assert np.array_equal(rows, rows_m)
        assert not draws.flip.any()
        for name in ("picks", "crop", "shift", "gain"):
            assert np.array_equal(getattr(draws, name), getattr(draws_m, name))
        frames, mel = make_inputs(arrays, rows, draws, 40)
        want_frames, want_mel = make_inputs(arrays, rows, dataclasses.replace(draws_m, flip=draws.flip), 40)
        assert torch.equal(frames, want_frames) and torch.equal(mel, want_mel)
        flips.append(draws_m.flip)
    assert np.concatenate(flips).any()


def test_a_mirrored_evaluation_reads_each_clips_mirror_image(arrays):
    """evaluation_batches(mirrored=True): the same clips, sound and frame picks, every frame mirrored left-right
    and nothing else changed (the mirror test's input)."""
    idx = np.arange(len(arrays.clips))
    plain = list(evaluation_batches(arrays, idx, 4, 3, 40, workers=0, pin_memory=False))
    mirrored = list(evaluation_batches(arrays, idx, 4, 3, 40, workers=0, pin_memory=False, mirrored=True))
    assert len(plain) == len(mirrored) == 3
    for (rows, frames, mel), (rows_m, frames_m, mel_m) in zip(plain, mirrored, strict=True):
        assert torch.equal(rows, rows_m) and torch.equal(mel, mel_m)
        assert torch.equal(frames_m, frames.flip(-1)) and not torch.equal(frames_m, frames)


def test_automatic_loader_workers(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert loader_workers(-1, torch.device("cpu"), 1) == 0 and loader_workers(3, torch.device("cpu"), 1) == 3
    assert loader_workers(-1, torch.device("cuda"), 1) == 8 and loader_workers(-1, torch.device("cuda", 1), 4) == 3


def test_evaluation_batches_are_the_same_from_loader_workers(tmp_path):
    from auditor.model.loader import evaluation_batches

    _clips(tmp_path, {"c0": 1.0, "c1": 0.6, "c2": 1.2, "c3": 0.8, "c4": 1.1})
    arrays = load_arrays(ingest(tmp_path, PARAMS, workers=1))
    idx = np.array([4, 0, 2, 1, 3])
    here = list(evaluation_batches(arrays, idx, 2, 2, 64, workers=0, pin_memory=False))
    ahead = list(evaluation_batches(arrays, idx, 2, 2, 64, workers=2, pin_memory=False))
    assert [b[0].tolist() for b in here] == [[4, 0], [2, 1], [3]]
    assert len(ahead) == len(here)
    for a, b in zip(here, ahead, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    frames, mel = batch_inputs(arrays, idx[:2], 2, 64, None)
    assert torch.equal(here[0][1], frames) and torch.equal(here[0][2], mel)
