"""Unnormalized target densities p̃(x) = Z·p(x) for reverse-KL training, looked up by name.

A flow q trained "by energy" sees only p̃ and its gradient, never samples of p. Its loss is
E_q[log q(x) − log p̃(x)] = KL(q‖p) − log Z ≥ −log Z, with equality exactly when q = p; so ``log_z``,
where known, is the floor a perfect flow reaches. The gradient of the loss with respect to the flow's
parameters needs ∇ₓ log p̃ at the flow's samples x = f[z] (the reparameterization trick).

Every target has
- ``dim`` and ``name``;
- ``log_density(x) -> (log_p, grad_log_p)``: log p̃(x) of shape (N,) and ∂ log p̃/∂x of shape (N, D),
  float64, for x of shape (N, D); derived by hand below;
- ``log_z``: log ∫ p̃(x) dx, or ``None`` where it is not known;
- ``sample(n, rng=None) -> (n, D)``: exact draws from p = p̃/Z, or ``sample is None`` where there is
  no easy exact sampler (the ring).

``get_target(name, **kwargs)`` builds one by name; ``TARGETS`` lists the names.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg, special

from .layer import RNGLike, as_rng, check_array, check_int

__all__ = ["TARGETS", "Funnel", "GaussianMixture", "Ring", "Target", "Wave", "get_target"]

LOG_2PI = float(np.log(2.0 * np.pi))


class Target(Protocol):
    """What every target offers (see the module docstring)."""

    dim: int
    name: str
    log_z: float | None
    sample: Callable[..., np.ndarray] | None

    def log_density(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """log p̃(x) (N,) and its gradient (N, D) for x of shape (N, D)."""


def _log_sum_kernels(u: np.ndarray, c: np.ndarray, sds: np.ndarray):
    """ℓ = log Σ_k exp(−½ t_k²) with t_k = (u − c_k)/σ_k, by a stable log-sum-exp.

    Args: u (N,), c (N, K), sds (K,). Returns ℓ (N,) and a (N, K) with a_k = π_k t_k / σ_k, where
    π = softmax_k(−½ t_k²); then ∂ℓ/∂u = −Σ_k a_k and ∂ℓ/∂c_k = a_k.
    """
    t = (u[:, None] - c) / sds  # (N, K)
    log_terms = -0.5 * t * t
    ell = special.logsumexp(log_terms, axis=1)  # (N,)
    pi = np.exp(log_terms - ell[:, None])  # (N, K), rows sum to one
    return ell, pi * t / sds


class Ring:
    """U1 of Rezende & Mohamed (2015, arXiv:1505.05770, Table 1): a ring with two modes.

    p̃(z) = exp(−U1(z)),  U1(z) = ½((‖z‖ − 2)/0.4)² − log(exp(−½((z1 − 2)/0.6)²) + exp(−½((z1 + 2)/0.6)²)).

    Shapes: z (N, 2). It is normalizable as it stands (the first term confines ‖z‖ near 2), so it is
    used unchanged. ``sample`` is ``None``: there is no easy exact sampler.

    ∂ log p̃/∂z = −((‖z‖ − 2)/0.4²) z/‖z‖ + (∂ℓ/∂z1, 0), ℓ the log-sum-exp term (``_log_sum_kernels``).
    At z = 0, where ‖z‖ has no gradient, the first term is taken as 0 (a subgradient of the cusp).
    """

    dim = 2
    name = "ring"
    sample = None
    # log ∫ p̃ in polar coordinates: the periodic trapezoid rule in θ (256 points; 512 to 4096 give
    # the same digits) inside scipy.integrate.quad in r on [0, 8] with tolerance 1e-13 (the mass
    # beyond r = 8 is below e^{-112}); Cartesian trapezoid grids with h = 0.025 and 0.0125 agree with
    # it to 3e-13. Recompute (tests/test_targets.py checks it to 1e-12):
    #   cd tests && python -c "import test_targets as t; print(repr(t.ring_log_z_polar()))"
    log_z = 1.877501626109708

    def log_density(self, z: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """log p̃(z) = −U1(z) (N,) and its gradient (N, 2), for z of shape (N, 2)."""
        z = check_array(z, 2, "z").astype(np.float64, copy=False)
        r = np.hypot(z[:, 0], z[:, 1])  # (N,)
        ell, a = _log_sum_kernels(z[:, 0], np.array([[2.0, -2.0]]), np.array([0.6, 0.6]))
        log_p = -0.5 * ((r - 2.0) / 0.4) ** 2 + ell
        unit = np.divide(z, r[:, None], out=np.zeros_like(z), where=r[:, None] > 0)  # z/‖z‖
        grad = -((r - 2.0) / 0.4**2)[:, None] * unit
        grad[:, 0] -= a.sum(axis=1)  # ∂ℓ/∂z1 = −Σ_k a_k
        return log_p, grad


# The curves of Table 1, each with its derivative in z1.
def _w1(z1):
    """w1 = sin(2π z1/4);  dw1/dz1 = (π/2) cos(π z1/2)."""
    return np.sin(0.5 * np.pi * z1), 0.5 * np.pi * np.cos(0.5 * np.pi * z1)


def _w2(z1):
    """w2 = 3 exp(−½((z1 − 1)/0.6)²);  dw2/dz1 = −w2 (z1 − 1)/0.6²."""
    w = 3.0 * np.exp(-0.5 * ((z1 - 1.0) / 0.6) ** 2)
    return w, -w * (z1 - 1.0) / 0.6**2


def _w3(z1):
    """w3 = 3 σ((z1 − 1)/0.3), σ the logistic sigmoid;  dw3/dz1 = w3 (1 − σ)/0.3."""
    s = special.expit((z1 - 1.0) / 0.3)
    return 3.0 * s, 3.0 * s * (1.0 - s) / 0.3


def _no_shift(z1):
    return np.zeros_like(z1), np.zeros_like(z1)


# name: (label in Table 1, σ_k of each branch, d_k with branch centre c_k(z1) = w1(z1) − d_k(z1))
_WAVES = {
    "wave": ("U2", (0.4,), (_no_shift,)),
    "wave-split": ("U3", (0.35, 0.35), (_no_shift, _w2)),
    "wave-step": ("U4", (0.4, 0.35), (_no_shift, _w3)),
}


class Wave:
    """U2, U3, U4 of Rezende & Mohamed (2015, arXiv:1505.05770, Table 1), with a Gaussian envelope.

    p̃(z) = exp(−U(z) − z1²/(2s²)), with w1, w2, w3 as in Table 1 and
    - "wave"       U2(z) = ½((z2 − w1)/0.4)²
    - "wave-split" U3(z) = −log(exp(−½((z2 − w1)/0.35)²) + exp(−½((z2 − w1 + w2)/0.35)²))
    - "wave-step"  U4(z) = −log(exp(−½((z2 − w1)/0.4)²) + exp(−½((z2 − w1 + w3)/0.35)²))
    w1 = sin(2π z1/4), w2 = 3 exp(−½((z1 − 1)/0.6)²), w3 = 3σ((z1 − 1)/0.3).

    Convention: exp(−U) alone is not integrable, since every slice z1 = const carries the same mass
    √(2π) Σ_k σ_k. The envelope exp(−z1²/(2s²)) (s = ``envelope_sd``, default 2: the paper's plots
    span z1 ∈ [−4, 4] = ±2s) makes it proper, smooth and unchanged along z1 = 0, and because the
    slice mass is constant it keeps everything exact: z1 ~ N(0, s²) is the marginal, z2 | z1 is a
    Gaussian mixture with weights σ_k/Σσ_k, and log Z = log(2π s Σ_k σ_k).

    Writing log p̃ = −z1²/(2s²) + ℓ, ℓ = log Σ_k exp(−½((z2 − c_k)/σ_k)²), c_k = w1 − d_k:
    ∂/∂z2 = −Σ_k a_k and ∂/∂z1 = −z1/s² + Σ_k a_k c_k', with a_k as in ``_log_sum_kernels``.

    Args:
        name: "wave", "wave-split" or "wave-step".
        envelope_sd: s > 0.

    Shapes: z (N, 2).
    """

    dim = 2

    def __init__(self, name: str = "wave", envelope_sd: float = 2.0):
        if name not in _WAVES:
            raise ValueError(f"unknown wave {name!r}; choose one of: {', '.join(_WAVES)}")
        if not (np.isfinite(envelope_sd) and envelope_sd > 0):
            raise ValueError(f"envelope_sd must be positive and finite, got {envelope_sd!r}")
        self.name = name
        self.envelope_sd = float(envelope_sd)
        self.label, sds, self._shifts = _WAVES[name]
        self.sds = np.array(sds)
        self.log_z = float(np.log(2.0 * np.pi * self.envelope_sd * self.sds.sum()))

    def __repr__(self) -> str:
        return f"Wave({self.name!r}, envelope_sd={self.envelope_sd})"

    def _centres(self, z1):
        """c_k(z1) = w1 − d_k and dc_k/dz1, each (N, K)."""
        w, dw = _w1(z1)
        d, dd = zip(*(shift(z1) for shift in self._shifts), strict=True)
        return w[:, None] - np.stack(d, axis=1), dw[:, None] - np.stack(dd, axis=1)

    def log_density(self, z: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """log p̃(z) (N,) and its gradient (N, 2), for z of shape (N, 2)."""
        z = check_array(z, 2, "z").astype(np.float64, copy=False)
        z1, z2 = z[:, 0], z[:, 1]
        c, dc = self._centres(z1)  # (N, K)
        ell, a = _log_sum_kernels(z2, c, self.sds)
        log_p = -0.5 * (z1 / self.envelope_sd) ** 2 + ell
        grad = np.stack([-z1 / self.envelope_sd**2 + (a * dc).sum(axis=1), -a.sum(axis=1)], axis=1)
        return log_p, grad

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` exact draws (n, 2): z1 = s ε1, branch k ~ σ_k/Σσ, z2 = c_k(z1) + σ_k ε2."""
        n, rng = check_int(n, "n", minimum=0), as_rng(rng)
        z1 = self.envelope_sd * rng.standard_normal(n)
        k = rng.choice(len(self.sds), size=n, p=self.sds / self.sds.sum())
        c = np.take_along_axis(self._centres(z1)[0], k[:, None], axis=1)[:, 0]
        return np.stack([z1, c + self.sds[k] * rng.standard_normal(n)], axis=1)


class GaussianMixture:
    """p̃(x) = e^{log_z} Σ_k w_k N(x; μ_k, Σ_k) in D dimensions, with exact sampling.

    log p̃(x) = log_z + log Σ_k exp(log w_k − ½‖L_k⁻¹(x − μ_k)‖² − log det L_k − (D/2) log 2π), where
    Σ_k = L_k L_kᵀ (Cholesky);  ∂ log p̃/∂x = −Σ_k π_k(x) Σ_k⁻¹(x − μ_k), π_k(x) the posterior
    responsibilities. ``log_z`` (default 0, a normalized density) shifts log p̃ by a constant, so a
    test can tell a target's log Z from zero.

    Args:
        weights: w_k > 0 summing to one (to 1e-12), shape (K,).
        means: μ_k, shape (K, D).
        covs: Σ_k, symmetric positive definite, shape (K, D, D).
        log_z: log ∫ p̃.

    The default is a 2-D mixture of three well-separated modes, one of them correlated.
    Shapes: x (N, D).
    """

    name = "mixture"

    def __init__(
        self,
        weights: ArrayLike = (0.5, 0.3, 0.2),
        means: ArrayLike = ((-2.5, 0.0), (2.0, 2.0), (2.0, -2.0)),
        covs: ArrayLike = (
            ((0.5**2, 0.0), (0.0, 0.5**2)),
            ((0.6**2, 0.2), (0.2, 0.4**2)),
            ((0.3**2, 0.0), (0.0, 0.8**2)),
        ),
        log_z: float = 0.0,
    ):
        self.weights = np.asarray(weights, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.covs = np.asarray(covs, dtype=np.float64)
        k = len(self.weights)
        if (
            k == 0
            or self.weights.shape != (k,)
            or self.means.ndim != 2
            or len(self.means) != k
            or self.covs.shape != (k, self.means.shape[1], self.means.shape[1])
        ):
            raise ValueError(
                "weights, means and covs must have shapes (K,), (K, D) and (K, D, D), got "
                f"{self.weights.shape}, {self.means.shape}, {self.covs.shape}"
            )
        if not (np.all(self.weights > 0) and abs(self.weights.sum() - 1.0) < 1e-12):
            raise ValueError(f"weights must be positive and sum to 1, got {self.weights.tolist()}")
        if not (np.all(np.isfinite(self.means)) and np.all(np.isfinite(self.covs))):
            raise ValueError("means and covs must be finite")
        if not np.allclose(self.covs, self.covs.transpose(0, 2, 1), rtol=1e-12, atol=1e-14):
            raise ValueError("covs must be symmetric")
        try:
            self._chol = np.linalg.cholesky(self.covs)  # L_k, (K, D, D)
        except np.linalg.LinAlgError:
            raise ValueError("covs must be positive definite") from None
        if not np.isfinite(log_z):
            raise ValueError(f"log_z must be finite, got {log_z!r}")
        self.dim = self.means.shape[1]
        self.log_z = float(log_z)
        eye = np.eye(self.dim)
        self._chol_inv = np.stack([linalg.solve_triangular(L, eye, lower=True) for L in self._chol])
        log_det = np.log(np.diagonal(self._chol, axis1=1, axis2=2)).sum(axis=1)  # log det L_k
        self._log_c = np.log(self.weights) - log_det - 0.5 * self.dim * LOG_2PI  # (K,)

    def __repr__(self) -> str:
        return (
            f"GaussianMixture(weights={self.weights.tolist()}, means={self.means.tolist()}, "
            f"covs={self.covs.tolist()}, log_z={self.log_z})"
        )

    def log_density(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """log p̃(x) (N,) and its gradient (N, D), for x of shape (N, D)."""
        x = check_array(x, self.dim, "x").astype(np.float64, copy=False)
        delta = x[:, None, :] - self.means  # x − μ_k, (N, K, D)
        y = np.einsum("kij,nkj->nki", self._chol_inv, delta)  # L_k⁻¹(x − μ_k)
        log_terms = self._log_c - 0.5 * np.einsum("nki,nki->nk", y, y)  # (N, K)
        log_mix = special.logsumexp(log_terms, axis=1)  # (N,)
        pi = np.exp(log_terms - log_mix[:, None])  # responsibilities π_k(x)
        precision_delta = np.einsum("kji,nkj->nki", self._chol_inv, y)  # Σ_k⁻¹(x − μ_k) = L⁻ᵀ y
        return self.log_z + log_mix, -np.einsum("nk,nki->ni", pi, precision_delta)

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` exact draws (n, D): k ~ w, then x = μ_k + L_k ε with ε ~ N(0, I)."""
        n, rng = check_int(n, "n", minimum=0), as_rng(rng)
        k = rng.choice(len(self.weights), size=n, p=self.weights)
        eps = rng.standard_normal((n, self.dim))
        return self.means[k] + np.einsum("nij,nj->ni", self._chol[k], eps)


class Funnel:
    """Neal's funnel (Neal 2003, "Slice sampling", Ann. Statist. 31(3), section 8), normalized.

    x = (v, x_1, …, x_{D−1}),  v ~ N(0, 3²),  x_i | v ~ N(0, e^v):
    log p(x) = −v²/18 − ½ log(18π) − ((D − 1)/2)(log 2π + v) − ½ e^{−v} Σ_i x_i²,
    ∂/∂v = −v/9 − (D − 1)/2 + ½ e^{−v} Σ_i x_i²,   ∂/∂x_i = −e^{−v} x_i.

    ``log_z`` is 0. Where ½ e^{−v} Σ x_i² exceeds the float64 range (v ≲ −700 with x ≠ 0) the true
    log density is below −1.8e308: it is returned as −inf, with infinite gradients, without a warning.

    Args:
        dim: D ≥ 2.

    Shapes: x (N, D).
    """

    name = "funnel"
    log_z = 0.0

    def __init__(self, dim: int = 2):
        if int(dim) != dim or dim < 2:
            raise ValueError(f"dim must be an integer of at least 2, got {dim!r}")
        self.dim = int(dim)

    def __repr__(self) -> str:
        return f"Funnel(dim={self.dim})"

    def log_density(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """log p(x) (N,) and its gradient (N, D), for x of shape (N, D)."""
        x = check_array(x, self.dim, "x").astype(np.float64, copy=False)
        v, rest = x[:, 0], x[:, 1:]
        # e^{−v}·(…) as exp(log(…) − v): a zero factor stays exactly 0 where e^{−v} overflows.
        with np.errstate(divide="ignore", over="ignore"):
            half_q = np.exp(np.log(0.5 * np.einsum("ni,ni->n", rest, rest)) - v)  # ½e^{−v}Σx_i²
            grad_rest = -np.sign(rest) * np.exp(np.log(np.abs(rest)) - v[:, None])  # −e^{−v}x_i
        m = self.dim - 1
        log_p = -(v**2) / 18.0 - 0.5 * np.log(18.0 * np.pi) - 0.5 * m * (LOG_2PI + v) - half_q
        grad_v = -v / 9.0 - 0.5 * m + half_q
        return log_p, np.concatenate([grad_v[:, None], grad_rest], axis=1)

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` exact draws (n, D): v = 3 ε_0, x_i = e^{v/2} ε_i."""
        n, rng = check_int(n, "n", minimum=0), as_rng(rng)
        eps = rng.standard_normal((n, self.dim))
        v = 3.0 * eps[:, :1]
        return np.concatenate([v, np.exp(0.5 * v) * eps[:, 1:]], axis=1)


_FACTORIES: dict[str, Callable[..., Target]] = {
    "ring": Ring,
    **{name: partial(Wave, name) for name in _WAVES},
    "mixture": GaussianMixture,
    "funnel": Funnel,
}
TARGETS: list[str] = list(_FACTORIES)


def get_target(name: str, **kwargs) -> Target:
    """The target called ``name``, built with ``kwargs`` (e.g. ``envelope_sd``, ``dim``, ``log_z``).

    ValueError lists the names for an unknown one.
    """
    if name not in _FACTORIES:
        raise ValueError(f"unknown target {name!r}; choose one of: {', '.join(TARGETS)}")
    return _FACTORIES[name](**kwargs)
