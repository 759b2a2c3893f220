"""The peers' elementwise maps, exactly as zuko 1.6 and nflows 0.14 define them.

Book: ch. 16, "Elementwise flows" and "Coupling flows". Directions follow npflows
(docs/conventions.md): ``forward`` is the generative map (the peers' ``inverse``), ``inverse`` the
normalizing map x → z (the peers' ``forward``, the one their ``log_prob`` uses). Shapes: ``u``, ``y``
(N, D); θ (N, D, P) with the P raw numbers of each coordinate in the peer's own order, named by
``blocks``; log-derivatives (N, D), log|∂y/∂u| for ``forward`` and log|∂u/∂y| for ``inverse``.

These maps offer no pullbacks: the layers built on them set ``has_forward_vjp`` and
``has_inverse_vjp`` to False. docs/interop.md lists every formula with its source line.
"""

from __future__ import annotations

import math

import numpy as np


def torch_softplus(s):
    """torch.nn.functional.softplus with its default threshold 20: s itself for s > 20, else
    log(1 + eˢ). (The two differ by up to e⁻²⁰ ≈ 2e−9 at s = 20, so the threshold is part of the
    model.)"""
    return np.where(s > 20.0, s, np.log1p(np.exp(np.minimum(s, 20.0))))


def _sigmoid(s):
    """1 / (1 + e⁻ˢ) without overflow."""
    e = np.exp(-np.abs(s))
    return np.where(s >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def zuko_soft_clip(a, slope: float, factor: float = 1.0):
    """zuko's smooth clamp a / (1 + |factor · a / ln(slope)|), in (−|ln slope|/factor, +|ln slope|/factor)."""
    return a / (1.0 + np.abs(factor * a / math.log(slope)))


class _ZukoAffine:
    """zuko.transforms.MonotonicAffineTransform (slope 1e-3): normalizing z = x · e^ℓ + b.

    θ = (shift b, raw scale a), ℓ = a / (1 + |a / ln 10⁻³|) ∈ (−6.91, 6.91).
    inverse (normalizing): z = x · e^ℓ + b, log|∂z/∂x| = ℓ.
    forward (generative): x = (z − b) / e^ℓ, log|∂x/∂z| = −ℓ.
    """

    blocks = (("shift", 1), ("scale", 1))
    n_params = 2

    def __init__(self, slope: float = 1e-3):
        self.slope = slope

    def _shift_log_scale(self, theta):
        return theta[..., 0], zuko_soft_clip(theta[..., 1], self.slope)

    def inverse(self, x, theta):
        shift, log_scale = self._shift_log_scale(theta)
        return x * np.exp(log_scale) + shift, log_scale

    def forward(self, z, theta):
        shift, log_scale = self._shift_log_scale(theta)
        return (z - shift) / np.exp(log_scale), -log_scale


class _ZukoSpline:
    """zuko.transforms.MonotonicRQSTransform: a rational-quadratic spline on [−B, B], identity outside.

    θ = (widths w (K), heights h (K), derivatives d (K − 1)), raw. With L = ln(slope):
        w ← w / (1 + |2w / L|), h ← h / (1 + |2h / L|), d ← d / (1 + |d / L|);
        x_k = B (2 Σ_{j<k} softmax(w)_j − 1), k = 0 … K (a cumulative sum from a padded 0, so x_0 = −B
        and x_K = B up to rounding), y_k the same from h;
        δ_0 = δ_K = 1, δ_k = e^{d_k} for k = 1 … K − 1.
    inverse (normalizing, zuko's closed-form ``_call``): for x_0 < x ≤ x_K in bin k, with
    ξ = (x − x_k)/(x_{k+1} − x_k) and s = (y_{k+1} − y_k)/(x_{k+1} − x_k),
        z = y_k + (y_{k+1} − y_k)[s ξ² + δ_k ξ(1 − ξ)] / [s + (δ_k + δ_{k+1} − 2s) ξ(1 − ξ)],
        log|∂z/∂x| = log(s² [2s ξ(1 − ξ) + δ_k (1 − ξ)² + δ_{k+1} ξ²] / [s + (δ_k + δ_{k+1} − 2s) ξ(1 − ξ)]²);
    elsewhere z = x, log-det 0 (as zuko: x = −B exactly counts as outside).
    forward (generative, zuko's ``_inverse``): ξ solves a ξ² + b ξ + c = 0 with r = y − y_k,
    a = (y_{k+1} − y_k)(s − δ_k) + r Δ, b = (y_{k+1} − y_k) δ_k − r Δ, c = −s r, Δ = δ_k + δ_{k+1} − 2s.
    zuko takes ξ = 2c / (−b − √(b² − 4ac)), which cancels when b < 0; here that root is taken as
    (−b + √disc) / (2a) when b < 0 (the same number in exact arithmetic), disc clamped at 0 and ξ
    clipped to [0, 1]. log|∂x/∂z| is minus the normalizing log-derivative at the root.
    """

    def __init__(self, bins: int, bound: float = 5.0, slope: float = 1e-3):
        self.bins, self.bound, self.slope = bins, bound, slope
        self.blocks = (("widths", bins), ("heights", bins), ("derivatives", bins - 1))
        self.n_params = 3 * bins - 1

    def _knots(self, theta):
        """x_k, y_k and δ_k, each (N, D, K + 1)."""
        K, B, slope = self.bins, self.bound, self.slope

        def cumulative(raw):
            clipped = zuko_soft_clip(raw, slope, factor=2.0)
            e = np.exp(clipped - clipped.max(axis=-1, keepdims=True))
            padded = np.concatenate(
                [np.zeros_like(e[..., :1]), e / e.sum(axis=-1, keepdims=True)], -1
            )
            return B * (2.0 * np.cumsum(padded, axis=-1) - 1.0)

        d = zuko_soft_clip(theta[..., 2 * K :], slope)
        zeros = np.zeros_like(d[..., :1])
        deriv = np.exp(np.concatenate([zeros, d, zeros], axis=-1))
        return cumulative(theta[..., :K]), cumulative(theta[..., K : 2 * K]), deriv

    def _bin(self, knots, v):
        """zuko's bin search: k = #{knots < v} − 1; inside when 0 ≤ k < K. Gathers the bin's ends."""
        k = (knots < v[..., None]).sum(axis=-1) - 1
        inside = (k >= 0) & (k < self.bins)
        k = np.where(inside, k, 0)[..., None]
        return inside, k

    @staticmethod
    def _at(a, k):
        return np.take_along_axis(a, k, axis=-1)[..., 0]

    def _ends(self, theta, v, which):
        xs, ys, ds = self._knots(theta)
        inside, k = self._bin(xs if which == "x" else ys, v)
        x0, x1 = self._at(xs, k), self._at(xs, k + 1)
        y0, y1 = self._at(ys, k), self._at(ys, k + 1)
        d0, d1 = self._at(ds, k), self._at(ds, k + 1)
        return inside, x0, x1, y0, y1, d0, d1, (y1 - y0) / (x1 - x0)

    @staticmethod
    def _log_deriv(xi, s, d0, d1):
        t = xi * (1.0 - xi)
        numerator = s * s * (2.0 * s * t + d0 * (1.0 - xi) ** 2 + d1 * xi * xi)
        denominator = (s + (d0 + d1 - 2.0 * s) * t) ** 2
        return np.log(numerator / denominator)

    def inverse(self, x, theta):
        inside, x0, x1, y0, y1, d0, d1, s = self._ends(theta, x, "x")
        xi = np.where(inside, (x - x0) / (x1 - x0), 0.0)
        t = xi * (1.0 - xi)
        z = y0 + (y1 - y0) * (s * xi * xi + d0 * t) / (s + (d0 + d1 - 2.0 * s) * t)
        return np.where(inside, z, x), np.where(inside, self._log_deriv(xi, s, d0, d1), 0.0)

    def forward(self, z, theta):
        inside, x0, x1, y0, y1, d0, d1, s = self._ends(theta, z, "y")
        height = y1 - y0
        r = np.where(inside, z - y0, 0.0)
        delta = d0 + d1 - 2.0 * s
        a = height * (s - d0) + r * delta
        b = height * d0 - r * delta
        c = -s * r
        root = np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):  # the unused branch may divide by 0
            xi = np.where(b >= 0, 2.0 * c / (-b - root), (-b + root) / (2.0 * a))
        xi = np.clip(np.where(inside, xi, 0.0), 0.0, 1.0)
        x = x0 + xi * (x1 - x0)
        return np.where(inside, x, z), np.where(inside, -self._log_deriv(xi, s, d0, d1), 0.0)


class _NflowsAffine:
    """nflows' affine elementwise map, normalizing z = x · σ + t with σ from a raw scale s.

    ``scale="softplus"``: σ = softplus(s) + 10⁻³ (MaskedAffineAutoregressiveTransform; torch's
    softplus, s itself above 20), θ = (raw scale s, shift t) per coordinate.
    ``scale="sigmoid"``: σ = sigmoid(s + 2) + 10⁻³ (AffineCouplingTransform), θ = (shift t, raw scale s).
    inverse (normalizing): z = x · σ + t, log|∂z/∂x| = log σ.
    forward (generative): x = (z − t) / σ, log|∂x/∂z| = −log σ.
    """

    def __init__(self, scale: str):
        self.scale = scale
        self.blocks = (
            (("scale", 1), ("shift", 1)) if scale == "softplus" else (("shift", 1), ("scale", 1))
        )
        self.n_params = 2

    def _shift_scale(self, theta):
        if self.scale == "softplus":
            return theta[..., 1], torch_softplus(theta[..., 0]) + 1e-3
        return theta[..., 0], _sigmoid(theta[..., 1] + 2.0) + 1e-3

    def inverse(self, x, theta):
        shift, scale = self._shift_scale(theta)
        return x * scale + shift, np.log(scale)

    def forward(self, z, theta):
        shift, scale = self._shift_scale(theta)
        return (z - shift) / scale, -np.log(scale)


class _NflowsAdditive:
    """nflows.transforms.AdditiveCouplingTransform's map: z = x + t, θ = (shift t,), log-det 0."""

    blocks = (("shift", 1),)
    n_params = 1

    def inverse(self, x, theta):
        return x + theta[..., 0], np.zeros_like(x)

    def forward(self, z, theta):
        return z - theta[..., 0], np.zeros_like(z)


def zuko_affine() -> _ZukoAffine:
    """zuko's MonotonicAffineTransform (slope 10⁻³) as a map of this module."""
    return _ZukoAffine()


def zuko_spline(bins: int, bound: float = 5.0, slope: float = 1e-3) -> _ZukoSpline:
    """zuko's MonotonicRQSTransform with K = ``bins`` on [−bound, bound]."""
    return _ZukoSpline(bins, bound, slope)


def nflows_affine(scale: str) -> _NflowsAffine:
    """nflows' affine map: ``scale`` "softplus" (MAF) or "sigmoid" (coupling)."""
    return _NflowsAffine(scale)


def nflows_additive() -> _NflowsAdditive:
    """nflows' additive coupling map."""
    return _NflowsAdditive()
