"""UMAP maps at scale (scoring.umap_2d, umap_maps): reproducible, a capped fit with the rest transformed, parallel
maps equal to serial ones."""

from __future__ import annotations

import numpy as np
import pytest

from auditor import scoring


def _clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 16) unit vectors around 4 centres, and each one's centre."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    x = rng.standard_normal((4, 16))[labels] + 0.3 * rng.standard_normal((n, 16))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_above_the_cap_the_fit_uses_a_sample_and_places_the_rest(monkeypatch):
    monkeypatch.setattr(scoring, "UMAP_FIT_MAX", 120)
    x, labels = _clusters(300, seed=1)
    xy = scoring.umap_2d(x, seed=3)
    assert xy.shape == (300, 2) and np.isfinite(xy).all()
    assert np.array_equal(xy, scoring.umap_2d(x, seed=3)), "seeded: the same map every time"
    # clips of one cluster land together, also those placed by transform: nearest neighbour in the map shares it
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1) + np.eye(300) * 1e9
    assert (labels[d.argmin(1)] == labels).mean() > 0.9


@pytest.mark.slow
def test_parallel_maps_equal_serial_ones(monkeypatch):
    vectors = {name: _clusters(200, seed=i)[0] for i, name in enumerate(("audio", "visual", "fused"))}
    serial = scoring.umap_maps(vectors, seed=0)
    monkeypatch.setattr(scoring, "UMAP_PARALLEL_MIN", 10)
    monkeypatch.setattr(scoring.os, "cpu_count", lambda: 3)
    parallel = scoring.umap_maps(vectors, seed=0)
    for name in vectors:
        assert np.array_equal(serial[name], parallel[name]), name
