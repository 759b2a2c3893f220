"""Monotone rational-quadratic spline transformer with linear tails (Durkan et al. 2019, "Neural
spline flows", arXiv:1906.04032), in the convention of nflows'
``unconstrained_rational_quadratic_spline(..., tails="linear", tail_bound=B)``.

Book: ch. 16, "Elementwise flows". docs/elementwise.md is the contract.

Inside, the N·D coordinates are one flat axis of M entries, and the knots are stored bin-major,
(K + 1, M) rather than (M, K + 1): the sums and cumulative sums over bins then run over whole rows
of coordinates, which numpy does much faster than over many short rows of K entries.
"""

from __future__ import annotations

import numpy as np

from ..layer import check_int
from ._checks import in_open_interval, positive_finite
from ._math import interval_mask, select, softmax_vjp
from .base import Transformer

FEW_COORDINATES = 128
"""Up to this many coordinates M, sums over the bins are one ``np.add.accumulate`` call; above
it, a loop adding whole rows of M coordinates, K calls that are each fast on long rows (numpy's
accumulate scans each coordinate's few bins separately, several times slower for large M, while
for small M the K calls' fixed cost dominates). Both add in the same order: the same bits."""


def _cumsum_bins(a, out=None):
    """``np.cumsum(a, axis=1, out=out)``: running sums over the bins (axis 1) of (…, K, M), each
    added in bin order (see :data:`FEW_COORDINATES` for how)."""
    out = np.empty_like(a) if out is None else out
    if a.shape[-1] <= FEW_COORDINATES:
        np.add.accumulate(a, axis=1, out=out)
        out[:, 0] += 0.0  # as the loop's 0 + a_0, which makes a −0 a +0
        return out
    running = 0.0
    for k in range(a.shape[1]):
        running = np.add(running, a[:, k], out=out[:, k])
    return out


def _softmax_bins(a):
    """softmax over axis 1 of (2, K, M), its sum added one bin at a time, in order. numpy's own
    sum over axis 1 does that for M ≥ 2 but sums pairwise for M = 1, so a coordinate's knots would
    depend on how many rows came with it; this way every row gets the same bits in any batch."""
    shifted = np.exp(a - a.max(axis=1, keepdims=True))
    return shifted / _cumsum_bins(shifted)[:, -1:]


class RQSplineTransformer(Transformer):
    """Monotone rational-quadratic spline on [−B, B] with K bins, the identity outside.

    Blocks: ``widths`` (K,) = θ_w, ``heights`` (K,) = θ_h, ``derivatives`` (K − 1,) = θ_d, packed
    in that order, P = 3K − 1 (nflows' unnormalized widths, heights and derivatives). Constrained as
        widths  w = m_w + (1 − m_w K) softmax(θ_w),   x_0 = −B, x_k = −B + 2B Σ_{j<k} w_j, x_K = B;
        heights the same from θ_h with m_h, giving y_0 = −B < … < y_K = B;
        slopes  δ_k = m_d + softplus(θ_d,k) for k = 1 … K−1, δ_0 = δ_K = 1.
    In bin k (x_k ≤ u < x_{k+1}; u = B is in bin K − 1), with ξ = (u − x_k)/(x_{k+1} − x_k) and
    s_k = (y_{k+1} − y_k)/(x_{k+1} − x_k):
        y = y_k + (y_{k+1} − y_k)[s_k ξ² + δ_k ξ(1 − ξ)] / [s_k + (δ_{k+1} + δ_k − 2 s_k) ξ(1 − ξ)],
        dy/du = s_k² [δ_{k+1} ξ² + 2 s_k ξ(1 − ξ) + δ_k (1 − ξ)²] / [s_k + (δ_{k+1} + δ_k − 2 s_k) ξ(1 − ξ)]².
    Outside [−B, B], y = u with log-derivative 0; since δ_0 = δ_K = 1 the derivative is continuous.

    Inverse: y is clipped to [−B, B] before the bin search; in bin k, with r = y − y_k,
    h = y_{k+1} − y_k and Δ = δ_{k+1} + δ_k − 2 s_k, ξ solves a ξ² + b ξ + c = 0 with
    a = h (s_k − δ_k) + r Δ, b = h δ_k − r Δ, c = −s_k r (so c ≤ 0 < a + b = h s_k). The root is
    taken without cancellation, ξ = 2c / (−b − √disc) for b ≥ 0 and ξ = (−b + √disc) / (2a) for b < 0
    (then a > 0), with disc = max(b² − 4ac, 0), and ξ is clipped to [0, 1]: no NaN from rounding.
    In the bin's upper half the same formulas are applied from the top (the mirrored bin), 1 − ξ
    is solved for as well, and the log-derivative is evaluated at the root's ξ rather than at u
    rounded to a float (see :meth:`_solve_in_bin`); the results are the same numbers to the last
    few digits, with forward(inverse(y)) − y within 8 ulp of B times max(1, dy/du).

    ``forward`` equals nflows' function with inverse=False on the same raw numbers (tails="linear",
    tail_bound=B, same minima), ``inverse`` with inverse=True to the last digits (nflows takes
    2c / (−b − √disc) for every b); torch's softplus returns θ itself for θ > 20, which differs
    from log(1 + e^θ) by less than e⁻²⁰.

    Identity: θ_w = θ_h = 0 (uniform bins) and θ_d = log(exp(1 − m_d) − 1) (δ = 1).

    Args:
        bins: K ≥ 1.
        bound: B > 0, the tail bound.
        min_width, min_height: m_w, m_h in (0, 1/K).
        min_derivative: m_d in (0, 1).
    """

    def __init__(
        self,
        bins: int = 8,
        bound: float = 3.0,
        min_width: float = 1e-3,
        min_height: float = 1e-3,
        min_derivative: float = 1e-3,
    ):
        self.bins = check_int(bins, "bins")
        self.bound = positive_finite(bound, "bound")
        self.min_width = in_open_interval(min_width, "min_width", 0.0, 1.0 / self.bins)
        self.min_height = in_open_interval(min_height, "min_height", 0.0, 1.0 / self.bins)
        self.min_derivative = in_open_interval(min_derivative, "min_derivative", 0.0, 1.0)
        K = self.bins
        self.blocks = (("widths", (K,)), ("heights", (K,)), ("derivatives", (K - 1,)))
        self._min_wh = np.array([self.min_width, self.min_height]).reshape(2, 1, 1)

    def get_config(self) -> dict:
        return {
            "bins": self.bins,
            "bound": self.bound,
            "min_width": self.min_width,
            "min_height": self.min_height,
            "min_derivative": self.min_derivative,
        }

    def identity_params(self) -> np.ndarray:
        slope = np.log(np.expm1(1.0 - self.min_derivative))  # softplus⁻¹(1 − m_d), so δ = 1
        return self.join_params(
            {
                "widths": np.zeros(self.bins),
                "heights": np.zeros(self.bins),
                "derivatives": np.full(self.bins - 1, slope),
            }
        )

    def _spline(self, theta):
        """The knots (3, K + 1, M): x_k, y_k and δ_k for k = 0 … K, and their pullback.

        Widths and heights are built side by side, as rows 0 and 1 of (2, K, M) arrays:
            w = m + (1 − m K) φ, φ = softmax(θ) over the bins;  x_0 = −B,
            x_k = −B + 2B Σ_{j<k} w_j (k = 1 … K−1),  x_K = B (set, not summed);
        and δ_k = m_d + softplus(θ_d,k) (k = 1 … K−1), δ_0 = δ_K = 1.
        """
        K, B = self.bins, self.bound
        blocks = self.split_params(theta)

        def bin_major(name):  # (N, D, n) -> (n, M)
            return blocks[name].reshape(-1, blocks[name].shape[-1]).T

        # C-ordered copies, so that the sums over bins below add whole rows of coordinates
        raw_wh = np.empty((2, K, theta.size // theta.shape[-1]), dtype=theta.dtype)
        raw_wh[0], raw_wh[1] = bin_major("widths"), bin_major("heights")
        raw_d = np.ascontiguousarray(bin_major("derivatives"))  # (K − 1, M)
        m = self._min_wh.astype(theta.dtype, copy=False)
        phi = _softmax_bins(raw_wh)
        knots = np.empty((3, K + 1, raw_wh.shape[2]), dtype=theta.dtype)
        knots[:2, 0], knots[:2, K], knots[2, 0], knots[2, K] = -B, B, 1.0, 1.0
        inner = knots[:2, 1:K]  # a view: the cumulative sum and scaling are written in place
        _cumsum_bins(m + (1.0 - m * K) * phi[:, :-1], out=inner)
        inner *= 2.0 * B
        inner -= B
        # softplus(θ) = max(θ, 0) + log(1 + e^{−|θ|}) without overflow; its derivative σ(θ) is
        # 1 / (1 + e^{−|θ|}) for θ ≥ 0 and e^{−|θ|} / (1 + e^{−|θ|}) for θ < 0.
        e_d = np.exp(-np.abs(raw_d))
        knots[2, 1:K] = self.min_derivative + (np.maximum(raw_d, 0.0) + np.log1p(e_d))

        def pullback(grad_knots):
            """∂L/∂θ (N, D, P) from ∂L/∂knots (3, K + 1, M); the fixed end knots drop theirs."""
            # x_k = −B + 2B Σ_{j<k} w_j for k = 1 … K−1, so ∂L/∂w_j = 2B Σ_{k=j+1}^{K−1} ∂L/∂x_k: a
            # reversed cumulative sum of the interior gradients, shifted by one, ∂L/∂w_{K−1} = 0.
            grad_w = np.zeros_like(phi)
            grad_w[:, :-1] = _cumsum_bins(grad_knots[:2, K - 1 : 0 : -1])[:, ::-1]
            grad_wh = softmax_vjp(phi, 2.0 * B * (1.0 - m * K) * grad_w, axis=1)  # (2, K, M)
            sigma = np.where(raw_d >= 0, 1.0, e_d) / (1.0 + e_d)  # softplus′(θ_d)
            grad_d = grad_knots[2, 1:K] * sigma

            def coordinate_major(grad, name):  # (n, M) -> (N, D, n)
                return grad.T.reshape(blocks[name].shape)

            return self.join_params(
                {
                    "widths": coordinate_major(grad_wh[0], "widths"),
                    "heights": coordinate_major(grad_wh[1], "heights"),
                    "derivatives": coordinate_major(grad_d, "derivatives"),
                }
            )

        return knots, pullback

    def _bin(self, v, knots, row):
        """The bin of each entry of v (M,) by the knots ``knots[row]`` (0: x, 1: y), and its ends.

        Returns which entries lie in [−B, B] (None: all of them, :func:`interval_mask`); v clipped
        to [−B, B] (v itself when all lie inside); where bins k and k + 1 sit in a raveled
        (K + 1, M) array, (2, M), k being the number of interior knots ≤ v (so ±B are inside);
        and the bin's x_lo, x_hi, y_lo, y_hi, δ_lo, δ_hi, width w, height h and secant slope s,
        each (M,).
        """
        inside = interval_mask(v, -self.bound, self.bound)
        vc = v if inside is None else v.clip(-self.bound, self.bound)
        k = (vc >= knots[row, 1 : self.bins]).sum(axis=0)
        at = k * len(k) + np.arange(len(k))
        ends = np.add.outer((0, len(k)), at)  # (2, M): the bin's lower and upper knots
        # 1. the bin's ends and slopes, gathered at once: (x, y, δ) × (lo, hi), each (M,)
        (x_lo, x_hi), (y_lo, y_hi), (d_lo, d_hi) = np.take(knots.reshape(3, -1), ends, axis=1)
        # 2. bin width and height
        width = x_hi - x_lo
        height = y_hi - y_lo
        # 3. secant slope s
        slope = height / width
        return inside, vc, ends, (x_lo, x_hi, y_lo, y_hi, d_lo, d_hi, width, height, slope)

    def _forward(self, u, knots, knots_pullback):
        """``forward_vjp`` on the knots of :meth:`_spline`, with ℓ_u for :meth:`_inverse_parts`."""
        shape, u = u.shape, u.reshape(-1)  # (M,)
        inside, uc, ends, bin_ = self._bin(u, knots, 0)  # tails evaluated at ±B, then discarded
        x_lo, x_hi, width = bin_[0], bin_[1], bin_[6]
        # 4. position ξ in the bin and 1 − ξ, both in [0, 1] (rounding is monotone, so they cannot
        #    leave it). 1 − ξ is computed from the upper end, not as 1 − ξ: near ξ = 1 that would
        #    lose digits (relative error ε/(1 − ξ)), which a small s_k amplifies in the log-derivative.
        xi = (uc - x_lo) / width
        one_minus_xi = (x_hi - uc) / width
        return self._evaluate(u, inside, shape, ends, bin_, xi, one_minus_xi, knots, knots_pullback)

    @staticmethod
    def _evaluate(
        u, inside, shape, ends, bin_, xi, one_minus_xi, knots, knots_pullback, y_too=True
    ):
        """Steps 5–10 of the forward map at ξ in each entry's bin, and the pullback of 1–10.

        u (M,) is the map's input, the identity where ``inside`` is False (None: nowhere, and no
        selection between the spline and its tails is made); the output y is None
        unless ``y_too`` (the inverse needs only the log-derivative and the pullback). The
        inverse passes its solution with the ξ and 1 − ξ of its root, so that the log-derivative
        is the one at the exact solution rather than at u rounded to a float (which costs digits
        in narrow bins).
        """
        x_lo, x_hi, y_lo, y_hi, d_lo, d_hi, width, height, slope = bin_
        # 5. the products of ξ the formulas use: ξ(1 − ξ), ξ²
        xi_one_minus_xi = xi * one_minus_xi
        xi2 = xi * xi
        # 7. denominator s + Δ ξ(1 − ξ), with Δ = δ_hi + δ_lo − 2 s
        slope_gap = d_hi + d_lo - 2.0 * slope
        denominator = slope + slope_gap * xi_one_minus_xi

        def quotient():
            # 6. numerator s ξ² + δ_lo ξ(1 − ξ), and q = numerator / denominator of 8.
            return (slope * xi2 + d_lo * xi_one_minus_xi) / denominator

        # 8. output y = y_lo + h q, q = numerator / denominator
        #    In the bin's upper half it is taken from the top, y = y_hi − h (1 − q) with the mirror
        #    image 1 − q = [s (1 − ξ)² + δ_hi ξ(1 − ξ)] / denominator: the same number, but the
        #    rounding of h (1 − q) is then that of a short step, not of one the bin's height long.
        #    Without y (the inverse), q is needed only by the pullback, which computes it then.
        fraction = quotient() if y_too else None
        one_minus_xi2 = one_minus_xi * one_minus_xi
        y = None
        if y_too:
            top = y_hi - height * ((slope * one_minus_xi2 + d_hi * xi_one_minus_xi) / denominator)
            y_in = np.where(one_minus_xi < xi, top, y_lo + height * fraction)
            y = select(inside, y_in, u).reshape(shape)
        # 9. derivative numerator: dy/du = s² E / denominator², all three positive, with
        #    E = δ_hi ξ² + 2 s ξ(1 − ξ) + δ_lo (1 − ξ)²
        derivative_numerator = d_hi * xi2 + 2.0 * slope * xi_one_minus_xi + d_lo * one_minus_xi2
        # 10. log-derivative ℓ = 2 log s + log E − 2 log denominator, taken as one log
        ell = np.log(slope * slope * derivative_numerator / (denominator * denominator))
        log_deriv = select(inside, ell, 0.0).reshape(shape)

        def pullback(grad_y, grad_log_deriv):
            grad_y = grad_y.reshape(-1)
            g_y = select(inside, grad_y, 0.0)
            g_ell = select(inside, grad_log_deriv.reshape(-1), 0.0)
            # 10. ℓ = 2 log s + log E − 2 log denominator
            grad_slope = 2.0 * g_ell / slope
            grad_derivative_numerator = g_ell / derivative_numerator
            grad_denominator = -2.0 * g_ell / denominator
            # 9. E = δ_hi ξ² + 2 s ξ(1 − ξ) + δ_lo (1 − ξ)²
            grad_d_hi = grad_derivative_numerator * xi2
            grad_d_lo = grad_derivative_numerator * one_minus_xi2
            grad_xi = 2.0 * grad_derivative_numerator * (d_hi * xi - d_lo * one_minus_xi)
            grad_slope += 2.0 * grad_derivative_numerator * xi_one_minus_xi
            grad_xi_one_minus_xi = 2.0 * grad_derivative_numerator * slope
            # 8. y = y_lo + h q, q = numerator / denominator (the form from the top is the same
            #    function of the same numbers, so it has the same pullback)
            q = quotient() if fraction is None else fraction
            grad_y_lo = g_y
            grad_height = g_y * q
            grad_numerator = g_y * height / denominator
            grad_denominator -= grad_numerator * q
            # 7. denominator = s + Δ ξ(1 − ξ), Δ = δ_hi + δ_lo − 2 s
            grad_slope += grad_denominator * (1.0 - 2.0 * xi_one_minus_xi)
            grad_d_hi += grad_denominator * xi_one_minus_xi
            grad_xi_one_minus_xi += grad_denominator * slope_gap
            # 6. numerator = s ξ² + δ_lo ξ(1 − ξ) (with 7.'s δ_lo term: both multiply ξ(1 − ξ))
            grad_slope += grad_numerator * xi2
            grad_xi += 2.0 * grad_numerator * slope * xi
            grad_d_lo += (grad_denominator + grad_numerator) * xi_one_minus_xi
            grad_xi_one_minus_xi += grad_numerator * d_lo
            # 5. ξ(1 − ξ) (ξ² and (1 − ξ)² were taken into 9.'s grad_xi directly)
            grad_xi += grad_xi_one_minus_xi * (1.0 - 2.0 * xi)
            # 4. ξ = (u − x_lo) / w
            grad_u = grad_xi / width
            grad_width = -grad_u * xi
            # 3. s = h / w
            grad_height += grad_slope / width
            grad_width -= grad_slope * slope / width
            # 2. w = x_hi − x_lo, h = y_hi − y_lo, and 1. scattered back into the knot arrays
            grad_ends = np.stack(
                [
                    -grad_u - grad_width,
                    grad_width,
                    grad_y_lo - grad_height,
                    grad_height,
                    grad_d_lo,
                    grad_d_hi,
                ]
            )
            grad_knots = np.zeros_like(knots)
            grad_knots.reshape(3, -1)[:, ends] = grad_ends.reshape(3, *ends.shape)
            return select(inside, grad_u, grad_y).reshape(shape), knots_pullback(grad_knots)

        def dl_du():
            # ℓ_u = (E′/E − 2 denominator′/denominator) / w, with E′ = dE/dξ =
            # 2 (δ_hi ξ − δ_lo (1 − ξ) + s (1 − 2ξ)) and denominator′ = Δ (1 − 2ξ); 0 in the tails.
            one_minus_2xi = 1.0 - 2.0 * xi
            d_derivative_numerator = 2.0 * (d_hi * xi - d_lo * one_minus_xi + slope * one_minus_2xi)
            d_log = (
                d_derivative_numerator / derivative_numerator
                - 2.0 * slope_gap * one_minus_2xi / denominator
            )
            return select(inside, d_log / width, 0.0).reshape(shape)

        return y, log_deriv, pullback, dl_du

    def forward_vjp(self, u, theta):
        return self._forward(u, *self._spline(theta))[:3]

    def _inverse_parts(self, y, theta):
        knots, knots_pullback = self._spline(theta)  # once, for the solve and the forward at u
        shape, y = y.shape, y.reshape(-1)  # (M,)
        inside, yc, ends, bin_ = self._bin(y, knots, 1)  # y clipped to [−B, B] for the search
        xi, one_minus_xi = self._solve_in_bin(yc, bin_)
        x_lo, x_hi, width = bin_[0], bin_[1], bin_[6]
        # u = x_lo + ξ w, or x_hi − (1 − ξ) w in the bin's upper half (the shorter step, less rounding)
        u_in = np.where(one_minus_xi < xi, x_hi - one_minus_xi * width, x_lo + xi * width)
        u = select(inside, u_in, y)
        _, log_deriv, pullback, dl_du = self._evaluate(
            u, inside, shape, ends, bin_, xi, one_minus_xi, knots, knots_pullback, y_too=False
        )
        return u.reshape(shape), log_deriv, pullback, dl_du

    @staticmethod
    def _solve_in_bin(yc, bin_):
        """ξ and 1 − ξ in [0, 1] with h(x_lo + ξ w) = yc, in each entry's bin.

        rise · denominator = height · numerator, with rise = y − y_lo, is a quadratic
            a ξ² + b ξ + c = 0,  a = h (s − δ_lo) + rise Δ,  b = h δ_lo − rise Δ,  c = −s rise,
        Δ = δ_hi + δ_lo − 2s, and c ≤ 0 < a + b = h s. Its root in [0, 1] is taken without
        cancellation: with q = −(b + sign(b) √disc)/2 (sign(0) = +1), ξ = c/q = 2c/(−b − √disc)
        when b ≥ 0 (q < 0) and ξ = q/a = (−b + √disc)/(2a) when b < 0 (q > 0 and a > −b > 0);
        either way −b and ±√disc have the same sign, so nothing cancels.

        Two refinements keep the last digits. (1) In the bin's upper half (fall = y_hi − y < rise)
        the same equation is solved for τ = 1 − ξ, from the top: the spline mirrored about the
        bin's centre is a spline of the same form with δ_lo and δ_hi swapped and rise replaced by
        fall, so a, b, c are the formulas above with (δ_hi, fall): written with the short distance
        they never subtract two terms of size h Δ that nearly cancel. (2) The distance to the
        other end, σ = 1 − τ, is solved for too, as the other root of the quadratic in σ =
        1 − τ, a σ² + b′ σ + c′ = 0 with b′ = −(2a + b) = h (δ − 2s) − near Δ, c′ = a + b + c
        = s · far ≥ 0 and the same discriminant: σ = q′/a when b′ ≥ 0 and c′/q′ when b′ < 0,
        q′ = −(b′ + sign(b′) √disc)/2. So both ξ and 1 − ξ keep their relative accuracy, which
        the log-derivative needs at either end. The discriminant is clamped at 0 and both are
        clipped to [0, 1], so rounding gives no NaN.
        """
        x_lo, x_hi, y_lo, y_hi, d_lo, d_hi, width, height, slope = bin_
        rise, fall = yc - y_lo, y_hi - yc  # rise + fall = h
        upper = fall < rise
        near, far = np.where(upper, fall, rise), np.where(upper, rise, fall)
        d_near = np.where(upper, d_hi, d_lo)
        slope_gap = d_hi + d_lo - 2.0 * slope
        a = height * (slope - d_near) + near * slope_gap
        b = height * d_near - near * slope_gap
        c = -slope * near
        sqrt_discriminant = np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))
        b_nonnegative = b >= 0
        q = -0.5 * (b + np.where(b_nonnegative, sqrt_discriminant, -sqrt_discriminant))
        tau = np.where(b_nonnegative, c, q) / np.where(b_nonnegative, q, a)  # from the near end
        b_mirror = height * (d_near - 2.0 * slope) - near * slope_gap
        c_mirror = slope * far
        mirror_nonnegative = b_mirror >= 0
        q_mirror = -0.5 * (
            b_mirror + np.where(mirror_nonnegative, sqrt_discriminant, -sqrt_discriminant)
        )
        sigma = np.where(mirror_nonnegative, q_mirror, c_mirror) / np.where(
            mirror_nonnegative, a, q_mirror
        )
        tau, sigma = np.clip(tau, 0.0, 1.0), np.clip(sigma, 0.0, 1.0)
        return np.where(upper, sigma, tau), np.where(upper, tau, sigma)
