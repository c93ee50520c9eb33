"""model/correction.py at scale: the kNN vote in row blocks of a bounded size gives the one-block result."""

from __future__ import annotations

import torch

from auditor.model import correction


def test_knn_in_small_blocks_equals_one_block(monkeypatch):
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (700,), generator=g)
    u = torch.nn.functional.normalize(torch.randn(700, 32, generator=g) + 2 * torch.randn(5, 32, generator=g)[labels],
                                      dim=1)
    r = torch.rand(700, generator=g)
    whole = correction.knn_distribution(u, labels, r, 5)
    monkeypatch.setattr(correction, "KNN_BLOCK_ELEMENTS", 700 * 33)  # blocks of 33 rows, the last one shorter
    assert torch.equal(correction.knn_distribution(u, labels, r, 5), whole)
