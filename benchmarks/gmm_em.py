"""A Gaussian mixture fitted by EM (numpy and scipy only): the baseline of benchmarks/quality_2d.py.

For data from a mixture of Gaussians (the rings of npflows.datasets) this is the right model class,
so a flow that loses to it has not learned the density; on the other data sets it shows what K
full-covariance Gaussians reach. EM (Dempster, Laird & Rubin 1977) for K components with weights
π_k, means μ_k and covariances Σ_k:

    E step:  r_ik = π_k N(x_i; μ_k, Σ_k) / Σ_j π_j N(x_i; μ_j, Σ_j)    (in log space, log-sum-exp)
    M step:  n_k = Σ_i r_ik,  π_k = n_k / N,  μ_k = Σ_i r_ik x_i / n_k,
             Σ_k = Σ_i r_ik (x_i − μ_k)(x_i − μ_k)ᵀ / n_k + ε I

with ε = 1e-6 · (the data's mean variance) keeping every Σ_k positive definite, started from
k-means++ centres (Arthur & Vassilvitskii 2007) and stopped when the mean log-likelihood gains less
than 1e-6 nats per point (or after 300 iterations). The number of components is chosen on held-out points.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


class GaussianMixture:
    """K full-covariance Gaussians; ``log_prob(x) -> (N,)``."""

    def __init__(self, weights, means, covs):
        self.weights, self.means, self.covs = weights, means, covs
        self.chol = np.linalg.cholesky(covs)

    def _log_joint(self, x):
        """log π_k + log N(x_i; μ_k, Σ_k), shape (N, K): with Σ_k = L_k L_kᵀ the quadratic form
        is |L_k⁻¹ x_i − L_k⁻¹ μ_k|², one product of x with the stacked L_k⁻¹."""
        d = x.shape[1]
        whiten = np.linalg.inv(self.chol)  # (K, D, D), each lower triangular
        u = (x[None] - self.means[:, None]) @ whiten.transpose(0, 2, 1)  # (K, N, D), one GEMM each
        log_det = 2.0 * np.log(np.diagonal(self.chol, axis1=1, axis2=2)).sum(axis=1)
        return (
            np.log(self.weights)[:, None]
            - 0.5 * (u**2).sum(axis=2)
            - 0.5 * (log_det[:, None] + d * np.log(2.0 * np.pi))
        ).T

    def log_prob(self, x):
        return logsumexp(self._log_joint(x), axis=1)


def _kmeans_pp(x, k, rng):
    """k-means++ seeding: each next centre drawn with probability ∝ squared distance to the nearest."""
    centres = [x[rng.integers(len(x))]]
    dist = ((x - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        centres.append(x[rng.choice(len(x), p=dist / dist.sum())])
        dist = np.minimum(dist, ((x - centres[-1]) ** 2).sum(axis=1))
    return np.array(centres)


def fit_em(x, k, rng, max_iter=300, tol=1e-6) -> GaussianMixture:
    """EM from k-means++ centres (shared covariance of the data to start, equal weights)."""
    n, d = x.shape
    eps = 1e-6 * x.var(axis=0).mean()
    means = _kmeans_pp(x, k, rng)
    covs = np.tile(np.cov(x.T).reshape(d, d) / k + eps * np.eye(d), (k, 1, 1))
    model = GaussianMixture(np.full(k, 1.0 / k), means, covs)
    previous = -np.inf
    for _ in range(max_iter):
        log_joint = model._log_joint(x)
        log_norm = logsumexp(log_joint, axis=1)
        mean_ll = log_norm.mean()
        if mean_ll - previous < tol:
            break
        previous = mean_ll
        resp = np.exp(log_joint - log_norm[:, None])  # (N, K)
        nk = resp.sum(axis=0) + 1e-300
        means = resp.T @ x / nk[:, None]
        diff = x[None] - means[:, None]  # (K, N, D)
        covs = (resp.T[:, :, None] * diff).transpose(0, 2, 1) @ diff / nk[:, None, None]
        model = GaussianMixture(nk / n, means, covs + eps * np.eye(d))
    return model


def fit_selected(x_train, x_val, ks, rng, restarts=1):
    """The mixture of the K in ``ks`` (and the restart) with the best held-out log-likelihood."""
    best, best_ll = None, -np.inf
    for k in ks:
        for _ in range(restarts):
            model = fit_em(x_train, k, rng)
            ll = model.log_prob(x_val).mean()
            if ll > best_ll:
                best, best_ll = model, ll
    return best
