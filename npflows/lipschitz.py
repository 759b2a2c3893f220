"""A network g with Lip(g) < 1, its Jacobian-vector products, and their derivatives, by hand.

The contractive residual block (npflows/layers/residual.py) needs more of its network than a
coupling layer needs of its conditioner: the value g(x), products J_g(x) v and J_g(x)ᵀ w, and the
gradient of bilinear forms wᵀ J_g(x) v with respect to x and every parameter (a "double backward",
which brings in σ″). This module gives those, for

    g(x) = W̃_L σ(… σ(W̃_1 x + b_1) …) + b_L    (row-vector code: h @ W̃ + b),

with every weight soft-spectrally normalized, W̃_l = W_l / max(1, σ_max(W_l)/c), and 1-Lipschitz
activations, so Lip(g) ≤ Π_l ‖W̃_l‖₂ ≤ c^L (Behrmann et al. 2019, arXiv:1811.00995; Chen et al.
2019, arXiv:1906.02735). See docs/residual.md.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

ACTIVATIONS = ("lipswish", "elu")
SPECTRAL_NORMS = ("exact", "power")
_TINY = np.finfo(np.float64).tiny


# -- activations: value, σ′, σ″ and, for LipSwish, their derivatives in the raw parameter ----------
def elu(a):
    """ELU: σ(a) = a (a > 0), eᵃ − 1 (a ≤ 0); σ′ = 1 or eᵃ; σ″ = 0 or eᵃ. Lipschitz constant 1."""
    ea = np.exp(np.minimum(a, 0.0))
    positive = a > 0
    value = np.where(positive, a, ea - 1.0)
    d1 = np.where(positive, 1.0, ea)
    d2 = np.where(positive, 0.0, ea)
    return value, d1, d2, None, None


def lipswish(a, beta_raw):
    """LipSwish: σ(a) = a·S(βa)/1.1, S the logistic sigmoid, β = softplus(β_raw) per unit.

    With t = βa and S = S(t): σ′ = [S + t S(1 − S)]/1.1, σ″ = β S(1 − S)[2 + t(1 − 2S)]/1.1,
    ∂σ/∂β = a² S(1 − S)/1.1, ∂σ′/∂β = a S(1 − S)[2 + t(1 − 2S)]/1.1. max σ′ = 1.0998…/1.1 < 1, so
    the Lipschitz constant is at most 1. Returns value, σ′, σ″, ∂σ/∂β_raw, ∂σ′/∂β_raw.
    """
    beta = np.logaddexp(0.0, beta_raw)
    dbeta_draw = expit(beta_raw)
    t = beta * a
    s = expit(t)
    s1 = s * (1.0 - s)
    curve = s1 * (2.0 + t * (1.0 - 2.0 * s))
    value = a * s / 1.1
    d1 = (s + t * s1) / 1.1
    d2 = beta * curve / 1.1
    # (a s1) a, not (a a) s1: a² may overflow where s1 has underflowed to 0.
    return value, d1, d2, (a * s1) * a / 1.1 * dbeta_draw, a * curve / 1.1 * dbeta_draw


# -- spectral normalization ----------------------------------------------------------------------
def top_singular(W, vector=None):
    """(σ, u, v) with σ = uᵀ W v: the largest singular value and its singular vectors of W.

    ``vector=None``: exact, from the SVD (a certificate: σ = ‖W‖₂ to rounding). Otherwise one
    half-step of power iteration from the right vector ``vector``: u = Wv/‖Wv‖, σ = ‖Wv‖ ≤ ‖W‖₂,
    an under-estimate until v has converged to the top right singular vector.
    In both cases dσ = uᵀ dW v (for the power estimate, at fixed v; exactly, since σ = ‖Wv‖).
    """
    if vector is None:
        U, S, Vt = np.linalg.svd(W, full_matrices=False)
        return float(S[0]), U[:, 0], Vt[0]
    Wv = W @ vector
    sigma = float(np.linalg.norm(Wv))
    return sigma, Wv / max(sigma, _TINY), vector


def power_step(W, vector):
    """One power-iteration step on WᵀW: v ← Wᵀ(Wv)/‖Wᵀ(Wv)‖ (v is kept where W v = 0)."""
    new = W.T @ (W @ vector)
    norm = np.linalg.norm(new)
    return new / norm if norm > 0 else vector


def normalize_weight(W, c, vector=None):
    """W̃ = W / max(1, σ/c) and its pullback grad_W̃ → grad_W.

    If σ ≤ c, W̃ = W. Otherwise W̃ = cW/σ, so dW̃ = (c/σ) dW − (cW/σ²) dσ with dσ = uᵀ dW v:
    grad_W = (c/σ) grad_W̃ − (c/σ²) ⟨grad_W̃, W⟩ u vᵀ.
    """
    sigma, u, v = top_singular(W, vector)
    if sigma <= c:
        return W, lambda grad: grad
    W_tilde = W * (c / sigma)

    def pullback(grad):
        return (c / sigma) * grad - (c / sigma**2) * float(np.sum(grad * W)) * np.outer(u, v)

    return W_tilde, pullback


# -- the network and its derivatives ---------------------------------------------------------------
def _matmul(T, W):
    """T (N, K, I) @ W (I, J) as one (N·K, I) matrix product: numpy's stacked matmul would loop
    over N with one small product each."""
    return (T.reshape(-1, T.shape[-1]) @ W).reshape(*T.shape[:-1], W.shape[1])


def _outer_sum(T, C):
    """Σ_{n,k} T[n, k]ᵀ C[n, k] for T (N, K, I), C (N, K, J): shape (I, J)."""
    return T.reshape(-1, T.shape[-1]).T @ C.reshape(-1, C.shape[-1])


class ContractiveNet:
    """One evaluation of g at x (N, D): the value and everything its derivatives reuse.

    Args:
        x: (N, D). weights: the normalized W̃_l, each (fan_in, fan_out). biases: b_l.
        activation: "lipswish" or "elu". beta_raw: the LipSwish raw slopes, one (H_l,) per hidden
            layer (empty for ELU).
    """

    def __init__(self, x, weights, biases, activation, beta_raw):
        self.weights = weights
        self.activation = activation
        self.inputs = [x]  # h_0 = x, h_l = σ(a_l)
        self.d1, self.d2, self.dvalue_dbeta, self.dd1_dbeta = [], [], [], []
        h = x
        for l, (W, b) in enumerate(zip(weights[:-1], biases[:-1], strict=True)):
            a = h @ W + b
            if activation == "lipswish":
                h, d1, d2, dv, dd1 = lipswish(a, beta_raw[l])
            else:
                h, d1, d2, dv, dd1 = elu(a)
            self.inputs.append(h)
            self.d1.append(d1)
            self.d2.append(d2)
            self.dvalue_dbeta.append(dv)
            self.dd1_dbeta.append(dd1)
        self.value = h @ weights[-1] + biases[-1]

    def jvp(self, V):
        """J_g(x_n) V[n, k] for tangents V (N, K, D): shape (N, K, D)."""
        T = V
        for W, d1 in zip(self.weights[:-1], self.d1, strict=True):
            T = _matmul(T, W) * d1[:, None, :]
        return _matmul(T, self.weights[-1])

    def vjp(self, C):
        """J_g(x_n)ᵀ C[n, k] for cotangents C (N, K, D): shape (N, K, D)."""
        Q = _matmul(C, self.weights[-1].T)
        for W, d1 in zip(reversed(self.weights[:-1]), reversed(self.d1), strict=True):
            Q = _matmul(Q * d1[:, None, :], W.T)
        return Q

    def jacobian(self):
        """J_g(x_n) per row, shape (N, D, D), entry [n, i, j] = ∂g_i/∂x_j."""
        n, d = self.inputs[0].shape
        return np.swapaxes(self.jvp(np.broadcast_to(np.eye(d), (n, d, d))), 1, 2)

    def backward(self, grad_value, C=None, V=None):
        """∂/∂(x, W̃, b, β_raw) of S = ⟨grad_value, g(x)⟩ + Σ_{n,k} C[n, k]ᵀ J_g(x_n) V[n, k].

        V (N, K, D) and C (N, K, D) are held fixed. The second term is the double backward: it goes
        back through the tangent pass T_0 = V, P_l = T_{l−1} W̃_l, T_l = σ′(a_l) ⊙ P_l, output
        T_{L−1} W̃_L, and through σ′(a_l) into a_l (which needs σ″) and into β (∂σ′/∂β).
        Returns grad_x (N, D) and the lists grad_W̃, grad_b, grad_β_raw.
        """
        L = len(self.weights)
        tangents, pre = [], []  # T_{l−1} and P_l of the tangent pass, for l = 1 … L−1
        if C is not None:
            T = V
            for W, d1 in zip(self.weights[:-1], self.d1, strict=True):
                tangents.append(T)
                P = _matmul(T, W)
                pre.append(P)
                T = P * d1[:, None, :]
            tangents.append(T)
        grad_W, grad_b, grad_beta = [None] * L, [None] * L, [None] * (L - 1)
        # Output layer: value h_{L−1} W̃_L + b_L, tangent T_{L−1} W̃_L.
        W = self.weights[-1]
        grad_W[-1] = self.inputs[-1].T @ grad_value
        grad_b[-1] = grad_value.sum(axis=0)
        grad_h = grad_value @ W.T
        if C is not None:
            grad_W[-1] = grad_W[-1] + _outer_sum(tangents[-1], C)
            grad_T = _matmul(C, W.T)
        for l in reversed(range(L - 1)):
            d1 = self.d1[l]
            # h_{l+1} = σ(a_l): ∂a from the value path.
            grad_a = grad_h * d1
            if self.dvalue_dbeta[l] is not None:
                grad_beta[l] = np.sum(grad_h * self.dvalue_dbeta[l], axis=0)
            if C is not None:
                # T_l = σ′(a_l) ⊙ P_l: ∂P = ∂T ⊙ σ′, ∂σ′ = Σ_k ∂T ⊙ P, then σ′ → a (σ″) and β.
                grad_P = grad_T * d1[:, None, :]
                grad_d1 = np.sum(grad_T * pre[l], axis=1)
                grad_a = grad_a + grad_d1 * self.d2[l]
                if self.dd1_dbeta[l] is not None:
                    grad_beta[l] = grad_beta[l] + np.sum(grad_d1 * self.dd1_dbeta[l], axis=0)
            W = self.weights[l]
            # a_l = h_l W̃_l + b_l (and P_l = T_{l−1} W̃_l).
            grad_W[l] = self.inputs[l].T @ grad_a
            grad_b[l] = grad_a.sum(axis=0)
            grad_h = grad_a @ W.T
            if C is not None:
                grad_W[l] = grad_W[l] + _outer_sum(tangents[l], grad_P)
                grad_T = _matmul(grad_P, W.T)
        return grad_h, grad_W, grad_b, grad_beta
