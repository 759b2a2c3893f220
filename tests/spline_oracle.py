"""A 40-digit reference for the rational-quadratic spline, written out from the docs in mpmath.

Used by tests/test_splines.py and benchmarks/tolerances.py. It shares no code with npflows: the
knots, the bin search, the rational quadratic, its derivative and the inverse's quadratic are all
computed again at ``DIGITS`` significant digits, on knots from the same raw float64 numbers (either
the exact knots or the float64 ones, see :func:`errors_against_oracle`).
"""

from __future__ import annotations

import mpmath
import numpy as np

DIGITS = 40
MIN = 1e-3  # m_w = m_h = m_d, the defaults


def exact_knots(theta, K, B):
    """(x-knots, y-knots, slopes), each K + 1 mpmath numbers, from one raw row θ (3K − 1,)."""
    theta = [float(t) for t in theta]
    with mpmath.workdps(DIGITS):

        def knots(raw):  # −B = k_0 < … < k_K = B: m + (1 − m K) softmax(raw), summed
            top = max(raw)
            e = [mpmath.exp(mpmath.mpf(r) - top) for r in raw]
            total = mpmath.fsum(e)
            out, running = [mpmath.mpf(-B)], mpmath.mpf(0)
            for v in e[:-1]:
                running += MIN + (1 - MIN * K) * v / total
                out.append(-B + 2 * B * running)
            return out + [mpmath.mpf(B)]

        slopes = [MIN + mpmath.log1p(mpmath.exp(t)) for t in theta[2 * K :]]
        return knots(theta[:K]), knots(theta[K : 2 * K]), [1, *slopes, 1]


def float64_knots(theta, K, B):
    """The same knots computed in float64 by the documented formulas, step by step as written
    (softmax with its sum taken bin by bin in order, minimum, cumulative sum, −B + 2B·sum,
    x_K = B set): the float parameterization, which the spline's knots equal bit for bit."""
    theta = np.asarray(theta, dtype=float)

    def knots(raw):
        e = np.exp(raw - raw.max())
        w = MIN + (1 - MIN * K) * (e / np.cumsum(e)[-1])  # summed in order, bin by bin
        return np.concatenate([[-B], 2 * B * np.cumsum(w[:-1]) - B, [B]])

    d = MIN + (np.maximum(theta[2 * K :], 0) + np.log1p(np.exp(-np.abs(theta[2 * K :]))))
    return knots(theta[:K]), knots(theta[K : 2 * K]), np.concatenate([[1.0], d, [1.0]])


def rq_spline(knots, v, inverse=False):
    """(value, log|derivative|) as mpmath numbers at ``DIGITS`` digits on the given knots: the
    spline h(v) and log h′(v), or with ``inverse`` the u with h(u) = v and −log h′(u)."""
    with mpmath.workdps(DIGITS):
        xs, ys, ds = ([mpmath.mpf(k) for k in row] for row in knots)
        K, B = len(xs) - 1, xs[-1]
        v = mpmath.mpf(float(v))
        if abs(v) > B:
            return v, mpmath.mpf(0)
        edges = ys if inverse else xs
        k = min(sum(1 for e in edges[1:K] if v >= e), K - 1)
        w, h = xs[k + 1] - xs[k], ys[k + 1] - ys[k]
        s = h / w
        gap = ds[k + 1] + ds[k] - 2 * s
        if inverse:
            r = v - ys[k]
            a = h * (s - ds[k]) + r * gap
            b = h * ds[k] - r * gap
            c = -s * r
            xi = 2 * c / (-b - mpmath.sqrt(b * b - 4 * a * c))  # 40 digits absorb the cancellation
        else:
            xi = (v - xs[k]) / w
        t = xi * (1 - xi)
        log_deriv = mpmath.log(
            s**2 * (ds[k + 1] * xi**2 + 2 * s * t + ds[k] * (1 - xi) ** 2) / (s + gap * t) ** 2
        )
        if inverse:
            return xs[k] + xi * w, -log_deriv
        return ys[k] + h * (s * xi**2 + ds[k] * t) / (s + gap * t), log_deriv


def errors_against_oracle(T, theta, v, inverse=False, exact=False):
    """Errors of ``T.forward`` (or ``T.inverse``) on rows v (N,) with θ (N, P) against the oracle,
    (value errors, log-det errors), each |a − a*| / max(1, |a*|), float arrays (N,).

    The oracle evaluates on the float64 knots of θ (``exact=False``: the accuracy of the spline's
    evaluation and solve, which is what the implementation controls) or on the 40-digit knots
    (``exact=True``: end to end from the raw numbers, including the knots' own rounding)."""
    method = T.inverse if inverse else T.forward
    value, log_det = method(v[:, None], theta[:, None, :])
    value_errors, log_det_errors = np.empty(len(v)), np.empty(len(v))
    knots_of = exact_knots if exact else float64_knots
    for n in range(len(v)):
        ref_value, ref_log_det = rq_spline(knots_of(theta[n], T.bins, T.bound), v[n], inverse)
        with mpmath.workdps(DIGITS):
            value_errors[n] = float(abs(value[n, 0] - ref_value) / max(1, abs(ref_value)))
            log_det_errors[n] = float(abs(log_det[n, 0] - ref_log_det) / max(1, abs(ref_log_det)))
    return value_errors, log_det_errors
