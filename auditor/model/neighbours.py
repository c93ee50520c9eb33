"""The k nearest neighbours of every clip by cosine similarity (the kNN vote of correction.knn_distribution).

N unit vectors u (N, D), k neighbours. :func:`nearest_neighbours` returns (N, k) int64: row i = the indices j != i
of the k largest u_i . u_j, most similar first. How they are found depends on N and on where ``u`` is:

* exact, every pair compared (:func:`blocked_neighbours`: rows in blocks of KNN_BLOCK_ELEMENTS // N, a matrix
  product and a top-k per block; memory O(N k + block), time O(N^2 D)): on a GPU, and on the CPU up to
  KNN_EXACT_MAX clips (20,000 clips of 256 dims: about 4 s on 2 cores; faiss's exact IndexFlatIP took as long,
  so it brings nothing there);
* approximate above KNN_EXACT_MAX clips on the CPU (:func:`ivf_neighbours`): faiss's inverted-file index
  (IndexIVFFlat, inner product) with IVF_LISTS_PER_SQRT_N * sqrt(N) lists (k-means on a seeded sample), each
  query searching the IVF_PROBE lists nearest to it: O(N sqrt(N) D) instead of O(N^2 D). Measured on 200,000
  clustered unit vectors of 256 dims: recall@10 against the exact search BENCHMARKS.md gives. Rows whose probed
  lists held fewer than k other points are searched exactly. Without faiss (not installed), exact.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Rows are processed in chunks of KNN_BLOCK_ELEMENTS // N, so the (chunk, N) float32 similarity block stays at
# 128 MB for any N.
KNN_BLOCK_ELEMENTS = 2**25
# Up to this many clips the CPU compares every pair (exact); above it the inverted-file index of faiss.
KNN_EXACT_MAX = 50_000
# The inverted file: lists = IVF_LISTS_PER_SQRT_N * sqrt(N) (about sqrt(N) / 4 points a list), each query
# searching its IVF_PROBE nearest lists; the k-means of the lists is fitted on IVF_TRAIN_PER_LIST points a list.
IVF_LISTS_PER_SQRT_N = 4
IVF_PROBE = 16
IVF_TRAIN_PER_LIST = 64
IVF_SEED = 0


def nearest_neighbours(u: torch.Tensor, k: int, *, exact: bool | None = None) -> torch.Tensor:
    """(N, k) int64 on ``u``'s device: the k most cosine-similar other rows of each row of ``u`` (unit rows), most
    similar first (module docstring). ``exact``: force (True) or forbid (False) the exact search; None = by
    KNN_EXACT_MAX and the device."""
    n = u.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return torch.zeros(n, 0, dtype=torch.long, device=u.device)
    if exact is None:
        exact = u.device.type != "cpu" or n <= KNN_EXACT_MAX or _faiss() is None
    return blocked_neighbours(u, k) if exact else ivf_neighbours(u, k)


def blocked_neighbours(u: torch.Tensor, k: int, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Exact: for each of ``rows`` (default all), the k largest u_i . u_j over j != i, (len(rows), k) int64."""
    n = u.shape[0]
    rows = torch.arange(n, device=u.device) if rows is None else rows.to(u.device)
    chunk = max(1, KNN_BLOCK_ELEMENTS // n)
    out = []
    for start in range(0, len(rows), chunk):
        own = rows[start:start + chunk]
        sim = u[own] @ u.T  # (c, N)
        sim[torch.arange(len(own), device=u.device), own] = -float("inf")  # never one's own neighbour
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out) if out else torch.zeros(0, k, dtype=torch.long, device=u.device)


def ivf_neighbours(u: torch.Tensor, k: int) -> torch.Tensor:
    """Approximate, by faiss's IndexIVFFlat (module docstring); (N, k) int64 on the CPU."""
    faiss = _faiss()
    x = np.ascontiguousarray(u.detach().cpu().numpy(), dtype=np.float32)
    n, d = x.shape
    lists = max(1, min(n // IVF_TRAIN_PER_LIST, round(IVF_LISTS_PER_SQRT_N * math.sqrt(n))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = IVF_SEED
    train = np.random.default_rng(IVF_SEED).choice(n, min(n, IVF_TRAIN_PER_LIST * lists), replace=False)
    index.train(x[np.sort(train)])
    index.add(x)
    index.nprobe = min(IVF_PROBE, lists)
    _, found = index.search(x, k + 1)  # (N, k + 1): usually the row itself and its k neighbours
    out = torch.from_numpy(_drop_self(found, k))
    short = torch.from_numpy(np.flatnonzero((out < 0).any(1).numpy()))
    if len(short):  # fewer than k others in the probed lists: those rows exactly
        out[short] = blocked_neighbours(torch.from_numpy(x), k, short)
    return out


def _drop_self(found: np.ndarray, k: int) -> np.ndarray:
    """(N, k) from faiss's (N, k + 1) results: each row without its own index (the last result when it is not
    among them), in order."""
    own = found == np.arange(len(found))[:, None]
    own[:, -1] |= ~own.any(1)
    keep = np.argsort(own, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, keep, axis=1).astype(np.int64)


def _faiss():
    """The faiss module, or None when it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss
