"""Conditioner networks with hand-written backward passes.

A conditioner computes a transformer's raw parameters θ from what the layer may look at (the other
half of a coupling split, the preceding coordinates of an autoregressive flow, a context vector).
It need not be invertible (book: ch. 16, "Coupling flows").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .layer import RNGLike, as_rng, check_int


# Each activation returns its value and a function giving its derivative, which is evaluated only
# when a backward pass asks for it. ReLU and tanh overwrite their argument, a fresh pre-activation
# that nothing else holds, and read their derivative off the output: one (N, width) array less.
def _relu(a):
    out = np.maximum(a, 0.0, out=a)
    return out, lambda: out > 0  # relu′(a) = [a > 0] = [out > 0], as booleans (8× smaller)


def _tanh(a):
    out = np.tanh(a, out=a)
    return out, lambda: 1.0 - out * out


def _elu(a):
    # elu(a) = a for a > 0, eᵃ − 1 otherwise; its derivative is 1, or eᵃ = elu(a) + 1.
    out = np.where(a > 0, a, np.expm1(np.minimum(a, 0.0)))
    return out, lambda: np.where(a > 0, 1.0, out + 1.0)


def _silu(a):
    # silu(a) = a σ(a); derivative σ(a) (1 + a (1 − σ(a))).
    sig = 0.5 * (1.0 + np.tanh(0.5 * a))  # σ(a) without overflow in exp
    return a * sig, lambda: sig * (1.0 + a * (1.0 - sig))


ACTIVATIONS = {"relu": _relu, "tanh": _tanh, "elu": _elu, "silu": _silu}
# Kaiming (He et al. 2015, arXiv:1502.01852) gain for ReLU-like units; LeCun (gain 1) for tanh.
GAINS = {"relu": np.sqrt(2.0), "tanh": 1.0, "elu": np.sqrt(2.0), "silu": np.sqrt(2.0)}


def check_hidden(hidden) -> tuple[int, ...]:
    """``hidden`` as a tuple of positive ints (the hidden widths), or ValueError naming it."""
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise ValueError(f"hidden must be a sequence of positive integers, got {hidden!r}")
    return tuple(
        check_int(width, f"hidden[{i}] (of the hidden layer widths)")
        for i, width in enumerate(hidden)
    )


class MLP:
    """out = W_L a(… a(W_1 h + b_1) …) + b_L, a fully connected network with activation a.

    Args:
        in_dim, out_dim: widths of the input h and the output.
        hidden: widths of the hidden layers, e.g. (64, 64).
        activation: "relu", "tanh", "elu" or "silu".
        out_bias: initial output bias, shape (out_dim,) (default zeros).
        rng: draws the hidden weights.

    Initialization: hidden weights W_l ~ N(0, gain² / fan_in) (gain √2 for ReLU, ELU and SiLU, 1 for
    tanh), hidden biases 0; the output weights are 0, so the network starts as the constant
    ``out_bias`` whatever its input: a coupling layer built on it starts as the identity.

    ``params == {"weights": [W_1, …, W_L], "biases": [b_1, …, b_L]}``, W_l of shape (fan_in, fan_out)
    so that a row-vector batch computes ``h @ W + b``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        out_bias=None,
        rng: RNGLike = None,
        masks: Sequence[np.ndarray] | None = None,
    ):
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        in_dim = check_int(in_dim, "in_dim", minimum=0)
        widths = [in_dim, *check_hidden(hidden), check_int(out_dim, "out_dim")]
        rng = as_rng(rng)
        gain = GAINS[activation]
        weights = [
            rng.standard_normal((fan_in, fan_out)) * gain / np.sqrt(max(fan_in, 1))
            for fan_in, fan_out in zip(widths[:-2], widths[1:-1], strict=True)
        ]
        weights.append(np.zeros((widths[-2], widths[-1])))
        biases = [np.zeros(w) for w in widths[1:]]
        if out_bias is not None:
            biases[-1][...] = out_bias
        self.in_dim, self.out_dim, self.hidden, self.activation = (
            widths[0],
            widths[-1],
            tuple(widths[1:-1]),
            activation,
        )
        self.params = {"weights": weights, "biases": biases}
        if masks is not None and [m.shape for m in masks] != [w.shape for w in weights]:
            raise ValueError(
                "masks must match the weight shapes " + str([w.shape for w in weights])
            )
        self.masks = None if masks is None else [np.asarray(m, dtype=bool) for m in masks]
        self._mask_values: dict[np.dtype, list[np.ndarray]] = {}

    def _masks_in(self, dtype) -> list[np.ndarray]:
        """The masks as 0.0/1.0 arrays of ``dtype``, made once per dtype: W ⊙ M is then a
        product of two float arrays, faster than with boolean M (whose entries numpy converts
        on every product), and the same numbers (W · 1 = W, W · 0 = ±0 either way)."""
        values = self._mask_values.get(dtype)
        if values is None:
            values = self._mask_values[dtype] = [m.astype(dtype) for m in self.masks]
        return values

    def _weights(self):
        """The effective weights W_l ⊙ M_l (MADE's masks, in W's dtype), or W_l."""
        weights = self.params["weights"]
        if self.masks is None:
            return weights
        return [w * self._masks_in(w.dtype)[l] for l, w in enumerate(weights)]

    def get_config(self) -> dict:
        return {
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "hidden": list(self.hidden),
            "activation": self.activation,
        }

    def __call__(self, h: np.ndarray) -> np.ndarray:
        """The output (N, out_dim) for input h (N, in_dim), without the backward pass."""
        weights, biases = self._weights(), self.params["biases"]
        act = ACTIVATIONS[self.activation]
        for W, b in zip(weights[:-1], biases[:-1], strict=True):
            h = act(_affine(h, W, b))[0]
        return _affine(h, weights[-1], biases[-1])

    def forward_vjp(self, h: np.ndarray):
        """The output and its pullback ``grad_out (N, out_dim) -> (grad_h (N, in_dim), grads)``."""
        weights, biases = self._weights(), self.params["biases"]
        act = ACTIVATIONS[self.activation]
        inputs, derivs = [h], []
        for W, b in zip(weights[:-1], biases[:-1], strict=True):
            h, deriv = act(_affine(h, W, b))
            inputs.append(h)
            derivs.append(deriv)
        out = _affine(h, weights[-1], biases[-1])

        def pullback(grad_out):
            # Layer l computed out_l = a_{l−1} @ W_l + b_l, then a_l = act(out_l). Backward:
            # ∂L/∂W_l = a_{l−1}ᵀ ∂L/∂out_l, ∂L/∂b_l = Σ_n ∂L/∂out_l, ∂L/∂a_{l−1} = ∂L/∂out_l W_lᵀ,
            # ∂L/∂out_{l−1} = ∂L/∂a_{l−1} ⊙ act′(out_{l−1}).
            grad_w, grad_b = [None] * len(weights), [None] * len(weights)
            grad = grad_out
            ones = np.ones(len(grad), dtype=grad.dtype)  # Σ_n as ones @ grad: BLAS beats .sum(0)
            for l in reversed(range(len(weights))):
                grad_w[l] = inputs[l].T @ grad
                grad_b[l] = ones @ grad
                grad = grad @ weights[l].T
                if l > 0:
                    grad *= derivs[l - 1]()  # in place: the product above is a fresh array
            if self.masks is not None:  # W ⊙ M: the masked entries receive no gradient
                grad_w = [g * self._masks_in(g.dtype)[l] for l, g in enumerate(grad_w)]
            return grad, {"weights": grad_w, "biases": grad_b}

        return out, pullback


def _affine(h, W, b):
    """h @ W + b for h (N, fan_in), W (fan_in, fan_out), b (fan_out,), as a new array."""
    # With one input unit the product is an outer product, which OpenBLAS's GEMM computes several
    # times slower than the broadcast multiply (the same numbers: one product per entry).
    out = h * W if W.shape[0] == 1 else h @ W
    out += b
    return out


ORDERS = ("natural", "reversed", "random")


class MADE(MLP):
    """Masked autoencoder for distribution estimation (Germain et al. 2015, arXiv:1502.03509).

    An MLP whose weights are multiplied by fixed 0/1 masks so that the output block of coordinate i
    depends only on the inputs that precede i in ``order`` (and on the context, which every unit
    may see): θ_i = net(h_{<i}, c). docs/autoregressive.md.

    Degrees: input d has degree m(d) ∈ {1, …, D}, its rank in the order; context inputs have degree 0;
    hidden units of every layer cycle through the degrees 1 … D − 1 in order (0 … D − 1 when there is
    a context, so that some units see the context alone), deterministic so that the masks do not
    depend on ``rng``. A hidden unit of degree m sees units of degree ≤ m; output block i (degree
    m(i)) sees units of degree < m(i). So the first coordinate's θ depends on the context alone.

    Args:
        dim: D.
        params_per_dim: P, the width of each coordinate's output block.
        hidden, activation, rng: as :class:`MLP`.
        order: "natural" (1 … D), "reversed", "random" (drawn from ``rng``) or a permutation of
            range(D) listing the coordinates first to last.
        context_dim: width of a context vector appended to the input.
        out_bias: initial output bias, shape (P,) (repeated for every coordinate) or (D · P,).

    Output: (N, D · P), coordinate-major (reshape to (N, D, P)). ``params`` as :class:`MLP`.
    """

    def __init__(
        self,
        dim: int,
        params_per_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        order: str | Sequence[int] = "natural",
        context_dim: int = 0,
        out_bias=None,
        rng: RNGLike = None,
    ):
        dim, P = check_int(dim, "dim"), check_int(params_per_dim, "params_per_dim")
        context_dim = check_int(context_dim, "context_dim", minimum=0)
        hidden = check_hidden(hidden)
        rng = as_rng(rng)
        self.order = _order(order, dim, rng)
        degree_in = np.empty(dim, dtype=int)
        degree_in[self.order] = np.arange(1, dim + 1)
        degrees = [np.concatenate([degree_in, np.zeros(context_dim, dtype=int)])]
        lowest = 0 if context_dim else 1  # degree-0 units see the context alone
        for width in hidden:
            degrees.append(lowest + np.arange(width) % max(dim - lowest, 1))
        masks = [
            d_in[:, None] <= d_out[None, :]
            for d_in, d_out in zip(degrees[:-1], degrees[1:], strict=True)
        ]
        degree_out = np.repeat(degree_in, P)
        masks.append(degrees[-1][:, None] < degree_out[None, :])
        if out_bias is not None:
            out_bias = (
                np.broadcast_to(out_bias, (dim, P)).ravel() if np.size(out_bias) == P else out_bias
            )
        super().__init__(dim + context_dim, dim * P, hidden, activation, out_bias, rng, masks=masks)
        self.dim, self.params_per_dim, self.context_dim = dim, P, context_dim
        self.degrees = degrees  # per layer, input first: the degree of every unit

    def solve(self, step, n: int, *, dtype=np.float64, context: np.ndarray | None = None):
        """Run the MADE on an input h that is being solved for, one coordinate at a time, in order.

        For the k-th coordinate i in ``order`` (k = 1 … D), ``step(i, theta_i)`` receives its
        output block θ_i = net(h, c)[:, i·P : (i+1)·P], shape (n, P), which depends only on the
        coordinates before it, and returns h_i, shape (n,). Returns h, shape (n, D). This is how a
        MAF samples (h_i = g(z_i; θ_i)) and an IAF computes a density (h_i = g⁻¹(x_i; θ_i)), for
        about the work of one full pass instead of D of them (docs/autoregressive.md).

        Why each hidden unit is computed once, and when: a first-layer unit of degree m sees the
        context (degree 0) and the inputs of degree ≤ m; a unit of a later layer sees the previous
        layer's units of degree ≤ m. By induction over the layers, a hidden unit of degree m is a
        function of the context and of the first m coordinates in the order only. Output block k
        sees the last layer's units of degree < k. So when the first k − 1 coordinates are known,
        the units of degree exactly k − 1 become computable, in every layer, layer by layer (each
        reads units of degree ≤ k − 1 of the layer below, computed at this step or before), and
        they are all that θ of the k-th coordinate still lacks. Step k computes exactly those
        units, then θ_k: every hidden unit is computed once (units of degree ≥ D never: no output
        reads them), from the same inputs and weights as in a full pass, each dot product leaving
        out only terms whose mask is 0. The degree-0 units (context only) are computed at step 1.

        Units are sorted by degree, so that "degree ≤ k − 1" is a prefix of each layer and "degree
        k − 1" a contiguous block, and every product is on slices: at step k, layer l costs
        n · |prefix of layer l−1| · |block of layer l|, which sums over k to about half a full
        pass of unmasked products, and the output blocks sum to one full output product. The units
        are stored transposed, one row of n values per unit, so that a block of units is
        contiguous in memory: sampling 10,000 points from a 16-D MAF is then 2× faster than with
        column blocks of (n, width) arrays (benchmarks/README.md).
        """
        weights, biases = self._weights(), self.params["biases"]
        act = ACTIVATIONS[self.activation]
        D, P, C = self.dim, self.params_per_dim, self.context_dim
        # Layer 0 is the input, sorted as [context (degree 0), h in order (degrees 1 … D)].
        sorted_units = [np.concatenate([D + np.arange(C), self.order])]
        sorted_units += [np.argsort(degree, kind="stable") for degree in self.degrees[1:]]
        # ends[l][m]: how many units of layer l have degree ≤ m (m = 0 … D − 1).
        ends = [
            np.searchsorted(np.sort(degree), np.arange(D), side="right") for degree in self.degrees
        ]
        # Transposed weights (fan_out, fan_in) in the sorted orders: unit rows times input rows.
        W_t = [
            np.ascontiguousarray(w[rows][:, cols].T)
            for w, rows, cols in zip(weights[:-1], sorted_units[:-1], sorted_units[1:], strict=True)
        ]
        W_t.append(np.ascontiguousarray(weights[-1][sorted_units[-1]].T))  # coordinate-major
        b = [bias[cols, None] for bias, cols in zip(biases[:-1], sorted_units[1:], strict=True)]
        b.append(biases[-1][:, None])
        dtype = np.result_type(dtype, *weights, *(() if context is None else (context,)))
        units = [np.empty((len(degree), n), dtype=dtype) for degree in self.degrees]
        if C:
            units[0][:C] = context.T
        for k in range(D):  # k coordinates known: the units of degree k, then θ of the next one
            for l in range(1, len(units)):
                lo, hi, n_in = ends[l][k - 1] if k else 0, ends[l][k], ends[l - 1][k]
                if hi > lo:
                    pre = W_t[l - 1][lo:hi, :n_in] @ units[l - 1][:n_in]
                    pre += b[l - 1][lo:hi]
                    units[l][lo:hi] = act(pre)[0]
            i, n_in = self.order[k], ends[-1][k]
            block = slice(i * P, (i + 1) * P)
            theta_t = W_t[-1][block, :n_in] @ units[-1][:n_in]
            theta_t += b[-1][block]
            units[0][C + k] = step(i, theta_t.T)
        return np.ascontiguousarray(units[0][C + self.degrees[0][:D] - 1].T)

    def get_config(self) -> dict:
        return {
            "dim": self.dim,
            "params_per_dim": self.params_per_dim,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "order": self.order.tolist(),
            "context_dim": self.context_dim,
        }


def _order(order, dim, rng) -> np.ndarray:
    """The coordinates listed first to last, as an int array."""
    if isinstance(order, str):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS} or a permutation, got {order!r}")
        if order == "natural":
            return np.arange(dim)
        if order == "reversed":
            return np.arange(dim)[::-1].copy()
        return rng.permutation(dim)
    perm = np.asarray(order)
    if perm.shape != (dim,) or perm.dtype.kind not in "iu" or set(perm.tolist()) != set(range(dim)):
        raise ValueError(f"order must be a permutation of range({dim}), got {order!r}")
    return perm.astype(int)


# The convolutional conditioner of the image couplings lives in its own module (conv.py).
from .conv import ConvNet  # noqa: E402, F401
