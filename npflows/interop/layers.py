"""Coupling and autoregressive layers with a peer's conditioner, map and output layout.

Book: ch. 16, "Coupling flows" and "Autoregressive flows". Directions as everywhere in npflows
(docs/conventions.md): ``inverse`` is the normalizing map x → z that the peers call ``forward``,
``forward`` the generative map. Neither offers a pullback (``has_forward_vjp`` and
``has_inverse_vjp`` are False): these layers score and sample imported models; they are not trained.

Output layouts of the conditioner, for |b| transformed coordinates and P raw numbers each:
    "interleaved": out[:, i·P + p] is number p of coordinate i (zuko, and nflows' MADE);
    "blocked":     out[:, p·|b| + i] is number p of coordinate i (nflows' coupling layers).
"""

from __future__ import annotations

import numpy as np

from ..layer import Layer


def _theta(raw, n_coords, n_params, layout):
    """The conditioner output (N, n·P) as θ (N, n, P)."""
    if layout == "interleaved":
        return raw.reshape(len(raw), n_coords, n_params)
    return raw.reshape(len(raw), n_params, n_coords).transpose(0, 2, 1)


class _PeerLayer(Layer):
    has_forward_vjp = False
    has_inverse_vjp = False

    def get_config(self) -> dict:
        raise NotImplementedError(
            f"{type(self).__name__} is an imported peer layer; it cannot be saved with npflows.save"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dim={self.dim}, transformer={type(self.transformer).__name__})"
        )

    def _net_input(self, h, context):
        return h if context is None else np.concatenate([h, context], axis=1)


class _PeerCoupling(_PeerLayer):
    """x_a = z_a, x_b = g(z_b; θ(z_a, c)): a coupling layer with a peer's net and map g.

    Args:
        dim: D. conditioning: the coordinates of part a (passed through, the net's input, in
            increasing order, then the context). transformer: the peer map g. net: callable
            (N, |a| + C) → (N, |b| · P). layout: "interleaved" or "blocked". context_dim: C.
    log|det ∂z/∂x| = Σ_{d ∈ b} log|∂g⁻¹/∂x_d| (normalizing); the generative log-det is its negative.
    """

    def __init__(self, dim, conditioning, transformer, net, layout, context_dim=0):
        self.dim, self.context_dim = dim, context_dim
        self.index_a = np.asarray(conditioning)
        self.index_b = np.setdiff1d(np.arange(dim), self.index_a)
        self.transformer, self.net, self.layout = transformer, net, layout
        self.params = {}

    def _apply(self, h, context, direction):
        theta = _theta(
            self.net(self._net_input(h[:, self.index_a], context)),
            len(self.index_b),
            self.transformer.n_params,
            self.layout,
        )
        out = h.copy()
        out[:, self.index_b], log_deriv = getattr(self.transformer, direction)(
            h[:, self.index_b], theta
        )
        return out, log_deriv.sum(axis=1)

    def _forward(self, z, context):
        return self._apply(z, context, "forward")

    def _inverse(self, x, context):
        return self._apply(x, context, "inverse")


class _PeerAutoregressive(_PeerLayer):
    """z_i = g⁻¹(x_i; θ_i(x, c)) with a masked net (MAF): one pass to normalize, ``passes`` to sample.

    Args:
        dim: D. transformer: the peer map g. net: a masked callable (N, D + C) → (N, D · P) whose
            output block i depends only on earlier coordinates. layout: as above. passes: how many
            sequential passes sampling takes (D for a fully autoregressive net; zuko's ``passes``).
        context_dim: C.
    Sampling repeats x ← g(z; θ(x, c)) from x = 0, as both peers do: after pass k every coordinate
    of rank < k is exact. log|det ∂x/∂z| = Σ_i log g′ (generative), read off the last pass.
    """

    def __init__(self, dim, transformer, net, layout, passes, context_dim=0):
        self.dim, self.context_dim = dim, context_dim
        self.transformer, self.net, self.layout, self.passes = transformer, net, layout, passes
        self.params = {}

    def _theta_of(self, h, context):
        raw = self.net(self._net_input(h, context))
        return _theta(raw, self.dim, self.transformer.n_params, self.layout)

    def _inverse(self, x, context):
        z, log_deriv = self.transformer.inverse(x, self._theta_of(x, context))
        return z, log_deriv.sum(axis=1)

    def _forward(self, z, context):
        x = np.zeros_like(z)
        for _ in range(self.passes):
            x, log_deriv = self.transformer.forward(z, self._theta_of(x, context))
        return x, log_deriv.sum(axis=1)


def coupling_layer(dim, conditioning, transformer, net, layout, context_dim=0) -> Layer:
    """A coupling layer with a peer's net and map; the arguments as ``_PeerCoupling`` documents."""
    return _PeerCoupling(dim, conditioning, transformer, net, layout, context_dim)


def autoregressive_layer(dim, transformer, net, layout, passes, context_dim=0) -> Layer:
    """An autoregressive layer with a peer's masked net and map, as ``_PeerAutoregressive`` documents."""
    return _PeerAutoregressive(dim, transformer, net, layout, passes, context_dim)
