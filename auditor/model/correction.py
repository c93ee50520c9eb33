"""Corrected labels from feature distances (method.md phase 2, steps 2-4). N clips, K classes, D feature size.

* :func:`fused_features`: u_i = normalise([z_i^v ; w_i * z_i^a])  (N, 2d)
* :func:`class_prototypes`: c_k = normalise(sum_{i: y~_i = k} r_i * u_i)  (K, D)
* :func:`prototype_distribution`: q_i^proto = softmax_k(u_i . c_k / tau_p)  (N, K)
* :func:`knn_distribution`: q_i^knn = r-weighted vote of the k nearest neighbours' given labels (cosine, self
  excluded)  (N, K), rows sum to 1
* :func:`corrected_labels`: q_i = 1/2 (q^proto + q^knn), y^_i = argmax_k q_i
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TAU_P = 0.1
KNN_K = 10
# Rows are processed in chunks so the (chunk, N) similarity matrix stays small for large N.
KNN_CHUNK = 2048


def fused_features(z_v: torch.Tensor, z_a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """u_i = normalise([z_i^v ; w_i z_i^a]): a mismatched sound is not evidence for the label. (N, 2d)."""
    return F.normalize(torch.cat([z_v, w[:, None] * z_a], dim=1), dim=1)


def class_prototypes(u: torch.Tensor, labels: torch.Tensor, r: torch.Tensor, num_classes: int) -> torch.Tensor:
    """c_k = normalise(sum_{i: labels_i = k} r_i u_i), (K, D); a class with no weight gets a zero row."""
    sums = torch.zeros(num_classes, u.shape[1], dtype=u.dtype, device=u.device)
    sums.index_add_(0, labels, r[:, None] * u)
    return F.normalize(sums, dim=1)


def prototype_distribution(u: torch.Tensor, prototypes: torch.Tensor, tau_p: float = TAU_P) -> torch.Tensor:
    """q_i^proto = softmax_k(u_i . c_k / tau_p), (N, K)."""
    return torch.softmax(u @ prototypes.T / tau_p, dim=1)


def knn_distribution(u: torch.Tensor, labels: torch.Tensor, r: torch.Tensor, num_classes: int,
                     k: int = KNN_K) -> torch.Tensor:
    """q_i^knn: among the k most cosine-similar other clips j, the share of sum r_j held by each given label.

    (N, K), rows sum to 1 (uniform when all neighbours have r_j = 0). ``u`` must have unit rows."""
    n = u.shape[0]
    k = min(k, n - 1)
    out = torch.zeros(n, num_classes, dtype=u.dtype, device=u.device)
    if k <= 0:
        return out.fill_(1.0 / num_classes)
    for start in range(0, n, KNN_CHUNK):
        sim = u[start:start + KNN_CHUNK] @ u.T  # (c, N)
        rows = torch.arange(sim.shape[0], device=u.device)
        sim[rows, rows + start] = -float("inf")  # never one's own neighbour
        nbr = sim.topk(k, dim=1).indices  # (c, k)
        out[start:start + KNN_CHUNK].scatter_add_(1, labels[nbr], r[nbr])
    total = out.sum(dim=1, keepdim=True)
    return torch.where(total > 0, out / total.clamp_min(1e-12), torch.full_like(out, 1.0 / num_classes))


def corrected_labels(u: torch.Tensor, labels: torch.Tensor, r: torch.Tensor, num_classes: int,
                     tau_p: float = TAU_P, k: int = KNN_K) -> tuple[torch.Tensor, torch.Tensor]:
    """q_i = 1/2 (q_i^proto + q_i^knn) with prototypes from (u, labels, r); returns (q (N, K), y^ (N,))."""
    q_proto = prototype_distribution(u, class_prototypes(u, labels, r, num_classes), tau_p)
    q = 0.5 * (q_proto + knn_distribution(u, labels, r, num_classes, k))
    return q, q.argmax(dim=1)

