"""Coupling flows (book: ch. 16, "Coupling flows"; NICE arXiv:1410.8516, RealNVP arXiv:1605.08803,
neural spline flows arXiv:1906.04032)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layer import Layer, RNGLike, describe
from ..nn import MLP
from ..transformers.base import Transformer


class Coupling(Layer):
    """x_a = z_a,  x_b = g(z_b; θ),  θ = net([z_a, c]):  an elementwise flow whose θ is computed.

    The coordinates split into a conditioning part a and a transformed part b by ``mask`` (True marks
    part b). The Jacobian is block lower-triangular with identity on part a, so
    log|det ∂x/∂z| = Σ_{d ∈ b} log g′(z_d; θ_d) (forward; the inverse's is its negative at
    z = f⁻¹[x]). Inverse: z_a = x_a, z_b = g⁻¹(x_b; θ(x_a)), one pass in both directions.

    Args:
        dim: D.
        transformer: the elementwise map g with P raw parameters per coordinate (P ≥ 1).
        mask: D booleans, True for the transformed coordinates. Default: the first ⌊D/2⌋ condition
            the last ⌈D/2⌉.
        hidden, activation: the conditioner :class:`npflows.nn.MLP`.
        context_dim: width of an optional context vector c, concatenated to the net's input.
        rng: draws the net's hidden weights.

    The net outputs |b| · P numbers, reshaped to θ of shape (N, |b|, P) (coordinate-major: the P
    numbers of the first transformed coordinate come first). Its output weights start at zero and
    its output bias at the transformer's identity parameters, so a new layer is the identity.
    ``params == {"net": {"weights": [...], "biases": [...]}}``.
    """

    def __init__(
        self,
        dim: int,
        transformer: Transformer,
        mask: Sequence[bool] | None = None,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        context_dim: int = 0,
        rng: RNGLike = None,
    ):
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        mask = np.arange(dim) >= dim // 2 if mask is None else np.asarray(mask)
        if mask.shape != (dim,) or mask.dtype != bool:
            raise ValueError(f"mask must be {dim} booleans, got {mask!r}")
        if not mask.any() or (mask.all() and context_dim == 0):
            raise ValueError("mask must transform at least one coordinate and condition on another")
        if transformer.n_params < 1:
            raise ValueError(f"{transformer!r} has no parameters for a coupling layer to compute")
        self.dim, self.context_dim, self.transformer = int(dim), int(context_dim), transformer
        self.mask = mask
        self.index_a, self.index_b = np.flatnonzero(~mask), np.flatnonzero(mask)
        self._a, self._b = _indexer(self.index_a), _indexer(self.index_b)
        self.net = MLP(
            len(self.index_a) + self.context_dim,
            len(self.index_b) * transformer.n_params,
            hidden,
            activation,
            out_bias=np.tile(transformer.identity_params(), len(self.index_b)),
            rng=rng,
        )
        self.params = {"net": self.net.params}

    def get_config(self) -> dict:
        return {
            "dim": self.dim,
            "transformer": describe(self.transformer),
            "mask": self.mask.tolist(),
            "hidden": list(self.net.hidden),
            "activation": self.net.activation,
            "context_dim": self.context_dim,
        }

    def _net_input(self, h, context):
        h_a = h[:, self._a]
        return h_a if context is None else np.concatenate([h_a, context], axis=1)

    def _theta(self, raw):
        return raw.reshape(len(raw), len(self.index_b), self.transformer.n_params)

    def _apply(self, h, context, transform):
        """Run ``transform`` (a transformer's forward/inverse) on part b; no backward pass."""
        theta = self._theta(self.net(self._net_input(h, context)))
        out = h.copy()
        out[:, self._b], log_deriv = transform(h[:, self._b], theta)
        return out, log_deriv.sum(axis=1)

    def _apply_vjp(self, h, context, transform_vjp):
        """Run ``transform_vjp`` on part b, with the pullback through transformer and net."""
        raw, net_pullback = self.net.forward_vjp(self._net_input(h, context))
        theta = self._theta(raw)
        out = h.copy()
        out[:, self._b], log_deriv, pullback_b = transform_vjp(h[:, self._b], theta)

        def pullback(grad_out, grad_log_det):
            # Part b: through g (its u and θ). θ = net(h_a, c): through the net to h_a.
            # Part a passes through unchanged, so it also receives grad_out[:, a] directly.
            grad_u, grad_theta = pullback_b(
                grad_out[:, self._b], np.broadcast_to(grad_log_det[:, None], log_deriv.shape)
            )
            grad_net_in, grads = net_pullback(grad_theta.reshape(raw.shape))
            grad_in = grad_out.copy()
            grad_in[:, self._b] = grad_u
            grad_in[:, self._a] += grad_net_in[:, : len(self.index_a)]
            return grad_in, {"net": grads}

        return out, log_deriv.sum(axis=1), pullback

    def _forward(self, z, context):
        self.transformer.check_domain(z[:, self._b], "z")
        return self._apply(z, context, self.transformer.forward)

    def _inverse(self, x, context):
        self.transformer.check_range(x[:, self._b], "x")
        return self._apply(x, context, self.transformer.inverse)

    def _forward_vjp(self, z, context):
        self.transformer.check_domain(z[:, self._b], "z")
        return self._apply_vjp(z, context, self.transformer.forward_vjp)

    def _inverse_vjp(self, x, context):
        self.transformer.check_range(x[:, self._b], "x")
        return self._apply_vjp(x, context, self.transformer.inverse_vjp)


def _indexer(index: np.ndarray):
    """Sorted column numbers as a slice when they are consecutive (the default halves), since basic
    indexing gives views where an index array copies; else the array itself."""
    if len(index) and index[-1] - index[0] == len(index) - 1:
        return slice(int(index[0]), int(index[-1]) + 1)
    return index
