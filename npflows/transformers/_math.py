"""Helpers shared by the spline transformers: softmax over the last axis, its pullback, gathers."""

from __future__ import annotations

import numpy as np


def log_softmax(theta):
    """log softmax(θ) over the last axis: θ − max θ − log Σ exp(θ − max θ), never overflowing."""
    shifted = theta - theta.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_vjp(phi, grad_phi, axis=-1):
    """∂L/∂θ from ∂L/∂φ for φ = softmax(θ) over ``axis``: the Jacobian is diag(φ) − φ φᵀ, so
    φ ⊙ (g − Σ_j φ_j g_j)."""
    return phi * (grad_phi - (phi * grad_phi).sum(axis=axis, keepdims=True))


def take(a, k):
    """a[..., k] for an index array k of shape (..., 1): each coordinate's value in its own bin."""
    return np.take_along_axis(a, k, axis=-1)[..., 0]
