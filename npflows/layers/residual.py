"""The contractive residual block of i-ResNets and Residual Flows: z = x + g(x) with Lip(g) < 1.

Behrmann et al. 2019, "Invertible residual networks", arXiv:1811.00995; Chen et al. 2019, "Residual
flows for invertible generative modeling", arXiv:1906.02735. See docs/residual.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layer import Layer, RNGLike, as_rng
from ..lipschitz import (
    ACTIVATIONS,
    SPECTRAL_NORMS,
    ContractiveNet,
    normalize_weight,
    power_step,
    top_singular,
)
from . import residual_logdet
from .implicit import implicit_pullback

LOGDETS = ("exact", "series", "roulette")


class ConvergenceError(RuntimeError):
    """The fixed-point iteration of a residual block's generative direction did not converge."""


class ResidualBlock(Layer):
    """Normalizing direction z = F(x) = x + g(x), Lip(g) < 1; generative x = F⁻¹(z) by fixed point.

    Book: ch. 16, "Residual flows": the residual map is invertible when g is a contraction, and its
    inverse is found by the fixed-point iteration x ← z − g(x) (Banach), which converges at rate
    Lip(g). Here ``inverse`` (normalizing, used for maximum likelihood) is the closed form and
    ``forward`` (generative, sampling) is the iteration.

    g(x) = W̃_L σ(… σ(W̃_1 x + b_1) …) + b_L (``hidden`` widths; row-vector code ``h @ W̃ + b``), with
    soft spectral normalization of every weight, W̃_l = W_l / max(1, σ_max(W_l)/c), c = ``lipschitz``,
    and σ one of
        "lipswish": a·S(βa)/1.1, β = softplus(β_raw) per hidden unit (S the logistic sigmoid);
        "elu":      a (a > 0), eᵃ − 1 (a ≤ 0).
    Both are 1-Lipschitz, so Lip(g) ≤ Π_l ‖W̃_l‖₂ ≤ c^L; :func:`lipschitz_bound` computes the product.

    ``params == {"weights": [W_1 … W_L], "biases": [b_1 … b_L]}`` plus ``"beta_raw": [one (H_l,) per
    hidden layer]`` for LipSwish (initially 0.5413…, β = 1). Hidden weights start as N(0, 1/fan_in)
    from ``rng``, the last weight and all biases at 0: a new block is the identity.

    ``spectral_norm``: "exact" (σ_max by the SVD of each weight, every call: a certificate) or
    "power" (power iteration with persistent right vectors ``power_vectors``, advanced by
    ``n_power_iterations`` steps on every ``inverse_vjp``/``forward_vjp`` call, i.e. every training
    step, and read as they are by ``forward``/``inverse``). Power iteration UNDER-estimates σ_max
    until it has converged, so then Lip(g) may exceed c: check :func:`lipschitz_bound`.
    The gradient of the normalization uses dσ = uᵀ dW v.

    ``logdet`` chooses log|det ∂z/∂x| = log det(I + J_g(x)) (the inverse log-det, shape (N,); the
    forward log-det is its negative at the solution x):
        "exact":    slogdet(I + J_g) per row from the dense Jacobian, O(D³) per row (the ground truth);
        "series":   the truncated power series with Hutchinson probes, ``n_terms`` terms, biased;
        "roulette": the unbiased Russian-roulette estimator, ``n_exact_terms`` terms always, then N
                    more, N ~ ``count`` ("geometric", parameter p = ``count_param``, P(N ≥ k) =
                    (1 − p)^k; or "poisson", λ = ``count_param``), gradient by the Neumann series.
    The stochastic estimators use ``n_probes`` Gaussian probes per row, drawn (with the counts) from
    the Generator ``self.estimator_rng``, made from ``rng`` at construction: every call draws fresh
    numbers, and the same seed gives the same sequence of numbers (replace ``estimator_rng`` to
    restart it). They return the estimate of the log-det itself as the value.

    Generative direction (``forward``): x_{t+1} = z − g(x_t) from x_0 = z until
    ‖x + g(x) − z‖_∞ ≤ ``tol`` · (1 + ‖z‖_∞) in every row, at most ``max_iter`` iterations, else
    :class:`ConvergenceError` stating the residual. Both directions offer a pullback; the forward one
    by the implicit function theorem, solving with the dense (I + J_g)ᵀ per row (O(D³), every logdet).
    """

    max_abs_input = 1e150  # squares and products with the weights stay finite beyond it

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        *,
        activation: str = "lipswish",
        lipschitz: float = 0.9,
        logdet: str = "exact",
        n_terms: int = 10,
        n_exact_terms: int = 2,
        count: str = "geometric",
        count_param: float = 0.5,
        n_probes: int = 1,
        spectral_norm: str = "exact",
        n_power_iterations: int = 1,
        power_vectors: Sequence[Sequence[float]] | None = None,
        tol: float = 1e-14,
        max_iter: int = 1000,
        rng: RNGLike = None,
    ):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        hidden = tuple(hidden)
        if any(
            isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in hidden
        ):
            raise ValueError(f"hidden must be positive integers, got {hidden!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if not 0.0 < lipschitz < 1.0:
            raise ValueError(f"lipschitz must be in (0, 1), got {lipschitz!r}")
        if logdet not in LOGDETS:
            raise ValueError(f"logdet must be one of {LOGDETS}, got {logdet!r}")
        for name, value, low in (
            ("n_terms", n_terms, 1),
            ("n_exact_terms", n_exact_terms, 0),
            ("n_probes", n_probes, 1),
            ("max_iter", max_iter, 1),
            ("n_power_iterations", n_power_iterations, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")
        if count not in residual_logdet.COUNTS:
            raise ValueError(f"count must be one of {residual_logdet.COUNTS}, got {count!r}")
        if count == "geometric" and not 0.0 < count_param < 1.0:
            raise ValueError(f"count_param (geometric p) must be in (0, 1), got {count_param!r}")
        if count == "poisson" and not 0.0 < count_param < np.inf:
            raise ValueError(f"count_param (Poisson λ) must be positive, got {count_param!r}")
        if spectral_norm not in SPECTRAL_NORMS:
            raise ValueError(
                f"spectral_norm must be one of {SPECTRAL_NORMS}, got {spectral_norm!r}"
            )
        if not 0.0 < tol < 1.0:
            raise ValueError(f"tol must be in (0, 1), got {tol!r}")
        self.dim, self.hidden, self.activation = int(dim), tuple(int(h) for h in hidden), activation
        self.lipschitz, self.logdet = float(lipschitz), logdet
        self.n_terms, self.n_exact_terms, self.n_probes = (
            int(n_terms),
            int(n_exact_terms),
            int(n_probes),
        )
        self.count, self.count_param = count, float(count_param)
        self.spectral_norm, self.n_power_iterations = spectral_norm, int(n_power_iterations)
        self.tol, self.max_iter = float(tol), int(max_iter)
        rng = as_rng(rng)
        widths = [self.dim, *self.hidden, self.dim]
        weights = [
            rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
            for fan_in, fan_out in zip(widths[:-2], widths[1:-1], strict=True)
        ]
        weights.append(np.zeros((widths[-2], widths[-1])))
        self.params = {"weights": weights, "biases": [np.zeros(w) for w in widths[1:]]}
        if activation == "lipswish":
            self.params["beta_raw"] = [np.full(h, np.log(np.expm1(1.0))) for h in self.hidden]
        self.power_vectors = None
        if spectral_norm == "power":
            if power_vectors is None:
                drawn = [rng.standard_normal(w) for w in widths[1:]]
                power_vectors = [v / np.linalg.norm(v) for v in drawn]
            self.power_vectors = [np.array(v, dtype=np.float64) for v in power_vectors]
            if [v.shape for v in self.power_vectors] != [(w,) for w in widths[1:]]:
                raise ValueError(f"power_vectors must have lengths {widths[1:]}")
            if not all(np.isfinite(v).all() and np.any(v != 0) for v in self.power_vectors):
                raise ValueError("power_vectors must be finite and nonzero")
        elif power_vectors is not None:
            raise ValueError('power_vectors are only used with spectral_norm="power"')
        self.estimator_rng = np.random.default_rng(int(rng.integers(2**63)))

    def get_config(self) -> dict:
        config = {
            "dim": self.dim,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "lipschitz": self.lipschitz,
            "logdet": self.logdet,
            "n_terms": self.n_terms,
            "n_exact_terms": self.n_exact_terms,
            "count": self.count,
            "count_param": self.count_param,
            "n_probes": self.n_probes,
            "spectral_norm": self.spectral_norm,
            "n_power_iterations": self.n_power_iterations,
            "tol": self.tol,
            "max_iter": self.max_iter,
        }
        if self.power_vectors is not None:
            config["power_vectors"] = [v.tolist() for v in self.power_vectors]
        return config

    # -- the network -----------------------------------------------------------------------------
    def normalized_weights(self):
        """[W̃_l] and their pullbacks grad_W̃ → grad_W, with the current σ estimates."""
        vectors = self.power_vectors or [None] * len(self.params["weights"])
        pairs = [
            normalize_weight(W, self.lipschitz, v)
            for W, v in zip(self.params["weights"], vectors, strict=True)
        ]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def _advance_power_iteration(self):
        if self.power_vectors is not None:
            for l, W in enumerate(self.params["weights"]):
                for _ in range(self.n_power_iterations):
                    self.power_vectors[l] = power_step(W, self.power_vectors[l])

    def _net(self, x, weights):
        return ContractiveNet(
            x, weights, self.params["biases"], self.activation, self.params.get("beta_raw", [])
        )

    def _log_det(self, net, n):
        """(value (N,), pairs) of the chosen estimator, drawing its random numbers now."""
        if self.logdet == "exact":
            return residual_logdet.exact(net)
        probes = self.estimator_rng.standard_normal((n, self.n_probes, self.dim))
        if self.logdet == "series":
            return residual_logdet.series(net, probes, self.n_terms)
        counts = residual_logdet.draw_counts(self.count, self.count_param, n, self.estimator_rng)
        return residual_logdet.roulette(
            net, probes, counts, self.n_exact_terms, self.count, self.count_param
        )

    # -- normalizing direction: closed form ------------------------------------------------------
    def _inverse(self, x, context):
        net = self._net(x, self.normalized_weights()[0])
        return x + net.value, self._log_det(net, len(x))[0]

    def _inverse_vjp(self, x, context):
        self._advance_power_iteration()
        return self._closed_form_vjp(x, *self.normalized_weights())

    def _closed_form_vjp(self, x, weights, weight_pullbacks):
        net = self._net(x, weights)
        log_det, pairs = self._log_det(net, len(x))

        def pullback(grad_z, grad_log_det):
            # z = x + g(x): grad_x = grad_z + J_gᵀ grad_z, plus the log-det's bilinear form.
            C, V = pairs(grad_log_det)
            grad_h, grad_W, grad_b, grad_beta = net.backward(grad_z, C, V)
            grads = {
                "weights": [pb(g) for pb, g in zip(weight_pullbacks, grad_W, strict=True)],
                "biases": grad_b,
            }
            if "beta_raw" in self.params:
                grads["beta_raw"] = grad_beta
            return grad_z + grad_h, grads

        return x + net.value, log_det, pullback

    # -- generative direction: the fixed-point iteration ------------------------------------------
    def solve(self, z, weights=None, *, tol=None, max_iter=None):
        """x with x + g(x) = z, by x ← z − g(x) from x = z; ConvergenceError if not within the limit.

        ``tol`` and ``max_iter`` default to the block's. Returns x and the residuals
        ‖x_t + g(x_t) − z‖_∞ per iteration (max over rows), which fall like Lip(g)^t.
        """
        tol = self.tol if tol is None else float(tol)
        max_iter = self.max_iter if max_iter is None else int(max_iter)
        weights = self.normalized_weights()[0] if weights is None else weights
        scale = 1.0 + np.abs(z).max(axis=1) if len(z) else np.ones(0)
        x, history = z.copy(), []
        for _ in range(max_iter + 1):
            g = self._net(x, weights).value
            residual = np.abs(x + g - z).max(axis=1) if len(z) else np.zeros(0)
            history.append(float(residual.max(initial=0.0)))
            if np.all(residual <= tol * scale):
                return x, history
            if len(history) > max_iter:
                break
            x = z - g
        worst = int(np.argmax(residual / scale))
        raise ConvergenceError(
            f"the fixed-point iteration x ← z − g(x) did not converge in {max_iter} iterations: "
            f"residual ‖x + g(x) − z‖∞ = {residual[worst]:.3g} in row {worst}, above "
            f"tol · (1 + ‖z‖∞) = {tol * scale[worst]:.3g}; raise max_iter (the error falls like "
            f"Lip(g)^t, Lip(g) ≤ {lipschitz_bound(self):.3g})"
        )

    def _forward(self, z, context):
        x, _ = self.solve(z)
        return x, -self._inverse(x, context)[1]

    def _forward_vjp(self, z, context):
        self._advance_power_iteration()
        weights, weight_pullbacks = self.normalized_weights()
        x, _ = self.solve(z, weights)
        _, log_det, inverse_pullback = self._closed_form_vjp(x, weights, weight_pullbacks)
        matrix_T = np.swapaxes(self._net(x, weights).jacobian(), 1, 2) + np.eye(self.dim)

        def solve_jacobian_transpose(rhs):
            return np.linalg.solve(matrix_T, rhs[..., None])[..., 0] if len(rhs) else rhs

        return x, -log_det, implicit_pullback(inverse_pullback, solve_jacobian_transpose)


def lipschitz_bound(block: ResidualBlock) -> float:
    """A certificate Lip(g) ≤ Π_l ‖W̃_l‖₂ · Lip(σ)^{L−1} for ``block``'s residual g.

    Each ‖W̃_l‖₂ is the exact largest singular value (SVD) of the weight the block uses now, also when
    the block normalizes with power-iteration estimates; both activations have Lip(σ) = 1. The block
    is invertible by the fixed-point iteration when the bound is below 1.
    """
    if not isinstance(block, ResidualBlock):
        raise TypeError(f"lipschitz_bound takes a ResidualBlock, got {type(block).__name__}")
    weights = block.normalized_weights()[0]
    return float(np.prod([top_singular(W)[0] for W in weights]))
