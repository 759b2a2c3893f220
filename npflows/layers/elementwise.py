"""Elementwise flows: one monotone transformer per coordinate, its θ free parameters.

Book: ch. 16, "Elementwise flows": f[h] = [f[h_1, φ_1], …, f[h_D, φ_D]], so the Jacobian is diagonal
and log|det ∂f/∂h| = Σ_d log|f′[h_d, φ_d]|.
"""

from __future__ import annotations

import numpy as np

from ..layer import Layer, describe
from ..transformers.base import Transformer
from ..transformers.leaky_relu import LeakyReLUTransformer
from ..transformers.sigmoid import SigmoidTransformer


class Elementwise(Layer):
    """x_d = h(z_d; θ_d) for every coordinate d, with free raw parameters θ of shape (D, P).

    ``params == {"theta": θ}`` (absent when the transformer has no parameters). θ starts at the
    transformer's identity parameters, so a new layer is the identity map.
    Forward log-det: Σ_d log h′(z_d; θ_d), shape (N,); the inverse's is its negative at z = f⁻¹[x].
    """

    def __init__(self, dim: int, transformer: Transformer):
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        self.transformer = transformer
        p = transformer.n_params
        self.params = {"theta": np.tile(transformer.identity_params(), (self.dim, 1))} if p else {}

    def get_config(self) -> dict:
        return {"dim": self.dim, "transformer": describe(self.transformer)}

    def _theta(self, n):
        if not self.params:
            return np.zeros((n, self.dim, 0))
        return np.broadcast_to(self.params["theta"], (n, *self.params["theta"].shape))

    def _grads(self, grad_theta):
        return {"theta": grad_theta.sum(axis=0)} if self.params else {}

    def _forward_vjp(self, z, context):
        self.transformer.check_domain(z, "z")
        x, log_deriv, pullback = self.transformer.forward_vjp(z, self._theta(len(z)))

        def layer_pullback(grad_x, grad_log_det):
            grad_z, grad_theta = pullback(grad_x, np.broadcast_to(grad_log_det[:, None], z.shape))
            return grad_z, self._grads(grad_theta)

        return x, log_deriv.sum(axis=1), layer_pullback

    def _inverse_vjp(self, x, context):
        self.transformer.check_range(x, "x")
        z, log_deriv, pullback = self.transformer.inverse_vjp(x, self._theta(len(x)))

        def layer_pullback(grad_z, grad_log_det):
            grad_x, grad_theta = pullback(grad_z, np.broadcast_to(grad_log_det[:, None], x.shape))
            return grad_x, self._grads(grad_theta)

        return z, log_deriv.sum(axis=1), layer_pullback

    def _forward(self, z, context):
        self.transformer.check_domain(z, "z")
        x, log_deriv = self.transformer.forward(z, self._theta(len(z)))
        return x, log_deriv.sum(axis=1)

    def _inverse(self, x, context):
        self.transformer.check_range(x, "x")
        z, log_deriv = self.transformer.inverse(x, self._theta(len(x)))
        return z, log_deriv.sum(axis=1)


class LeakyReLU(Elementwise):
    """x = z for z ≥ 0, α z for z < 0, elementwise, with fixed α > 0 (default 0.1). No parameters.

    Forward log-det: (log α) · #{d : z_d < 0}.
    """

    def __init__(self, dim: int, alpha: float = 0.1):
        super().__init__(dim, LeakyReLUTransformer(alpha))

    def get_config(self) -> dict:
        return {"dim": self.dim, "alpha": self.transformer.alpha}


class Sigmoid(Elementwise):
    """x = a + (b − a) σ(z), elementwise, from ℝᴰ onto (a, b)ᴰ; for data with bounded support.

    Put it last in a flow (next to the data): the inverse (the logit) then maps data in (a, b) to ℝ.
    Data on or outside the bounds is refused with a ValueError. No parameters.
    Forward log-det: Σ_d [log(b − a) + log σ(z_d) + log σ(−z_d)].
    """

    def __init__(self, dim: int, low: float = 0.0, high: float = 1.0):
        super().__init__(dim, SigmoidTransformer(low, high))

    def get_config(self) -> dict:
        return {"dim": self.dim, "low": self.transformer.low, "high": self.transformer.high}
