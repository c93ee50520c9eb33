"""Gaussian-mixture estimates over per-clip evidence (method.md phase 1 step 2, phase 2 step 1).

N clips. Given per-clip evidence e (N,) — a loss in nats, higher = more suspicious — :func:`mixture_posterior`
1. optionally centres it per class on a low quantile of the class (:func:`class_normalise`), so that a hard
   class is not flagged wholesale and an easy class's noise is not missed;
2. min-max normalises it and decides whether there are two populations at all: a 2-component scikit-learn
   GaussianMixture (reg_covar 5e-4, as in NCR) must beat one component by BIC, the low (clean) component must hold
   at least MIN_CLEAN_SHARE of the clips, and the clips it calls noisy must carry at least MIN_EVIDENCE_GAP nats
   more evidence on average than the others (in the evidence's own units: class centring shifts, never scales);
3. returns the posterior of the low component when there are two populations — below the flag threshold for a clip
   whose evidence is less than a bar (MIN_CLIP_EVIDENCE; SOUND_MIN_CLIP_EVIDENCE for sound) above the clean clips'
   mean — and 1 (clean) for every clip when there are not: a clean data set gets no invented noisy component.
Used for
* w_i = posterior over the cross-modal InfoNCE l_i: probability that sound and picture of clip i belong together;
* r_i = posterior over the label evidence: probability that the given label of clip i is right.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

GMM_REG_COVAR = 5e-4  # NCR's setting: keeps a tight clean component from collapsing
GMM_MAX_ITER = 100
GMM_TOL = 1e-3
# The clips the mixture calls noisy must carry this much more evidence (nats) on average than the rest: 2 log 2,
# i.e. the model finds their given label (or their sound) at least four times less likely. On the development sets
# a clean data set's hard tail sits a fraction of a nat above its bulk, wrong labels several nats above it and
# swapped sounds one to a few (BENCHMARKS.md). Scale-free separation measures (Ashman's D) could not tell these apart.
MIN_EVIDENCE_GAP = 2 * math.log(2)
# A clip is flagged (noisy posterior >= 0.5) only when its own evidence is at least a bar above the mean of the clips
# called clean; below it its noisy posterior is capped at BELOW_FLAG, so the mixture's wide noisy component cannot
# pull in the clean component's tail. The bar is in the evidence's nats and depends on what the evidence is:
# * MIN_CLIP_EVIDENCE = log 16 (the label evidence, and the default): the model finds the clip's label 16 times less
#   likely than a typical clean clip's. A wrong label sits many nats above the clean clips (a median of 9-14 on the
#   development sets), while a weak classifier's clean clips have a tail of 1-2 nats that a lower bar would flag;
# * SOUND_MIN_CLIP_EVIDENCE = MIN_EVIDENCE_GAP (2 log 2; w's sound evidence): as far above the clean mean as the
#   two-population test asks of the noisy clips' mean, i.e. a sound four times less likely than a typical clean
#   clip's. The sound evidence (estimate.sound_evidence: a mean of an InfoNCE loss and a class evidence) puts a
#   swapped sound only 1-3 nats above the clean ones, so a bar of log 16 would sit above most of them.
# Measured on the development sets: BENCHMARKS.md.
MIN_CLIP_EVIDENCE = math.log(16)
SOUND_MIN_CLIP_EVIDENCE = MIN_EVIDENCE_GAP
BELOW_FLAG = 0.49
# The 2-component mixture must lower BIC by at least this much per clip fitted (a margin against a noisy fit
# that wins by a hair on a large data set).
BIC_GAIN_MIN = 0.0
# The clean (low) component must hold at least this share of the clips: a mixture that calls almost everything
# noisy has split one population at its low tail (seen as estimated rates of 0.999 between epochs).
MIN_CLEAN_SHARE = 0.2
# Fewer clips than this: no mixture is fitted, every clip is clean.
MIN_CLIPS = 8
# Per-class centring: the class's CENTRE_QUANTILE-quantile of the evidence, shrunk toward the global one with weight
# n_k / (n_k + POOL_CLIPS), so a small class borrows from the pool and a large one speaks for itself. A low quantile,
# not the median: the median of a class lies among its wrongly labelled clips once they are more than half of it
# (measured: symmetric 60% noise, three report seeds: 31%, 68%, 98% of the noisy clips flagged, AP >= 0.996), and
# centring on it shifts them down to the clean clips of the other classes; the q-quantile stays among the clean
# clips up to a share 1 - q of noise in the class. Chosen on development data: see BENCHMARKS.md.
CENTRE_QUANTILE = 0.25
POOL_CLIPS = 20
# Weight of the normalised evidence in the returned score: breaks ties among saturated posteriors (exact 0 or 1)
# by the evidence itself, so rankings stay informative; small enough to move no posterior by more than 1e-3.
TIE_BREAK = 1e-3


@dataclass
class MixtureFit:
    """The outcome of :func:`mixture_posterior`: ``clean`` (N,) in [0, 1] (higher = more likely clean) and the
    diagnostics of the two-population test (reported in progress.jsonl)."""

    clean: np.ndarray
    two_populations: bool
    evidence_gap: float  # mean (class-centred) evidence of the clips called noisy minus that of the others (nats)
    bic_gain: float  # (BIC_1 - BIC_2) / n: > 0 when two components fit better
    clean_share: float  # mixture weight of the low component

    def summary(self) -> dict[str, float | bool]:
        return {"two_populations": self.two_populations, "evidence_gap": round(self.evidence_gap, 3),
                "bic_gain": round(self.bic_gain, 4), "clean_share": round(self.clean_share, 4)}


def min_max(x: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min), or zeros when x is constant."""
    x = np.asarray(x, dtype=np.float64)
    span = x.max() - x.min() if x.size else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def class_normalise(evidence: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None,
                    pool: int = POOL_CLIPS, quantile: float = CENTRE_QUANTILE) -> np.ndarray:
    """z_i = e_i - m_{y_i}: the evidence centred on its class, m_k = (n_k Q_k + pool Q) / (n_k + pool), with Q_k the
    ``quantile``-quantile of class k's evidence and Q the global one (both over ``mask``). Centring only: dividing
    by a class's spread would blow a clean class's hard tail up to many units. Returns (N,) float64."""
    e = np.asarray(evidence, dtype=np.float64)
    labels = np.asarray(labels)
    fit = np.ones(e.size, bool) if mask is None else np.asarray(mask, bool)
    if not fit.any():
        return e.copy()
    g_centre = np.quantile(e[fit], quantile)
    out = np.empty_like(e)
    for k in np.unique(labels):
        rows = labels == k
        vals = e[rows & fit]
        lam = vals.size / (vals.size + pool)
        out[rows] = e[rows] - (lam * (np.quantile(vals, quantile) if vals.size else g_centre) + (1 - lam) * g_centre)
    return out


def mixture_posterior(evidence: np.ndarray, mask: np.ndarray | None = None, seed: int = 0, *,
                      labels: np.ndarray | None = None, min_clip_evidence: float = MIN_CLIP_EVIDENCE) -> MixtureFit:
    """Clean posterior per clip from a two-population test and a 2-component GMM (see the module docstring).

    ``mask`` (N,) bool selects the clips the mixture is fitted on (e.g. clips that have a sound track); clips
    outside it still get a posterior. ``labels`` (N,) given labels: normalise per class first. ``min_clip_evidence``:
    the bar (nats above the clean clips' mean) below which a clip's noisy posterior is capped under one half. The
    posterior is 1 below the clean component's mean and monotone in the (normalised) evidence — a clip with more evidence is never
    judged cleaner — and ties are broken by the evidence (TIE_BREAK). Without two populations every clip gets 1 - TIE_BREAK * x_i (x = min-max evidence)."""
    e = np.asarray(evidence, dtype=np.float64)
    e = class_normalise(e, labels, mask) if labels is not None else e
    x = min_max(e)
    fit_mask = np.ones(x.size, bool) if mask is None else np.asarray(mask, bool)
    fit_on = x[fit_mask]
    one = MixtureFit(clean=1.0 - TIE_BREAK * x, two_populations=False, evidence_gap=0.0, bic_gain=0.0, clean_share=1.0)
    if fit_on.size < MIN_CLIPS or np.ptp(fit_on) == 0:
        return one
    col = fit_on.reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm1 = GaussianMixture(1, reg_covar=GMM_REG_COVAR, random_state=seed).fit(col)
        gmm = GaussianMixture(2, max_iter=GMM_MAX_ITER, tol=GMM_TOL, reg_covar=GMM_REG_COVAR,
                              random_state=seed).fit(col)
    clean = int(np.argmin(gmm.means_.ravel()))
    bic_gain = float((gmm1.bic(col) - gmm.bic(col)) / col.shape[0])
    share = float(gmm.weights_[clean])
    noisy_post = 1.0 - gmm.predict_proba(x.reshape(-1, 1))[:, clean]
    # Below the clean component's mean a clip is cleaner than the typical clean clip, whatever the wider noisy
    # component's far tail says there (it out-weighs the narrow clean one at both extremes).
    noisy_post[x <= gmm.means_.ravel()[clean]] = 0.0
    order = np.argsort(x, kind="stable")
    noisy_post[order] = np.maximum.accumulate(noisy_post[order])
    called = (noisy_post >= 0.5) & fit_mask
    gap = float(e[called].mean() - e[fit_mask & ~called].mean()) if called.any() and (~called[fit_mask]).any() \
        else 0.0
    if bic_gain <= BIC_GAIN_MIN or share < MIN_CLEAN_SHARE or gap < MIN_EVIDENCE_GAP:
        one.evidence_gap, one.bic_gain, one.clean_share = gap, bic_gain, share
        return one
    clean_mean = e[fit_mask & ~called].mean()
    noisy_post = np.where(e < clean_mean + min_clip_evidence, np.minimum(noisy_post, BELOW_FLAG), noisy_post)
    clean_post = 1.0 - ((1.0 - TIE_BREAK) * noisy_post + TIE_BREAK * x)
    return MixtureFit(clean=clean_post, two_populations=True, evidence_gap=gap, bic_gain=bic_gain, clean_share=share)


def clean_posterior(losses: np.ndarray, mask: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """:func:`mixture_posterior`'s clean posterior alone, (N,) in [0, 1], higher = more likely clean."""
    return mixture_posterior(losses, mask, seed).clean
