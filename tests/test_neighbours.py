"""model/neighbours.py: the exact blocked search, the inverted file and their agreement."""

from __future__ import annotations

import torch

from auditor.model import neighbours
from auditor.model.neighbours import blocked_neighbours, ivf_neighbours, nearest_neighbours, spherical_kmeans


def _points(n: int = 700, d: int = 32, classes: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    centres = 2 * torch.randn(classes, d, generator=g)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g) + centres[labels], dim=1)


def _brute_force(u: torch.Tensor, k: int) -> torch.Tensor:
    sim = u @ u.T
    sim.fill_diagonal_(-float("inf"))
    return sim.topk(k, dim=1).indices


def test_blocked_search_in_small_blocks_is_the_brute_force(monkeypatch):
    u = _points()
    monkeypatch.setattr(neighbours, "KNN_BLOCK_ELEMENTS", 700 * 33)  # blocks of 33 rows, the last one shorter
    found = blocked_neighbours(u, 10)
    assert found.shape == (700, 10) and found.dtype == torch.long
    assert torch.equal(found, _brute_force(u, 10))
    assert not (found == torch.arange(700)[:, None]).any()  # never one's own neighbour


def test_blocked_search_of_some_rows_is_those_rows_of_the_whole():
    u = _points()
    rows = torch.tensor([0, 5, 699, 42])
    assert torch.equal(blocked_neighbours(u, 7, rows), blocked_neighbours(u, 7)[rows])


def test_the_inverted_file_probing_every_list_is_the_exact_search():
    u = _points()
    assert torch.equal(ivf_neighbours(u, 10, lists=6, probe=6), blocked_neighbours(u, 10))


def test_the_inverted_file_finds_most_neighbours_when_it_probes_a_few_lists():
    u = _points(n=3000, classes=40, seed=1)  # 55 lists, 8 probed: about a seventh of the points compared
    found, exact = ivf_neighbours(u, 10), blocked_neighbours(u, 10)
    recall = sum(len(set(a) & set(b)) for a, b in zip(found.tolist(), exact.tolist(), strict=True)) / exact.numel()
    assert recall > 0.8  # floor, wide margin
    assert not (found == torch.arange(3000)[:, None]).any()
    assert torch.equal(found, ivf_neighbours(u, 10))  # seeded: the same lists every time


def test_rows_whose_lists_hold_too_few_others_are_searched_exactly():
    u = _points(n=60, classes=3)
    found = ivf_neighbours(u, 10, lists=30, probe=1)  # about two points a list: no row has ten in its own
    assert torch.equal(found, blocked_neighbours(u, 10))


def test_spherical_kmeans_gives_unit_centres_near_the_clusters():
    u = _points(n=2000, d=16, classes=4, seed=2)
    centres = spherical_kmeans(u, 4, per_list=500)
    assert centres.shape == (4, 16) and torch.allclose(centres.norm(dim=1), torch.ones(4), atol=1e-5)
    assert (u @ centres.T).max(1).values.mean() > 0.5  # each point near some centre (unit Gaussian noise in 16 dims)


def test_inverted_file_is_used_above_the_exact_limit_only(monkeypatch):
    u = _points()
    calls = []
    monkeypatch.setattr(neighbours, "ivf_neighbours", lambda u, k: calls.append(len(u)) or blocked_neighbours(u, k))
    nearest_neighbours(u, 10)
    assert calls == []
    monkeypatch.setattr(neighbours, "KNN_EXACT_MAX", 699)
    nearest_neighbours(u, 10)
    assert calls == [700]
    assert nearest_neighbours(u, 10, exact=True).shape == (700, 10)
    assert calls == [700]


def test_fewer_points_than_k():
    u = _points(n=4)
    assert nearest_neighbours(u, 10).shape == (4, 3)
    assert nearest_neighbours(u[:1], 10).shape == (1, 0)
