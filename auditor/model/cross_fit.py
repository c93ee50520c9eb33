"""Out-of-sample class probabilities from frozen features: K-fold cross-fitted linear softmax heads.

N clips, C feature dimensions, K classes, F folds. The training network's own heads have fitted every clip's given
label, a wrong one included; judged by them a clip's label looks right because it was learnt. Cross-fitting (as
cleanlab does with whole models) judges each clip by heads that never saw it:

* :func:`stratified_folds`: fold_i in 0..F-1, every class's clips spread over the folds in a seeded random order
  (fold = position in the class's permutation mod F, so a class of n clips is in min(n, F) folds);
* :func:`out_of_fold_probabilities`: for each fold f, a linear head (W_f, b_f) minimising
  mean_{i not in f} CE(softmax(W x~_i + b), y_i) + lambda |W|^2 by L-BFGS (at most LBFGS_ITERATIONS steps), x~ = x
  standardised with the training part's mean and standard deviation; p_i = softmax(W_f x~_i + b_f) for i in f.
  Clips outside ``mask`` are neither fitted on nor predicted (their rows are uniform). lambda is the one penalty
  given, or :func:`choose_penalty`'s choice among several;
* :func:`out_of_fold_transfer`: the same, and the probabilities each fold's head gives another view of its
  held-out clips (their mirror images' features, model/mirror_test.py);
* :func:`choose_penalty`: the lambda whose head, fitted on fold 0's training part, gives fold 0's held-out clips
  the lowest mean CE against their given labels (each part a class-stratified sample of at most SELECT_ROWS
  clips). Where the classes are easy to separate in the features, a weakly penalised head fits the wrong labels
  too, and its held-out probabilities follow the noise; a penalty too strong under-fits. The held-out likelihood
  of the given labels is lowest where the head fits the classes and not the noise, whatever the noise rate, the
  features' dimension or the number of clips;
* above FIT_ROWS_MAX training clips a fold's head is fitted on a class-stratified seeded sample of FIT_ROWS_MAX of
  them (:func:`fit_sample`; method.md departure 20) and still predicts every clip of its fold: the cost of an epoch
  end's heads stops growing with N (20,000 clips, 5 folds: 16,000 training clips a fold, all of them used);
* the folds are the fewest F' in 2..F whose training part holds FIT_ROWS_MAX clips (:func:`fold_count`; F when
  none does): every head is then fitted on FIT_ROWS_MAX clips whatever the folds, and a fold more would only add
  a fit (200,000 clips: 2 folds, 6 fits an epoch end instead of 15).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

FOLDS = 5
# The ridge weight of heads on the network's own features h: keeps a separable training part (the encoders have
# fitted these very labels) from driving the weights, and the held-out probabilities, to infinity.
L2_PENALTY = 1e-3
# The ridge weights choose_penalty tries, from strongest to weakest, a factor sqrt(10) apart: from a head close to
# the class prior to one that can fit a separable training part almost exactly (L2_PENALTY).
PENALTIES = tuple(10.0 ** (-e / 2) for e in range(7))
# choose_penalty fits and judges on at most this many clips each (fold 0's training and held-out parts).
SELECT_ROWS = 4_096
LBFGS_ITERATIONS = 50
# A fold's head is fitted on at most this many of its training clips (a stratified sample): 320 clips a class at 50
# classes for 256 weights a class, and the 16,000 training clips a fold of 20,000 clips has (all of them). L-BFGS
# costs O(rows x C x K) an iteration; this caps an epoch end's heads at about what 20,000 clips cost.
FIT_ROWS_MAX = 16_000
# A fold's held-out clips are predicted this many at a time.
PREDICT_ROWS = 16_384


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(N,) fold of each clip: within each class, the clips in a seeded random order take folds 0, 1, .., F-1, 0,
    ... in turn."""
    labels = np.asarray(labels)
    out = np.zeros(labels.size, np.int64)
    rng = np.random.default_rng(seed)
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        out[rows[rng.permutation(rows.size)]] = np.arange(rows.size) % folds
    return out


def fit_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted positions of ``size`` of the ``labels`` (all of them when there are no more), every class in
    proportion to its clips: each clip gets a seeded random rank within its class, and the clips of the smallest
    (rank + 1/2) / class size are taken."""
    labels = np.asarray(labels)
    n = labels.size
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), labels))  # by class, randomly within it
    counts = np.bincount(labels)
    starts = np.cumsum(counts) - counts
    rank = np.empty(n)
    rank[order] = np.arange(n) - starts[labels[order]]
    share = (rank + 0.5) / counts[labels]
    return np.sort(np.argsort(share, kind="stable")[:size])


def fold_count(n: int, folds: int) -> int:
    """The fewest F' in 2..``folds`` with n (F' - 1) / F' >= FIT_ROWS_MAX (a fold's training part holds a full
    sample), or ``folds`` when none has."""
    for f in range(2, folds):
        if n * (f - 1) // f >= FIT_ROWS_MAX:
            return f
    return folds


def _fit_linear(x: torch.Tensor, y: torch.Tensor, num_classes: int, penalty: float,
                start: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(W (C, K), b (K,)) minimising mean CE(x W + b, y) + penalty |W|^2 by L-BFGS (strong Wolfe line search), from
    W = 0, b = 0 or from ``start``."""
    if start is None:
        w = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, device=x.device, requires_grad=True)
        b = torch.zeros(num_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    else:
        w, b = (t.clone().requires_grad_(True) for t in start)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=LBFGS_ITERATIONS, history_size=10,
                            tolerance_grad=1e-5, tolerance_change=1e-7, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + penalty * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def _standardise(xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The training part's column mean and standard deviation (at least 1e-6)."""
    return xt.mean(0), xt.std(0).clamp_min(1e-6)


def choose_penalty(features: Callable[[torch.Tensor], torch.Tensor], ys: torch.Tensor, fold: torch.Tensor,
                   num_classes: int, seed: int, device: torch.device,
                   penalties: Sequence[float] = PENALTIES) -> float:
    """The lambda of ``penalties`` (module docstring) for the clips whose features ``features(positions)`` gives,
    given labels ``ys`` and folds ``fold``: heads fitted on fold 0's training part (at most SELECT_ROWS clips,
    fit_sample) in the order given (strongest first), each starting from the previous one's weights, judged by the
    mean CE of fold 0's held-out clips (at most SELECT_ROWS of them) against their given labels; the first lowest
    wins."""
    held, train = torch.nonzero(fold == 0).flatten(), torch.nonzero(fold != 0).flatten()
    train = train[torch.from_numpy(fit_sample(ys[train].numpy(), SELECT_ROWS, seed))]
    held = held[torch.from_numpy(fit_sample(ys[held].numpy(), SELECT_ROWS, seed))]
    xt, xh = features(train), features(held)
    mean, std = _standardise(xt)
    xt, xh = (xt - mean) / std, (xh - mean) / std
    yt, yh = ys[train].to(device), ys[held].to(device)
    best, best_loss, start = penalties[0], float("inf"), None
    for penalty in penalties:
        start = _fit_linear(xt, yt, num_classes, penalty, start)
        loss = float(F.cross_entropy(xh @ start[0] + start[1], yh))
        if loss < best_loss:
            best, best_loss = penalty, loss
    return best


def out_of_fold_probabilities(x: torch.Tensor | Sequence[torch.Tensor], labels: torch.Tensor, num_classes: int, *,
                              folds: int = FOLDS, seed: int = 0, mask: torch.Tensor | None = None,
                              device: torch.device | None = None,
                              penalties: Sequence[float] = (L2_PENALTY,)) -> torch.Tensor:
    """(N, K) float32 on the CPU: each clip's class probabilities from the linear head fitted on the other folds
    (module docstring; lambda: the one of ``penalties``, or choose_penalty's choice among them); computed on
    ``device`` (default: the CPU). ``x``: the (N, C) features, or column blocks (N, C_1), (N, C_2), ... of them
    (never concatenated whole: only the rows a head is fitted on or predicts, a block of PREDICT_ROWS at a time).
    Uniform rows for clips outside ``mask`` and for every clip when fewer than two classes, or fewer than two
    folds' worth of clips, are in it."""
    return _cross_fitted(x, (), labels, num_classes, folds, seed, mask, device, penalties)[0]


def out_of_fold_transfer(x: torch.Tensor, x_other: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                         folds: int = FOLDS, seed: int = 0, device: torch.device | None = None,
                         penalties: Sequence[float] = (L2_PENALTY,)) -> tuple[torch.Tensor, torch.Tensor]:
    """(p, p_other), (N, K) each: out_of_fold_probabilities of the features ``x`` (N, C), and the probabilities
    that the same heads, fitted on ``x``, give the other view ``x_other`` (N, C) of the same clips (e.g. their
    mirror images' features): a clip's other view is judged by the head of its own fold, which saw neither."""
    p, p_other = _cross_fitted(x, (x_other,), labels, num_classes, folds, seed, None, device, penalties)
    return p, p_other


def _cross_fitted(x: torch.Tensor | Sequence[torch.Tensor], views: Sequence[torch.Tensor], labels: torch.Tensor,
                  num_classes: int, folds: int, seed: int, mask: torch.Tensor | None, device: torch.device | None,
                  penalties: Sequence[float]) -> list[torch.Tensor]:
    """[p of x, p of each of ``views``]: out_of_fold_probabilities, each fold's head also predicting its clips'
    rows of every view (N, C)."""
    blocks = (x,) if isinstance(x, torch.Tensor) else tuple(x)
    n = blocks[0].shape[0]
    keep = torch.ones(n, dtype=torch.bool) if mask is None else mask.bool()
    out = [torch.full((n, num_classes), 1.0 / num_classes) for _ in range(1 + len(views))]
    rows = torch.nonzero(keep).flatten()
    if rows.numel() < 2 * folds or labels[rows].unique().numel() < 2:
        return out
    folds = fold_count(rows.numel(), folds)
    device = device or torch.device("cpu")

    def features(positions: torch.Tensor, source: Sequence[torch.Tensor] = blocks) -> torch.Tensor:
        """The kept rows at ``positions`` of ``source``'s blocks, float32 on device."""
        return torch.cat([b[rows[positions]].to(device, torch.float32) for b in source], 1)

    ys = labels[rows]
    fold = torch.from_numpy(stratified_folds(ys.numpy(), folds, seed))
    penalty = (penalties[0] if len(penalties) == 1
               else choose_penalty(features, ys, fold, num_classes, seed, device, penalties))
    for f in range(folds):
        held, train = torch.nonzero(fold == f).flatten(), torch.nonzero(fold != f).flatten()
        if not len(held):
            continue
        train = train[torch.from_numpy(fit_sample(ys[train].numpy(), FIT_ROWS_MAX, seed + f))]
        xt = features(train)
        mean, std = _standardise(xt)
        w, b = _fit_linear((xt - mean) / std, ys[train].to(device), num_classes, penalty)
        for part in torch.split(held, PREDICT_ROWS):
            for p, source in zip(out, (blocks, *((view,) for view in views)), strict=True):
                p[rows[part]] = torch.softmax((features(part, source) - mean) / std @ w + b, dim=1).float().cpu()
    return out
