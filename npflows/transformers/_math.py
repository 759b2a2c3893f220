"""Helpers shared by the spline transformers: softmax over the last axis, its pullback, gathers,
and the selection between a spline's interval and its identity tails."""

from __future__ import annotations

import numpy as np


def softmax(theta, axis=-1):
    """softmax(θ) over ``axis``, as exp(θ − max θ) / Σ exp(θ − max θ), which never overflows."""
    shifted = np.exp(theta - theta.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def softmax_vjp(phi, grad_phi, axis=-1):
    """∂L/∂θ from ∂L/∂φ for φ = softmax(θ) over ``axis``: the Jacobian is diag(φ) − φ φᵀ, so
    φ ⊙ (g − Σ_j φ_j g_j)."""
    return phi * (grad_phi - (phi * grad_phi).sum(axis=axis, keepdims=True))


def take(a, k):
    """a[..., k] for an index array k of shape (..., 1): each coordinate's value in its own bin."""
    return np.take_along_axis(a, k, axis=-1)[..., 0]


def interval_mask(v, lo, hi):
    """Which entries of v lie in [lo, hi], as a boolean array, or None when all of them do.

    None lets :func:`select` skip the selections of the tails (and the spline skip its clipping)
    in the common case of a batch inside the interval; the numbers are the same either way.
    """
    inside = (v >= lo) & (v <= hi)
    return None if inside.all() else inside


def select(inside, value, tail):
    """``np.where(inside, value, tail)``: ``value`` where ``inside``, ``tail`` elsewhere. When
    ``inside`` is None (every entry inside, :func:`interval_mask`), ``value`` itself, unless the
    selection would have promoted its dtype."""
    if inside is None and value.dtype == np.result_type(value, tail):
        return value
    return np.where(True if inside is None else inside, value, tail)
