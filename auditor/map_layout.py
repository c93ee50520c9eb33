"""UMAP's layout optimisation without holding the GIL, so that maps made in threads use as many cores.

umap-learn (0.5.x) optimises a seeded layout serially, one call of the numba kernel
``umap.layouts._nb_optimize_layout_euclidean_single_epoch`` per epoch. That kernel is compiled without ``nogil``:
maps made in several threads would take turns, one core at a time. :func:`release_gil_in_layouts` has umap-learn's
serial layout call :func:`epoch_without_gil` instead, a kernel compiled with ``nogil=True`` (and cached on disk)
that calls umap-learn's own kernel with the same arguments: the same computation and the same coordinates, while
the other threads run. Import this module after NUMBA_CACHE_DIR is set (scoring.umap_2d). numba keys the
cached kernel on this file, not on umap-learn's, which is why umap-learn's version is pinned (pyproject.toml).
"""

from __future__ import annotations

import numba
import umap.layouts

_UMAP_EPOCH = umap.layouts._nb_optimize_layout_euclidean_single_epoch
_UMAP_EPOCH_FN = umap.layouts._get_optimize_layout_euclidean_single_epoch_fn


@numba.njit(nogil=True, cache=True)
def epoch_without_gil(head_embedding, tail_embedding, head, tail, n_vertices, epochs_per_sample, a, b,
                      rng_state_per_sample, gamma, dim, move_other, alpha, epochs_per_negative_sample,
                      epoch_of_next_negative_sample, epoch_of_next_sample, n, densmap_flag, dens_phi_sum,
                      dens_re_sum, dens_re_cov, dens_re_std, dens_re_mean, dens_lambda, dens_R, dens_mu,
                      dens_mu_tot):
    """One epoch of umap-learn's serial layout optimisation (its arguments), the GIL released."""
    _UMAP_EPOCH(head_embedding, tail_embedding, head, tail, n_vertices, epochs_per_sample, a, b, rng_state_per_sample,
                gamma, dim, move_other, alpha, epochs_per_negative_sample, epoch_of_next_negative_sample,
                epoch_of_next_sample, n, densmap_flag, dens_phi_sum, dens_re_sum, dens_re_cov, dens_re_std,
                dens_re_mean, dens_lambda, dens_R, dens_mu, dens_mu_tot)


def _epoch_fn(parallel: bool = False):
    """umap.layouts' choice of the epoch kernel, with :func:`epoch_without_gil` for the serial layout."""
    return _UMAP_EPOCH_FN(parallel) if parallel else epoch_without_gil


def release_gil_in_layouts() -> None:
    """Make umap-learn's serial layout optimisation release the GIL (module docstring); idempotent."""
    umap.layouts._get_optimize_layout_euclidean_single_epoch_fn = _epoch_fn
