"""Factor-out: after a scale, half the channels leave the flow; the rest go on to coarser scales."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layer import Layer, describe
from .image import ImageLayer


class FactorOut(ImageLayer):
    """z = [flatten(x_exit), flatten(inner⁻¹[x_rest])], with x = [x_rest, x_exit] split by channels.

    Book: ch. 16, "Multi-scale flows"; RealNVP (Dinh et al. 2017, arXiv:1605.08803, §3.6). In the
    normalizing direction, of x (N, C, H, W) the last ⌊C/2⌋ channels x_exit leave the flow here: they
    are copied, flattened, into the first ⌊C/2⌋·H·W coordinates of z. The first C − ⌊C/2⌋ channels
    x_rest go through ``inner`` (the coarser scales), whose latent, flattened, fills the rest of z.
    In the generative direction the exits are taken from z and appended to ``inner``'s output.
    log|det| is inner's (the exits are copied), so with a standard-normal base on z,

        log p(x) = log N(x_exit) + log N(inner⁻¹[x_rest]) + log|det ∂inner⁻¹/∂x_rest|:

    the total log-density is the sum over the exits of every scale, each scored under the base.

    A learned conditional Gaussian prior for the exits (Glow, arXiv:1807.03039: x_exit ~
    N(μ(x_rest), diag σ(x_rest)²)) is the same as an affine map of x_exit conditioned on x_rest,
    (x_exit − μ) / σ, followed by this layer: an affine :class:`~npflows.ImageCoupling` with
    ``mask="channel", parity=0`` placed just before it on the data side (``npflows.flows.Glow`` does
    that with ``prior="conditional"``). Its log-det −Σ log σ is the prior's normalizer.

    Args:
        shape: (C, H, W) of x, C ≥ 2.
        inner: a layer (usually a :class:`~npflows.Flow`) with ``event_shape`` (C − ⌊C/2⌋, H, W);
            its own base density, if any, is not used.

    ``event_shape`` = (C, H, W), ``latent_shape`` = (C·H·W,). ``params == {"inner": inner.params}``.
    """

    def __init__(self, shape: Sequence[int], inner: Layer):
        self._set_shape(shape)
        c, h, w = self.shape
        if c < 2:
            raise ValueError(
                f"FactorOut needs at least 2 channels to split, got shape {self.shape}"
            )
        if not isinstance(inner, Layer):
            raise ValueError(f"inner must be an npflows Layer, got {type(inner).__name__}")
        self.n_keep = c - c // 2
        if inner.event_shape != (self.n_keep, h, w):
            raise ValueError(
                f"inner must take x of shape {(self.n_keep, h, w)} (the channels that stay), "
                f"got {inner.event_shape}"
            )
        if inner.context_dim:
            raise ValueError("FactorOut's inner layer must not be conditional")
        self.inner = inner
        self.n_exit = (c // 2) * h * w
        self.has_forward_vjp, self.has_inverse_vjp = inner.has_forward_vjp, inner.has_inverse_vjp

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    @property
    def params(self) -> dict:
        return {"inner": self.inner.params}

    def get_config(self) -> dict:
        return {"shape": list(self.shape), "inner": describe(self.inner)}

    def _join(self, exits, inner_z):
        n = len(exits)
        return np.concatenate(
            [exits.reshape(n, self.n_exit), inner_z.reshape(n, self.inner.dim)], axis=1
        )

    def _split_z(self, z):
        """z (N, D) → (exits (N, ⌊C/2⌋, H, W), inner's z in its latent shape)."""
        n, (c, h, w) = len(z), self.shape
        exits = z[:, : self.n_exit].reshape(n, c // 2, h, w)
        return exits, z[:, self.n_exit :].reshape(n, *self.inner.latent_shape)

    def _forward(self, z, context):
        exits, inner_z = self._split_z(z)
        rest, log_det = self.inner._forward(inner_z, None)
        return np.concatenate([rest, exits], axis=1), log_det

    def _inverse(self, x, context):
        inner_z, log_det = self.inner._inverse(x[:, : self.n_keep], None)
        return self._join(x[:, self.n_keep :], inner_z), log_det

    def _forward_vjp(self, z, context):
        exits, inner_z = self._split_z(z)
        rest, log_det, inner_pullback = self.inner._forward_vjp(inner_z, None)

        def pullback(grad_x, grad_log_det):
            # x = [inner(z_rest), z_exit]: the exits' gradient is copied back, the rest's pulled back.
            grad_inner_z, grads = inner_pullback(grad_x[:, : self.n_keep], grad_log_det)
            return self._join(grad_x[:, self.n_keep :], grad_inner_z), {"inner": grads}

        return np.concatenate([rest, exits], axis=1), log_det, pullback

    def _inverse_vjp(self, x, context):
        inner_z, log_det, inner_pullback = self.inner._inverse_vjp(x[:, : self.n_keep], None)

        def pullback(grad_z, grad_log_det):
            grad_exits, grad_inner_z = self._split_z(grad_z)
            grad_rest, grads = inner_pullback(grad_inner_z, grad_log_det)
            return np.concatenate([grad_rest, grad_exits], axis=1), {"inner": grads}

        return self._join(x[:, self.n_keep :], inner_z), log_det, pullback
