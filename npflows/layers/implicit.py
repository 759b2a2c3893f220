"""The pullback of a map computed by solving an equation, by the implicit function theorem.

Several layers have one direction in closed form, y = F(h; θ) with log-det ℓ_F(h; θ), and the other
only as the solution h(y) of F(h; θ) = y (planar: a scalar root; residual blocks: a fixed point), whose
log-det is ℓ(y) = −ℓ_F(h(y); θ). Differentiating F(h(y; θ); θ) = y gives
    ∂h/∂y = J_F(h)⁻¹,    ∂h/∂θ = −J_F(h)⁻¹ ∂F/∂θ,
so for a loss L with cotangents ḡ_h on h and ḡ_ℓ on ℓ, and b = ḡ_h − ∂⟨ḡ_ℓ, ℓ_F⟩/∂h at fixed θ:
    ∂L/∂y = J_F(h)⁻ᵀ b,
    ∂L/∂θ = −(∂L/∂y)ᵀ ∂F/∂θ − ∂⟨ḡ_ℓ, ℓ_F⟩/∂θ,
both of which are read off the closed-form direction's pullback, called with (0, −ḡ_ℓ) and with
(−∂L/∂y, −ḡ_ℓ). Nothing is differentiated through the iterations of the solver, so the gradient is
exact at the solution whatever the solver did to reach it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..layer import Pullback


def implicit_pullback(
    closed_form_pullback: Pullback, solve_jacobian_transpose: Callable[[np.ndarray], np.ndarray]
) -> Pullback:
    """The pullback of h = F⁻¹(y) from that of F at h.

    Args:
        closed_form_pullback: ``(grad_y, grad_log_det) -> (grad_h, grads)`` of y = F(h), taken at the
            solution h.
        solve_jacobian_transpose: b (N, D) -> a (N, D) with J_F(h_n)ᵀ a_n = b_n for every row.
    """

    def pullback(grad_h, grad_log_det):
        minus_grad_log_det = -grad_log_det
        log_det_grad_h, _ = closed_form_pullback(np.zeros_like(grad_h), minus_grad_log_det)
        grad_y = solve_jacobian_transpose(grad_h + log_det_grad_h)
        _, grads = closed_form_pullback(-grad_y, minus_grad_log_det)
        return grad_y, grads

    return pullback
