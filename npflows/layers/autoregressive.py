"""Autoregressive flows: MAF (Papamakarios et al. 2017, arXiv:1705.07057) and IAF (Kingma et al.
2016, arXiv:1606.04934). docs/autoregressive.md; the chapter lists them as its unfinished part.

Both are an elementwise transformer g whose θ_i a MADE computes from the coordinates before i (in
the MADE's order). They differ in which side θ reads:

- MAF: θ_i = net(x_{<i}). The normalizing direction z_i = g⁻¹(x_i; θ_i) is one pass (fast density,
  training by maximum likelihood); sampling is sequential, coordinate by coordinate.
- IAF: θ_i = net(z_{<i}). The generative direction x_i = g(z_i; θ_i) is one pass (fast sampling,
  training by reverse KL); the density of a new x is sequential.

The one-pass direction is :class:`~npflows.layers.conditioned.Conditioned`'s, with θ read from the
input itself: exact, because θ_i depends only on the coordinates before i, which the pass does not
change. The sequential direction solves out = g(h; θ(out)) (g⁻¹ for the IAF) in the MADE's order:
at step k, θ of the k-th coordinate needs only the k − 1 already solved, and g (or g⁻¹) is applied
to that coordinate alone with it. :meth:`npflows.nn.MADE.solve` computes each hidden unit of the
MADE once, at the step where its inputs are known (derived there), so the whole solve costs about
one MADE pass plus D small products, not the D full passes of "recompute θ from the current
estimate, apply g to every coordinate, repeat D times", which gives the same numbers to rounding
(tests/test_autoregressive.py keeps it as the reference). It has no pullback here
(``has_forward_vjp`` is False for MAF, ``has_inverse_vjp`` for IAF).

In both, the Jacobian is triangular in the MADE's order, so log|det ∂x/∂z| = Σ_i log g′(z_i; θ_i).

Orientation (``orientation=``, :class:`~npflows.layers.conditioned.Conditioned`): the formulas above
are the "generative" one, g mapping z to x. "normalizing" swaps g and g⁻¹: a normalizing MAF is
z_i = g(x_i; θ_i(x_{<i})), nflows' and zuko's MAF, whose density runs g itself (a spline's closed
form), and it equals ``Invert`` of a generative IAF. Which direction is one pass does not change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layer import Layer, RNGLike
from ..nn import MADE
from ..transformers.base import Transformer
from .conditioned import NetConditioned


class _Autoregressive(NetConditioned):
    """Shared by MAF and IAF: the MADE conditioner and the sequential solve (the slow direction)."""

    def __init__(
        self,
        dim: int,
        transformer: Transformer,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        order: str | Sequence[int] = "natural",
        context_dim: int = 0,
        rng: RNGLike = None,
        *,
        orientation: str = "generative",
    ):
        super().__init__(dim, transformer, context_dim=context_dim, orientation=orientation)
        if transformer.n_params < 1:
            raise ValueError(f"{transformer!r} has no parameters for an autoregressive layer")
        self.net = MADE(
            self.dim,
            transformer.n_params,
            hidden,
            activation,
            order,
            self.context_dim,
            out_bias=transformer.identity_params(),
            rng=rng,
        )
        self._n_cond = self.dim
        self.params = {"net": self.net.params}

    def get_config(self) -> dict:
        return super().get_config() | {
            "hidden": list(self.net.hidden),
            "activation": self.net.activation,
            "order": self.net.order.tolist(),
            "context_dim": self.context_dim,
        }

    def _sequential(self, h, context, direction):
        """Solve out = g(h; θ(out)) (or g⁻¹, as the orientation and ``direction`` say) coordinate
        by coordinate (see the module docstring)."""
        part = self._checked_part(h, direction)
        transform = getattr(self.transformer, self._map(direction))
        log_deriv = [None] * self.dim

        def step(i, theta_i):
            out_i, log_deriv[i] = transform(part[:, i : i + 1], theta_i[:, None, :])
            return out_i[:, 0]

        out = self.net.solve(step, len(part), dtype=part.dtype, context=context)
        return out, np.concatenate(log_deriv, axis=1).sum(axis=1)


class MAF(_Autoregressive):
    """Masked autoregressive flow: z_i = g⁻¹(x_i; θ_i(x_{<i})), sampling x_i = g(z_i; θ_i(x_{<i})).

    Fast direction: ``inverse`` (normalizing, density), one MADE pass, with ``inverse_vjp``.
    Slow direction: ``forward`` (sampling), sequential in the order (about one MADE pass of work,
    :meth:`npflows.nn.MADE.solve`), no ``forward_vjp``.
    log|det ∂x/∂z| = Σ_i log g′(z_i; θ_i) (forward); the inverse's is its negative.

    Args:
        dim: D.
        transformer: g, with P raw parameters per coordinate.
        hidden, activation, order, context_dim, rng: the :class:`npflows.nn.MADE` conditioner, whose
            output (N, D·P) is reshaped to θ (N, D, P). It starts at g's identity parameters.
        orientation: "generative" (as above) or "normalizing" (z_i = g(x_i; θ_i(x_{<i})), sampling
            x_i = g⁻¹(z_i; θ_i(x_{<i}))); see the module docstring.
    ``params == {"net": {"weights": [...], "biases": [...]}}``.
    """

    has_forward_vjp = False
    _forward_vjp = Layer._forward_vjp  # the sequential direction has no pullback

    def _forward(self, z, context):
        return self._sequential(z, context, "forward")


class IAF(_Autoregressive):
    """Inverse autoregressive flow: x_i = g(z_i; θ_i(z_{<i})), density by z_i = g⁻¹(x_i; θ_i(z_{<i})).

    Fast direction: ``forward`` (sampling), one MADE pass, with ``forward_vjp`` (what reverse-KL
    training needs). Slow direction: ``inverse`` (density of a new x), sequential in the order
    (about one MADE pass of work), no ``inverse_vjp``.
    log|det ∂x/∂z| = Σ_i log g′(z_i; θ_i) (forward); the inverse's is its negative.

    Arguments and ``params`` as :class:`MAF`.
    """

    has_inverse_vjp = False
    _inverse_vjp = Layer._inverse_vjp  # the sequential direction has no pullback

    def _inverse(self, x, context):
        return self._sequential(x, context, "inverse")
