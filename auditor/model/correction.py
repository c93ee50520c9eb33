"""Corrected labels from feature distances (method.md phase 2, steps 2-4). N clips, K classes, D feature size.

* :func:`fused_features`: u_i = normalise([z_i^v ; w_i z_i^a + (1 - w_i) z_i^v])  (N, 2d): a sound that does not
  belong to the picture is replaced by the picture's own embedding (the two share one space through the
  cross-modal loss), so a mismatched clip keeps the geometry of a clean one instead of a half-zero vector
* :func:`class_sums`: S_k = sum_{i: y~_i = k} r_i u_i  (K, D)
* :func:`prototype_distribution`: q_i^proto = softmax_k(u_i . c_k^(-i) / tau_p), c_k^(-i) = normalise(S_k - [k =
  y~_i] r_i u_i): leave-one-out prototypes, so a clip does not vote for its own label through its own class centre
* :func:`knn_distribution`: q_i^knn = r-weighted vote of the k_i nearest neighbours' given labels (cosine, self
  excluded; model/neighbours.py), k_i = min(k, n_{y~_i} - 1) so that a small class can fill its neighbourhood
  (N, K), rows sum to 1
* :func:`corrected_labels`: q_i = 1/2 (q^proto + q^knn), y^_i = argmax_k q_i
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from auditor.model.neighbours import nearest_neighbours

TAU_P = 0.1
KNN_K = 10


def fused_features(z_v: torch.Tensor, z_a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """u_i = normalise([z_i^v ; w_i z_i^a + (1 - w_i) z_i^v]), (N, 2d)."""
    w = w[:, None]
    return F.normalize(torch.cat([z_v, w * z_a + (1 - w) * z_v], dim=1), dim=1)


def class_sums(u: torch.Tensor, labels: torch.Tensor, r: torch.Tensor, num_classes: int) -> torch.Tensor:
    """S_k = sum_{i: labels_i = k} r_i u_i, (K, D)."""
    sums = torch.zeros(num_classes, u.shape[1], dtype=u.dtype, device=u.device)
    return sums.index_add_(0, labels, r[:, None] * u)


def class_prototypes(u: torch.Tensor, labels: torch.Tensor, r: torch.Tensor, num_classes: int) -> torch.Tensor:
    """c_k = normalise(S_k), (K, D); a class with no weight gets a zero row."""
    return F.normalize(class_sums(u, labels, r, num_classes), dim=1)


def prototype_distribution(u: torch.Tensor, labels: torch.Tensor, r: torch.Tensor, num_classes: int,
                           tau_p: float = TAU_P) -> torch.Tensor:
    """q_i^proto = softmax_k(u_i . c_k^(-i) / tau_p) with leave-one-out prototypes, (N, K). ``u``: unit rows.

    u_i . normalise(S_k - r_i u_i) = (u_i . S_k - r_i) / |S_k - r_i u_i| for k = y~_i, where
    |S_k - r_i u_i|^2 = |S_k|^2 - 2 r_i u_i . S_k + r_i^2; other classes use c_k = normalise(S_k)."""
    sums = class_sums(u, labels, r, num_classes)
    dots = u @ sums.T  # (N, K): u_i . S_k
    norms = sums.norm(dim=1).expand_as(dots).clone()
    rows = torch.arange(u.shape[0], device=u.device)
    own = dots[rows, labels] - r
    own_norm = (norms[rows, labels] ** 2 - 2 * r * dots[rows, labels] + r ** 2).clamp_min(0).sqrt()
    dots[rows, labels] = own
    norms[rows, labels] = own_norm
    cos = torch.where(norms > 1e-8, dots / norms.clamp_min(1e-8), torch.zeros_like(dots))
    return torch.softmax(cos / tau_p, dim=1)


def knn_distribution(u: torch.Tensor, labels: torch.Tensor, r: torch.Tensor, num_classes: int,
                     k: int = KNN_K, neighbours: torch.Tensor | None = None) -> torch.Tensor:
    """q_i^knn: among the k_i most cosine-similar other clips j, the share of sum r_j held by each given label;
    k_i = min(k, n_{labels_i} - 1) (at least 1). ``neighbours``: (N, >= k) of model/neighbours.nearest_neighbours
    (u, k), found here when not given (they depend on u alone: one search serves several r).

    (N, K), rows sum to 1 (uniform when all neighbours have r_j = 0). ``u`` must have unit rows."""
    n = u.shape[0]
    k = min(k, n - 1)
    out = torch.zeros(n, num_classes, dtype=u.dtype, device=u.device)
    if k <= 0:
        return out.fill_(1.0 / num_classes)
    nbr = (nearest_neighbours(u, k) if neighbours is None else neighbours)[:, :k].to(u.device)  # (N, k)
    sizes = torch.bincount(labels, minlength=num_classes)
    k_i = (sizes[labels] - 1).clamp(min=1, max=k)  # (N,)
    keep = torch.arange(k, device=u.device)[None, :] < k_i[:, None]
    out.scatter_add_(1, labels[nbr], torch.where(keep, r[nbr], 0.0))
    total = out.sum(dim=1, keepdim=True)
    return torch.where(total > 0, out / total.clamp_min(1e-12), torch.full_like(out, 1.0 / num_classes))


def corrected_labels(u: torch.Tensor, labels: torch.Tensor, r: torch.Tensor, num_classes: int,
                     tau_p: float = TAU_P, k: int = KNN_K, neighbours: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """q_i = 1/2 (q_i^proto + q_i^knn) from (u, labels, r); returns (q (N, K), y^ (N,)). ``neighbours``: see
    knn_distribution."""
    q = 0.5 * (prototype_distribution(u, labels, r, num_classes, tau_p)
               + knn_distribution(u, labels, r, num_classes, k, neighbours))
    return q, q.argmax(dim=1)
