"""Composition of layers into a normalizing flow, its density, sampling, and loss gradient.

Book: ch. 16, "Forward mapping with a deep neural network". The generative map is the composition
x = f[z] = f_K[f_{K−1}[… f_1[z] …]] with h_0 = z, h_k = f_k[h_{k−1}], h_K = x; the normalizing map
applies f_k⁻¹ in the reverse order. ``layers[0]`` is f_1, the layer next to the base density.
Log-determinants add: log|det ∂f/∂z| = Σ_k log|det ∂f_k/∂h_{k−1}|.

Density: log Pr(x) = log Pr(z) + log|det ∂f⁻¹/∂x|, z = f⁻¹[x].
Loss: L[φ] = −(1/N) Σ_i log Pr(x_i | φ), in nats (book: ch. 16, "Learning").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .distributions import StandardNormal
from .layer import Layer, RNGLike, as_rng, check_int, describe
from .tree import Tree, tree_map

CHUNK_SIZE = 2048
"""The default number of rows per pass of :meth:`Flow.log_prob`, :meth:`Flow.sample`,
:meth:`Flow.sample_and_log_prob` and :meth:`Flow.nll_and_grad`. A batch of N > CHUNK_SIZE rows
is cut into ⌈N / CHUNK_SIZE⌉ chunks of as equal sizes as possible, which keep the
conditioners' activations small enough to stay in the CPU's caches (benchmarks/README.md, "Issue
15", measures the gain and how this value was chosen); it also bounds the memory of a pass.

Each row's log-density and sample are computed by the same operations in any chunk (the
splines' sums over bins run in a fixed order for this reason), so chunks change them only where a
matrix product rounds a row otherwise for another number of rows: equal to rounding, not always
bit-identical (chunks of a few rows can differ by a few to tens of ulp in float64 and float32
after a spline; tests/test_chunking.py bounds them). The loss of :meth:`Flow.nll_and_grad` is
the mean of the per-row values, taken once over all N; its gradients add the chunks' sums over
rows, equal to rounding.

Two kinds of layer depend on the whole batch: a residual block's fixed-point solve (its forward
direction) iterates until every row of the pass has converged, and its stochastic log-det
estimators draw their random numbers per pass; with those, chunks give other numbers within the
solver's tolerance, or another, equally valid draw. Pass ``chunk_size=None`` for one pass.

``chunk_size="auto"``, the default, is CHUNK_SIZE, except for a direction that a layer computes
without a pullback, coordinate by coordinate (a MAF's sampling, an IAF's density): that runs in
one pass, since its sequential solve is many small products per block of rows, which chunks do
not speed up but multiply (benchmarks/README.md, "Issue 15", measures it).
"""


class Flow(Layer):
    """A normalizing flow: layers composed over a base density. It is itself a layer.

    Args:
        layers: f_1, …, f_K, listed from the base (z) side to the data (x) side.
        base: the base density Pr(z); ``StandardNormal(dim)`` by default.

    ``params == {"layers": [f_1.params, …, f_K.params], "base": base.params}``: the layers' own
    live arrays, so an optimizer stepping ``flow.params`` trains the layers.

    Images: layers on (N, C, H, W) arrays compose the same way when each layer's ``event_shape``
    (its x) is the next one's ``latent_shape`` (its z); the base scores z flattened to (N, D).
    """

    def __init__(self, layers: Sequence[Layer], base=None):
        if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers must be a list of Layer objects, got {type(layers).__name__}")
        layers = list(layers)
        if not layers:
            raise ValueError("a Flow needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a Layer, got {type(layer).__name__}")
        dims = {layer.dim for layer in layers}
        if len(dims) != 1:
            raise ValueError(
                f"all layers must have the same dim, got dims {[la.dim for la in layers]}"
            )
        self.dim = dims.pop()
        _check_shapes_chain(layers)
        self._event_shape, self._latent_shape = layers[-1].event_shape, layers[0].latent_shape
        self.base = StandardNormal(self.dim) if base is None else base
        if not all(hasattr(self.base, a) for a in ("dim", "params", "sample", "log_prob_vjp")):
            raise TypeError(
                f"base must be a density like StandardNormal, got {type(self.base).__name__}"
            )
        if self.base.dim != self.dim:
            raise ValueError(f"base has dim {self.base.dim}, the layers have dim {self.dim}")
        self.layers = layers
        self.context_dim = max(layer.context_dim for layer in layers)
        for layer in layers:
            if layer.context_dim not in (0, self.context_dim):
                raise ValueError("conditional layers in one Flow must share one context_dim")
        self.has_forward_vjp = all(layer.has_forward_vjp for layer in layers)
        self.has_inverse_vjp = all(layer.has_inverse_vjp for layer in layers)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one x: the last layer's ``event_shape``."""
        return self._event_shape

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one z: the first layer's ``latent_shape``; the base sees z flattened to D."""
        return self._latent_shape

    @property
    def params(self) -> dict:
        return {"layers": [layer.params for layer in self.layers], "base": self.base.params}

    def get_config(self) -> dict:
        return {"layers": [describe(layer) for layer in self.layers], "base": describe(self.base)}

    def __repr__(self) -> str:
        inner = "".join(f"\n  {layer!r}," for layer in self.layers)
        return f"Flow(layers=[{inner}\n], base={self.base!r})"

    def _ctx(self, layer, context):
        return context if layer.context_dim else None

    # -- the two directions ------------------------------------------------------------------------
    def _forward(self, z, context):
        h, log_det = z, np.zeros(len(z), dtype=z.dtype)
        for layer in self.layers:
            h, ld = layer._forward(h, self._ctx(layer, context))
            log_det = log_det + ld
        return h, log_det

    def _inverse(self, x, context):
        h, log_det = x, np.zeros(len(x), dtype=x.dtype)
        for layer in reversed(self.layers):
            h, ld = layer._inverse(h, self._ctx(layer, context))
            log_det = log_det + ld
        return h, log_det

    def _forward_vjp(self, z, context):
        h, log_det, pullbacks = z, np.zeros(len(z), dtype=z.dtype), []
        for layer in self.layers:
            h, ld, pb = layer._forward_vjp(h, self._ctx(layer, context))
            log_det = log_det + ld
            pullbacks.append(pb)

        def pullback(grad_x, grad_log_det):
            # Undo the layers from x back to z; every layer's log-det receives grad_log_det.
            grad_h, grads = grad_x, [None] * len(pullbacks)
            for k in reversed(range(len(pullbacks))):
                grad_h, grads[k] = pullbacks[k](grad_h, grad_log_det)
            return grad_h, {"layers": grads, "base": {}}

        return h, log_det, pullback

    def _inverse_vjp(self, x, context):
        h, log_det, pullbacks = x, np.zeros(len(x), dtype=x.dtype), []
        for layer in reversed(self.layers):
            h, ld, pb = layer._inverse_vjp(h, self._ctx(layer, context))
            log_det = log_det + ld
            pullbacks.append(pb)
        pullbacks.reverse()  # pullbacks[k] belongs to self.layers[k]

        def pullback(grad_z, grad_log_det):
            # The inverse ran f_K⁻¹ first, so its backward starts at f_1⁻¹ (next to z).
            grad_h, grads = grad_z, [None] * len(pullbacks)
            for k in range(len(pullbacks)):
                grad_h, grads[k] = pullbacks[k](grad_h, grad_log_det)
            return grad_h, {"layers": grads, "base": {}}

        return h, log_det, pullback

    # -- density, sampling, loss ------------------------------------------------------------------
    def log_prob(self, x, context=None, *, chunk_size: int | str | None = "auto") -> np.ndarray:
        """log Pr(x) = log Pr(z) + log|det ∂f⁻¹/∂x| for x of shape (N, D); returns (N,) in nats.

        ``chunk_size``: rows per pass, "auto" (see :data:`CHUNK_SIZE`) or None (all rows in one
        pass). Each row's value is computed by the same operations in any chunk.
        """
        x, context = self._check(x, context, "x", self.event_shape)
        chunk_size = _check_chunk_size(chunk_size, sequential=not self.has_inverse_vjp)

        def evaluate(rows):
            z, log_det = self._inverse(x[rows], _rows(context, rows))
            return self.base._log_prob(z.reshape(len(z), self.dim)) + log_det

        log_p = _concatenate(_in_chunks(evaluate, len(x), chunk_size))
        return log_p.astype(x.dtype, copy=False)

    def sample(
        self, n: int, rng: RNGLike = None, context=None, *, chunk_size: int | str | None = "auto"
    ) -> np.ndarray:
        """Draw z ~ Pr(z) and return x = f[z], shape (n, D).

        For a conditional flow, ``context`` has shape (n, context_dim), one row per draw, or is one
        context for all n draws: shape (context_dim,) or (1, context_dim), broadcast to n rows (as
        zuko and FlowJAX do). ``chunk_size`` as in :meth:`sample_and_log_prob`.
        """
        return self.sample_and_log_prob(n, rng, context, chunk_size=chunk_size)[0]

    def sample_and_log_prob(
        self, n: int, rng: RNGLike = None, context=None, *, chunk_size: int | str | None = "auto"
    ):
        """Samples x (n, D) and their log Pr(x) (n,), from one generative pass:
        log Pr(x) = log Pr(z) − log|det ∂f/∂z|. Computed in the parameters' dtype. ``context``
        as in :meth:`sample`: (n, context_dim), or one row (context_dim,) or (1, context_dim).

        All n base draws are taken first, in one call of ``rng``; then the generative pass runs
        ``chunk_size`` rows at a time ("auto": :data:`CHUNK_SIZE`; None: one pass). So the same
        ``rng`` gives the same z, and the same x, whatever the chunk size.
        """
        n, rng = check_int(n, "n", minimum=0), as_rng(rng)
        context = self._check_context(_one_context_for_all(context, self.context_dim, n), n)
        chunk_size = _check_chunk_size(chunk_size, sequential=not self.has_forward_vjp)
        z = self.base.sample(n, rng).astype(self.dtype, copy=False)

        def evaluate(rows):
            h = z[rows]
            return self._forward(h.reshape(len(h), *self.latent_shape), _rows(context, rows))

        pieces = _in_chunks(evaluate, n, chunk_size)
        x, log_det = (_concatenate([piece[i] for piece in pieces]) for i in (0, 1))
        return x, self.base._log_prob(z) - log_det

    def nll_and_grad(
        self, x, context=None, *, chunk_size: int | str | None = "auto"
    ) -> tuple[float, Tree]:
        """Mean negative log-likelihood (nats) of x (N, D) and its gradient for ``self.params``.

        L = −(1/N) Σ_n [log Pr(z_n) + log|det ∂f⁻¹/∂x|(x_n)], so ∂L/∂z_n = −(1/N) ∂log Pr(z_n)/∂z_n
        and ∂L/∂log_det_n = −1/N; the layers' pullbacks carry these back to the parameters.

        Chunks (``chunk_size`` rows at a time, "auto": :data:`CHUNK_SIZE`; None: one pass): each
        chunk's pullback starts from the same −1/N per row, N the whole batch's size, so chunk c
        returns the gradient of −(1/N) Σ_{n ∈ c} log Pr(x_n), and these add up to the gradient of
        L. The loss is the mean of all N log-densities, taken once (the one-pass value whenever
        the rows' log-densities are, see :data:`CHUNK_SIZE`); the gradients equal the one-pass
        ones to rounding (their sums over rows are added chunk by chunk, not all at once).
        """
        x, context = self._check(x, context, "x", self.event_shape)
        chunk_size = _check_chunk_size(chunk_size, sequential=False)
        if len(x) == 0:
            raise ValueError(
                "x has no rows: the mean negative log-likelihood of nothing is undefined"
            )
        x = x.astype(self.dtype, copy=False)  # compute in the parameters' precision
        n = len(x)

        def evaluate(rows):
            z, log_det, pullback = self._inverse_vjp(x[rows], _rows(context, rows))
            log_pz, base_pullback = self.base.log_prob_vjp(z.reshape(len(z), self.dim))
            grad_log_p = np.full(len(z), -1.0 / n, dtype=x.dtype)
            grad_z, grads_base = base_pullback(grad_log_p)
            _, grads = pullback(grad_z.reshape(z.shape), grad_log_p)
            grads["base"] = grads_base
            return log_pz + log_det, grads

        pieces = _in_chunks(evaluate, n, chunk_size)
        nll = -float(np.mean(_concatenate([log_p for log_p, _ in pieces]), dtype=np.float64))
        grads = pieces[0][1]
        for _, more in pieces[1:]:
            grads = tree_map(np.add, grads, more)
        return nll, grads


def _check_chunk_size(chunk_size, sequential: bool) -> int | None:
    """Rows per chunk, None for one pass: "auto" is :data:`CHUNK_SIZE`, or None for a
    ``sequential`` direction; anything but "auto", None and a positive integer is refused."""
    if isinstance(chunk_size, str) and chunk_size == "auto":
        return None if sequential else CHUNK_SIZE
    if chunk_size is None:
        return None
    if isinstance(chunk_size, str):
        raise TypeError(
            f'chunk_size must be "auto", None or a positive integer, got {chunk_size!r}'
        )
    return check_int(chunk_size, "chunk_size")


def _rows(context, rows):
    return None if context is None else context[rows]


def _concatenate(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _in_chunks(evaluate, n: int, chunk_size: int | None) -> list:
    """``[evaluate(rows) for rows in chunks]``, the chunks ⌈n / chunk_size⌉ consecutive slices of
    range(n) of as equal sizes as possible (one slice when ``chunk_size`` is None or n ≤ it).

    When a chunk raises ValueError or ArithmeticError (data outside the support, an overflow),
    the whole batch is evaluated in one pass instead, so that the error raised is the one of the
    call without chunks: its row numbers count from the batch's first row, not the chunk's, and
    its counts of bad values are over the whole batch.
    """
    count = 1 if chunk_size is None or n <= chunk_size else -(-n // chunk_size)
    bounds = [i * n // count for i in range(count + 1)]
    if count == 1:
        return [evaluate(slice(0, n))]
    try:
        return [evaluate(slice(lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    except (ValueError, ArithmeticError):
        return [evaluate(slice(0, n))]


def _one_context_for_all(context, context_dim: int, n: int):
    """``context`` broadcast to (n, context_dim) when it is one row, (context_dim,) or
    (1, context_dim), of a conditional flow; anything else unchanged (``_check_context`` judges it).
    A read-only view: no copy of the row n times."""
    if context is None or not context_dim:
        return context
    array = np.asarray(context)
    if array.shape in ((context_dim,), (1, context_dim)):
        return np.broadcast_to(array.reshape(1, context_dim), (n, context_dim))
    return context


def _check_shapes_chain(layers: Sequence[Layer]) -> None:
    """Raise unless each layer's x has the shape of the next layer's z (images: (C, H, W))."""
    for k in range(len(layers) - 1):
        if layers[k].event_shape != layers[k + 1].latent_shape:
            raise ValueError(
                f"layer {k} ({type(layers[k]).__name__}) outputs x of shape "
                f"{layers[k].event_shape}, but layer {k + 1} ({type(layers[k + 1]).__name__}) "
                f"takes z of shape {layers[k + 1].latent_shape}"
            )
