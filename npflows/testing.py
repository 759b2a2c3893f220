"""Checks for any implementation of a flow layer: round trip, log-det, and vector-Jacobian products.

They take plain callables on numpy arrays, so they can be pointed at another library's layer (wrap a
PyTorch or JAX bijection so it takes and returns float64 numpy arrays). Each check raises
``AssertionError`` naming what failed and by how much, and otherwise returns the measured errors.

Conventions (as in npflows): ``forward(x) -> (y, log_det)`` with ``y`` of shape (N, D) and
``log_det[n] = log|det ∂y_n/∂x_n|``; ``inverse(y) -> (x, log_det)`` likewise. A vjp function returns
``(y, log_det, pullback)`` with ``pullback(grad_y, grad_log_det) -> (grad_x, grads)``, ``grads``
mirroring the parameter tree the function reads.

Finite differences are central: ∂y/∂x_j ≈ (y(x + ε e_j) − y(x − ε e_j)) / 2ε, whose error is
O(ε²) from truncation plus O(u/ε) from rounding (u ≈ 1.1e-16); ε = 1e-6 balances them at about 1e-10
relative, which is why the default tolerances are 1e-6. Keep x away from kinks (bin edges, the origin
of a leaky ReLU) by more than ε, or the difference straddles two pieces.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .golden import check_against_golden
from .layer import as_rng
from .tree import Tree, leaves, tree_map

__all__ = [
    "check_against_golden",
    "check_bijection",
    "check_layer",
    "check_vjp",
    "jacobian_fd",
    "relative_error",
]


def relative_error(a, b, floor: float = 1.0) -> float:
    """max |a − b| / (floor + |a| + |b|) over the entries: the one error measure of these checks.

    Symmetric in a and b, since both are estimates (an analytic value and a finite difference).
    ``error ≤ rtol`` with ``floor = atol / rtol`` is |a − b| ≤ rtol (|a| + |b|) + atol. The bijection
    checks use floor 1: an absolute error for values well below 1, a relative one above.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / (floor + np.abs(a) + np.abs(b))))


def jacobian_fd(fn: Callable, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference Jacobians of ``fn(x)[0]`` per row: shape (N, D_out, D), entry ∂y_i/∂x_j.

    Each column j perturbs coordinate j of every row at once, so rows must not interact (true of
    every flow layer: samples are independent).
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    columns = []
    for j in range(d):
        step = np.zeros_like(x)
        step[:, j] = eps
        columns.append((fn(x + step)[0] - fn(x - step)[0]) / (2.0 * eps))
    return np.stack(columns, axis=-1) if columns else np.zeros((n, 0, 0))


def _slogdet_fd(fn, x, eps):
    jac = jacobian_fd(fn, x, eps)
    sign, logabsdet = np.linalg.slogdet(jac)
    if np.any(sign == 0):
        raise AssertionError("the finite-difference Jacobian is singular at some row")
    return logabsdet


def check_bijection(
    forward: Callable,
    inverse: Callable,
    x: np.ndarray,
    *,
    eps: float = 1e-6,
    round_trip_tol: float = 1e-9,
    log_det_tol: float = 1e-6,
    consistency_tol: float = 1e-10,
) -> dict:
    """Check that ``forward`` and ``inverse`` are inverse bijections with correct log-dets at ``x``.

    Measures, with y = forward(x)[0]:
      - ``round_trip``: inverse(y) against x, and forward(inverse(y)) against y;
      - ``log_det_forward``: forward's log-det against log|det| of a central-difference Jacobian at x;
      - ``log_det_inverse``: inverse's log-det likewise at y;
      - ``consistency``: forward log-det at x plus inverse log-det at y (should be 0).
    Errors are :func:`relative_error` (floor 1), maximized over rows. Returns them in a dict.
    """
    x = np.asarray(x, dtype=np.float64)
    y, ld_forward = forward(x)
    x_back, ld_inverse = inverse(y)
    y_again, _ = forward(x_back)
    errors = {
        "round_trip": max(relative_error(x_back, x), relative_error(y_again, y)),
        "log_det_forward": relative_error(ld_forward, _slogdet_fd(forward, x, eps)),
        "log_det_inverse": relative_error(ld_inverse, _slogdet_fd(inverse, y, eps)),
        "consistency": relative_error(ld_forward + ld_inverse, np.zeros_like(ld_forward)),
    }
    limits = {
        "round_trip": round_trip_tol,
        "log_det_forward": log_det_tol,
        "log_det_inverse": log_det_tol,
        "consistency": consistency_tol,
    }
    _assert_within(errors, limits)
    return errors


def check_vjp(
    fn_vjp: Callable,
    x: np.ndarray,
    params: Tree | None = None,
    *,
    rng=0,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-9,
) -> dict:
    """Check a pullback against central differences along random directions (HIPS autograd style).

    With random cotangents (ḡ_y, ḡ_ℓ) and the pullback's (ḡ_x, ḡ_φ), the scalar
    s(x, φ) = ⟨ḡ_y, y(x, φ)⟩ + ⟨ḡ_ℓ, log_det(x, φ)⟩ must satisfy
        ⟨ḡ_x, u⟩ ≈ (s(x + εu) − s(x − εu)) / 2ε   for a random input direction u, and
        Σ ⟨ḡ_φ, d⟩ ≈ (s(φ + εd) − s(φ − εd)) / 2ε  for a random direction d over every parameter,
    u and d each of unit norm, so that the step is ε whatever the number of entries.
    ``params`` is the tree of arrays ``fn_vjp`` reads; they are perturbed in place and restored
    exactly. Passes when |analytic − numeric| ≤ rtol (|analytic| + |numeric|) + atol + r, where
    r = 64 u |s(x, φ)| / ε (u the float64 unit roundoff) bounds the rounding error of the difference
    itself: a directional derivative much smaller than the scalar cannot be resolved below r.
    The errors returned are :func:`relative_error` (analytic, numeric, floor (atol + r) / rtol),
    so each passes when it is at most rtol.
    A failure whose error shrinks like ε² when ε shrinks is truncation (a kink or sharp curvature
    within ε of x), not a wrong pullback; a wrong pullback's error does not shrink.
    Returns the relative errors ``{"input": …, "params": …}``.
    """
    if not (rtol > 0 and atol >= 0):
        raise ValueError(f"need rtol > 0 and atol ≥ 0, got rtol={rtol!r}, atol={atol!r}")
    generator = as_rng(rng)
    x = np.asarray(x, dtype=np.float64)
    y, log_det, pullback = fn_vjp(x)
    grad_y = generator.standard_normal(np.shape(y))
    grad_log_det = generator.standard_normal(np.shape(log_det))
    grad_x, grads = pullback(grad_y, grad_log_det)

    def scalar(x_eval):
        y_eval, ld_eval = fn_vjp(x_eval)[:2]
        return float(np.sum(grad_y * y_eval) + np.sum(grad_log_det * ld_eval))

    rounding = 64 * np.finfo(np.float64).eps / 2 * abs(scalar(x)) / eps
    atol = atol + rounding
    errors = {}
    u = _unit(generator.standard_normal(x.shape))
    numeric = (scalar(x + eps * u) - scalar(x - eps * u)) / (2.0 * eps)
    errors["input"] = _compare(float(np.sum(grad_x * u)), numeric, rtol, atol, "input")

    if params is not None and leaves(params):
        directions = tree_map(lambda p: generator.standard_normal(p.shape), params)
        norm = np.sqrt(sum(float(np.sum(d * d)) for d in leaves(directions)))
        directions = tree_map(lambda d: d / max(norm, np.finfo(float).tiny), directions)
        saved = tree_map(np.copy, params)
        try:
            scalars = []
            for sign in (1.0, -1.0):
                for p, d, p0 in zip(leaves(params), leaves(directions), leaves(saved), strict=True):
                    p[...] = p0 + sign * eps * d
                scalars.append(scalar(x))
        finally:
            for p, p0 in zip(leaves(params), leaves(saved), strict=True):
                p[...] = p0
        numeric = (scalars[0] - scalars[1]) / (2.0 * eps)
        analytic = sum(
            float(np.sum(g * d)) for g, d in zip(leaves(grads), leaves(directions), strict=True)
        )
        errors["params"] = _compare(analytic, numeric, rtol, atol, "params")
    return errors


def check_layer(
    layer,
    z: np.ndarray,
    context=None,
    *,
    eps: float = 1e-6,
    round_trip_tol: float = 1e-9,
    log_det_tol: float = 1e-6,
    consistency_tol: float = 1e-10,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    rng=0,
) -> dict:
    """Run every check on an npflows layer at z (the input of ``forward``), in every direction it has.

    Checks the bijection (round trip, both log-dets against finite differences, consistency), then
    ``forward_vjp`` at z and ``inverse_vjp`` at x = forward(z) for the input and every parameter.
    ``eps`` is both checks' finite-difference step; ``round_trip_tol``, ``log_det_tol`` and
    ``consistency_tol`` go to :func:`check_bijection`, ``rtol``, ``atol`` and ``rng`` to
    :func:`check_vjp`. Returns all measured errors.
    """
    z = np.asarray(z, dtype=np.float64)
    x = layer.forward(z, context)[0]
    bijection = check_bijection(
        lambda h: layer.forward(h, context),
        lambda h: layer.inverse(h, context),
        z,
        eps=eps,
        round_trip_tol=round_trip_tol,
        log_det_tol=log_det_tol,
        consistency_tol=consistency_tol,
    )
    errors = {f"bijection/{k}": v for k, v in bijection.items()}
    vjp_options = {"rng": rng, "eps": eps, "rtol": rtol, "atol": atol}
    if layer.has_forward_vjp:
        fn = lambda h: layer.forward_vjp(h, context)  # noqa: E731
        checked = check_vjp(fn, z, layer.params, **vjp_options)
        errors |= {f"forward_vjp/{k}": v for k, v in checked.items()}
    if layer.has_inverse_vjp:
        fn = lambda h: layer.inverse_vjp(h, context)  # noqa: E731
        checked = check_vjp(fn, x, layer.params, **vjp_options)
        errors |= {f"inverse_vjp/{k}": v for k, v in checked.items()}
    return errors


def _unit(u):
    """u / ‖u‖ (zeros stay zeros)."""
    norm = np.linalg.norm(u)
    return u / norm if norm > 0 else u


def _compare(analytic, numeric, rtol, atol, what):
    error = relative_error(analytic, numeric, floor=atol / rtol)
    if not error <= rtol:
        raise AssertionError(
            f"vjp for the {what} disagrees with central differences: analytic {analytic!r}, "
            f"numeric {numeric!r}, difference {abs(analytic - numeric):.3g}"
        )
    return error


def _assert_within(errors, limits):
    failed = {k: (errors[k], limits[k]) for k in errors if not errors[k] <= limits[k]}
    if failed:
        lines = ", ".join(f"{k} error {e:.3g} > {t:.3g}" for k, (e, t) in failed.items())
        raise AssertionError(f"bijection check failed: {lines}")
