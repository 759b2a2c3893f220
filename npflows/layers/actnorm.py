"""Activation normalization: a per-channel affine map with a data-dependent initialization (Glow)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from ..layer import check_array
from .image import ImageLayer

MIN_STD = 1e-6  # a channel that is (nearly) constant at initialization is scaled by 1e6 at most


class ActNorm(ImageLayer):
    """x[n, c, h, w] = z[n, c, h, w] · exp(s_c) + b_c  (Kingma & Dhariwal 2018, arXiv:1807.03039, §3.1).

    Book: ch. 16, "Multi-scale flows" (normalization between flow steps). Normalizing direction:
    z = (x − b_c) · exp(−s_c). log|det ∂x/∂z| = H·W·Σ_c s_c per row (forward); the inverse's is its
    negative.

    Data-dependent initialization: the first time the layer runs in the normalizing direction
    (``inverse``, ``inverse_vjp``, and so ``log_prob``, ``nll_and_grad`` and :func:`npflows.fit`'s
    first minibatch), or when :meth:`initialize` is called, b and s are set from that batch x:
    b_c = mean of x[:, c] and s_c = log max(std of x[:, c], 1e-6) over the N·H·W values of channel
    c, so that the z of that batch has zero mean and unit variance per channel. The "initialized"
    flag is part of the layer's description (``get_config``), so a saved and loaded layer never
    re-initializes. Initialization takes a lock: two threads racing on a new layer initialize it
    once. The pullback treats b and s as the parameters they are after initialization.

    Args:
        shape: (C, H, W).
        initialized: False for a new layer; True (as written by ``save``) for one whose b and s
            are already set.

    ``params == {"log_scale": s (C,), "bias": b (C,)}``, raw (x = z·exp(s) + b); both start at zero.
    """

    def __init__(self, shape: Sequence[int], *, initialized: bool = False):
        self._set_shape(shape)
        if not isinstance(initialized, (bool, np.bool_)):
            raise ValueError(f"initialized must be True or False, got {initialized!r}")
        c = self.shape[0]
        self.params = {"log_scale": np.zeros(c), "bias": np.zeros(c)}
        self.initialized = bool(initialized)
        self._lock = threading.Lock()

    def get_config(self) -> dict:
        return {"shape": list(self.shape), "initialized": self.initialized}

    def initialize(self, x) -> None:
        """Set b and s from x (N, C, H, W), N ≥ 1, so that its z has zero mean and unit variance
        per channel, and mark the layer initialized (also when it already was)."""
        x = check_array(x, self.shape, "x")
        if len(x) == 0:
            raise ValueError("ActNorm.initialize needs at least one image, got x with no rows")
        with self._lock:
            self._set_from(x)

    def _set_from(self, x):
        values = x.astype(np.float64).transpose(1, 0, 2, 3).reshape(self.shape[0], -1)  # (C, NHW)
        mean = values.mean(axis=1)
        std = np.sqrt(np.mean((values - mean[:, None]) ** 2, axis=1))
        self.params["bias"][...] = mean  # in place: the arrays are live in a Flow and an optimizer
        self.params["log_scale"][...] = np.log(np.maximum(std, MIN_STD))
        self.initialized = True

    def _initialize_on_first_use(self, x):
        if not self.initialized and len(x):
            with self._lock:
                if not self.initialized:  # another thread may have initialized meanwhile
                    self._set_from(x)

    def _parts(self):
        s, b = self.params["log_scale"], self.params["bias"]
        h, w = self.shape[1:]
        return s[:, None, None], b[:, None, None], h * w * s.sum()

    def _forward_vjp(self, z, context):
        s, b, log_det = self._parts()
        scale = np.exp(s)  # (C, 1, 1)
        x = z * scale + b

        def pullback(grad_x, grad_log_det):
            # x = z e^s + b: ∂x/∂z = e^s, ∂x/∂b = 1, ∂x/∂s = z e^s; log-det H·W·Σ s.
            hw = self.shape[1] * self.shape[2]
            grads = {
                "log_scale": (grad_x * z * scale).sum(axis=(0, 2, 3)) + hw * grad_log_det.sum(),
                "bias": grad_x.sum(axis=(0, 2, 3)),
            }
            return grad_x * scale, grads

        return x, np.full(len(z), log_det, dtype=z.dtype), pullback

    def _inverse_vjp(self, x, context):
        self._initialize_on_first_use(x)
        s, b, log_det = self._parts()
        inv_scale = np.exp(-s)
        z = (x - b) * inv_scale

        def pullback(grad_z, grad_log_det):
            # z = (x − b) e^{−s}: ∂z/∂x = e^{−s}, ∂z/∂b = −e^{−s}, ∂z/∂s = −z; log-det −H·W·Σ s.
            hw = self.shape[1] * self.shape[2]
            grad_x = grad_z * inv_scale
            grads = {
                "log_scale": -(grad_z * z).sum(axis=(0, 2, 3)) - hw * grad_log_det.sum(),
                "bias": -grad_x.sum(axis=(0, 2, 3)),
            }
            return grad_x, grads

        return z, np.full(len(x), -log_det, dtype=x.dtype), pullback
