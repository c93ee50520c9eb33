"""Two-component Gaussian-mixture estimates over per-clip losses (method.md phase 1 step 2, phase 2 step 1).

N clips. Given a per-clip loss l (N,), :func:`clean_posterior` min-max normalises it, fits a 2-component
scikit-learn GaussianMixture (reg_covar 5e-4, as in NCR) and returns the posterior of the low-mean component:
(N,) float64 in [0, 1], higher = more likely clean. Used for
* w_i = clean_posterior(cross-modal InfoNCE l_i): probability that sound and picture of clip i belong together;
* r_i = clean_posterior(CE(p^av_i, y~_i)): probability that the given label of clip i is right.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

GMM_REG_COVAR = 5e-4  # NCR's setting: keeps a tight clean component from collapsing
GMM_MAX_ITER = 20
GMM_TOL = 1e-3
# Weight of the normalised loss in the returned score: breaks ties among saturated posteriors (exact 0 or 1) by
# the loss itself, so rankings stay informative; small enough to leave every posterior within 1e-3 of the GMM's.
TIE_BREAK = 1e-3


def min_max(x: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min), or zeros when x is constant."""
    x = np.asarray(x, dtype=np.float64)
    span = x.max() - x.min() if x.size else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def clean_posterior(losses: np.ndarray, mask: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Posterior of the low-loss GMM component per clip, (N,) in [0, 1].

    ``mask`` (N,) bool selects the clips the mixture is fitted on (e.g. clips that have a sound track); clips
    outside it still get a posterior from the fitted mixture. The posterior is made monotone in the loss (a clip
    with a higher loss is never judged cleaner than one with a lower loss: the mixture's low tail can otherwise
    flip when the noisy component is the wider one), then ties are broken by the loss (TIE_BREAK)."""
    x = min_max(losses)
    fit_on = x if mask is None else x[mask]
    if fit_on.size < 4 or np.ptp(fit_on) == 0:
        return np.ones_like(x)
    gmm = GaussianMixture(n_components=2, max_iter=GMM_MAX_ITER, tol=GMM_TOL, reg_covar=GMM_REG_COVAR,
                          random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(fit_on.reshape(-1, 1))
    clean = int(np.argmin(gmm.means_.ravel()))
    noisy_post = 1.0 - gmm.predict_proba(x.reshape(-1, 1))[:, clean]
    order = np.argsort(x, kind="stable")
    noisy_post[order] = np.maximum.accumulate(noisy_post[order])
    noisy_score = (1.0 - TIE_BREAK) * noisy_post + TIE_BREAK * x
    return 1.0 - noisy_score
