"""Training a flow to match an unnormalized density by reverse KL (variational inference).

For a target p(x) = p̃(x)/Z known up to Z, minimize over the flow's parameters
    KL(q ‖ p) = E_{x∼q}[log q(x) − log p̃(x)] + log Z,
reparameterized through the generative map, x = f(z) with z ∼ Pr(z) (Rezende & Mohamed 2015,
arXiv:1505.05770; docs/autoregressive.md: this is how IAF is trained):
    L = (1/N) Σ_n [log Pr(z_n) − log|det ∂f/∂z|(z_n) − log p̃(f(z_n))],
since log q(f(z)) = log Pr(z) − log|det ∂f/∂z|. log Pr(z_n) does not depend on the parameters, so
    ∂L/∂x_n = −(1/N) ∇ log p̃(x_n),   ∂L/∂log_det_n = −1/N,
which the flow's generative pullback (``forward_vjp``) carries to the parameters. −L is the evidence
lower bound (ELBO) on log Z.

Afterwards, importance sampling with q as proposal estimates Z: with weights w_n = p̃(x_n)/q(x_n),
    log Ẑ = logsumexp(log w) − log N,    ESS/N = (Σ w)² / (N Σ w²),
the effective sample size as a fraction of N (1 when q = p).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from scipy.special import logsumexp

from ._loop import (
    Guard,
    Progress,
    check_bool,
    check_callable,
    check_positive_float,
    locate_failure,
    lr_at,
    optimizer_step,
)
from .flow import Flow
from .layer import RNGLike, as_rng, check_int
from .optim import Adam
from .schedules import as_schedule

LogDensity = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class VIResult:
    """What :func:`fit_to_density` measured.

    Attributes:
        elbo: the minibatch ELBO −L (nats) at every step.
        log_z: the importance-sampling estimate log Ẑ after training.
        log_z_stderr: its delta-method standard error, √(Var(w)/N) / mean(w).
        ess: the effective sample size as a fraction of the ``n_eval`` samples, in (0, 1].
        final_elbo: the ELBO on the ``n_eval`` evaluation samples.
    """

    elbo: list[float] = field(default_factory=list)
    log_z: float = float("nan")
    log_z_stderr: float = float("nan")
    ess: float = float("nan")
    final_elbo: float = float("nan")


def reverse_kl_and_grad(flow: Flow, log_density: LogDensity, z: np.ndarray):
    """L (the negative ELBO, nats) at base draws z (N, D) and its gradient for ``flow.params``."""
    x, log_det, pullback = flow._forward_vjp(z, None)
    log_p, grad_log_p = _call_target(log_density, x)
    n = len(z)
    loss = float(np.mean(flow.base._log_prob(z) - log_det - log_p))
    _, grads = pullback(-grad_log_p / n, np.full(n, -1.0 / n))
    return loss, grads


def importance_weights(flow: Flow, log_density: LogDensity, n: int, rng: RNGLike = None):
    """Samples x (n, D) from the flow and their log weights log p̃(x) − log q(x) (n,)."""
    x, log_q = flow.sample_and_log_prob(n, rng)
    log_p, _ = _call_target(log_density, x)
    return x, log_p - log_q


def fit_to_density(
    flow: Flow,
    log_density: LogDensity,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float | Callable[[int], float] = 1e-3,
    rng: RNGLike = None,
    progress: bool = True,
    n_eval: int = 10_000,
    weight_decay: float = 0.0,
    clip_grad_norm: float | None = None,
) -> VIResult:
    """Train ``flow`` in place to approximate p ∝ p̃ by minimizing KL(q ‖ p) with Adam.

    Args:
        flow: every layer must offer ``forward_vjp`` (IAF, coupling, linear, elementwise; not MAF).
        log_density: x (N, D) -> (log p̃(x) (N,), ∇ log p̃(x) (N, D)).
        steps, batch_size: Adam steps, each on ``batch_size`` fresh base draws.
        lr: Adam's step size, a positive number or a schedule ``lr(step)`` (``npflows.schedules``;
            a ``Cosine`` without ``total_steps`` is planned over ``steps``).
        rng: base draws for training and evaluation; the same seed gives the same result.
        progress: a tqdm bar (or a line per 10 % of the steps on stderr); False for silence.
        n_eval: samples for the final ELBO, log Ẑ and ESS.
        weight_decay: decoupled weight decay λ ≥ 0 (AdamW).
        clip_grad_norm: if given (> 0), each gradient is scaled down to at most this 2-norm.

    Raises:
        ValueError, TypeError: for bad arguments or a flow with a layer lacking ``forward_vjp``.
        TrainingDiverged: when the loss, a gradient or the parameters become NaN or inf, or the
            parameters make a step fail; the flow is left at the last parameters whose loss and
            gradient were finite.
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be an npflows.Flow, got {type(flow).__name__}")
    if flow.context_dim:
        raise ValueError("fit_to_density trains unconditional flows; this flow takes a context")
    missing = [type(la).__name__ for la in flow.layers if not la.has_forward_vjp]
    if missing:
        raise ValueError(
            f"reverse-KL training needs forward_vjp (the generative direction) in every layer; "
            f"{', '.join(sorted(set(missing)))} does not offer it (for MAF use IAF, its mirror)"
        )
    check_callable(log_density, "log_density", optional=False)
    steps, batch_size = (
        check_int(steps, "steps"),
        check_int(batch_size, "batch_size"),
    )
    n_eval = check_int(n_eval, "n_eval")
    progress = check_bool(progress, "progress")
    if clip_grad_norm is not None:
        clip_grad_norm = check_positive_float(clip_grad_norm, "clip_grad_norm")
    schedule = as_schedule(lr, steps)
    first_lr = lr_at(schedule, 0)
    rng = as_rng(rng)
    params = flow.params
    optimizer = Adam(params, weight_decay=weight_decay)  # its lr is set before every step
    result = VIResult()
    z = None
    guard = Guard(
        params,
        advice=f"Try a lower lr than {first_lr:g}.",
        locate=lambda: locate_failure(flow, z, None, "forward"),
    )
    apply = optimizer_step(optimizer, schedule, clip_grad_norm)

    report = Progress(steps, unit="step", desc="fit_to_density") if progress else None
    every = max(1, steps // 10)
    try:
        for step in range(steps):
            z = flow.base.sample(batch_size, rng)
            loss = guard.step(
                partial(reverse_kl_and_grad, flow, log_density, z), apply, f"at step {step + 1}"
            )
            result.elbo.append(-loss)
            if report and ((step + 1) % every == 0 or step + 1 == steps):
                report.update(step + 1, ELBO=-loss)
    finally:
        if report:
            report.close()
    _, log_w = importance_weights(flow, log_density, n_eval, rng)
    result.final_elbo = float(np.mean(log_w))
    result.log_z = float(logsumexp(log_w) - np.log(n_eval))
    w = np.exp(log_w - log_w.max())
    result.ess = float(w.sum() ** 2 / (n_eval * np.sum(w * w)))
    result.log_z_stderr = float(np.std(w) / np.sqrt(n_eval) / np.mean(w))
    return result


def _call_target(log_density, x):
    log_p, grad = log_density(x)
    log_p, grad = np.asarray(log_p, dtype=np.float64), np.asarray(grad, dtype=np.float64)
    if log_p.shape != (len(x),) or grad.shape != x.shape:
        raise ValueError(
            f"log_density must return (log_p of shape {(len(x),)}, grad of shape {x.shape}), "
            f"got shapes {log_p.shape} and {grad.shape}"
        )
    return log_p, grad
