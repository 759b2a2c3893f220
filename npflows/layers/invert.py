"""A layer run backwards, and the logit layer built that way."""

from __future__ import annotations

from ..layer import Layer, describe
from .elementwise import Sigmoid


class Invert(Layer):
    """g = f⁻¹: ``forward`` is the wrapped layer's ``inverse`` and vice versa (zuko's ``.inv``).

    The log-dets swap with the directions, so the signs stay right: the forward log-det of g is
    log|det ∂f⁻¹/∂x|. ``params`` are the wrapped layer's own arrays.
    """

    def __init__(self, layer: Layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be an npflows Layer, got {type(layer).__name__}")
        self.layer = layer
        self.dim, self.context_dim = layer.dim, layer.context_dim
        self.has_forward_vjp, self.has_inverse_vjp = layer.has_inverse_vjp, layer.has_forward_vjp

    @property
    def params(self) -> dict:
        return self.layer.params

    def get_config(self) -> dict:
        return {"layer": describe(self.layer)}

    @property
    def event_shape(self) -> tuple[int, ...]:  # the wrapped layer's z side is this one's x side
        return self.layer.latent_shape

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.layer.event_shape

    def _forward(self, z, context):
        return self.layer._inverse(z, context)

    def _inverse(self, x, context):
        return self.layer._forward(x, context)

    def _forward_vjp(self, z, context):
        return self.layer._inverse_vjp(z, context)

    def _inverse_vjp(self, x, context):
        return self.layer._forward_vjp(x, context)


class Logit(Invert):
    """z ↦ log((z − a)/(b − z)) elementwise, from (a, b)ᴰ onto ℝᴰ: the inverse of :class:`Sigmoid`.

    Put it first in a flow (next to a base density on (a, b)ᴰ) or use it in the normalizing direction
    to send bounded data to ℝ. Forward log-det: −Σ_d [log(b − a) + log σ(u_d) + log σ(−u_d)], u = the
    output. No parameters.
    """

    def __init__(self, dim: int, low: float = 0.0, high: float = 1.0):
        super().__init__(Sigmoid(dim, low, high))

    def get_config(self) -> dict:
        return self.layer.get_config()
