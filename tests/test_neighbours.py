"""model/neighbours.py: the exact blocked search, faiss's inverted file and their agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auditor.model import neighbours
from auditor.model.neighbours import _drop_self, blocked_neighbours, ivf_neighbours, nearest_neighbours


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


def test_faiss_and_blocked_search_find_the_same_neighbours_when_every_list_is_probed():
    pytest.importorskip("faiss")
    u = _points()  # 700 points: 10 lists, all probed (IVF_PROBE >= 10): the inverted file's search is exhaustive
    assert torch.equal(ivf_neighbours(u, 10), blocked_neighbours(u, 10))


def test_inverted_file_is_used_above_the_exact_limit_only(monkeypatch):
    pytest.importorskip("faiss")
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


def test_without_faiss_the_search_is_exact(monkeypatch):
    u = _points()
    monkeypatch.setattr(neighbours, "KNN_EXACT_MAX", 10)
    monkeypatch.setattr(neighbours, "_faiss", lambda: None)
    assert torch.equal(nearest_neighbours(u, 10), _brute_force(u, 10))


def test_drop_self_removes_the_row_itself_or_the_last_result():
    found = np.array([[0, 3, 4], [2, 1, 0], [5, 6, 7]])  # row 0 first, row 1 in the middle, row 2 missing
    assert _drop_self(found, 2).tolist() == [[3, 4], [2, 0], [5, 6]]


def test_fewer_points_than_k():
    u = _points(n=4)
    assert nearest_neighbours(u, 10).shape == (4, 3)
    assert nearest_neighbours(u[:1], 10).shape == (1, 0)
