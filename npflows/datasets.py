"""Built-in data sets, looked up by name: ``get("moons")``; ``DATASETS`` maps each name to one.

Every data set has ``dim`` and ``sample(n, rng) -> (n, dim)``, float64, the same for the same seed.
Those whose density is known ("bimodal", "8gaussians", "8gaussians-narrow", "checkerboard",
"banana", "moons", "circles") also have the exact ``log_density(x) -> (N,)`` and the differential
``entropy()`` in nats; for those known only through a sampler ("pinwheel", "2spirals") both are
``None``. "8gaussians-narrow" is the ring of eight Gaussians at radius 2 with std
0.04 = 0.02 · radius: modes narrow and far apart, the harder ring.

Since E_p[−log q(x)] = H[p] + KL(p‖q), a flow q's test NLL on data from p exceeds the entropy by the
KL divergence, in expectation: the entropy is the floor a perfect model reaches. Where log p is
known, KL(p‖q) = E_p[log p(x) − log q(x)] is estimated directly, by the mean over samples of p.

Support: the checkerboard's density is zero off its black squares, where ``log_density`` returns
−inf (without a warning). KL(p‖q) is therefore estimated with samples of the data p, never of the
model q: every sample of p lies on the support, where log p is finite. (The other direction,
KL(q‖p), is +inf for every flow, whose density is positive everywhere.)

Unnormalized target densities for reverse-KL training (the Rezende–Mohamed energies, a Gaussian
mixture, Neal's funnel) live in :mod:`npflows.targets` and are re-exported here as
``get_target`` and ``TARGETS``.

The 2-D sets follow the toy data of FFJORD (Grathwohl et al. 2019, arXiv:1810.01367), scaled as
there so that the data roughly fill [−4, 4]²; each sampler's docstring says where it differs. A new
data set joins ``DATASETS`` under its name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate, special

from .layer import RNGLike, as_rng, check_array, check_int
from .targets import TARGETS, GaussianMixture, get_target

__all__ = [
    "DATASETS",
    "DIGITS_LEVELS",
    "DIGITS_SPLIT",
    "TARGETS",
    "Banana",
    "Checkerboard",
    "Circles",
    "Dataset",
    "MixtureData",
    "Moons",
    "Sampled",
    "bimodal_1d",
    "circles",
    "gaussian_ring",
    "get",
    "get_target",
    "load_digits",
    "pinwheel",
    "two_moons",
    "two_spirals",
]

LOG_2PI = float(np.log(2.0 * np.pi))
GH_NODES = 80  # Gauss–Hermite nodes per axis for a 2-D mixture's entropy
MOON_RADIUS = 2.0
MOON_CENTRES = np.array([[-1.0, -0.2], [1.0, 0.8]])  # upper moon, lower moon
MOON_START_ANGLES = np.array(
    [0.0, np.pi]
)  # their half circles span [α₀, α₀ + π] around the centres
ARC_RULE = np.polynomial.legendre.leggauss(24)  # per panel of a moon's arc integral
ARC_CUTOFF = 40.0  # the arc integral's window: where its integrand is above e^{−40} of its peak
GRID_CELLS_PER_SD, GRID_REACH_SDS = 6, 13.0  # the midpoint rule for the moons' entropy
CHUNK_ROWS = 16_384  # rows of x per pass of Moons.log_density: (16384, 2, 2, 24) arrays, 12.6 MB
TAIL_SDS = 12.0  # 1-D quadrature range: beyond μ_k ± 12 σ_k each component has mass below 1e-32


class Dataset(Protocol):
    """What every built-in data set offers; ``log_density`` and ``entropy`` are None where the
    density is not known."""

    dim: int
    log_density: Callable[[np.ndarray], np.ndarray] | None
    """The exact log Pr(x) for x of shape (N, dim); returns (N,) in nats."""
    entropy: Callable[[], float] | None
    """The differential entropy of Pr in nats."""

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` draws, shape (n, dim), float64."""


class MixtureData:
    """Pr(x) = Σ_k w_k N(x; μ_k, Σ_k) on ℝᴰ (D = 1 or 2 here), for x of shape (N, D).

    Args:
        weights: w_k > 0 summing to one, shape (K,).
        means: μ_k, shape (K, D).
        covs: Σ_k, symmetric positive definite, shape (K, D, D).

    Sampling, the density and the checks of the arguments are those of
    :class:`npflows.targets.GaussianMixture` (log Z = 0). ``entropy()`` = −∫ Pr log Pr, computed
    once and cached:
    - D = 1: by ``scipy.integrate.quad`` over [min_k(μ_k − 12σ_k), max_k(μ_k + 12σ_k)] (the tails
      left out hold less than 1e-30 nats), split at the means, tolerances 1e-12: about 1e-10 nats.
    - D = 2: Σ_k w_k E_{N(μ_k, Σ_k)}[−log Pr(x)], each expectation by the tensor-product
      Gauss–Hermite rule with 80 × 80 nodes t mapped to x = μ_k + L_k t (Σ_k = L_k L_kᵀ); on
      "8gaussians" 60, 80 and 120 nodes agree to 1e-12 nats. The rule is slower to converge where
      modes overlap (on "bimodal" it is off by 2e-6), which is why 1-D uses adaptive quadrature.
    """

    def __init__(self, weights: Sequence[float], means: Sequence, covs: Sequence):
        self.mixture = GaussianMixture(weights, means, covs)
        self.dim = self.mixture.dim
        if self.dim > 2:
            raise ValueError(
                f"means must have shape (K, 1) or (K, 2), got {self.mixture.means.shape}"
            )
        self._entropy: float | None = None

    def __repr__(self) -> str:
        m = self.mixture
        return (
            f"MixtureData(weights={m.weights.tolist()}, means={m.means.tolist()}, "
            f"covs={m.covs.tolist()})"
        )

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` draws of shape (n, D): k ~ w, then x = μ_k + L_k ε with ε ~ N(0, I)."""
        return self.mixture.sample(n, rng)

    def log_density(self, x) -> np.ndarray:
        """log Pr(x) for x of shape (N, D); returns (N,) in nats."""
        return self.mixture.log_density(x)[0]

    def entropy(self) -> float:
        """Differential entropy H[Pr] in nats (by quadrature; cached)."""
        if self._entropy is None:
            self._entropy = self._entropy_1d() if self.dim == 1 else self._entropy_2d()
        return self._entropy

    def _entropy_1d(self) -> float:
        means, sds = self.mixture.means[:, 0], np.sqrt(self.mixture.covs[:, 0, 0])

        def integrand(t: float) -> float:
            log_p = self.log_density(np.array([[t]]))[0]
            return -np.exp(log_p) * log_p

        value, _ = integrate.quad(
            integrand,
            float(np.min(means - TAIL_SDS * sds)),
            float(np.max(means + TAIL_SDS * sds)),
            points=np.unique(means),
            epsabs=1e-12,
            epsrel=1e-12,
            limit=200,
        )
        return float(value)

    def _entropy_2d(self) -> float:
        t, w = hermegauss(GH_NODES)  # ∫ g(t) e^{−t²/2} dt ≈ Σ_i w_i g(t_i)
        t2 = np.stack(np.meshgrid(t, t, indexing="ij"), axis=-1).reshape(-1, 2)  # (M, 2)
        w2 = np.outer(w, w).ravel() / w.sum() ** 2  # (M,), sums to one
        chol = np.linalg.cholesky(self.mixture.covs)  # L_k, (K, 2, 2)
        x = self.mixture.means[:, None, :] + np.einsum("kij,mj->kmi", chol, t2)  # (K, M, 2)
        neg_log_p = -self.log_density(x.reshape(-1, 2)).reshape(len(chol), -1)  # (K, M)
        return float(self.mixture.weights @ neg_log_p @ w2)


BIMODAL = MixtureData(weights=(0.3, 0.7), means=[[-2.0], [1.5]], covs=[[[0.5**2]], [[0.8**2]]])
"""The "bimodal" data set: 0.3 N(−2, 0.5²) + 0.7 N(1.5, 0.8²), two well-separated modes."""


def bimodal_1d(n: int, rng: RNGLike = None) -> np.ndarray:
    """``n`` draws from ``BIMODAL`` (this module's two-mode mixture), shape (n, 1), float64."""
    return BIMODAL.sample(n, rng)


# -- 2-D data sets with an exact density -----------------------------------------------------------
def gaussian_ring(
    k: int = 8, radius: float = 2.0 * np.sqrt(2.0), sd: float = 0.5 / np.sqrt(2.0)
) -> MixtureData:
    """``k`` equally weighted round Gaussians N(μ_j, sd² I) on a circle, μ_j = radius · (cos 2πj/k,
    sin 2πj/k). The defaults are FFJORD's "8gaussians": centres 4 · (cos, sin), sd 0.5, all / √2."""
    angles = 2.0 * np.pi * np.arange(k) / k
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return MixtureData(np.full(k, 1.0 / k), means, np.tile(sd**2 * np.eye(2), (k, 1, 1)))


class Checkerboard:
    """Uniform on the black squares of a ``k`` × ``k`` board of side-``side`` squares centred at 0.

    Square (i, j), counted from 0 at the corner −(k·side/2)(1, 1), covers [a_i, a_i + side) ×
    [a_j, a_j + side) and is black when i + j is even. With B black squares of area A = B · side²:
    log Pr(x) = −log A on them and −inf elsewhere; H[Pr] = log A. The defaults (k = 4, side = 2)
    are FFJORD's checkerboard: 8 black squares filling half of [−4, 4]², A = 32.
    """

    dim = 2

    def __init__(self, k: int = 4, side: float = 2.0):
        if int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not (np.isfinite(side) and side > 0):
            raise ValueError(f"side must be positive and finite, got {side!r}")
        self.k, self.side, self.corner = int(k), float(side), -0.5 * k * side
        i, j = np.divmod(np.arange(self.k**2), self.k)
        black = (i + j) % 2 == 0
        self.black_squares = np.stack([i[black], j[black]], axis=1)  # (B, 2), 0-based (i, j)
        self.log_area = float(np.log(len(self.black_squares) * self.side**2))

    def __repr__(self) -> str:
        return f"Checkerboard(k={self.k}, side={self.side})"

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` draws of shape (n, 2): a black square uniformly, then a uniform point in it."""
        n, rng = check_int(n, "n", minimum=0), as_rng(rng)
        square = self.black_squares[rng.integers(0, len(self.black_squares), n)]
        return self.corner + self.side * (square + rng.random((n, 2)))

    def log_density(self, x) -> np.ndarray:
        """log Pr(x) for x of shape (N, 2): −log A on the black squares, −inf elsewhere."""
        x = check_array(x, 2, "x").astype(np.float64, copy=False)
        square = np.floor((x - self.corner) / self.side)  # (N, 2)
        on_board = np.all((square >= 0) & (square < self.k), axis=1)
        return np.where(on_board & (square.sum(axis=1) % 2 == 0), -self.log_area, -np.inf)

    def entropy(self) -> float:
        """Differential entropy H[Pr] = log A in nats (exact)."""
        return self.log_area


class Banana:
    """x1 ~ N(0, sd1²), x2 | x1 ~ N(bend · (x1² − sd1²), sd2²): a Gaussian bent into a parabola.

    Subtracting sd1² = E[x1²] centres it (E[x2] = 0). It is the image of ε ~ N(0, I) under
    x = (sd1 ε1, bend (sd1² ε1² − sd1²) + sd2 ε2), whose Jacobian determinant is sd1 · sd2, so
    log Pr(x) = log N(x1; 0, sd1²) + log N(x2; bend (x1² − sd1²), sd2²),
    H[Pr] = log(2πe sd1 sd2).

    Args:
        sd1, sd2: positive standard deviations; bend: the curvature (any sign).
    """

    dim = 2

    def __init__(self, sd1: float = 1.25, bend: float = 0.5, sd2: float = 0.4):
        for name, value in (("sd1", sd1), ("sd2", sd2)):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive and finite, got {value!r}")
        if not np.isfinite(bend):
            raise ValueError(f"bend must be finite, got {bend!r}")
        self.sd1, self.bend, self.sd2 = float(sd1), float(bend), float(sd2)

    def __repr__(self) -> str:
        return f"Banana(sd1={self.sd1}, bend={self.bend}, sd2={self.sd2})"

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` draws of shape (n, 2), by the map from ε ~ N(0, I) above."""
        eps = as_rng(rng).standard_normal((check_int(n, "n", minimum=0), 2))
        x1 = self.sd1 * eps[:, 0]
        return np.stack([x1, self.bend * (x1**2 - self.sd1**2) + self.sd2 * eps[:, 1]], axis=1)

    def log_density(self, x) -> np.ndarray:
        """log Pr(x) for x of shape (N, 2); returns (N,) in nats."""
        x = check_array(x, 2, "x").astype(np.float64, copy=False)
        u1 = x[:, 0] / self.sd1
        u2 = (x[:, 1] - self.bend * (x[:, 0] ** 2 - self.sd1**2)) / self.sd2
        return -0.5 * (u1**2 + u2**2) - LOG_2PI - np.log(self.sd1 * self.sd2)

    def entropy(self) -> float:
        """Differential entropy H[Pr] = log(2πe sd1 sd2) in nats (exact)."""
        return float(np.log(2.0 * np.pi * np.e * self.sd1 * self.sd2))


# -- noisy curves: the exact density integrates the curve's parameter out ---------------------------
def _unit_circle(angle: np.ndarray) -> np.ndarray:
    """(cos θ, sin θ), shape (N, 2), for angles θ of shape (N,)."""
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)


def two_moons(n: int, rng: RNGLike = None, noise: float = 0.2) -> np.ndarray:
    """Two interleaved half circles of radius 2: scikit-learn's ``make_moons`` · 2 − (1, 0.2), as
    in FFJORD. Each point picks a moon with probability ½ and θ ~ U(0, π): the upper moon is
    (−1, −0.2) + 2 (cos θ, sin θ), the lower (1, 0.8) − 2 (cos θ, sin θ); then N(0, noise²) is added
    to each coordinate (``noise`` 0.2 is make_moons' 0.1, scaled). Shape (n, 2)."""
    n, rng = check_int(n, "n", minimum=0), as_rng(rng)
    lower = rng.random(n) < 0.5
    arc = MOON_RADIUS * _unit_circle(rng.uniform(0.0, np.pi, n))
    x = np.where(lower[:, None], MOON_CENTRES[1] - arc, MOON_CENTRES[0] + arc)
    return x + noise * rng.standard_normal((n, 2))


class Moons:
    """The two moons of :func:`two_moons`, with their exact density.

    A moon with probability ½, θ ~ U(0, π), then x = m(θ) + σ ε, ε ~ N(0, I), on the half circles
    of radius R = 2 around c = (−1, −0.2) (angles α ∈ [0, π]) and c = (1, 0.8) (α ∈ [π, 2π]):

        Pr(x) = ½ Σ_moon (1/π) ∫_0^π N(x; c + R (cos α, sin α), σ² I) dθ,  α = α₀ + θ.

    With d = |x − c|, φ the angle of x − c and ψ = α − φ, |x − m|² = (d − R)² + 4Rd sin²(ψ/2):

        Pr(x) = (1/(4π²σ²)) Σ_moon exp(−(d − R)²/(2σ²)) J,  J = ∫_a^{a+π} exp(−κ sin²(ψ/2)) dψ,

    κ = 2Rd/σ², a = α₀ − φ wrapped into (−π, π]. J is an incomplete von Mises integral, computed
    by Gauss–Legendre quadrature on the window around its peak ψ* (the angle of [a, a + π] nearest
    0 mod 2π) where the integrand exceeds e^{−40} of its peak value: sin²(ψ/2) ≤ sin²(ψ*/2) + 40/κ.
    That window is split at the peak into at most two monotone panels of 24 nodes each, so
    the nodes follow the peak, however sharp (far points have large κ). The integrand is written
    as exp(−κ s*) · exp(−κ (sin²(ψ/2) − s*)), s* = sin²(ψ*/2), and the difference
    sin²(ψ/2) − s* = sin((ψ − ψ*)/2) sin((ψ + ψ*)/2) has no cancellation; the second factor lies in
    [e^{−40}, 1] on the window, so it is summed directly, without overflow or underflow.

    H[Pr] = −∫ Pr log Pr is computed once (cached) by the midpoint rule on a grid of square cells
    of side h = σ/6, over the annuli |d − R| ≤ 13σ around the two centres (outside them Pr < e^{−84}).
    For a smooth density that decays to zero the rule converges faster than any power of h; the
    finest features are σ wide, and, for σ = 0.2, σ/5 wide where the two moons' terms cross in
    log Pr (arcs about 1 apart: width σ²/1), hence σ/6.
    For σ = 0.2 that is 78,182 evaluations of log Pr (about 1 s), growing like 1/σ. (The
    quadrature over the generating variables — Gauss–Legendre in θ, Gauss–Hermite per noise
    axis — converges slowly here, as where a mixture's modes overlap: 1.6e-8 nats off with 64 × 60
    × 60 nodes, 6e-10 with 128 × 100 × 100.)

    Accuracy, as ``pytest tests/test_datasets.py -k moons`` checks it: log Pr within 1e-14
    (relative) of a 20-digit mpmath quadrature of the θ integral, at points on the moons, at the
    arcs' ends and centres and out to |x| = 100; H against the generating-variable quadrature and
    a Monte Carlo mean, and the rule itself with h = σ/5 and σ/8 (agreeing to 1e-12 nats).

    Args:
        noise: σ > 0; the default is that of :func:`two_moons` (FFJORD's "moons").
    """

    dim = 2

    def __init__(self, noise: float = 0.2):
        if not (np.isfinite(noise) and noise > 0):
            raise ValueError(f"noise must be positive and finite, got {noise!r}")
        self.noise = float(noise)
        self._entropy: float | None = None

    def __repr__(self) -> str:
        return f"Moons(noise={self.noise})"

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` draws of shape (n, 2): ``two_moons(n, rng, noise)``."""
        return two_moons(n, rng, self.noise)

    def log_density(self, x) -> np.ndarray:
        """log Pr(x) for x of shape (N, 2); returns (N,) in nats."""
        x = check_array(x, 2, "x").astype(np.float64, copy=False)
        out = np.empty(len(x))
        for start in range(0, len(x), CHUNK_ROWS):  # bounded memory for any N
            out[start : start + CHUNK_ROWS] = self._log_density(x[start : start + CHUNK_ROWS])
        return out

    def _log_density(self, x: np.ndarray) -> np.ndarray:
        var = self.noise**2
        offset = x[:, None, :] - MOON_CENTRES  # x − c, (N, 2 moons, 2)
        d = np.hypot(offset[..., 0], offset[..., 1])  # (N, 2)
        phi = np.arctan2(offset[..., 1], offset[..., 0])
        a = np.pi - np.mod(np.pi - (MOON_START_ANGLES - phi), 2.0 * np.pi)  # in (−π, π]
        log_terms = -0.5 * (d - MOON_RADIUS) ** 2 / var + self._log_arc_integral(d, a)
        return np.logaddexp(log_terms[:, 0], log_terms[:, 1]) - np.log(4.0 * np.pi**2 * var)

    def _log_arc_integral(self, d: np.ndarray, a: np.ndarray) -> np.ndarray:
        """log J = log ∫_a^{a+π} exp(−κ sin²(ψ/2)) dψ, κ = 2Rd/σ², for d ≥ 0 and a ∈ (−π, π]."""
        kappa = 2.0 * MOON_RADIUS * d / self.noise**2
        # The peak: ψ = 0 if it is in [a, a + π]; else the end nearer to 0 or 2π.
        peak = np.where(a <= 0.0, 0.0, np.where(a <= 0.5 * np.pi, a, a + np.pi))
        s_peak = np.sin(0.5 * peak) ** 2
        with np.errstate(divide="ignore"):  # κ = 0 at the centre: the whole arc
            reach = np.sqrt(np.minimum(1.0, s_peak + ARC_CUTOFF / kappa))
        delta = 2.0 * np.arcsin(reach)  # the window is |ψ − 2πk| ≤ δ for k = 0, 1
        # Two panels: [lo, 0] and [0, hi] around an inner peak; else the window's parts near
        # ψ = 0 (falling from a) and near 2π (rising to a + π), either possibly empty.
        inner = a <= 0.0
        lo = np.stack(
            [
                np.where(inner, np.maximum(a, -delta), a),
                np.where(inner, 0.0, np.maximum(a, 2.0 * np.pi - delta)),
            ],
            axis=-1,
        )
        hi = np.stack(
            [
                np.where(inner, 0.0, np.minimum(a + np.pi, delta)),
                np.where(inner, np.minimum(a + np.pi, delta), a + np.pi),
            ],
            axis=-1,
        )
        half = 0.5 * np.maximum(hi - lo, 0.0)  # (..., 2 panels)
        t, w = ARC_RULE
        psi = lo[..., None] + half[..., None] * (1.0 + t)  # (..., 2, nodes)
        gap = np.sin(0.5 * (psi - peak[..., None, None])) * np.sin(
            0.5 * (psi + peak[..., None, None])
        )
        integral = np.einsum("...p,...pj,j->...", half, np.exp(-kappa[..., None, None] * gap), w)
        return np.log(integral) - kappa * s_peak

    def entropy(self) -> float:
        """Differential entropy H[Pr] in nats (by the midpoint rule; cached)."""
        if self._entropy is None:
            sd, h = self.noise, self.noise / GRID_CELLS_PER_SD
            reach = MOON_RADIUS + GRID_REACH_SDS * sd  # each moon lies in the disc |x − c| ≤ reach
            lo, hi = MOON_CENTRES.min(axis=0) - reach, MOON_CENTRES.max(axis=0) + reach
            axes = [np.arange(lo[i] + 0.5 * h, hi[i], h) for i in range(2)]
            x = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
            d = np.linalg.norm(x[:, None, :] - MOON_CENTRES, axis=-1)  # (M, 2 moons)
            x = x[np.any(np.abs(d - MOON_RADIUS) <= GRID_REACH_SDS * sd, axis=1)]
            log_p = self.log_density(x)
            self._entropy = float(-np.sum(np.exp(log_p) * log_p) * h * h)
        return self._entropy


def circles(
    n: int, rng: RNGLike = None, radii: Sequence[float] = (3.0, 1.5), noise: float = 0.24
) -> np.ndarray:
    """Concentric circles: a radius r from ``radii`` with equal probability, θ ~ U(0, 2π),
    x = r (cos θ, sin θ) + N(0, noise² I). The defaults are FFJORD's (scikit-learn's
    ``make_circles(factor=0.5, noise=0.08)`` · 3). Shape (n, 2)."""
    n, rng = check_int(n, "n", minimum=0), as_rng(rng)
    r = np.asarray(radii, dtype=np.float64)[rng.integers(0, len(radii), n)]
    x = r[:, None] * _unit_circle(rng.uniform(0.0, 2.0 * np.pi, n))
    return x + noise * rng.standard_normal((n, 2))


class Circles:
    """Concentric noisy circles, the data of :func:`circles`, with their exact density.

    A radius r from ``radii`` (R of them, each with probability 1/R), θ ~ U(0, 2π), then
    x = r (cos θ, sin θ) + σ ε, ε ~ N(0, I). Integrating the angle out (the von Mises integral
    (1/2π) ∫ exp(a cos θ) dθ = I₀(a)), with ρ = |x|:

        Pr(x) = (1/R) Σ_r (1/2π) ∫ N(x; r (cos θ, sin θ), σ² I) dθ
              = (1/R) Σ_r (1/(2πσ²)) exp(−(ρ² + r²)/(2σ²)) I₀(rρ/σ²),

    computed as log Pr(x) = logsumexp_r[−(ρ − r)²/(2σ²) + log i0e(rρ/σ²)] − log(2πσ² R), where
    i0e(a) = e^{−a} I₀(a) is finite for every a: no overflow, and no cancellation between
    the exponent and log I₀ far from the origin. H[Pr] = −∫_0^∞ 2πρ Pr(ρ) log Pr(ρ) dρ (the density
    depends on ρ only) is computed once, by adaptive quadrature, and cached.

    Accuracy, as ``pytest tests/test_datasets.py -k circles`` checks it: log Pr within 2e-15
    (relative) of a 20-digit mpmath quadrature of the angle integral at points from the origin out
    to |x| = 50; H within 1e-12 nats of −Σ Pr log Pr h² over a grid of side h = σ/6.

    Args:
        radii: the circles' radii, positive, shape (R,); noise: σ > 0. The defaults are those of
            :func:`circles` (FFJORD's "circles").
    """

    dim = 2

    def __init__(self, radii: Sequence[float] = (3.0, 1.5), noise: float = 0.24):
        r = np.asarray(radii, dtype=np.float64)
        if r.ndim != 1 or len(r) == 0 or not np.all(np.isfinite(r) & (r > 0)):
            raise ValueError(f"radii must be a non-empty list of positive numbers, got {radii!r}")
        if not (np.isfinite(noise) and noise > 0):
            raise ValueError(f"noise must be positive and finite, got {noise!r}")
        self.radii, self.noise = tuple(r.tolist()), float(noise)
        self._entropy: float | None = None

    def __repr__(self) -> str:
        return f"Circles(radii={self.radii}, noise={self.noise})"

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` draws of shape (n, 2): ``circles(n, rng, radii, noise)``."""
        return circles(n, rng, self.radii, self.noise)

    def log_density(self, x) -> np.ndarray:
        """log Pr(x) for x of shape (N, 2); returns (N,) in nats."""
        x = check_array(x, 2, "x").astype(np.float64, copy=False)
        return self._log_density_radial(np.hypot(x[:, 0], x[:, 1]))

    def _log_density_radial(self, rho: np.ndarray) -> np.ndarray:
        """log Pr at any x with |x| = ρ, for ρ ≥ 0 of shape (N,)."""
        r, var = np.array(self.radii), self.noise**2
        log_terms = -0.5 * (rho[:, None] - r) ** 2 / var + np.log(
            special.i0e(rho[:, None] * r / var)
        )
        return special.logsumexp(log_terms, axis=1) - np.log(2.0 * np.pi * var * len(r))

    def entropy(self) -> float:
        """Differential entropy H[Pr] in nats (by quadrature; cached)."""
        if self._entropy is None:

            def integrand(rho: float) -> float:
                log_p = self._log_density_radial(np.array([rho]))[0]
                return -2.0 * np.pi * rho * np.exp(log_p) * log_p

            value, _ = integrate.quad(
                integrand,
                0.0,
                max(self.radii) + TAIL_SDS * self.noise,
                points=sorted(self.radii),
                epsabs=1e-13,
                epsrel=1e-13,
                limit=200,
            )
            self._entropy = float(value)
        return self._entropy


# -- 2-D data sets known only through a sampler ----------------------------------------------------
@dataclass(frozen=True)
class Sampled:
    """A 2-D data set known only through ``sample(n, rng) -> (n, 2)``: no exact density, so
    ``log_density`` and ``entropy`` are None."""

    sample: Callable[[int, RNGLike], np.ndarray]
    dim: int = 2
    log_density: None = None
    entropy: None = None


def pinwheel(
    n: int,
    rng: RNGLike = None,
    arms: int = 5,
    radial_sd: float = 0.3,
    tangential_sd: float = 0.1,
    rate: float = 0.25,
) -> np.ndarray:
    """FFJORD's pinwheel: ``arms`` curved arms. A point picks an arm j uniformly and starts at
    h = (1 + radial_sd ε1, tangential_sd ε2), ε ~ N(0, I); it is turned anticlockwise by the angle
    2πj/arms + rate · exp(h1), so that points farther out turn more, and scaled by 2. (FFJORD turns
    it clockwise: this is its mirror image.) Shape (n, 2)."""
    n, rng = check_int(n, "n", minimum=0), as_rng(rng)
    h = rng.standard_normal((n, 2)) * np.array([radial_sd, tangential_sd])
    h[:, 0] += 1.0
    c, s = _unit_circle(2.0 * np.pi * rng.integers(0, arms, n) / arms + rate * np.exp(h[:, 0])).T
    return 2.0 * np.stack([c * h[:, 0] - s * h[:, 1], s * h[:, 0] + c * h[:, 1]], axis=1)


def two_spirals(n: int, rng: RNGLike = None, turns: float = 1.5, noise: float = 0.1) -> np.ndarray:
    """Two interleaved spirals: θ = 2π · turns · √u with u ~ U(0, 1) (even density along the area
    swept), x = ±(−θ cos θ, θ sin θ)/3 with either sign equally likely, plus N(0, noise² I).
    FFJORD's "2spirals" without its uniform jitter; the arms end at radius 2π · turns / 3 = π.
    Shape (n, 2)."""
    n, rng = check_int(n, "n", minimum=0), as_rng(rng)
    theta = 2.0 * np.pi * turns * np.sqrt(rng.random(n))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    arm = theta[:, None] * _unit_circle(theta) * np.array([-1.0, 1.0]) / 3.0
    return sign[:, None] * arm + noise * rng.standard_normal((n, 2))


DATASETS: dict[str, Dataset] = {
    "bimodal": BIMODAL,
    "moons": Moons(),
    "circles": Circles(),
    "8gaussians": gaussian_ring(),
    "8gaussians-narrow": gaussian_ring(8, radius=2.0, sd=0.04),
    "checkerboard": Checkerboard(),
    "pinwheel": Sampled(pinwheel),
    "2spirals": Sampled(two_spirals),
    "banana": Banana(),
}


def get(name: str) -> Dataset:
    """The built-in data set called ``name``; ValueError listing the names for an unknown one."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}"
        ) from None


# -- images ----------------------------------------------------------------------------------------
DIGITS_LEVELS = 17
"""Grey levels of the 8×8 digits: integers 0 … 16."""

DIGITS_SPLIT = {"train": slice(0, 1000), "validation": slice(1000, 1350), "test": slice(1350, 1797)}
"""The fixed split of the 1,797 digits, in the order scikit-learn ships them: the first 1,000 for
training, the next 350 for validation, the remaining 447 for testing (as in Tomczak's intro_dgm
notebooks, so bits/dim are comparable with the baselines computed there)."""


def load_digits(split: str | None = None) -> np.ndarray:
    """The 8×8 handwritten digits of scikit-learn (UCI optdigits test set): integer images.

    Args:
        split: None for all 1,797 images, or "train" (first 1,000), "validation" (next 350) or
            "test" (remaining 447); see ``DIGITS_SPLIT``.

    Returns:
        int64 array of shape (N, 1, 8, 8) with values 0 … 16 (``DIGITS_LEVELS`` = 17 levels). Train
        on them with ``npflows.fit(flow, npflows.Pixels(images, levels=17))``.

    Raises:
        ImportError: without scikit-learn (the data ship inside it, no download):
            ``pip install 'npflows[images]'`` or ``pip install scikit-learn``.
    """
    if split is not None and split not in DIGITS_SPLIT:
        raise ValueError(f"split must be None or one of {sorted(DIGITS_SPLIT)}, got {split!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ModuleNotFoundError as error:
        if error.name not in ("sklearn", "sklearn.datasets"):
            raise  # scikit-learn is there but broken: show its own error
        raise ImportError(
            "load_digits needs scikit-learn, which ships the data: "
            "pip install 'npflows[images]' (or pip install scikit-learn)"
        ) from None
    images = np.rint(sklearn_digits().images).astype(np.int64).reshape(-1, 1, 8, 8)
    return images if split is None else images[DIGITS_SPLIT[split]]
