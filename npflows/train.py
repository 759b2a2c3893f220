"""Maximum-likelihood training: minibatch Adam (:func:`fit`) and full-batch L-BFGS (:func:`fit_lbfgs`).

Book: ch. 16, "Learning": the parameters φ minimize the negative log-likelihood
L[φ] = −(1/N) Σ_i log Pr(x_i | φ), in nats, whose gradient ``Flow.nll_and_grad`` gives.
docs/training.md describes the options, the divergence guard and resuming.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import scipy.optimize

from ._loop import (
    Best,
    Guard,
    Progress,
    TrainingDiverged,
    check_bool,
    check_callable,
    check_data,
    check_positive_float,
    check_real,
    locate_failure,
    lr_at,
    optimizer_step,
)
from .dequantization import for_fit
from .flow import Flow
from .layer import RNGLike, as_rng, check_array, check_int
from .optim import Adam
from .schedules import Cosine, as_schedule, default_schedule
from .tree import assign_flat, flatten, leaves, tree_map

__all__ = ["History", "TrainingDiverged", "fit", "fit_lbfgs"]


@dataclass
class History:
    """What :func:`fit` saw, one entry per epoch run.

    Attributes:
        train_nll: mean over the epoch's minibatches of their NLL (nats), taken while training.
        val_nll: NLL (nats) of the validation rows at the end of each epoch; empty without them.
        initial_nll: the NLL (nats) at the starting parameters, of the validation rows (of the
            training rows without validation): the first candidate for the best.
        best_epoch: index (from 0) into these lists of the epoch whose parameters were restored;
            −1 when no epoch beat ``initial_nll`` and the flow was left where it started.
        steps: the optimizer steps taken.
        stopped_early: True when ``patience`` epochs passed without improvement.
        stopped_by_callback: True when the ``callback`` asked to stop.
    """

    train_nll: list[float] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)
    initial_nll: float = float("nan")
    best_epoch: int = -1
    steps: int = 0
    stopped_early: bool = False
    stopped_by_callback: bool = False

    @property
    def improved(self) -> bool:
        """Whether some epoch beat the starting parameters (else they were kept)."""
        return self.best_epoch >= 0


def fit(
    flow: Flow,
    x: np.ndarray,
    *,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float | Callable[[int], float] | None = None,
    validation_fraction: float = 0.1,
    patience: int | None = None,
    rng: RNGLike = None,
    progress: bool = True,
    context: np.ndarray | None = None,
    optimizer: Adam | None = None,
    weight_decay: float | None = None,
    clip_grad_norm: float | None = None,
    callback: Callable[[History], bool | None] | None = None,
) -> History:
    """Train ``flow`` in place by minibatch Adam on its negative log-likelihood of ``x`` (N, D).

    The rows are permuted once with ``rng``; the first round(validation_fraction · N) of that
    permutation are held out for validation and the rest are shuffled anew (same ``rng``) each
    epoch and cut into minibatches of ``batch_size`` (the last may be smaller). After each epoch the
    validation NLL is computed on all held-out rows; with ``validation_fraction=0`` the NLL of all
    the training rows is computed after the epoch instead (one more pass: the running mean of the
    minibatch losses, taken while the parameters moved, is not comparable with the start's). The starting parameters are the first candidate for the best (their
    NLL is ``History.initial_nll``); the parameters of the best epoch are restored at the end, and
    training stops early once ``patience`` epochs (if given) pass without a new best. When no epoch
    beats the start, the flow is left where it started, ``History.best_epoch`` is −1 and a
    RuntimeWarning says so.

    Before the first step, one pass of ``flow.log_prob`` over all rows checks that the data lie in
    the flow's support (ValueError, nothing changed, if not), and a UserWarning is given when most
    values entering the data-side-most spline or piecewise-linear layer lie outside its bound.

    Args:
        flow: the flow to train; its ``params`` change in place.
        x: data, float array of shape (N, D) with D = ``flow.dim`` (images: (N, C, H, W), the
            flow's ``event_shape``), or integer images as :class:`~npflows.Pixels`, which are
            dequantized with fresh uniform noise every epoch (docs/multiscale.md).
        epochs, batch_size: positive integers.
        lr: the step size: a positive number (constant), or a schedule ``lr(step)`` of the
            optimizer's step count (``npflows.schedules``; a ``Cosine`` without ``total_steps`` is
            planned over this run). None: ``npflows.schedules.default_schedule`` over this run's
            steps (a linear warm-up over the first 2 % to 1e-3, then cosine decay to 0), or, with
            a given ``optimizer``, that optimizer's own ``lr``, constant.
        validation_fraction: in [0, 1); both parts must get at least one row.
        patience: a positive integer or None (train for all ``epochs``).
        rng: None, an int seed or a Generator; the same seed gives the same history.
        progress: show a tqdm bar if tqdm is installed, else print one line per epoch to stderr.
        context: (N, context_dim) for a conditional flow, split with ``x``; else None.
        optimizer: an :class:`~npflows.optim.Adam` built on ``flow.params``, e.g. to resume from a
            saved state (``Adam.save``/``Adam.load``); a new ``Adam(flow.params)`` by default.
        weight_decay: decoupled weight decay λ ≥ 0 (AdamW); None: 0, or the optimizer's own.
        clip_grad_norm: if given (> 0), each minibatch gradient is scaled down to at most this
            2-norm over all parameters together.
        callback: called as ``callback(history)`` after every epoch; returning True stops training
            (``History.stopped_by_callback``).

    Returns:
        The :class:`History`.

    Raises:
        ValueError, TypeError: for bad arguments or data outside the flow's support, before
            anything is changed.
        TrainingDiverged: when a loss, a gradient, the parameters or the validation NLL become NaN
            or inf, or the parameters make a step fail (e.g. an intermediate leaves a layer's
            support); the flow is then left at the last parameters whose loss and gradient were
            finite, or where it started (the optimizer's state is not rolled back). A
            KeyboardInterrupt leaves the flow at the last completed step.
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be an npflows.Flow, got {type(flow).__name__}")
    x, dequantize = for_fit(x)  # npflows.Pixels: integer images, dequantized afresh each epoch
    x = check_array(x, flow.event_shape)
    context = flow._check_context(context, len(x))
    epochs, batch_size = (
        check_int(epochs, "epochs"),
        check_int(batch_size, "batch_size"),
    )
    if patience is not None:
        patience = check_int(patience, "patience")
    validation_fraction = check_real(validation_fraction, "validation_fraction", 0.0, high=1.0)
    progress = check_bool(progress, "progress")
    callback = check_callable(callback, "callback")
    if clip_grad_norm is not None:
        clip_grad_norm = check_positive_float(clip_grad_norm, "clip_grad_norm")
    n_val = _validation_rows(len(x), validation_fraction)
    params = flow.params
    given_optimizer, optimizer = optimizer, _optimizer_for(params, optimizer, weight_decay)
    steps_per_epoch = -(-(len(x) - n_val) // batch_size)
    total_steps = optimizer.t + epochs * steps_per_epoch
    if lr is None:
        lr = default_schedule() if given_optimizer is None else given_optimizer.lr
    schedule = as_schedule(lr, total_steps)
    first_lr = lr_at(schedule, optimizer.t)
    if isinstance(schedule, Cosine):  # a warm-up starts low: advise against the peak instead
        first_lr = schedule.peak_lr
    rng = as_rng(rng)

    log_p = check_data(flow, x, context)  # the support check: ValueError, nothing changed
    if dequantize is not None:
        # Score the start on the dequantized data that the first epoch trains on, as every later
        # score is: the cell centres (checked above) score higher than any noisy draw of them,
        # and a start scored there would be kept as the best however well training went.
        x = dequantize(rng)
        log_p = flow.log_prob(x, context)
    order = rng.permutation(len(x))
    val_rows, train_rows = order[:n_val], order[n_val:]
    history = History(initial_nll=-float(np.mean(log_p[val_rows if n_val else train_rows])))
    best, since_best = Best(params, history.initial_nll), 0
    batch = train_rows[:0]
    guard = Guard(
        params,
        advice=f"Try a lower lr than {first_lr:g} (e.g. {first_lr / 10:g}).",
        locate=lambda: locate_failure(flow, x[batch], _rows(context, batch), "inverse"),
    )
    apply = optimizer_step(optimizer, schedule, clip_grad_norm)

    report = Progress(epochs) if progress else None
    try:
        for epoch in range(epochs):
            if dequantize is not None and epoch > 0:
                x = dequantize(rng)
            batch_losses = []
            rows = rng.permutation(train_rows)
            for step, start in enumerate(range(0, len(rows), batch_size)):
                batch = rows[start : start + batch_size]
                loss = guard.step(
                    partial(flow.nll_and_grad, x[batch], _rows(context, batch)),
                    apply,
                    f"at epoch {epoch + 1}, step {step + 1}",
                )
                batch_losses.append(loss)
                history.steps += 1
            history.train_nll.append(float(np.mean(batch_losses)))
            scored = val_rows if n_val else train_rows
            batch = scored  # for locating a failure
            score = guard.value(
                partial(_mean_nll, flow, x[scored], _rows(context, scored)),
                "the validation NLL" if n_val else "the training NLL",
                f"at the end of epoch {epoch + 1}",
            )
            if n_val:
                history.val_nll.append(score)
            if report:
                report.update(
                    epoch + 1,
                    train_NLL=history.train_nll[-1],
                    val_NLL=score if n_val else None,
                    steps=history.steps,
                )
            if best.offer(score, epoch):
                since_best, history.best_epoch = 0, epoch
            else:
                since_best += 1
                if patience is not None and since_best >= patience:
                    history.stopped_early = True
                    break
            if callback is not None and callback(history):
                history.stopped_by_callback = True
                break
    finally:
        if report:
            report.close()
    best.restore()
    if not history.improved:
        _warn_not_improved(history, first_lr)
    return history


def _validation_rows(n: int, validation_fraction: float) -> int:
    n_val = int(round(validation_fraction * n))
    if n - n_val < 1 or (validation_fraction > 0 and n_val < 1):
        raise ValueError(
            f"x has {n} rows, which validation_fraction={validation_fraction} splits into "
            f"{n - n_val} training and {n_val} validation rows; each needs at least one "
            "(pass more data, or validation_fraction=0 for no validation)"
        )
    return n_val


def _mean_nll(flow, x, context) -> float:
    return -float(np.mean(flow.log_prob(x, context)))


def _warn_not_improved(history: History, lr: float) -> None:
    scores, kind = (
        (history.val_nll, "validation") if history.val_nll else (history.train_nll, "train")
    )
    warnings.warn(
        f"fit did not improve on the starting parameters in {len(scores)} epoch(s): {kind} NLL "
        f"{history.initial_nll:.6g} at the start, {min(scores):.6g} at best after an epoch; the "
        f"flow was left where it started. Unless the start was already a good fit, try a lower "
        f"lr than {lr:g}.",
        RuntimeWarning,
        stacklevel=3,
    )


def _rows(context, rows):
    return None if context is None else context[rows]


def _optimizer_for(params, optimizer, weight_decay) -> Adam:
    """The given optimizer, checked to be built on ``params``, or a new Adam."""
    if weight_decay is not None:
        weight_decay = check_real(weight_decay, "weight_decay", 0.0)
    if optimizer is None:
        return Adam(params, weight_decay=weight_decay or 0.0)
    if not isinstance(optimizer, Adam):
        raise TypeError(
            f"optimizer must be an npflows.optim.Adam, got {type(optimizer).__name__} {optimizer!r:.40}"
        )
    if [id(a) for a in leaves(optimizer.params)] != [id(a) for a in leaves(params)]:
        raise ValueError("optimizer must be built on this flow's params: Adam(flow.params, ...)")
    if weight_decay is not None:
        optimizer.weight_decay = weight_decay
    return optimizer


def fit_lbfgs(
    flow: Flow,
    x: np.ndarray,
    *,
    max_iter: int = 500,
    tol: float = 1e-9,
    context: np.ndarray | None = None,
) -> scipy.optimize.OptimizeResult:
    """Train ``flow`` in place by full-batch L-BFGS-B on its mean NLL of ``x`` (N, D).

    Runs ``scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", tol=tol,
    options={"maxiter": max_iter})`` on the flat parameter vector (``tree.flatten`` order) and
    leaves the flow at ``result.x``. Best for small flows and data sets that fit in one batch.

    Raises:
        ValueError, TypeError: for bad arguments or data outside the flow's support (the first
            evaluation is at the starting parameters, so nothing has changed).
        TrainingDiverged: when the loss or its gradient become NaN or inf at some trial point, or
            the parameters there make the evaluation fail; the flow is then left at the best point
            evaluated (the lowest finite loss with a finite gradient; the start if none was lower).
            A KeyboardInterrupt leaves it at that best point too, never at a line-search trial point.
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be an npflows.Flow, got {type(flow).__name__}")
    x = check_array(x, flow.event_shape)
    context = flow._check_context(context, len(x))
    max_iter = check_int(max_iter, "max_iter")
    tol = check_positive_float(tol, "tol")
    params = flow.params
    guard = Guard(params, locate=lambda: locate_failure(flow, x, context, "inverse"))
    best_loss = np.inf

    def nll_and_flat_grad(theta):
        nonlocal best_loss
        assign_flat(params, theta)
        loss, grads = guard.evaluate(lambda: flow.nll_and_grad(x, context), "during L-BFGS")
        if loss < best_loss:  # the point a divergence or an interrupt goes back to
            best_loss = loss
            np.copyto(guard.good, theta)
        return loss, flatten(tree_map(lambda _, g: g, params, grads))  # in params' leaf order

    try:
        result = scipy.optimize.minimize(
            nll_and_flat_grad,
            guard.good.copy(),
            jac=True,
            method="L-BFGS-B",
            tol=tol,
            options={"maxiter": max_iter},
        )
    except KeyboardInterrupt:
        assign_flat(params, guard.good)
        raise
    assign_flat(params, result.x)
    return result
