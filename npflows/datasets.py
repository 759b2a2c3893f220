"""Built-in data sets with known densities, looked up by name: ``get("bimodal")``.

Each data set has ``dim``, ``sample(n, rng) -> (n, dim)``, the exact ``log_density(x) -> (n,)`` and
its differential ``entropy()`` in nats. Since E_p[−log q(x)] = H[p] + KL(p‖q), a flow q's test NLL
on data from p exceeds the entropy by the KL divergence, in expectation: the entropy is the floor a
perfect model reaches. A new data set joins ``DATASETS`` under its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from scipy import integrate, special

from .layer import RNGLike, as_rng, check_array

LOG_2PI = float(np.log(2.0 * np.pi))
TAIL_SDS = 12.0  # quadrature range: beyond μ_k ± 12 σ_k each component has mass below 1e-32


class Dataset(Protocol):
    """What every built-in data set offers."""

    dim: int

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` draws, shape (n, dim), float64."""

    def log_density(self, x) -> np.ndarray:
        """The exact log Pr(x) for x of shape (N, dim); returns (N,) in nats."""

    def entropy(self) -> float:
        """The differential entropy of Pr in nats."""


class GaussianMixture1D:
    """Pr(x) = Σ_k w_k N(x; μ_k, σ_k²) on ℝ, for x of shape (N, 1).

    Args:
        weights: w_k > 0, summing to one (to 1e-12).
        means: μ_k.
        sds: σ_k > 0.

    ``entropy()`` is −∫ Pr(x) log Pr(x) dx by ``scipy.integrate.quad`` over [min_k(μ_k − 12σ_k),
    max_k(μ_k + 12σ_k)] (the tails left out hold less than 1e-30 nats), split at the means, with
    absolute and relative tolerances 1e-12; the result is accurate to about 1e-10 nats. It is
    computed once and cached.
    """

    dim = 1

    def __init__(self, weights: Sequence[float], means: Sequence[float], sds: Sequence[float]):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.sds = np.asarray(sds, dtype=np.float64)
        k = len(self.weights)
        if (
            k == 0
            or self.weights.shape != (k,)
            or self.means.shape != (k,)
            or self.sds.shape != (k,)
        ):
            raise ValueError(
                "weights, means and sds must be non-empty 1-D sequences of one length, got shapes "
                f"{self.weights.shape}, {self.means.shape}, {self.sds.shape}"
            )
        if not (np.all(self.weights > 0) and abs(self.weights.sum() - 1.0) < 1e-12):
            raise ValueError(f"weights must be positive and sum to 1, got {weights!r}")
        if not (np.all(np.isfinite(self.means)) and np.all(np.isfinite(self.sds))):
            raise ValueError("means and sds must be finite")
        if not np.all(self.sds > 0):
            raise ValueError(f"sds must be positive, got {sds!r}")
        self._entropy: float | None = None

    def __repr__(self) -> str:
        return (
            f"GaussianMixture1D(weights={self.weights.tolist()}, means={self.means.tolist()}, "
            f"sds={self.sds.tolist()})"
        )

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` draws of shape (n, 1), float64: a component k ~ w, then x = μ_k + σ_k ε, ε ~ N(0, 1)."""
        if int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        rng = as_rng(rng)
        k = rng.choice(len(self.weights), size=int(n), p=self.weights)
        return (self.means[k] + self.sds[k] * rng.standard_normal(int(n)))[:, None]

    def log_density(self, x) -> np.ndarray:
        """log Pr(x) for x of shape (N, 1); returns (N,) in nats, by a stable log-sum-exp."""
        x = check_array(x, 1, "x")[:, 0].astype(np.float64, copy=False)
        return self._log_density(x)

    def _log_density(self, x: np.ndarray) -> np.ndarray:
        u = (x[:, None] - self.means) / self.sds  # (N, K)
        log_terms = np.log(self.weights) - np.log(self.sds) - 0.5 * (u * u + LOG_2PI)
        return special.logsumexp(log_terms, axis=1)

    def entropy(self) -> float:
        """Differential entropy H[Pr] = −∫ Pr(x) log Pr(x) dx in nats (by quadrature; cached)."""
        if self._entropy is None:

            def integrand(x: float) -> float:
                log_p = self._log_density(np.array([x]))[0]
                return -np.exp(log_p) * log_p

            low = float(np.min(self.means - TAIL_SDS * self.sds))
            high = float(np.max(self.means + TAIL_SDS * self.sds))
            value, _ = integrate.quad(
                integrand,
                low,
                high,
                points=np.unique(self.means),
                epsabs=1e-12,
                epsrel=1e-12,
                limit=200,
            )
            self._entropy = float(value)
        return self._entropy


BIMODAL = GaussianMixture1D(weights=(0.3, 0.7), means=(-2.0, 1.5), sds=(0.5, 0.8))
"""The "bimodal" data set: 0.3 N(−2, 0.5²) + 0.7 N(1.5, 0.8²), two well-separated modes."""

DATASETS: dict[str, Dataset] = {"bimodal": BIMODAL}


def bimodal_1d(n: int, rng: RNGLike = None) -> np.ndarray:
    """``n`` draws from :data:`BIMODAL`, shape (n, 1), float64."""
    return BIMODAL.sample(n, rng)


def get(name: str) -> Dataset:
    """The built-in data set called ``name``; ValueError listing the names for an unknown one."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}"
        ) from None
