"""log det(I + J_g(x)) for a contractive residual block, three ways, each with its gradient.

Each estimator takes one evaluation ``net`` of g (npflows.lipschitz.ContractiveNet) and returns the
log-det value per row (N,) and a function ``grad_log_det (N,) -> (C, V)``: its gradient with
respect to x and every parameter is that of Σ_{n,k} C[n,k]ᵀ J_g(x_n) V[n,k] at fixed C and V, which
``net.backward`` computes. The value is always the estimate of log det itself, never a surrogate.
See docs/residual.md for the derivations and costs.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammainc

COUNTS = ("geometric", "poisson")


def exact(net):
    """slogdet(I + J_g) per row, from the dense Jacobian (D tangent passes): O(N D³) plus O(N D² H).

    Gradient: d log det(I + J) = tr((I + J)⁻¹ dJ), i.e. the bilinear form with V = I and
    C[n] = ḡ_ℓ,n (I + J_n)⁻¹ (the cotangent of J e_k, the k-th column, is row k of (I + J)⁻¹).
    """
    jac = net.jacobian()  # (N, D, D)
    n, d, _ = jac.shape
    matrix = jac + np.eye(d)
    sign, log_det = np.linalg.slogdet(matrix)
    if np.any(sign <= 0):  # impossible when Lip(g) < 1: every eigenvalue has a positive real part
        raise ValueError("det(I + J_g) is not positive: the block is not contractive")

    def pairs(grad_log_det):
        inverse = np.linalg.inv(matrix) if n else matrix
        return grad_log_det[:, None, None] * inverse, np.broadcast_to(np.eye(d), (n, d, d))

    return log_det, pairs


def _powers(net, probes, n_max):
    """[J^k v for k = 0 … n_max], each (N, P, D)."""
    out = [probes]
    for _ in range(n_max):
        out.append(net.jvp(out[-1]))
    return out


def _transposed_powers(net, probes, n_max):
    """[(Jᵀ)^k v for k = 0 … n_max − 1], each (N, P, D)."""
    out = [probes]
    for _ in range(n_max - 1):
        out.append(net.vjp(out[-1]))
    return out


def series(net, probes, n_terms):
    """The truncated power series with Hutchinson probes (i-ResNet, Behrmann et al. 2019):

        log det(I + J) ≈ (1/P) Σ_p Σ_{k=1}^{n} (−1)^{k+1} v_pᵀ J^k v_p / k,   v_p ~ N(0, I).

    Biased: the dropped tail of the trace series is at most D Σ_{k>n} Lip(g)^k / k in absolute value.
    The gradient is the exact derivative of this estimate at fixed probes (so finite differences
    agree with it): d(vᵀJ^k v) = Σ_{i+j=k−1} ((Jᵀ)^j v)ᵀ dJ (J^i v), collected as the pairs
    (ω_i, J^i v), ω_i = Σ_{j=0}^{n−1−i} c_{i+j+1} (Jᵀ)^j v, c_k = (−1)^{k+1}/(k P).
    Cost: n Jacobian-vector products for the value, n − 1 more and one double backward for the
    gradient: O(n N P (D H + H²)).
    """
    n_probes = probes.shape[1]
    coef = np.array([(-1.0) ** (k + 1) / (k * n_probes) for k in range(1, n_terms + 1)])
    powers = _powers(net, probes, n_terms)
    traces = np.stack([np.einsum("npd,npd->n", probes, powers[k]) for k in range(1, n_terms + 1)])
    log_det = coef @ traces

    def pairs(grad_log_det):
        transposed = _transposed_powers(net, probes, n_terms)
        omegas = [
            sum(coef[i + j] * transposed[j] for j in range(n_terms - i)) for i in range(n_terms)
        ]
        C = grad_log_det[:, None, None] * np.concatenate(omegas, axis=1)
        return C, np.concatenate(powers[:n_terms], axis=1)

    return log_det, pairs


def survival(count, count_param, k):
    """P(N ≥ k) for the roulette count N: (1 − p)^k (geometric on {0, 1, …}) or the Poisson(λ)
    tail, the regularized lower incomplete gamma P(k, λ); 1 for k ≤ 0."""
    k = np.asarray(k, dtype=float)
    if count == "geometric":
        tail = (1.0 - count_param) ** np.maximum(k, 0.0)
    else:
        tail = gammainc(np.maximum(k, 1.0), count_param)
    return np.where(k <= 0, 1.0, tail)


def draw_counts(count, count_param, n, rng):
    """n independent roulette counts N (int array), one per row."""
    if count == "geometric":
        return rng.geometric(count_param, size=n) - 1  # numpy's geometric counts trials, from 1
    return rng.poisson(count_param, size=n)


def roulette(net, probes, counts, n_exact_terms, count, count_param):
    """The unbiased Russian-roulette estimator (Residual Flows, Chen et al. 2019), per row n:

        (1/P) Σ_p Σ_{k=1}^{n_exact + N_n} (−1)^{k+1} v_pᵀ J^k v_p / (k P(N ≥ k − n_exact)).

    E over N and v is log det(I + J) exactly (each term k is kept with probability P(N ≥ k − n_exact)
    and reweighted by its inverse). Its variance is finite when Lip(g)² < 1 − p (geometric p).
    Gradient: the Neumann series ∂ log det(I + J) = Σ_{j≥0} (−1)^j tr(J^j ∂J), estimated with the
    same N and v as (1/P) Σ_p ω_pᵀ ∂J v_p, ω = Σ_{j=0}^{n_exact+N−1} (−1)^j (Jᵀ)^j v / P(N ≥ j + 1 −
    n_exact): unbiased for the gradient, though not the derivative of the value estimate.
    Cost: n_exact + max N products for the value, as many again and one double backward for the
    gradient.
    """
    n_probes = probes.shape[1]
    n_terms = counts + n_exact_terms  # (N,)
    n_max = int(n_terms.max()) if len(counts) else 0
    if n_max == 0:  # no terms at all (no rows, or n_exact = 0 and N = 0 everywhere)
        return np.zeros(len(counts)), lambda grad_log_det: (np.zeros_like(probes), probes)
    k = np.arange(1, n_max + 1)
    weight = survival(count, count_param, k - n_exact_terms)  # P(N ≥ k − n_exact), (n_max,)
    kept = k[None, :] <= n_terms[:, None]  # (N, n_max)
    coef = np.where(kept, (-1.0) ** (k + 1) / (k * weight * n_probes), 0.0)
    powers = _powers(net, probes, n_max)
    traces = np.stack(
        [np.einsum("npd,npd->n", probes, powers[j]) for j in range(1, n_max + 1)], axis=1
    ).reshape(len(counts), n_max)
    log_det = np.sum(coef * traces, axis=1)

    def pairs(grad_log_det):
        transposed = _transposed_powers(net, probes, n_max)
        # ω's term j (0-based) comes from the value's term k = j + 1: weight (−1)^j / P(N ≥ j+1−n_exact).
        omega = np.zeros_like(probes)
        for j in range(n_max):
            scale = np.where(kept[:, j], (-1.0) ** j / (weight[j] * n_probes), 0.0)
            omega += scale[:, None, None] * transposed[j]
        return grad_log_det[:, None, None] * omega, probes

    return log_det, pairs
