"""The shared part of every layer that is an elementwise transformer whose θ is given by a conditioner.

Book: ch. 16, "Elementwise flows" and "Coupling flows": an elementwise flow, a coupling flow and an
autoregressive flow all apply one monotone transformer y = g(u; θ) coordinate by coordinate; they
differ only in where θ comes from (docs/contract.md):

- :class:`~npflows.layers.Elementwise`: θ are free parameters;
- :class:`~npflows.layers.Coupling`: θ = net(h_a, c), a network of the untransformed part;
- :class:`~npflows.layers.MAF` and :class:`~npflows.layers.IAF`: θ_i = MADE(h_{<i}, c).

:class:`Conditioned` holds everything else once: the support checks, running the transformer on the
transformed columns in either direction, the log-det Σ_d log|g′|, and the pullback, which sends
∂L/∂θ back through the conditioner to the input. A subclass gives only ``_theta`` and
``_theta_vjp``. Any :class:`~npflows.transformers.Transformer` then works in every conditioner.

Orientation: a coupling or autoregressive layer applies g in one of two directions, and keeps the
same θ either way. "generative" (the book's convention): x_p = g(z_p; θ), so the density of data
goes through g⁻¹. "normalizing" (zuko's and nflows' convention): z_p = g(x_p; θ), so the density
of data goes through g itself and sampling through g⁻¹. For a spline, g is closed form and g⁻¹ a
quadratic solve whose pullback divides by the slope where the density is highest; the prebuilt
density flows train with the closed form on the data side (docs/coupling.md). The orientation only
chooses which of the transformer's two maps each direction of the layer runs: ``forward`` and
``inverse`` keep their meanings (z → x and x → z), and every log-det keeps its sign.
"""

from __future__ import annotations

import numpy as np

from ..layer import Layer, check_int, describe
from ..nn import MLP
from ..transformers.base import Transformer

ALL = slice(None)  # every column: elementwise and autoregressive layers transform all of h
ORIENTATIONS = ("generative", "normalizing")
_OTHER = {"forward": "inverse", "inverse": "forward"}


class Conditioned(Layer):
    """out_p = g(h_p; θ(h, c)) on the transformed columns p, the other columns passed through.

    Orientation "generative" (the default here):
    Forward: h = z, out = x, log|det ∂x/∂z| = Σ_{d ∈ p} log g′(z_d; θ_d), shape (N,).
    Inverse: h = x, out = z, g replaced by g⁻¹, log-det Σ_{d ∈ p} log|∂g⁻¹/∂x_d| (its negative at
    z = f⁻¹[x]). Orientation "normalizing" swaps g and g⁻¹ between the two: forward
    x_p = g⁻¹(z_p; θ) with log-det Σ log|∂g⁻¹/∂z_d|, inverse z_p = g(x_p; θ) with Σ log g′(x_d; θ_d).
    Both are exact only when θ does not depend on the columns p of h itself (coupling:
    θ reads part a; elementwise: θ reads nothing); an autoregressive layer's one-pass direction is
    exact because the MADE's masks make θ_d depend on h_{<d} only, which its own file explains.

    Subclass contract:
        ``_part``: the transformed columns (a slice or an index array; ``ALL`` by default).
        ``_cond``: the columns of h that θ reads, which receive θ's gradient (``ALL`` by default).
        ``_theta(h, context)`` → θ of shape (N, |p|, P), P = ``transformer.n_params``.
        ``_theta_vjp(h, context)`` → (θ, pullback), pullback(∂L/∂θ) → (∂L/∂h[:, _cond] or None
            when θ reads no column of h, grads mirroring ``params``).
    """

    _part = ALL
    _cond = ALL

    def __init__(
        self,
        dim: int,
        transformer: Transformer,
        *,
        context_dim: int = 0,
        orientation: str = "generative",
    ):
        if not isinstance(transformer, Transformer):
            raise TypeError(
                f"transformer must be an npflows Transformer, got {type(transformer).__name__}"
            )
        if not isinstance(orientation, str) or orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
        self.dim = check_int(dim, "dim")
        self.context_dim = check_int(context_dim, "context_dim", minimum=0)
        self.transformer = transformer
        self.orientation = orientation

    def get_config(self) -> dict:
        """``dim`` and ``transformer``; a subclass appends its conditioner's arguments."""
        return {"dim": self.dim, "transformer": describe(self.transformer)}

    # -- θ: what each conditioned layer implements ---------------------------------------------------
    def _theta(self, h: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def _theta_vjp(self, h: np.ndarray, context: np.ndarray | None):
        raise NotImplementedError

    # -- the transformer on the transformed columns --------------------------------------------------
    def _map(self, direction):
        """The transformer's map ("forward" = g, "inverse" = g⁻¹) that the layer's ``direction`` runs."""
        return direction if self.orientation == "generative" else _OTHER[direction]

    def _checked_part(self, h, direction):
        """h[:, _part], the input of the layer's ``direction`` (z forward, x inverse), refused
        unless inside the domain of the map it goes through (g's domain, or its range for g⁻¹)."""
        part = h if self._part is ALL else h[:, self._part]
        name = "z" if direction == "forward" else "x"
        if self._map(direction) == "forward":
            self.transformer.check_domain(part, name)
        else:
            self.transformer.check_range(part, name)
        return part

    def _assemble(self, h, out_part):
        """The output: ``out_part`` in the transformed columns, h's own values in the others."""
        if self._part is ALL:
            return out_part
        out = h.copy()
        out[:, self._part] = out_part
        return out

    def _apply(self, h, context, direction):
        """One pass of the layer's ``direction`` ("forward" or "inverse") with θ = θ(h, c): g or
        g⁻¹ on the transformed columns, as the orientation says."""
        part = self._checked_part(h, direction)
        transform = getattr(self.transformer, self._map(direction))
        out_part, log_deriv = transform(part, self._theta(h, context))
        return self._assemble(h, out_part), log_deriv.sum(axis=1)

    def _apply_vjp(self, h, context, direction):
        """``_apply`` with its pullback: h reaches the output through g and through θ."""
        part = self._checked_part(h, direction)
        theta, theta_pullback = self._theta_vjp(h, context)
        transform_vjp = getattr(self.transformer, f"{self._map(direction)}_vjp")
        out_part, log_deriv, part_pullback = transform_vjp(part, theta)

        def pullback(grad_out, grad_log_det):
            # Every transformed coordinate's log-derivative is a term of the row's log-det, so each
            # receives grad_log_det. Through g to its input and θ; through the conditioner from θ
            # to the columns it read; the untransformed columns pass grad_out through unchanged.
            grad_part = grad_out if self._part is ALL else grad_out[:, self._part]
            grad_u, grad_theta = part_pullback(
                grad_part, np.broadcast_to(grad_log_det[:, None], log_deriv.shape)
            )
            grad_cond, grads = theta_pullback(grad_theta)
            return self._grad_input(grad_out, grad_u, grad_cond), grads

        return self._assemble(h, out_part), log_deriv.sum(axis=1), pullback

    def _grad_input(self, grad_out, grad_u, grad_cond):
        """∂L/∂h: ∂L/∂u on the transformed columns, ∂L/∂out elsewhere, plus θ's share on _cond."""
        if self._part is ALL:
            if grad_cond is None:
                return grad_u
            if self._cond is ALL:
                return grad_u + grad_cond  # a new array: grad_u may be the caller's cotangent
            grad_in = grad_u.copy()
        else:
            grad_in = grad_out.copy()
            grad_in[:, self._part] = grad_u
        if grad_cond is not None:
            grad_in[:, self._cond] += grad_cond
        return grad_in

    # -- the two directions, one pass each (an autoregressive layer replaces its slow one) ------------
    def _forward(self, z, context):
        return self._apply(z, context, "forward")

    def _inverse(self, x, context):
        return self._apply(x, context, "inverse")

    def _forward_vjp(self, z, context):
        return self._apply_vjp(z, context, "forward")

    def _inverse_vjp(self, x, context):
        return self._apply_vjp(x, context, "inverse")


class NetConditioned(Conditioned):
    """A :class:`Conditioned` layer whose θ a network computes: θ = net([h[:, _cond], c]).

    The subclass sets ``self.net`` (an :class:`npflows.nn.MLP` or :class:`npflows.nn.MADE` with
    |_cond| + context_dim inputs and |p| · P outputs) and ``self._n_cond`` = |_cond|. The net's
    output (N, |p| · P) is reshaped to θ (N, |p|, P), coordinate-major: the P numbers of the first
    transformed coordinate come first. ``params == {"net": net.params}``.
    """

    net: MLP
    _n_cond: int

    def get_config(self) -> dict:
        return super().get_config() | {"orientation": self.orientation}

    def _net_input(self, h, context):
        """[h[:, _cond], c]: the net's input, the context (if any) appended."""
        h_cond = h if self._cond is ALL else h[:, self._cond]
        return h_cond if context is None else np.concatenate([h_cond, context], axis=1)

    def _reshape(self, raw):
        P = self.transformer.n_params
        return raw.reshape(len(raw), raw.shape[1] // P, P)

    def _theta(self, h, context):
        return self._reshape(self.net(self._net_input(h, context)))

    def _theta_vjp(self, h, context):
        raw, net_pullback = self.net.forward_vjp(self._net_input(h, context))

        def pullback(grad_theta):
            # Through the net to its input; the columns of h are its first |_cond| inputs.
            grad_net_in, grads = net_pullback(grad_theta.reshape(raw.shape))
            return grad_net_in[:, : self._n_cond], {"net": grads}

        return self._reshape(raw), pullback
