"""Maximum-likelihood training: minibatch Adam (:func:`fit`) and full-batch L-BFGS (:func:`fit_lbfgs`).

Book: ch. 16, "Learning": the parameters φ minimize the negative log-likelihood
L[φ] = −(1/N) Σ_i log Pr(x_i | φ), in nats, whose gradient ``Flow.nll_and_grad`` gives.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize

from .dequantization import for_fit
from .flow import Flow
from .layer import RNGLike, as_rng, check_array
from .optim import Adam
from .tree import Tree, assign_flat, flatten, leaves, leaves_with_paths, tree_map


class TrainingDiverged(FloatingPointError):
    """The loss, a gradient or the parameters became NaN or infinite during training."""


@dataclass
class History:
    """What :func:`fit` saw, one entry per epoch run.

    Attributes:
        train_nll: mean over the epoch's minibatches of their NLL (nats), taken while training.
        val_nll: NLL (nats) of the validation rows at the end of each epoch; empty without them.
        best_epoch: index (from 0) into these lists of the epoch whose parameters were restored.
        stopped_early: True when ``patience`` epochs passed without improvement.
    """

    train_nll: list[float] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False


def fit(
    flow: Flow,
    x: np.ndarray,
    *,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    validation_fraction: float = 0.1,
    patience: int | None = None,
    rng: RNGLike = None,
    progress: bool = True,
    context: np.ndarray | None = None,
    optimizer: Adam | None = None,
) -> History:
    """Train ``flow`` in place by minibatch Adam on its negative log-likelihood of ``x`` (N, D).

    The rows are permuted once with ``rng``; the first round(validation_fraction · N) of that
    permutation are held out for validation and the rest are shuffled anew (same ``rng``) each
    epoch and cut into minibatches of ``batch_size`` (the last may be smaller). After each epoch the
    validation NLL is computed on all held-out rows; with ``validation_fraction=0`` the epoch's
    train NLL is used instead. The parameters of the best epoch are restored at the end, and
    training stops early once ``patience`` epochs (if given) pass without a new best.

    Args:
        flow: the flow to train; its ``params`` change in place.
        x: data, float array of shape (N, D) with D = ``flow.dim`` (images: (N, C, H, W), the
            flow's ``event_shape``), or integer images as :class:`~npflows.Pixels`, which are
            dequantized with fresh uniform noise every epoch (docs/multiscale.md).
        epochs, batch_size: positive integers.
        lr: Adam's step size; used only when ``optimizer`` is None.
        validation_fraction: in [0, 1); both parts must get at least one row.
        patience: a positive integer or None (train for all ``epochs``).
        rng: None, an int seed or a Generator; the same seed gives the same history.
        progress: show a tqdm bar if tqdm is installed, else print one line per epoch to stderr.
        context: (N, context_dim) for a conditional flow, split with ``x``; else None.
        optimizer: an :class:`~npflows.optim.Adam` built on ``flow.params``, e.g. to continue from a
            saved state; a new ``Adam(flow.params, lr)`` by default.

    Returns:
        The :class:`History`.

    Raises:
        ValueError: for bad arguments, before anything is changed.
        TrainingDiverged: when the loss, a gradient, the parameters or the validation NLL become
            NaN or inf; the flow is then left at the last parameters whose loss and gradient were
            finite, or where it started if the first loss already was not (the optimizer's state
            is not rolled back).
    """
    x, dequantize = for_fit(x)  # npflows.Pixels: integer images, dequantized afresh each epoch
    x = check_array(x, flow.event_shape)
    context = flow._check_context(context, len(x))
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not _is_positive_int(value):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if patience is not None and not _is_positive_int(patience):
        raise ValueError(f"patience must be None or a positive integer, got {patience!r}")
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    n_val = int(round(validation_fraction * len(x)))
    if len(x) - n_val < 1 or (validation_fraction > 0 and n_val < 1):
        raise ValueError(
            f"x has {len(x)} rows, which validation_fraction={validation_fraction} splits into "
            f"{len(x) - n_val} training and {n_val} validation rows; each needs at least one "
            "(pass more data, or validation_fraction=0 for no validation)"
        )
    params = flow.params
    if optimizer is None:
        optimizer = Adam(params, lr=lr)
    elif [id(a) for a in leaves(optimizer.params)] != [id(a) for a in leaves(params)]:
        raise ValueError("optimizer must be built on this flow's params: Adam(flow.params, ...)")
    rng = as_rng(rng)

    order = rng.permutation(len(x))
    val_rows, train_rows = order[:n_val], order[n_val:]
    history = History()
    best_score, best_params, since_best = np.inf, None, 0
    good = None  # flat copy of the last parameters whose loss and gradient were finite
    current = flatten(params)  # flat copy of the parameters the next loss is evaluated at
    report = _Progress(epochs) if progress else None

    def diverged(what, where):
        if good is not None:
            assign_flat(params, good)
        return TrainingDiverged(
            f"{what} became NaN or inf {where}; the flow was left at "
            f"its last parameters with a finite loss and gradient. Try a lower lr than "
            f"{optimizer.lr:g} (e.g. {optimizer.lr / 10:g})."
        )

    try:
        for epoch in range(epochs):
            if dequantize is not None:
                x = dequantize(rng)
            batch_losses = []
            rows = rng.permutation(train_rows)
            for step, start in enumerate(range(0, len(rows), batch_size)):
                batch = rows[start : start + batch_size]
                loss, grads = flow.nll_and_grad(
                    x[batch], None if context is None else context[batch]
                )
                where = f"at epoch {epoch + 1}, step {step + 1}"
                bad = _first_non_finite(grads)
                if not np.isfinite(loss) or bad is not None:
                    what = "the loss" if not np.isfinite(loss) else f"the gradient of {bad!r}"
                    raise diverged(what, where)
                good, current = current, good  # current is good; its old buffer is reused
                optimizer.step(grads)
                current = flatten(params, out=current)
                if not np.isfinite(current).all():
                    bad = _first_non_finite(params)
                    raise diverged(f"the parameter {bad!r}", f"after the step {where}")
                batch_losses.append(loss)
            history.train_nll.append(float(np.mean(batch_losses)))
            score = history.train_nll[-1]
            if n_val:
                ctx = None if context is None else context[val_rows]
                score = -float(np.mean(flow.log_prob(x[val_rows], ctx)))
                history.val_nll.append(score)
                if not np.isfinite(score):
                    raise diverged("the validation NLL", f"at the end of epoch {epoch + 1}")
            if report:
                report.update(
                    epoch + 1, train_NLL=history.train_nll[-1], val_NLL=score if n_val else None
                )
            if score < best_score:
                best_score, best_params, since_best = score, flatten(params), 0
                history.best_epoch = epoch
            else:
                since_best += 1
                if patience is not None and since_best >= patience:
                    history.stopped_early = True
                    break
    finally:
        if report:
            report.close()
    assign_flat(params, best_params)
    return history


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
        ValueError: for bad arguments.
        TrainingDiverged: when the loss or its gradient become NaN or inf at some trial point; the
            flow is then restored to the parameters it started from.
    """
    x = check_array(x, flow.event_shape)
    context = flow._check_context(context, len(x))
    if not _is_positive_int(max_iter):
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive finite number, got {tol!r}")
    params = flow.params
    start = flatten(params)

    def nll_and_flat_grad(theta):
        assign_flat(params, theta)
        loss, grads = flow.nll_and_grad(x, context)
        grads = tree_map(lambda _, g: g, params, grads)  # in the order of params' leaves
        bad = _first_non_finite(grads)
        if not np.isfinite(loss) or bad is not None:
            what = "the loss" if not np.isfinite(loss) else f"the gradient of {bad!r}"
            raise TrainingDiverged(f"{what} became NaN or inf during L-BFGS; parameters restored")
        return loss, flatten(grads)

    try:
        result = scipy.optimize.minimize(
            nll_and_flat_grad,
            start,
            jac=True,
            method="L-BFGS-B",
            tol=tol,
            options={"maxiter": max_iter},
        )
    except TrainingDiverged:
        assign_flat(params, start)
        raise
    assign_flat(params, result.x)
    return result


def _is_positive_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _first_non_finite(tree: Tree) -> str | None:
    """The path of the first leaf of ``tree`` holding a NaN or inf, or None."""
    if all(np.isfinite(leaf).all() for leaf in leaves(tree)):  # paths only when one is needed
        return None
    return next(
        (path for path, leaf in leaves_with_paths(tree) if not np.isfinite(leaf).all()), None
    )


class _Progress:
    """A tqdm bar when tqdm is installed, else one line per update on stderr."""

    def __init__(self, total: int, unit: str = "epoch", desc: str = "fit"):
        self.total, self.unit = total, unit
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.bar = None
        else:
            self.bar = tqdm(total=total, desc=desc, unit=unit)

    def update(self, done: int, **metrics: float | None) -> None:
        """Report ``done`` (counted from 1) of ``total`` units with ``metrics`` (None shows "-")."""
        shown = {k: "-" if v is None else f"{v:.4f}" for k, v in metrics.items()}
        if self.bar is None:
            values = "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in shown.items())
            print(f"{self.unit} {done}/{self.total}  {values}", file=sys.stderr)
        else:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
