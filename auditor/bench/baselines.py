"""The baselines' per-clip scores, from a model's outputs or embeddings (no training here). N clips, K classes.

Each ``*_scores`` function returns (N,) float in [0, 1], higher = more suspicious, as flags.csv wants them:

  cleanlab_scores      1 - cleanlab's label quality (self-confidence) of out-of-sample probabilities, and its
                       ``find_label_issues`` flags
  small_loss_scores    per-clip CE of p^av against the given label, min-max scaled
  infonce_loss_scores  per-clip cross-modal InfoNCE l_i (auditor.model.estimate.per_clip_infonce, clips of the
                       same given label left out of the negatives as for ntl's w), min-max scaled over the clips
                       with usable sound, 0 for the others (silence is not a mismatch)
  knn_scores           share of the k nearest neighbours (cosine) whose given label differs, with their vote

Min-max, not percentile ranks: a percentile puts half of any data set, a clean one too, at or above 0.5, so the
0.5 flag would mean "the upper half" and its false alarms would be fixed by construction. Min-max keeps the
ordering (AP and AUROC are the same either way) and flags the clips whose loss is above the middle of the range.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.model_selection import KFold, StratifiedKFold

from auditor.model.estimate import per_clip_infonce

KNN_CHUNK = 2048  # rows of the (chunk, N) similarity matrix at a time


def minmax(x: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min), in [0, 1]; all 0 when x is constant or empty."""
    x = np.asarray(x, dtype=float)
    if x.size == 0 or np.ptp(x) == 0:
        return np.zeros_like(x)
    return (x - x.min()) / np.ptp(x)


def cleanlab_scores(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1 - label quality, find_label_issues as bool), both (N,), from out-of-sample ``probs`` (N, K)."""
    quality = get_label_quality_scores(labels, probs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "few examples in class k" on small benches
        issues = find_label_issues(labels, probs, n_jobs=1)
    return (1.0 - quality).clip(0, 1), np.asarray(issues, dtype=bool)


def small_loss_scores(logits_av: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """minmax(CE(p^av_i, y~_i)), (N,)."""
    return minmax(F.cross_entropy(logits_av.float(), labels, reduction="none").numpy())


def infonce_loss_scores(z_v: torch.Tensor, z_a: torch.Tensor, labels: torch.Tensor, has_audio: np.ndarray,
                        tau: float, seed: int) -> np.ndarray:
    """minmax(l_i) over the clips with usable sound, 0 for the others, (N,). l_i is computed over all clips, as
    ntl's estimate is."""
    ell = per_clip_infonce(z_v.float(), z_a.float(), tau, seed, labels).numpy()
    out = np.zeros(len(ell))
    out[has_audio] = minmax(ell[has_audio])
    return out


def knn_scores(emb: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each clip, its k = min(k, N - 1) most cosine-similar other clips (fixed k, as a user's tool would use):
    (share whose label differs (N,) in [0, 1], their most common label (N,) int, that label's share (N,)). A
    tie in the vote goes to the clip's own label, then to the lowest label. N = 1: share 0, vote = own label."""
    n = len(labels)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(n), labels.copy(), np.ones(n)
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
    nbr = np.empty((n, k), dtype=int)
    for start in range(0, n, KNN_CHUNK):
        sim = x[start:start + KNN_CHUNK] @ x.T  # (c, N)
        rows = np.arange(sim.shape[0])
        sim[rows, rows + start] = -np.inf  # never one's own neighbour
        nbr[start:start + KNN_CHUNK] = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    nb_labels = labels[nbr]  # (N, k)
    votes = np.zeros((n, int(labels.max()) + 1))
    np.add.at(votes, (np.arange(n)[:, None], nb_labels), 1.0)
    votes[np.arange(n), labels] += 0.5  # ties go to the given label
    vote = votes.argmax(1)
    return (nb_labels != labels[:, None]).mean(1), vote, (nb_labels == vote[:, None]).mean(1)


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train, held-out) index pairs whose held-out parts partition range(N), stratified by label when every
    class has at least K clips."""
    counts = np.bincount(labels)
    splitter = (StratifiedKFold(k, shuffle=True, random_state=seed) if counts[counts > 0].min() >= k
                else KFold(k, shuffle=True, random_state=seed))
    return list(splitter.split(np.zeros(len(labels)), labels))
