"""Coupling flows (book: ch. 16, "Coupling flows"; NICE arXiv:1410.8516, RealNVP arXiv:1605.08803,
neural spline flows arXiv:1906.04032)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layer import RNGLike
from ..nn import MLP
from ..transformers.base import Transformer
from .conditioned import NetConditioned


class Coupling(NetConditioned):
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
        orientation: "generative" (x_b = g(z_b; θ), as above) or "normalizing" (z_b = g(x_b; θ):
            the density goes through g, sampling through g⁻¹; zuko's and nflows' convention).
            Since x_a = z_a, the normalizing orientation is ``Invert`` of the generative layer.

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
        *,
        orientation: str = "generative",
    ):
        super().__init__(dim, transformer, context_dim=context_dim, orientation=orientation)
        dim, context_dim = self.dim, self.context_dim
        mask = np.arange(dim) >= dim // 2 if mask is None else np.asarray(mask)
        if mask.shape != (dim,) or mask.dtype != bool:
            raise ValueError(f"mask must be {dim} booleans, got {mask!r}")
        if not mask.any() or (mask.all() and context_dim == 0):
            raise ValueError("mask must transform at least one coordinate and condition on another")
        if transformer.n_params < 1:
            raise ValueError(f"{transformer!r} has no parameters for a coupling layer to compute")
        self.mask = mask
        self.index_a, self.index_b = np.flatnonzero(~mask), np.flatnonzero(mask)
        self._cond, self._part = _indexer(self.index_a), _indexer(self.index_b)
        self._n_cond = len(self.index_a)
        self.net = MLP(
            self._n_cond + context_dim,
            len(self.index_b) * transformer.n_params,
            hidden,
            activation,
            out_bias=np.tile(transformer.identity_params(), len(self.index_b)),
            rng=rng,
        )
        self.params = {"net": self.net.params}

    def get_config(self) -> dict:
        return super().get_config() | {
            "mask": self.mask.tolist(),
            "hidden": list(self.net.hidden),
            "activation": self.net.activation,
            "context_dim": self.context_dim,
        }


def _indexer(index: np.ndarray):
    """Sorted column numbers as a slice when they are consecutive (the default halves), since basic
    indexing gives views where an index array copies; else the array itself."""
    if len(index) and index[-1] - index[0] == len(index) - 1:
        return slice(int(index[0]), int(index[-1]) + 1)
    return index
