"""A small convolutional conditioner for image coupling layers, with its backward pass by hand.

Book: ch. 16, "Coupling flows": the conditioner need not be invertible, and "for structured data like
images" it is a convolutional network. ``npflows.nn.ConvNet`` re-exports :class:`ConvNet`.

Convolutions are computed by im2col: the k×k neighbourhood of every pixel (zero padding keeps H×W) is
gathered once with ``sliding_window_view`` into a matrix of shape (N·H·W, k·k·C_in), so the whole
convolution is one GEMM with the kernel reshaped to (k·k·C_in, C_out). The backward pass is the
same GEMM transposed, then col2im: each gathered entry's gradient is added back to the pixel it was
read from, one vectorized add per kernel offset (k² adds, no loop over pixels).
Inside the network images are kept channels-last, (N, H, W, C), so that the GEMM's rows are pixels.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .layer import RNGLike, as_rng, check_int

__all__ = ["ConvNet", "conv2d", "conv2d_vjp"]


def _im2col(h: np.ndarray, k: int) -> np.ndarray:
    """h (N, H, W, C) → cols (N·H·W, k·k·C): row (n, y, x) holds h[n, y + i − p, x + j − p, c] at
    column (i·k + j)·C + c, zero outside the image (p = (k − 1)/2)."""
    n, height, width, channels = h.shape
    if k == 1:
        return h.reshape(n * height * width, channels)
    p = k // 2
    padded = np.pad(h, ((0, 0), (p, p), (p, p), (0, 0)))
    windows = sliding_window_view(padded, (k, k), axis=(1, 2))  # (N, H, W, C, k, k), a view
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * height * width, k * k * channels)


def _col2im(grad_cols: np.ndarray, shape: tuple[int, ...], k: int) -> np.ndarray:
    """The adjoint of :func:`_im2col`: ∂L/∂cols (N·H·W, k·k·C) → ∂L/∂h (N, H, W, C)."""
    if k == 1:
        return grad_cols.reshape(shape)
    n, height, width, channels = shape
    p = k // 2
    grad = grad_cols.reshape(n, height, width, k, k, channels)
    padded = np.zeros((n, height + 2 * p, width + 2 * p, channels), dtype=grad_cols.dtype)
    for i in range(k):  # k² offsets; each add covers every pixel at once
        for j in range(k):
            padded[:, i : i + height, j : j + width, :] += grad[:, :, :, i, j, :]
    return padded[:, p : p + height, p : p + width, :]


def conv2d(h: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """out[n, y, x, o] = b_o + Σ_{i, j, c} K[i, j, c, o] h[n, y + i − p, x + j − p, c] ("same"
    zero padding). h (N, H, W, C_in), K (k, k, C_in, C_out), b (C_out,) → (N, H, W, C_out)."""
    return conv2d_vjp(h, kernel, bias, need_pullback=False)[0]


def conv2d_vjp(h: np.ndarray, kernel: np.ndarray, bias: np.ndarray, need_pullback: bool = True):
    """:func:`conv2d` and its pullback ``grad_out (N, H, W, C_out) -> (grad_h, grad_K, grad_b)``."""
    k, _, c_in, c_out = kernel.shape
    n, height, width, _ = h.shape
    cols = _im2col(h, k)  # (N·H·W, k·k·C_in)
    weight = kernel.reshape(k * k * c_in, c_out)
    out = cols @ weight
    out += bias
    out = out.reshape(n, height, width, c_out)
    if not need_pullback:
        return out, None

    def pullback(grad_out):
        # out = cols W + b: ∂L/∂W = colsᵀ ḡ, ∂L/∂b = Σ_rows ḡ, ∂L/∂cols = ḡ Wᵀ, then col2im.
        g = grad_out.reshape(n * height * width, c_out)
        grad_kernel = (cols.T @ g).reshape(kernel.shape)
        grad_bias = g.sum(axis=0)
        grad_h = _col2im(g @ weight.T, h.shape, k)
        return grad_h, grad_kernel, grad_bias

    return out, pullback


class ConvNet:
    """out = K₃ ⋆ relu(K₂ ⋆ relu(K₁ ⋆ h + b₁) + b₂) + b₃: 3×3 conv, ReLU, 1×1 conv, ReLU, 3×3 conv.

    The conditioner of Glow's affine coupling (Kingma & Dhariwal 2018, arXiv:1807.03039, §3.3);
    "⋆" is a "same"-padded convolution (:func:`conv2d`), so H×W is kept.

    Args:
        in_channels, out_channels: C_in of h and C_out of the output.
        hidden: channels of the two hidden layers.
        out_bias: initial b₃, shape (C_out,) (default zeros).
        rng: draws K₁ and K₂.

    Initialization: K₁, K₂ ~ N(0, 2 / fan_in) (He et al. 2015, fan_in = k·k·C_in), hidden biases 0;
    K₃ = 0, so the network starts as the constant ``out_bias`` whatever its input and a coupling
    layer built on it starts as the identity.

    Shapes: h (N, C_in, H, W) → out (N, C_out, H, W). ``params == {"kernels": [K₁ (3, 3, C_in, hidden),
    K₂ (1, 1, hidden, hidden), K₃ (3, 3, hidden, C_out)], "biases": [b₁, b₂, b₃]}``.
    """

    KERNEL_SIZES = (3, 1, 3)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden: int = 64,
        out_bias=None,
        rng: RNGLike = None,
    ):
        in_channels, out_channels = (
            check_int(in_channels, "in_channels"),
            check_int(out_channels, "out_channels"),
        )
        hidden = check_int(hidden, "hidden")
        rng = as_rng(rng)
        widths = [int(in_channels), int(hidden), int(hidden), int(out_channels)]
        kernels = []
        for k, c_in, c_out in zip(self.KERNEL_SIZES, widths[:-1], widths[1:], strict=True):
            kernels.append(rng.standard_normal((k, k, c_in, c_out)) * np.sqrt(2.0 / (k * k * c_in)))
        kernels[-1][...] = 0.0
        biases = [np.zeros(w) for w in widths[1:]]
        if out_bias is not None:
            biases[-1][...] = out_bias
        self.in_channels, self.out_channels, self.hidden = widths[0], widths[-1], widths[1]
        self.params = {"kernels": kernels, "biases": biases}

    def get_config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "hidden": self.hidden,
        }

    def __call__(self, h: np.ndarray) -> np.ndarray:
        """The output (N, C_out, H, W) for h (N, C_in, H, W), without the backward pass."""
        a = h.transpose(0, 2, 3, 1)  # channels last
        kernels, biases = self.params["kernels"], self.params["biases"]
        for layer, (kernel, bias) in enumerate(zip(kernels, biases, strict=True)):
            a = conv2d(a, kernel, bias)
            if layer < 2:
                np.maximum(a, 0.0, out=a)
        return a.transpose(0, 3, 1, 2)

    def forward_vjp(self, h: np.ndarray):
        """The output and its pullback ``grad_out (N, C_out, H, W) -> (grad_h, grads)``."""
        a = h.transpose(0, 2, 3, 1)
        kernels, biases = self.params["kernels"], self.params["biases"]
        pullbacks, actives = [], []
        for layer, (kernel, bias) in enumerate(zip(kernels, biases, strict=True)):
            a, pullback = conv2d_vjp(a, kernel, bias)
            pullbacks.append(pullback)
            if layer < 2:
                np.maximum(a, 0.0, out=a)
                actives.append(a > 0)  # relu′ read off the output, as booleans
        out = a.transpose(0, 3, 1, 2)

        def pullback(grad_out):
            # Backward through conv 3, relu, conv 2, relu, conv 1 (steps in reverse of the forward).
            grad = np.ascontiguousarray(grad_out.transpose(0, 2, 3, 1))
            grad_kernels, grad_biases = [None] * 3, [None] * 3
            for layer in (2, 1, 0):
                grad, grad_kernels[layer], grad_biases[layer] = pullbacks[layer](grad)
                if layer > 0:
                    grad = grad * actives[layer - 1]  # relu′ of the layer below's output
            return grad.transpose(0, 3, 1, 2), {"kernels": grad_kernels, "biases": grad_biases}

        return out, pullback
