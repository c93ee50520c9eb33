"""UMAP maps at scale (scoring.umap_2d, umap_maps): reproducible, a capped number of map points (the same sample on
every map, NaN for the others), maps made in threads equal to serial ones; what an --out folder may hold before score writes into it."""

from __future__ import annotations

import numpy as np

from auditor import scoring
from auditor.run_folder import write_config


def _clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 16) unit vectors around 4 centres, and each one's centre."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    x = rng.standard_normal((4, 16))[labels] + 0.3 * rng.standard_normal((n, 16))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_above_the_cap_the_maps_show_the_same_sample_of_clips(monkeypatch):
    monkeypatch.setattr(scoring, "MAP_POINTS_MAX", 120)
    vectors = {name: _clusters(300, seed=i)[0] for i, name in enumerate(("audio", "visual", "fused"))}
    maps = scoring.umap_maps(vectors, seed=3)
    rows = scoring.map_points(300, seed=3)
    assert len(rows) == 120 and np.array_equal(rows, np.unique(rows))
    for name, xy in maps.items():
        assert xy.shape == (300, 2) and xy.dtype == np.float32
        shown = np.isfinite(xy).all(1)
        assert np.array_equal(np.flatnonzero(shown), rows) and np.isnan(xy[~shown]).all()
        assert np.array_equal(xy[rows], scoring.umap_2d(vectors[name][rows], seed=3)), "the sample's own map"
    assert np.array_equal(scoring.map_points(120, seed=3), np.arange(120))


def test_points_table_leaves_out_clips_without_map_coordinates():
    import pandas as pd

    from auditor.explore_maps import points_table

    flags = pd.DataFrame({"clip": ["a", "b", "c"], "given_label": ["x", "y", "x"]})
    umap = pd.DataFrame({"clip": ["a", "b", "c"], **{f"umap_{m}_{a}": [0.0, np.nan, 1.0]
                                                     for m in ("audio", "visual", "fused") for a in "xy"}})
    table = points_table(flags, umap)
    assert table["clip"].tolist() == ["a", "c"] and table.index.tolist() == [0, 1]


def test_maps_made_in_threads_equal_serial_ones_and_release_the_gil():
    import umap.layouts

    from auditor import map_layout

    vectors = {name: _clusters(200, seed=i)[0] for i, name in enumerate(("audio", "visual", "fused"))}
    maps = scoring.umap_maps(vectors, seed=0)
    for name, x in vectors.items():
        assert np.array_equal(maps[name], scoring.umap_2d(x, seed=0)), name
    serial_epoch = umap.layouts._get_optimize_layout_euclidean_single_epoch_fn(False)
    assert serial_epoch is map_layout.epoch_without_gil and serial_epoch.targetoptions["nogil"]
    assert umap.layouts._get_optimize_layout_euclidean_single_epoch_fn(True) is not serial_epoch


def test_score_never_replaces_a_trained_run_nor_without_overwrite_another_scoring(tmp_path):
    from tests.conftest import REPO, run_cli

    data, out, trained = tmp_path / "data", tmp_path / "out", tmp_path / "trained"
    data.mkdir()
    trained.mkdir()
    (trained / "checkpoint.pt").write_bytes(b"a model of its own")
    (trained / "flags.csv").write_text("its flags\n")
    proc = run_cli("score", "--run", "models/sample", "--data", str(data), "--out", str(trained), "--overwrite",
                   check=False)
    assert proc.returncode == 2 and "holds a trained model (checkpoint.pt)" in proc.stderr, proc.stderr[-2000:]
    assert (trained / "flags.csv").read_text() == "its flags\n"

    write_config(out, {"model_run": str(tmp_path / "another_model"), "data_dir": str(data)})
    (out / "flags.csv").write_text("another scoring's flags\n")
    proc = run_cli("score", "--run", "models/sample", "--data", str(data), "--out", str(out), check=False)
    assert proc.returncode == 2 and "pass --overwrite to replace them" in proc.stderr, proc.stderr[-2000:]
    assert (out / "flags.csv").read_text() == "another scoring's flags\n"

    shipped = REPO / "models" / "sample"
    scoring._check_scoring_folder(out, shipped, data, overwrite=True)  # replaced when asked
    write_config(out, {"model_run": str(shipped.resolve()), "data_dir": str(data.resolve())})
    scoring._check_scoring_folder(out, shipped, data, overwrite=False)  # the same scoring again: an update
    scoring._check_scoring_folder(tmp_path / "new", shipped, data, overwrite=False)  # a new folder


def test_embeddings_table_keeps_each_clip_s_vectors_in_list_arrays_of_bounded_size(monkeypatch, tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    audio, fused = rng.normal(size=(7, 3)), rng.normal(size=(7, 4)).astype(np.float32)
    emb = pd.DataFrame({"clip": list("abcdefg"), "given_label": list("xxyyzzz"), "umap_audio_x": np.arange(7.0)})
    monkeypatch.setattr(scoring, "LIST_VALUES_MAX", 8)  # two rows of 3 (or 4) values a list array
    pq.write_table(scoring.embeddings_table(emb, {"audio": audio, "fused": fused}), tmp_path / "e.parquet")
    back = pd.read_parquet(tmp_path / "e.parquet")
    assert list(back.columns) == ["clip", "given_label", "audio", "fused", "umap_audio_x"]
    np.testing.assert_array_equal(np.stack(back["audio"]), audio.astype(np.float32))
    np.testing.assert_array_equal(np.stack(back["fused"]), fused)
    assert back["clip"].tolist() == list("abcdefg") and back["umap_audio_x"].tolist() == list(range(7))


def test_umaps_uncached_kernels_are_cached_on_disk():
    """The kernels umap-learn compiles afresh in every process exist under their names and, once a map has been
    made, keep their compiled code on disk (numba's FunctionCache) like umap-learn's cached ones."""
    import importlib

    from numba.core.caching import FunctionCache

    scoring.umap_2d(np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32))
    for module, name in scoring.UMAP_UNCACHED_KERNELS:
        kernel = getattr(importlib.import_module(module), name)
        assert isinstance(kernel._cache, FunctionCache), (module, name)


def test_large_maps_take_their_neighbours_from_our_search_not_umap_s(monkeypatch):
    import umap.umap_

    scoring_map_neighbours = scoring.map_neighbours
    x, centre = _clusters(600, seed=5)
    idx, dist, index = scoring.map_neighbours(x, 15)
    assert idx.shape == dist.shape == (600, 15) and idx.dtype == np.int32 and dist.dtype == np.float32
    assert index is None and np.array_equal(idx[:, 0], np.arange(600)) and (dist[:, 0] == 0).all()
    assert (np.diff(dist, axis=1) >= -1e-6).all(), "most similar first"
    np.testing.assert_allclose(dist[:, 1:], 1 - np.einsum("nd,nkd->nk", x, x[idx[:, 1:]]), atol=1e-5)
    assert (idx[:, 1:] != np.arange(600)[:, None]).all()
    assert (centre[idx[:, 1:]] == centre[:, None]).mean() > 0.95, "neighbours from the point's own cluster"

    def no_nn_descent(*args, **kwargs):
        raise AssertionError("umap searched the neighbours itself")

    searched = []
    monkeypatch.setattr(umap.umap_, "nearest_neighbors", no_nn_descent)
    monkeypatch.setattr(scoring, "map_neighbours", lambda x, k: searched.append(k) or scoring_map_neighbours(x, k))
    monkeypatch.setattr(scoring, "UMAP_SEARCH_MIN", 500)
    xy = scoring.umap_2d(x, seed=2)
    assert searched == [15]
    assert xy.shape == (600, 2) and np.isfinite(xy).all()
    assert np.array_equal(xy, scoring.umap_2d(x, seed=2)), "reproducible"
