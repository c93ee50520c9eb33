"""The k nearest neighbours of every clip by cosine similarity (the kNN vote of correction.knn_distribution).

N unit vectors u (N, D), k neighbours. :func:`nearest_neighbours` returns (N, k) int64: row i = the indices j != i
of the k largest u_i . u_j, most similar first. How they are found depends on N and on where ``u`` is:

* exact, every pair compared (:func:`blocked_neighbours`: rows in blocks of KNN_BLOCK_ELEMENTS // N, a matrix
  product and a top-k per block; memory O(N k + block), time O(N^2 D)): on a GPU, and on the CPU up to
  KNN_EXACT_MAX clips;
* approximate above KNN_EXACT_MAX clips on the CPU (:func:`ivf_neighbours`, an inverted file searched by matrix
  products): L = round(sqrt(N)) lists, the cells of a spherical k-means of u (:func:`spherical_kmeans`); each
  row is a member of the list of its nearest centre and a query of its IVF_PROBE nearest lists; each list compares
  its queries with its members in one matrix product. O(N D (L + IVF_PROBE N / L)) = O(N^1.5 D) instead of
  O(N^2 D); exact when every list is probed. Rows whose probed lists hold fewer than k others are searched
  exactly.
"""

from __future__ import annotations

import math

import torch

# Rows are processed in chunks of KNN_BLOCK_ELEMENTS // N, so the (chunk, N) float32 similarity block stays at
# 128 MB for any N.
KNN_BLOCK_ELEMENTS = 2**25
# Up to this many clips the CPU compares every pair (exact); above it the inverted file.
KNN_EXACT_MAX = 50_000
# The inverted file: round(sqrt(N)) lists, each query searching its IVF_PROBE nearest lists; the k-means of the
# lists runs IVF_KMEANS_ITERATIONS Lloyd steps on a seeded sample of IVF_TRAIN_PER_LIST points a list.
IVF_PROBE = 8
IVF_TRAIN_PER_LIST = 40
IVF_KMEANS_ITERATIONS = 10
IVF_SEED = 0
# Rows a block of the centre assignment compares at once.
IVF_ASSIGN_BLOCK = 16_384


def nearest_neighbours(u: torch.Tensor, k: int, *, exact: bool | None = None) -> torch.Tensor:
    """(N, k) int64 on ``u``'s device: the k most cosine-similar other rows of each row of ``u`` (unit rows), most
    similar first (module docstring). ``exact``: force (True) or forbid (False) the exact search; None = by
    KNN_EXACT_MAX and the device."""
    n = u.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return torch.zeros(n, 0, dtype=torch.long, device=u.device)
    if exact is None:
        exact = u.device.type != "cpu" or n <= KNN_EXACT_MAX
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


def spherical_kmeans(u: torch.Tensor, lists: int, *, per_list: int = IVF_TRAIN_PER_LIST,
                     iterations: int = IVF_KMEANS_ITERATIONS, seed: int = IVF_SEED) -> torch.Tensor:
    """(lists, D) unit centres: Lloyd's algorithm by cosine similarity on a seeded sample of ``per_list`` rows a
    list, started from ``lists`` of its rows; a centre left without rows keeps its place."""
    g = torch.Generator().manual_seed(seed)
    sample = u[torch.randperm(len(u), generator=g)[:per_list * lists]]
    centres = sample[:lists].clone()
    for _ in range(iterations):
        nearest = (sample @ centres.T).argmax(1)
        sums = torch.zeros_like(centres).index_add_(0, nearest, sample)
        filled = torch.bincount(nearest, minlength=lists)[:, None] > 0
        centres = torch.where(filled, torch.nn.functional.normalize(sums, dim=1), centres)
    return centres


def ivf_neighbours(u: torch.Tensor, k: int, *, lists: int | None = None, probe: int = IVF_PROBE) -> torch.Tensor:
    """Approximate, by the inverted file of the module docstring (``lists`` default round(sqrt(N))); (N, k) int64
    on the CPU."""
    x = u.detach().cpu().float().contiguous()
    n = x.shape[0]
    lists = max(1, min(n, lists or round(math.sqrt(n))))
    probe = min(probe, lists)
    centres = spherical_kmeans(x, lists)
    probes = torch.cat([(x[s:s + IVF_ASSIGN_BLOCK] @ centres.T).topk(probe, dim=1).indices
                        for s in range(0, n, IVF_ASSIGN_BLOCK)])  # (N, probe), nearest list first
    members = _grouped(probes[:, 0], lists)
    queries = _grouped(probes.flatten(), lists)  # entries q * probe + slot
    width = k + 1  # each list's best k + 1 (one may be the query itself)
    cand_sim = torch.full((n, probe * width), -float("inf"))
    cand_idx = torch.full((n, probe * width), -1, dtype=torch.long)
    for cell in range(lists):
        m, qs = members[cell], queries[cell]
        if len(m) == 0 or len(qs) == 0:
            continue
        q, slot = qs // probe, qs % probe
        sim, pos = (x[q] @ x[m].T).topk(min(width, len(m)), dim=1)
        cols = (slot * width)[:, None] + torch.arange(sim.shape[1])
        cand_sim[q[:, None], cols], cand_idx[q[:, None], cols] = sim, m[pos]
    cand_sim[cand_idx == torch.arange(n)[:, None]] = -float("inf")  # never one's own neighbour
    best_sim, best = cand_sim.topk(k, dim=1)
    out = torch.gather(cand_idx, 1, best)
    short = torch.nonzero(torch.isinf(best_sim).any(1)).flatten()
    if len(short):  # fewer than k others in the probed lists: those rows exactly
        out[short] = blocked_neighbours(x, k, short)
    return out


def _grouped(keys: torch.Tensor, groups: int) -> list[torch.Tensor]:
    """For each group g in 0..groups-1, the positions i with keys[i] == g, in increasing order."""
    order = torch.argsort(keys, stable=True)
    return list(torch.split(order, torch.bincount(keys, minlength=groups).tolist()))
