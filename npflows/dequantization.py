"""Integer images as densities: uniform dequantization, bits per dimension, and simple baselines.

A flow has a density on ℝᴰ; pixels take L integer levels. Uniform dequantization (Theis et al. 2016,
arXiv:1511.01844; Uria et al. 2013) turns pixel vectors k ∈ {0, …, L − 1}ᴰ into points

    x = (k + u) / L,   u ~ U(0, 1)ᴰ,

so each k owns the cell [k/L, (k + 1)/L)ᴰ of volume L⁻ᴰ, and the probability the flow gives the cell
is P(k) = ∫_cell p(x) dx. By Jensen's inequality

    log P(k) ≥ E_u[log p((k + u)/L)] − D log L,

and the reported bound, in bits per dimension, is

    bits/dim = (E_u[−log p(x)] + D log L) / (D log 2),

averaged over images with fresh u (``n_samples`` draws per image). The flow is trained and scored
on the [0, 1] scale x = (k + u)/L: its NLL in nats is on that scale, and D log L converts it to
the discrete scale. See docs/multiscale.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .layer import RNGLike, as_rng

__all__ = [
    "Pixels",
    "bits_per_dim",
    "categorical_bits_per_dim",
    "PixelHistory",
    "dequantize",
    "fit_pixels",
    "uniform_bits_per_dim",
]

CHUNK = 512  # images scored at once by bits_per_dim


def _check_pixels(values, levels, name="pixels") -> tuple[np.ndarray, int]:
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise ValueError(f"levels must be an integer ≥ 2, got {levels!r}")
    values = np.asarray(values)
    if values.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be an integer array of levels 0 … {levels - 1}, got dtype {values.dtype}"
        )
    if values.ndim < 2:
        raise ValueError(
            f"{name} must have shape (N, ...) with one image per row, got {values.shape}"
        )
    if values.size and (values.min() < 0 or values.max() >= levels):
        raise ValueError(
            f"{name} must lie in 0 … {levels - 1} (levels={levels}), got values from "
            f"{values.min()} to {values.max()}"
        )
    return values, int(levels)


def dequantize(pixels, levels: int, rng: RNGLike = None) -> np.ndarray:
    """x = (pixels + u) / levels with u ~ U(0, 1) per entry: float64 of the same shape, in [0, 1)."""
    pixels, levels = _check_pixels(pixels, levels)
    return (pixels + as_rng(rng).random(pixels.shape)) / levels


@dataclass(frozen=True)
class Pixels:
    """Integer images to train on: ``npflows.fit(flow, Pixels(values, levels=17))`` dequantizes
    them with fresh noise u ~ U(0, 1) every epoch, x = (values + u) / levels (and validates them
    with the same fresh noise).

    Args:
        values: integer array (N, C, H, W) (or (N, D)) of levels 0 … levels − 1.
        levels: L, the number of levels (17 for the 8×8 digits, 256 for 8-bit images).
    """

    values: np.ndarray
    levels: int

    def __post_init__(self):
        values, levels = _check_pixels(self.values, self.levels, "values")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "levels", levels)

    def __len__(self) -> int:
        return len(self.values)

    def centres(self) -> np.ndarray:
        """(values + ½) / levels: the centre of each pixel's cell, a deterministic stand-in."""
        return (self.values + 0.5) / self.levels

    def dequantize(self, rng: RNGLike = None) -> np.ndarray:
        """A fresh draw of (values + u) / levels."""
        return dequantize(self.values, self.levels, rng)


def for_fit(x) -> tuple[np.ndarray, Callable[[np.random.Generator], np.ndarray] | None]:
    """What :func:`npflows.fit` trains on: (x, None) for float data; for :class:`Pixels`, the cell
    centres (for the checks of shape and support before training) and the function that draws the
    dequantized data anew, called once per epoch with fit's generator."""
    if isinstance(x, Pixels):
        return x.centres(), x.dequantize
    if isinstance(x, np.ndarray) and x.dtype.kind in "iub" and x.ndim > 2:
        raise ValueError(
            f"x is an integer array of shape {x.shape}: pass integer images as "
            "npflows.Pixels(x, levels=L) so that fit dequantizes them, or as floats"
        )
    return x, None


def bits_per_dim(
    flow,
    pixels,
    levels: int,
    rng: RNGLike = None,
    n_samples: int = 8,
    per_image: bool = False,
):
    """The dequantization bound on the bits per dimension of integer images under ``flow``.

    bits/dim = (E_u[−log p((k + u)/L)] + D log L) / (D log 2), the expectation estimated per image
    by the mean over ``n_samples`` fresh draws of u ~ U(0, 1)ᴰ; D = ``flow.dim``, L = ``levels``.

    Args:
        flow: a flow on x of shape (N, *flow.event_shape) in [0, 1] (trained on ``Pixels``).
        pixels: integer array (N, *flow.event_shape) of levels 0 … levels − 1.
        levels: L.
        rng: the dequantization noise (None, an int seed or a Generator).
        n_samples: draws of u per image.
        per_image: return the (N,) bound of each image instead of their mean.

    Returns:
        The mean over images (a float), or the (N,) values with ``per_image=True``.
    """
    pixels, levels = _check_pixels(pixels, levels)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if pixels.shape[1:] != tuple(flow.event_shape):
        raise ValueError(
            f"pixels must have shape (N, {', '.join(map(str, flow.event_shape))}) for this flow, "
            f"got {pixels.shape}"
        )
    if len(pixels) == 0:
        raise ValueError("pixels has no images: the bits per dimension of nothing is undefined")
    rng = as_rng(rng)
    dim = flow.dim
    nll = np.zeros(len(pixels))
    for _ in range(int(n_samples)):
        for start in range(0, len(pixels), CHUNK):
            chunk = pixels[start : start + CHUNK]
            x = (chunk + rng.random(chunk.shape)) / levels
            nll[start : start + CHUNK] -= flow.log_prob(x.astype(flow.dtype, copy=False))
    nll /= n_samples
    bits = (nll + dim * np.log(levels)) / (dim * np.log(2.0))
    return bits if per_image else float(bits.mean())


def uniform_bits_per_dim(levels: int) -> float:
    """log₂ L: the bits per dimension of the uniform distribution over L levels."""
    return float(np.log2(_check_pixels(np.zeros((1, 1), dtype=int), levels)[1]))


def categorical_bits_per_dim(train, test, levels: int, smoothing: float = 1.0) -> float:
    """Test bits/dim of independent categorical pixels fitted to ``train`` with additive smoothing:
    P(pixel d = k) = (count_d(k) + α) / (N_train + α L), α = ``smoothing`` (1: Laplace).

    ``train`` and ``test`` are integer arrays of the same image shape; returns the mean over test
    images of −Σ_d log₂ P(test pixel d) / D.
    """
    train, levels = _check_pixels(train, levels, "train")
    test, _ = _check_pixels(test, levels, "test")
    if train.shape[1:] != test.shape[1:]:
        raise ValueError(f"train and test images differ in shape: {train.shape} and {test.shape}")
    if not (np.isfinite(smoothing) and smoothing > 0):
        raise ValueError(f"smoothing must be a positive number, got {smoothing!r}")
    flat_train = train.reshape(len(train), -1)
    flat_test = test.reshape(len(test), -1)
    dim = flat_train.shape[1]
    counts = np.zeros((dim, levels))
    np.add.at(counts, (np.broadcast_to(np.arange(dim), flat_train.shape), flat_train), 1.0)
    log_p = np.log2(counts + smoothing) - np.log2(len(train) + smoothing * levels)  # (D, L)
    return float(-log_p[np.arange(dim), flat_test].sum(axis=1).mean() / dim)


@dataclass
class PixelHistory:
    """What :func:`fit_pixels` saw, one entry per epoch: the train NLL (nats, on the [0, 1] scale,
    as :func:`npflows.fit` reports it) and the validation bits/dim; ``best_epoch`` indexes them."""

    train_nll: list
    val_bits_per_dim: list
    best_epoch: int = -1
    stopped_early: bool = False


def fit_pixels(
    flow,
    train,
    validation,
    levels: int,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    patience: int | None = None,
    rng: RNGLike = None,
    report: Callable[[int, float, float], None] | None = None,
) -> PixelHistory:
    """Train ``flow`` on integer images ``train`` and select it on a fixed ``validation`` set.

    Uninitialized ActNorms are first initialized on the whole (dequantized) training set. Each
    epoch is then one :func:`npflows.fit` epoch on ``Pixels(train, levels)`` (fresh dequantization
    noise; one Adam optimizer carried across epochs), followed by the validation bits/dim
    (:func:`bits_per_dim`, one draw of u per image). The parameters of the epoch with the lowest
    validation bits/dim are restored at the end; ``patience`` epochs without a new best stop early.
    ``report(epoch, train_nll, val_bits_per_dim)`` is called after each epoch (epochs from 1).
    Raises what :func:`npflows.fit` raises (TrainingDiverged: parameters of the last good step).
    """
    from .optim import Adam
    from .train import fit
    from .tree import assign_flat, flatten

    pixels = Pixels(train, levels)
    validation, levels = _check_pixels(validation, levels, "validation")
    if patience is not None and (
        isinstance(patience, bool) or int(patience) != patience or patience < 1
    ):
        raise ValueError(f"patience must be None or a positive integer, got {patience!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    rng = as_rng(rng)
    # One normalizing pass over the whole dequantized training set initializes every ActNorm that
    # is not yet initialized on all of it, before the first step (rather than on fit's first
    # minibatch), so the starting point that fit keeps as "last good" is the initialized one.
    flow.log_prob(pixels.dequantize(rng))
    optimizer = Adam(flow.params, lr=lr)
    history = PixelHistory([], [])
    best, best_params = np.inf, None
    for epoch in range(int(epochs)):
        one = fit(
            flow,
            pixels,
            epochs=1,
            batch_size=batch_size,
            validation_fraction=0.0,
            rng=rng,
            progress=False,
            optimizer=optimizer,
        )
        history.train_nll.append(one.train_nll[0])
        history.val_bits_per_dim.append(bits_per_dim(flow, validation, levels, rng, n_samples=1))
        if report is not None:
            report(epoch + 1, history.train_nll[-1], history.val_bits_per_dim[-1])
        if history.val_bits_per_dim[-1] < best:
            best, best_params, history.best_epoch = (
                history.val_bits_per_dim[-1],
                flatten(flow.params),
                epoch,
            )
        elif patience is not None and epoch - history.best_epoch >= patience:
            history.stopped_early = True
            break
    assign_flat(flow.params, best_params)
    return history
