"""The elementwise transformer contract: a monotone map y = h(u; θ) applied coordinate by coordinate.

Book: ch. 16, "Elementwise flows". A transformer is a pure function of arrays; it holds only fixed
hyperparameters (bin count, bound, slope). The same transformer serves three layers, which differ
only in where θ comes from (docs/elementwise.md): free parameters (elementwise flow), a network of the other
half (coupling flow), or a masked network of the preceding coordinates (autoregressive flow).

Shapes: ``u`` and ``y`` are (N, D); ``theta`` is (N, D, P) with P = ``n_params`` raw numbers per
coordinate (a broadcast view is fine); ``log_deriv`` is (N, D), the elementwise log|∂y/∂u| (forward)
or log|∂u/∂y| (inverse). The pullback maps (grad_y, grad_log_deriv) to (grad_u, grad_theta).

θ's layout is declared, not written in prose: ``blocks`` lists the raw parameter blocks as
(name, shape) pairs in the order they are packed along θ's last axis (the RQ spline's is
``(("widths", (K,)), ("heights", (K,)), ("derivatives", (K − 1,)))``), ``n_params`` is the sum of
their sizes, and :meth:`Transformer.split_params` / :meth:`Transformer.join_params` cut θ into its
named blocks and pack their gradients back, so no transformer slices θ by hand.

A subclass implements ``forward_vjp`` and ``_solve`` (u from y). The inverse's log-derivative and
pullback then follow from the forward ones by the implicit function theorem (derived in
:meth:`Transformer.inverse_vjp`), so each map's derivative is written once. Where the solve can
share work with the forward pass, a subclass overrides ``_inverse_parts`` instead of ``_solve``.
"""

from __future__ import annotations

import math

import numpy as np

Block = tuple[str, tuple[int, ...]]


class Transformer:
    """Base class of elementwise monotone maps y = h(u; θ).

    Attributes:
        blocks: the raw parameter blocks per coordinate, (name, shape) pairs in packing order;
            empty for a map without parameters.
    """

    blocks: tuple[Block, ...] = ()

    @property
    def n_params(self) -> int:
        """P, the number of raw parameters per coordinate: the sizes of ``blocks`` added up."""
        return sum(math.prod(shape) for _, shape in self.blocks)

    def describe_blocks(self) -> str:
        """The layout of θ in words, e.g. ``"widths (8,) + heights (8,) + derivatives (7,)"``."""
        return " + ".join(f"{name} {shape}" for name, shape in self.blocks) or "no parameters"

    def split_params(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """θ (..., P) cut into its named blocks, each a view of shape (..., *shape).

        Raises ValueError when θ's last axis is not P long or θ holds a NaN or inf: a conditioner
        whose network overflowed (on inputs far outside the range in docs/ranges.md) is refused
        here rather than turned into silent NaN outputs.
        """
        theta = np.asarray(theta)
        if theta.shape[-1:] != (self.n_params,):
            raise ValueError(
                f"theta of {self!r} must have {self.n_params} raw numbers per coordinate "
                f"({self.describe_blocks()}), got shape {theta.shape}"
            )
        if not np.isfinite(theta).all():
            raise ValueError(
                f"theta of {self!r} has NaN or inf values: the parameters, or the conditioner "
                "that computes them, overflowed (inputs too large, see docs/ranges.md)"
            )
        parts, start = {}, 0
        for name, shape in self.blocks:
            size = math.prod(shape)
            parts[name] = theta[..., start : start + size].reshape(theta.shape[:-1] + shape)
            start += size
        return parts

    def join_params(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """The inverse of :meth:`split_params`: blocks (..., *shape) packed into θ (..., P)."""
        flat = []
        for name, shape in self.blocks:
            part = parts[name]
            lead = part.shape[: part.ndim - len(shape)]
            flat.append(part.reshape(lead + (math.prod(shape),)))
        return np.concatenate(flat, axis=-1)

    def identity_params(self) -> np.ndarray:
        """Raw θ of shape (P,) for which h is the identity (or as near as the family allows)."""
        return np.zeros(self.n_params)

    def get_config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- to implement -----------------------------------------------------------------------------
    def forward_vjp(self, u: np.ndarray, theta: np.ndarray):
        """y = h(u; θ), log|h′(u; θ)| and the pullback (grad_y, grad_log_deriv) -> (grad_u, grad_theta)."""
        raise NotImplementedError

    def _solve(self, y: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """u with h(u; θ) = y."""
        raise NotImplementedError

    def check_domain(self, u: np.ndarray, name: str) -> None:
        """Raise ValueError when ``u`` is outside the forward map's domain (default: all of ℝ)."""

    def check_range(self, y: np.ndarray, name: str) -> None:
        """Raise ValueError when ``y`` is outside the forward map's range (default: all of ℝ)."""

    # -- may override -----------------------------------------------------------------------------
    def _inverse_parts(self, y: np.ndarray, theta: np.ndarray):
        """u = h⁻¹(y; θ); at u, ℓ = log h′(u; θ), the forward pullback, and a function giving ℓ_u.

        ℓ_u = ∂ℓ/∂u is what the inverse's pullback needs beyond the forward pullback. This default
        solves, runs ``forward_vjp`` at u and gets ℓ_u as the forward pullback applied to (0, 1). A
        subclass may override it to share work between the solve and the forward pass (a spline's
        knots), or to give ℓ_u from the forward's intermediates for less than a second pullback.
        """
        u = self._solve(y, theta)
        _, log_deriv, forward_pullback = self.forward_vjp(u, theta)

        def dl_du():
            return forward_pullback(np.zeros_like(u), np.ones_like(u))[0]

        return u, log_deriv, forward_pullback, dl_du

    # -- derived ----------------------------------------------------------------------------------
    def forward(self, u: np.ndarray, theta: np.ndarray):
        """y = h(u; θ) and log|h′(u; θ)|, both (N, D)."""
        return self.forward_vjp(u, theta)[:2]

    def inverse(self, y: np.ndarray, theta: np.ndarray):
        """u = h⁻¹(y; θ) and log|∂u/∂y| = −log|h′(u; θ)|, both (N, D)."""
        u, log_deriv = self._inverse_parts(y, theta)[:2]
        return u, -log_deriv

    def inverse_vjp(self, y: np.ndarray, theta: np.ndarray):
        """``inverse`` and its pullback, from the forward pullback at u = h⁻¹(y; θ).

        Write F(u, θ) = h(u; θ), ℓ(u, θ) = log F_u, and the inverse outputs u(y, θ) and −ℓ(u(y, θ), θ).
        Differentiating F(u(y, θ), θ) = y gives ∂u/∂y = 1/F_u and ∂u/∂θ = −F_θ/F_u. For a loss with
        ḡ_u = ∂L/∂u and ḡ_ℓ = ∂L/∂(−ℓ), let c = ḡ_u − ḡ_ℓ ℓ_u (everything u carries to L). Then
            ∂L/∂y = c / F_u,
            ∂L/∂θ = c ∂u/∂θ − ḡ_ℓ ℓ_θ = (−c/F_u) F_θ + (−ḡ_ℓ) ℓ_θ,
        which is the forward pullback applied to (grad_y, grad_log_deriv) = (−c/F_u, −ḡ_ℓ). ℓ_u comes
        from :meth:`_inverse_parts`. The forward pullback is linear in its arguments, so this is exact.
        """
        u, log_deriv, forward_pullback, dl_du = self._inverse_parts(y, theta)
        inv_deriv = np.exp(-log_deriv)  # 1 / F_u

        def pullback(grad_u, grad_log_deriv):
            grad_y = (grad_u - grad_log_deriv * dl_du()) * inv_deriv  # c / F_u
            _, grad_theta = forward_pullback(-grad_y, -grad_log_deriv)
            return grad_y, grad_theta

        return u, -log_deriv, pullback
