"""Coupling on images: a channel or checkerboard split with a convolutional conditioner (RealNVP,
arXiv:1605.08803, §3.4; Glow, arXiv:1807.03039, §3.3)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..conv import ConvNet
from ..layer import RNGLike, describe
from ..transformers.affine import AffineTransformer
from ..transformers.base import Transformer
from .image import ImageLayer

MASKS = ("checkerboard", "channel")


def coupling_mask(shape: tuple[int, int, int], kind: str, parity: int) -> np.ndarray:
    """The boolean (C, H, W) mask of the transformed entries (True: part b).

    - "checkerboard": pixels with (h + w) % 2 == parity, in every channel;
    - "channel": parity 0 transforms the channels c ≥ ⌊C/2⌋, parity 1 the channels c < ⌊C/2⌋ (the
      other half conditions).
    """
    c, h, w = shape
    if kind == "checkerboard":
        rows, cols = np.indices((h, w))
        return np.broadcast_to((rows + cols) % 2 == parity, shape).copy()
    if kind == "channel":
        second = np.arange(c) >= c // 2
        return np.broadcast_to((second if parity == 0 else ~second)[:, None, None], shape).copy()
    raise ValueError(f"mask must be one of {MASKS}, got {kind!r}")


class ImageCoupling(ImageLayer):
    """x_a = z_a,  x_b = g(z_b; θ),  θ = ConvNet(z ⊙ (1 − m)):  coupling of an image by a mask m.

    Book: ch. 16, "Coupling flows" ("for structured data like images, the channels are divided into
    two halves"). The mask m (True: part b, transformed) is a checkerboard over the pixels or a split
    of the channels (:func:`coupling_mask`). The conditioner :class:`~npflows.nn.ConvNet` sees the
    image with part b zeroed (only the channels that hold some of part a) and gives the transformer's
    P raw numbers for every entry of the channels that hold part b; the entries of part b use theirs.
    The Jacobian is triangular with identity on part a, so log|det ∂x/∂z| = Σ_{b} log g′(z_b; θ_b)
    (forward; the inverse's is its negative at z = f⁻¹[x]). Both directions take one pass.

    Args:
        shape: (C, H, W).
        transformer: the elementwise map g; default ``AffineTransformer(clamp=2.0)``, x_b = z_b·exp(s) + t
            with s = 2·tanh(s̃/2) (each coupling scales by at most e² per entry).
        mask: "checkerboard" or "channel" (needs C ≥ 2).
        parity: 0 or 1, which of the two complementary masks (:func:`coupling_mask`).
        hidden: channels of the ConvNet's hidden layers.
        rng: draws the ConvNet's hidden kernels.

    The ConvNet's output channel k·P + p is raw parameter p of transformed channel k (in order). Its
    last kernel starts at zero and its output bias at the transformer's identity parameters, so a
    new layer is the identity. ``params == {"net": ConvNet.params}``.
    """

    def __init__(
        self,
        shape: Sequence[int],
        transformer: Transformer | None = None,
        *,
        mask: str = "checkerboard",
        parity: int = 0,
        hidden: int = 64,
        rng: RNGLike = None,
    ):
        self._set_shape(shape)
        if parity not in (0, 1) or isinstance(parity, bool):
            raise ValueError(f"parity must be 0 or 1, got {parity!r}")
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
        if mask == "channel" and self.shape[0] < 2:
            raise ValueError(f"a channel mask needs at least 2 channels, got shape {self.shape}")
        transformer = AffineTransformer(clamp=2.0) if transformer is None else transformer
        if not isinstance(transformer, Transformer) or transformer.n_params < 1:
            raise ValueError(
                f"transformer must be a Transformer with parameters, got {transformer!r}"
            )
        self.transformer, self.mask_kind, self.parity = transformer, mask, int(parity)
        self.mask = coupling_mask(self.shape, mask, self.parity)
        if self.mask.all():
            raise ValueError(
                f"the {mask} mask of parity {parity} leaves nothing to condition on in shape "
                f"{self.shape}; use the other parity or a channel mask"
            )
        self.in_channels = np.flatnonzero((~self.mask).any(axis=(1, 2)))  # hold some of part a
        self.out_channels = np.flatnonzero(self.mask.any(axis=(1, 2)))  # hold some of part b
        self._keep = (~self.mask)[self.in_channels]  # (C_in, H, W): zeroes part b in the net input
        self._index_b = np.flatnonzero(self.mask)  # into the flattened (C, H, W) image
        self._index_b_out = np.flatnonzero(self.mask[self.out_channels])  # into (C_out, H, W)
        P = transformer.n_params
        self.net = ConvNet(
            len(self.in_channels),
            len(self.out_channels) * P,
            hidden,
            out_bias=np.tile(transformer.identity_params(), len(self.out_channels)),
            rng=rng,
        )
        self.params = {"net": self.net.params}

    def get_config(self) -> dict:
        return {
            "shape": list(self.shape),
            "transformer": describe(self.transformer),
            "mask": self.mask_kind,
            "parity": self.parity,
            "hidden": self.net.hidden,
        }

    def _theta(self, raw):
        """Net output (N, C_out·P, H, W) → θ of part b, (N, |b|, P)."""
        n, P = len(raw), self.transformer.n_params
        c_out, (_, h, w) = len(self.out_channels), self.shape
        per_entry = (
            raw.reshape(n, c_out, P, h, w).transpose(0, 1, 3, 4, 2).reshape(n, c_out * h * w, P)
        )
        return per_entry[:, self._index_b_out]

    def _theta_adjoint(self, grad_theta):
        """The transpose of :meth:`_theta`: ∂L/∂θ (N, |b|, P) → ∂L/∂(net output)."""
        n, P = len(grad_theta), self.transformer.n_params
        c_out, (_, h, w) = len(self.out_channels), self.shape
        per_entry = np.zeros((n, c_out * h * w, P), dtype=grad_theta.dtype)
        per_entry[:, self._index_b_out] = grad_theta
        return (
            per_entry.reshape(n, c_out, h, w, P)
            .transpose(0, 1, 4, 2, 3)
            .reshape(n, c_out * P, h, w)
        )

    def _net_input(self, h):
        return h[:, self.in_channels] * self._keep

    def _apply(self, h, transform):
        n = len(h)
        theta = self._theta(self.net(self._net_input(h)))
        out = h.reshape(n, self.dim).copy()
        out[:, self._index_b], log_deriv = transform(out[:, self._index_b], theta)
        return out.reshape(h.shape), log_deriv.sum(axis=1)

    def _apply_vjp(self, h, transform_vjp):
        n = len(h)
        raw, net_pullback = self.net.forward_vjp(self._net_input(h))
        theta = self._theta(raw)
        out = h.reshape(n, self.dim).copy()
        out[:, self._index_b], log_deriv, pullback_b = transform_vjp(out[:, self._index_b], theta)

        def pullback(grad_out, grad_log_det):
            # Part b: through g (its u and θ); θ = net(h ⊙ (1 − m)): through the net to part a,
            # which also passes through unchanged and so receives grad_out[a] directly.
            grad_flat = grad_out.reshape(n, self.dim)
            grad_u, grad_theta = pullback_b(
                grad_flat[:, self._index_b],
                np.broadcast_to(grad_log_det[:, None], log_deriv.shape),
            )
            grad_net_in, grads = net_pullback(self._theta_adjoint(grad_theta))
            grad_in = grad_flat.copy()
            grad_in[:, self._index_b] = grad_u
            grad_in = grad_in.reshape(h.shape)
            grad_in[:, self.in_channels] += grad_net_in * self._keep
            return grad_in, {"net": grads}

        return out.reshape(h.shape), log_deriv.sum(axis=1), pullback

    def _forward(self, z, context):
        self.transformer.check_domain(z.reshape(len(z), self.dim)[:, self._index_b], "z")
        return self._apply(z, self.transformer.forward)

    def _inverse(self, x, context):
        self.transformer.check_range(x.reshape(len(x), self.dim)[:, self._index_b], "x")
        return self._apply(x, self.transformer.inverse)

    def _forward_vjp(self, z, context):
        self.transformer.check_domain(z.reshape(len(z), self.dim)[:, self._index_b], "z")
        return self._apply_vjp(z, self.transformer.forward_vjp)

    def _inverse_vjp(self, x, context):
        self.transformer.check_range(x.reshape(len(x), self.dim)[:, self._index_b], "x")
        return self._apply_vjp(x, self.transformer.inverse_vjp)
