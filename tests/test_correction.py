"""model/correction.py at scale: the kNN vote from neighbours found once equals the vote that finds them itself."""

from __future__ import annotations

import torch

from auditor.model import correction
from auditor.model.neighbours import nearest_neighbours


def test_knn_vote_with_given_neighbours_equals_its_own_search():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (700,), generator=g)
    u = torch.nn.functional.normalize(torch.randn(700, 32, generator=g) + 2 * torch.randn(5, 32, generator=g)[labels],
                                      dim=1)
    r = torch.rand(700, generator=g)
    nbr = nearest_neighbours(u, correction.KNN_K)
    assert torch.equal(correction.knn_distribution(u, labels, r, 5, neighbours=nbr),
                       correction.knn_distribution(u, labels, r, 5))
    q, y_hat = correction.corrected_labels(u, labels, r, 5, neighbours=nbr)
    assert torch.equal(q, correction.corrected_labels(u, labels, r, 5)[0])
