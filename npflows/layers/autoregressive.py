"""Autoregressive flows: MAF (Papamakarios et al. 2017, arXiv:1705.07057) and IAF (Kingma et al.
2016, arXiv:1606.04934). docs/autoregressive.md; the chapter lists them as its unfinished
part.

Both are an elementwise transformer g whose θ_i a MADE computes from the coordinates before i (in
the MADE's order). They differ in which side θ reads:

- MAF: θ_i = net(x_{<i}). The normalizing direction z_i = g⁻¹(x_i; θ_i) is one pass (fast density,
  training by maximum likelihood); sampling needs D sequential passes.
- IAF: θ_i = net(z_{<i}). The generative direction x_i = g(z_i; θ_i) is one pass (fast sampling,
  training by reverse KL); the density of a new x needs D sequential passes.

The sequential direction repeats "compute θ from the current estimate, apply g to every coordinate"
D times, starting from zeros: after pass k the first k coordinates in the order are exact (their θ
depend only on coordinates already exact), so D passes give the exact answer. Its log-det is read off
the last pass. It has no pullback here (``has_forward_vjp`` is False for MAF, ``has_inverse_vjp`` for
IAF).

In both, the Jacobian is triangular in the MADE's order, so log|det ∂x/∂z| = Σ_i log g′(z_i; θ_i).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layer import Layer, RNGLike, describe
from ..nn import MADE
from ..transformers.base import Transformer


class _Autoregressive(Layer):
    """Shared by MAF and IAF: the MADE, θ from a batch, one pass with pullback, D passes without."""

    def __init__(
        self,
        dim: int,
        transformer: Transformer,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        order: str | Sequence[int] = "natural",
        context_dim: int = 0,
        rng: RNGLike = None,
    ):
        if transformer.n_params < 1:
            raise ValueError(f"{transformer!r} has no parameters for an autoregressive layer")
        self.transformer = transformer
        self.net = MADE(
            dim,
            transformer.n_params,
            hidden,
            activation,
            order,
            context_dim,
            out_bias=transformer.identity_params(),
            rng=rng,
        )
        self.dim, self.context_dim = self.net.dim, self.net.context_dim
        self.params = {"net": self.net.params}

    def get_config(self) -> dict:
        return {
            "dim": self.dim,
            "transformer": describe(self.transformer),
            "hidden": list(self.net.hidden),
            "activation": self.net.activation,
            "order": self.net.order.tolist(),
            "context_dim": self.context_dim,
        }

    def _net_input(self, h, context):
        return h if context is None else np.concatenate([h, context], axis=1)

    def _theta(self, raw):
        return raw.reshape(len(raw), self.dim, self.transformer.n_params)

    def _one_pass_vjp(self, h, context, transform_vjp):
        """out = transform(h; θ(h)) with its pullback; h reaches out both through g and through θ."""
        raw, net_pullback = self.net.forward_vjp(self._net_input(h, context))
        out, log_deriv, pullback_g = transform_vjp(h, self._theta(raw))

        def pullback(grad_out, grad_log_det):
            # Through g to its input and θ, then through the MADE back to the same input.
            grad_in, grad_theta = pullback_g(
                grad_out, np.broadcast_to(grad_log_det[:, None], log_deriv.shape)
            )
            grad_net_in, grads = net_pullback(grad_theta.reshape(raw.shape))
            return grad_in + grad_net_in[:, : self.dim], {"net": grads}

        return out, log_deriv.sum(axis=1), pullback

    def _one_pass(self, h, context, transform):
        out, log_deriv = transform(h, self._theta(self.net(self._net_input(h, context))))
        return out, log_deriv.sum(axis=1)

    def _sequential(self, h, context, transform):
        """Solve out = transform(h; θ(out)) by D passes (see the module docstring)."""
        out = np.zeros_like(h)
        for _ in range(self.dim):
            out, log_deriv = transform(h, self._theta(self.net(self._net_input(out, context))))
        return out, log_deriv.sum(axis=1)


class MAF(_Autoregressive):
    """Masked autoregressive flow: z_i = g⁻¹(x_i; θ_i(x_{<i})), sampling x_i = g(z_i; θ_i(x_{<i})).

    Fast direction: ``inverse`` (normalizing, density), one MADE pass, with ``inverse_vjp``.
    Slow direction: ``forward`` (sampling), D sequential MADE passes, no ``forward_vjp``.
    log|det ∂x/∂z| = Σ_i log g′(z_i; θ_i) (forward); the inverse's is its negative.

    Args:
        dim: D. transformer: g, with P raw parameters per coordinate.
        hidden, activation, order, context_dim, rng: the :class:`npflows.nn.MADE` conditioner, whose
            output (N, D·P) is reshaped to θ (N, D, P). It starts at g's identity parameters.
    ``params == {"net": {"weights": [...], "biases": [...]}}``.
    """

    has_forward_vjp = False

    def _forward(self, z, context):
        self.transformer.check_domain(z, "z")
        return self._sequential(z, context, self.transformer.forward)

    def _inverse(self, x, context):
        self.transformer.check_range(x, "x")
        return self._one_pass(x, context, self.transformer.inverse)

    def _inverse_vjp(self, x, context):
        self.transformer.check_range(x, "x")
        return self._one_pass_vjp(x, context, self.transformer.inverse_vjp)


class IAF(_Autoregressive):
    """Inverse autoregressive flow: x_i = g(z_i; θ_i(z_{<i})), density by z_i = g⁻¹(x_i; θ_i(z_{<i})).

    Fast direction: ``forward`` (sampling), one MADE pass, with ``forward_vjp`` (what reverse-KL
    training needs). Slow direction: ``inverse`` (density of a new x), D sequential passes, no
    ``inverse_vjp``. log|det ∂x/∂z| = Σ_i log g′(z_i; θ_i) (forward); the inverse's is its negative.

    Arguments and ``params`` as :class:`MAF`.
    """

    has_inverse_vjp = False

    def _forward(self, z, context):
        self.transformer.check_domain(z, "z")
        return self._one_pass(z, context, self.transformer.forward)

    def _forward_vjp(self, z, context):
        self.transformer.check_domain(z, "z")
        return self._one_pass_vjp(z, context, self.transformer.forward_vjp)

    def _inverse(self, x, context):
        self.transformer.check_range(x, "x")
        return self._sequential(x, context, self.transformer.inverse)
