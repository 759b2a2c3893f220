"""The planar flow of Rezende & Mohamed (2015, arXiv:1505.05770): one hyperplane's worth of bending.

x = f(z) = z + û tanh(wᵀz + b). Its Jacobian I + û ψᵀ with ψ = (1 − tanh²(wᵀz + b)) w is the identity
plus a rank-one matrix, so by the matrix determinant lemma log|det ∂f/∂z| = log|1 + ûᵀψ|, O(D) per row.
See docs/residual.md.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

from ..layer import Layer, RNGLike, as_rng, check_int
from .implicit import implicit_pullback


def _sech2(a):
    """1 − tanh²(a) = 4 e^{−2|a|} / (1 + e^{−2|a|})², without overflow or cancellation."""
    e = np.exp(-2.0 * np.abs(a))
    return 4.0 * e / (1.0 + e) ** 2


LOG_2 = math.log(2.0)  # a Python float, so that float32 passes stay float32


def _log_det(a, s):
    """log(1 + ûᵀψ) = log(1 + m sech²a) = log(tanh²a + softplus(s) sech²a), with m = softplus(s) − 1.

    The second form has no cancellation: where softplus(s) underflows (s ≪ 0, so m rounds to −1)
    the first gives log 0 at a = 0, while the true value, about s + log sech²a, is finite. It is
    formed in log space: log tanh²a and log softplus(s) + log sech²a, joined by log-sum-exp."""
    abs_a = np.abs(a)
    log_sech2 = 2.0 * (LOG_2 - abs_a - np.log1p(np.exp(-2.0 * abs_a)))
    log_softplus = s if s < -30.0 else np.log(np.logaddexp(0.0, s))  # log log1p(eˢ) ≈ s below −30
    with np.errstate(divide="ignore"):  # log tanh²(0) = −inf is a valid term of the sum
        log_tanh2 = 2.0 * np.log(np.abs(np.tanh(a)))
    return np.logaddexp(log_tanh2, log_softplus + log_sech2)


class Planar(Layer):
    """x = z + û tanh(wᵀz + b), invertible because wᵀû ≥ −1 (Rezende & Mohamed 2015, appendix A).

    Book: ch. 16, "Residual flows" (the planar flow is the residual map z + g(z) with g of rank one).

    ``params == {"u": u (D,), "w": w (D,), "b": b (1,)}``, raw. The map uses
        û = u + [m(wᵀu) − wᵀu] w / ‖w‖²,   m(a) = −1 + softplus(a),
    so that wᵀû = m(wᵀu) > −1 exactly (‖w‖² is clamped below by the smallest normal float, so w = 0
    gives û = u and the identity map). Initial values: u, w ~ N(0, 1/D), b = 0, drawn from ``rng``.

    Forward log-det: log(1 + (1 − tanh²(wᵀz + b)) wᵀû), in (log(1 + m), log 2) when m < 0, shape (N,).
    Inverse: α = wᵀz solves the scalar equation α + wᵀû tanh(α + b) = wᵀx, which is increasing in α
    (slope 1 + wᵀû sech² ≥ 1 + min(m, 0) > 0) and has its root in [wᵀx − |m|, wᵀx + |m|]; it is
    solved by Newton's method safeguarded by bisection inside that bracket, to machine precision,
    then z = x − û tanh(α + b). Its log-det is minus the forward one at z.
    Both directions offer a pullback; the inverse's follows from the forward one by the implicit
    function theorem (npflows/layers/implicit.py), with (I + ûψᵀ)⁻ᵀ by the Sherman–Morrison formula.
    Cost: O(D) per row (plus a few dozen scalar Newton steps for the inverse).
    """

    max_abs_input = 1e150  # squares and products with the weights stay finite beyond it

    max_newton_steps = 200

    def __init__(self, dim: int, rng: RNGLike = None):
        self.dim = check_int(dim, "dim")
        rng = as_rng(rng)
        scale = 1.0 / np.sqrt(self.dim)
        self.params = {
            "u": scale * rng.standard_normal(self.dim),
            "w": scale * rng.standard_normal(self.dim),
            "b": np.zeros(1),
        }

    def get_config(self) -> dict:
        return {"dim": self.dim}

    def _constrained(self):
        """û, m = wᵀû, and the intermediates the pullback needs."""
        u, w = self.params["u"], self.params["w"]
        s = w @ u
        m = np.logaddexp(0.0, s) - 1.0  # m(wᵀu) = −1 + softplus(wᵀu)
        tiny = np.finfo(w.dtype).tiny  # in the parameters' dtype, so that c stays finite there
        norm2 = max(w @ w, tiny)
        c = (m - s) / norm2
        return u + c * w, m, s, c, norm2

    def _forward_vjp(self, z, context):
        u, w, b = self.params["u"], self.params["w"], self.params["b"]
        u_hat, m, s, c, norm2 = self._constrained()
        a = z @ w + b[0]  # (N,)
        t = np.tanh(a)
        x = z + t[:, None] * u_hat  # (N, D)
        sech2 = _sech2(a)
        log_det = _log_det(a, s)
        q = np.exp(log_det)  # 1 + ûᵀψ, > 0 since m > −1 and sech² ≤ 1

        def pullback(grad_x, grad_log_det):
            # x = z + t û: ∂L/∂û = Σ_n t_n grad_x_n, ∂L/∂t_n = grad_x_n · û.
            grad_u_hat = t @ grad_x
            grad_t = grad_x @ u_hat
            # log_det = log(1 + sech²(a) m), d sech²/da = −2 t sech²; t = tanh(a), dt/da = sech².
            grad_a = sech2 * (grad_t - 2.0 * t * m * grad_log_det / q)
            grad_m = float(grad_log_det @ (sech2 / q))
            # a = z·w + b.
            grad_z = grad_x + grad_a[:, None] * w
            grad_w = grad_a @ z
            grad_b = np.array([grad_a.sum()])
            # û = u + c w, c = (m − s)/‖w‖², m = softplus(s) − 1, s = wᵀu.
            grad_u = grad_u_hat.copy()
            grad_w = grad_w + c * grad_u_hat
            grad_c = float(grad_u_hat @ w)
            grad_m += grad_c / norm2
            grad_s = grad_m * expit(s) - grad_c / norm2
            grad_u += grad_s * w
            grad_w += grad_s * u
            if norm2 > np.finfo(w.dtype).tiny:  # ∂c/∂‖w‖² = −c/‖w‖², ∂‖w‖²/∂w = 2w
                grad_w += (-2.0 * grad_c * c / norm2) * w
            return grad_z, {"u": grad_u, "w": grad_w, "b": grad_b}

        return x, log_det, pullback

    def _solve_alpha(self, x, u_hat, m):
        """α with α + m tanh(α + b) = wᵀx for every row, by bracketed Newton."""
        w, b = self.params["w"], self.params["b"][0]
        target = x @ w  # (N,)
        eps = np.finfo(target.dtype).eps  # machine precision of the pass (float32 or float64)
        radius = abs(m) + 4.0 * eps * (np.abs(target) + 1.0)
        low, high = target - radius, target + radius
        alpha = target.copy()
        for _ in range(self.max_newton_steps):
            residual = alpha + m * np.tanh(alpha + b) - target
            # The left side is increasing in α: a negative residual puts the root above α.
            low = np.where(residual < 0, alpha, low)
            high = np.where(residual > 0, alpha, high)
            newton = alpha - residual / (1.0 + m * _sech2(alpha + b))
            # Newton where it stays inside the bracket, bisection otherwise (the safeguard).
            step = np.where((newton > low) & (newton < high), newton, 0.5 * (low + high))
            step = np.where(residual == 0, alpha, step)
            tiny_bracket = high - low <= 4.0 * eps * np.abs(alpha)
            if np.all((step == alpha) | tiny_bracket):
                return step
            alpha = step
        return alpha

    def _inverse(self, x, context):
        u_hat, m, s, *_ = self._constrained()
        alpha = self._solve_alpha(x, u_hat, m)
        a = alpha + self.params["b"][0]
        z = x - np.tanh(a)[:, None] * u_hat
        return z, -_log_det(a, s)

    def _inverse_vjp(self, x, context):
        z, log_det = self._inverse(x, context)
        _, _, forward_pullback = self._forward_vjp(z, context)
        u_hat, m, *_ = self._constrained()
        psi = _sech2(z @ self.params["w"] + self.params["b"][0])[:, None] * self.params["w"]
        q = np.exp(-log_det)  # 1 + ûᵀψ, formed without cancellation (_log_det)

        def solve_jacobian_transpose(rhs):
            # (I + û ψᵀ)ᵀ = I + ψ ûᵀ; Sherman–Morrison: (I + ψ ûᵀ)⁻¹ r = r − ψ (ûᵀ r)/(1 + ûᵀψ).
            return rhs - psi * ((rhs @ u_hat) / q)[:, None]

        return z, log_det, implicit_pullback(forward_pullback, solve_jacobian_transpose)
