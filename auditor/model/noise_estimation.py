"""Gaussian-mixture estimates over per-clip evidence (method.md phase 1 step 2, phase 2 step 1).

N clips. Given per-clip evidence e (N,) — a loss, higher = more suspicious — :func:`mixture_posterior`
1. optionally normalises it per class (:func:`class_normalise`), so that a hard class is not flagged wholesale
   and an easy class's noise is not missed;
2. min-max normalises it and decides whether there are two populations at all: a 2-component scikit-learn
   GaussianMixture (reg_covar 5e-4, as in NCR) must beat one component by BIC, its two means must be apart by
   Ashman's D >= ASHMAN_D_MIN, and the low (clean) component must hold at least MIN_CLEAN_SHARE of the clips;
3. returns the posterior of the low component when there are two populations, and 1 (clean) for every clip when
   there are not — a clean data set gets no invented noisy component.
Used for
* w_i = posterior over the cross-modal InfoNCE l_i: probability that sound and picture of clip i belong together;
* r_i = posterior over the label evidence: probability that the given label of clip i is right.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

GMM_REG_COVAR = 5e-4  # NCR's setting: keeps a tight clean component from collapsing
GMM_MAX_ITER = 100
GMM_TOL = 1e-3
# Ashman's D = sqrt(2) |mu_1 - mu_2| / sqrt(s_1^2 + s_2^2): D > 2 is the usual criterion for a clean separation of
# two normal components (Ashman, Bird & Zepf 1994); a skewed single population fitted with two Gaussians gives
# overlapping components with D well below 2.
ASHMAN_D_MIN = 2.0
# The 2-component mixture must lower BIC by at least this much per clip fitted (a margin against a noisy fit
# that wins by a hair on a large data set).
BIC_GAIN_MIN = 0.0
# The clean (low) component must hold at least this share of the clips: a mixture that calls almost everything
# noisy has split one population at its low tail (seen as estimated rates of 0.999 between epochs).
MIN_CLEAN_SHARE = 0.2
# Fewer clips than this: no mixture is fitted, every clip is clean.
MIN_CLIPS = 8
# Per-class normalisation: class statistics are shrunk toward the global ones with weight n_k / (n_k + POOL_CLIPS),
# so a small class borrows from the pool and a large one speaks for itself.
POOL_CLIPS = 20
# Weight of the normalised evidence in the returned score: breaks ties among saturated posteriors (exact 0 or 1)
# by the evidence itself, so rankings stay informative; small enough to move no posterior by more than 1e-3.
TIE_BREAK = 1e-3
_MAD_TO_SIGMA = 1.4826


@dataclass
class MixtureFit:
    """The outcome of :func:`mixture_posterior`: ``clean`` (N,) in [0, 1] (higher = more likely clean) and the
    diagnostics of the two-population test (reported in progress.jsonl)."""

    clean: np.ndarray
    two_populations: bool
    ashman_d: float
    bic_gain: float  # (BIC_1 - BIC_2) / n: > 0 when two components fit better
    clean_share: float  # mixture weight of the low component

    def summary(self) -> dict[str, float | bool]:
        return {"two_populations": self.two_populations, "ashman_d": round(self.ashman_d, 3),
                "bic_gain": round(self.bic_gain, 4), "clean_share": round(self.clean_share, 4)}


def min_max(x: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min), or zeros when x is constant."""
    x = np.asarray(x, dtype=np.float64)
    span = x.max() - x.min() if x.size else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def class_normalise(evidence: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None,
                    pool: int = POOL_CLIPS) -> np.ndarray:
    """z_i = (e_i - m_{y_i}) / s_{y_i}: robust per-class centring and scaling of the evidence.

    m_k, s_k = median and MAD * 1.4826 of class k's evidence (over ``mask``), shrunk toward the global median and
    scale: m_k <- (n_k m_k + pool m) / (n_k + pool), likewise s_k. Returns (N,) float64."""
    e = np.asarray(evidence, dtype=np.float64)
    labels = np.asarray(labels)
    fit = np.ones(e.size, bool) if mask is None else np.asarray(mask, bool)
    if not fit.any():
        return e.copy()
    g_med = np.median(e[fit])
    g_scale = _MAD_TO_SIGMA * np.median(np.abs(e[fit] - g_med)) or (e[fit].std() or 1.0)
    out = np.empty_like(e)
    for k in np.unique(labels):
        rows = labels == k
        vals = e[rows & fit]
        n = vals.size
        med = np.median(vals) if n else g_med
        scale = _MAD_TO_SIGMA * np.median(np.abs(vals - med)) if n else g_scale
        lam = n / (n + pool)
        centre = lam * med + (1 - lam) * g_med
        spread = max(lam * scale + (1 - lam) * g_scale, 1e-6 * g_scale, 1e-12)
        out[rows] = (e[rows] - centre) / spread
    return out


def mixture_posterior(evidence: np.ndarray, mask: np.ndarray | None = None, seed: int = 0, *,
                      labels: np.ndarray | None = None) -> MixtureFit:
    """Clean posterior per clip from a two-population test and a 2-component GMM (see the module docstring).

    ``mask`` (N,) bool selects the clips the mixture is fitted on (e.g. clips that have a sound track); clips
    outside it still get a posterior. ``labels`` (N,) given labels: normalise per class first. The posterior is
    monotone in the (normalised) evidence — a clip with more evidence is never judged cleaner — and ties are broken
    by the evidence (TIE_BREAK). Without two populations every clip gets 1 - TIE_BREAK * x_i (x = min-max evidence)."""
    e = np.asarray(evidence, dtype=np.float64)
    if labels is not None:
        e = class_normalise(e, labels, mask)
    x = min_max(e)
    fit_on = x if mask is None else x[np.asarray(mask, bool)]
    one = MixtureFit(clean=1.0 - TIE_BREAK * x, two_populations=False, ashman_d=0.0, bic_gain=0.0, clean_share=1.0)
    if fit_on.size < MIN_CLIPS or np.ptp(fit_on) == 0:
        return one
    col = fit_on.reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm1 = GaussianMixture(1, reg_covar=GMM_REG_COVAR, random_state=seed).fit(col)
        gmm = GaussianMixture(2, max_iter=GMM_MAX_ITER, tol=GMM_TOL, reg_covar=GMM_REG_COVAR,
                              random_state=seed).fit(col)
    means, sds = gmm.means_.ravel(), np.sqrt(gmm.covariances_.ravel())
    clean = int(np.argmin(means))
    ashman = float(np.sqrt(2) * abs(means[1] - means[0]) / np.sqrt(sds[0] ** 2 + sds[1] ** 2))
    bic_gain = float((gmm1.bic(col) - gmm.bic(col)) / col.shape[0])
    share = float(gmm.weights_[clean])
    if bic_gain <= BIC_GAIN_MIN or ashman < ASHMAN_D_MIN or share < MIN_CLEAN_SHARE:
        one.ashman_d, one.bic_gain, one.clean_share = ashman, bic_gain, share
        return one
    noisy_post = 1.0 - gmm.predict_proba(x.reshape(-1, 1))[:, clean]
    order = np.argsort(x, kind="stable")
    noisy_post[order] = np.maximum.accumulate(noisy_post[order])
    clean_post = 1.0 - ((1.0 - TIE_BREAK) * noisy_post + TIE_BREAK * x)
    return MixtureFit(clean=clean_post, two_populations=True, ashman_d=ashman, bic_gain=bic_gain, clean_share=share)


def clean_posterior(losses: np.ndarray, mask: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """:func:`mixture_posterior`'s clean posterior alone, (N,) in [0, 1], higher = more likely clean."""
    return mixture_posterior(losses, mask, seed).clean
