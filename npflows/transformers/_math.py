"""Helpers shared by the spline transformers: softmax over the last axis, its pullback, gathers."""

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
