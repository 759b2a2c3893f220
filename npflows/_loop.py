"""The machinery every trainer shares: argument checks, the divergence guard, the best parameters,
the data check before the first step, and progress reporting.

``npflows.fit``, ``npflows.fit_lbfgs`` and ``npflows.fit_to_density`` are written on top of it; it is
an internal module (its names are public so that those modules may import them).

Divergence: any NaN or inf in a step (the loss, a gradient, the parameters after the step), or an
exception that the parameters cause once training has moved them (a support violation of an
intermediate, scipy's "array must not contain infs or NaNs" from an overflowed matrix, an
``ArithmeticError``), stops training with :class:`TrainingDiverged`. The flow is first restored to
the last parameters whose loss and gradient were finite, so it stays usable.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable

import numpy as np

from .tree import Tree, assign_flat, flatten, leaves, leaves_with_paths, tree_map

# Exceptions that the parameters can cause inside a loss evaluation (numpy's LinAlgError is a
# ValueError; so is every support violation a layer reports).
PARAMETER_ERRORS = (ValueError, ArithmeticError)


class TrainingDiverged(FloatingPointError):
    """The loss, a gradient or the parameters became NaN or infinite during training, or the
    parameters made a step fail; the flow was restored to its last good parameters."""


# -- argument checks --------------------------------------------------------------------------------
def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_real(value, name: str, low: float, *, low_open: bool = False, high=None) -> float:
    """``value`` as a float if it is a finite real number in [low, high) ((low, high) if
    ``low_open``; no upper end if ``high`` is None), else TypeError/ValueError naming it."""
    interval = f"{'(' if low_open else '['}{low:g}, {'inf' if high is None else f'{high:g}'})"
    if not _is_real(value):
        raise TypeError(
            f"{name} must be a number in {interval}, got {type(value).__name__} {value!r}"
        )
    inside = (value > low if low_open else value >= low) and (high is None or value < high)
    if not (np.isfinite(value) and inside):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def check_positive_float(value, name: str) -> float:
    """``value`` as a float if it is a finite real number > 0, else TypeError/ValueError naming it."""
    return check_real(value, name, 0.0, low_open=True)


def check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_callable(value, name: str, optional: bool = True):
    if value is None and optional:
        return None
    if not callable(value):
        raise TypeError(f"{name} must be callable{' or None' if optional else ''}, got {value!r}")
    return value


def first_non_finite(tree: Tree) -> str | None:
    """The path of the first leaf of ``tree`` holding a NaN or inf, or None."""
    if all(np.isfinite(leaf).all() for leaf in leaves(tree)):  # paths only when one is needed
        return None
    return next(path for path, leaf in leaves_with_paths(tree) if not np.isfinite(leaf).all())


def clip_by_global_norm(grads: Tree, max_norm: float) -> Tree:
    """``grads`` scaled by min(1, max_norm / ‖g‖), ‖g‖ the 2-norm of all leaves together,
    computed as a · √(Σ (g/a)²) with a = max |g| so that squaring never overflows."""
    grad_leaves = [g for g in leaves(grads) if g.size]
    largest = max((float(np.max(np.abs(g))) for g in grad_leaves), default=0.0)
    if not largest > 0:
        return grads
    norm = largest * np.sqrt(sum(float(np.sum(np.square(g / largest))) for g in grad_leaves))
    if not norm > max_norm:
        return grads
    scale = max_norm / norm
    return tree_map(lambda g: g * scale, grads)


def lr_at(schedule: Callable[[int], float], step: int) -> float:
    """``schedule(step)``, checked to be a finite number ≥ 0 (ValueError naming the step)."""
    value = schedule(step)
    try:
        return check_real(value, "the learning rate", 0.0)
    except (TypeError, ValueError) as error:
        raise ValueError(f"the lr schedule returned {value!r} for step {step}: {error}") from None


def optimizer_step(optimizer, schedule: Callable[[int], float], clip_grad_norm: float | None):
    """``apply(grads)`` for :meth:`Guard.step`: set the optimizer's lr from ``schedule`` at its step
    count, clip the gradient's norm (if ``clip_grad_norm``), and step."""

    def apply(grads: Tree) -> None:
        optimizer.lr = lr_at(schedule, optimizer.t)
        if clip_grad_norm is not None:
            grads = clip_by_global_norm(grads, clip_grad_norm)
        optimizer.step(grads)

    return apply


# -- the guard ----------------------------------------------------------------------------------------
class Guard:
    """Checks loss evaluations and steps, and restores the last good parameters when one diverges.

    "Good" parameters are those at which a loss and its gradient were last evaluated finite; before
    any evaluation, the starting ones (``good``, a flat copy; a trainer may point it elsewhere, as
    L-BFGS does at its best point). One flat copy of the parameters is taken per step.

    Args:
        params: the live parameter tree being trained.
        advice: appended to every divergence message (e.g. "Try a lower lr than 0.1").
        locate: optional ``locate()`` -> text naming the layer where the current parameters fail
            (called before the restore), or None.
    """

    def __init__(self, params: Tree, advice: str = "", locate: Callable[[], str | None] = None):
        self.params, self.advice, self.locate = params, advice, locate
        self.current = flatten(params)  # the parameters the next loss is evaluated at
        self.good = self.current.copy()
        self.evaluations = 0

    def evaluate(self, evaluate: Callable[[], tuple[float, Tree]], where: str):
        """``evaluate()`` -> (loss, grads), checked: :class:`TrainingDiverged` (restored) for a NaN
        or inf, or for a :data:`PARAMETER_ERRORS` raised after the first evaluation (at the starting
        parameters such an error is the caller's, and propagates unchanged)."""
        self.evaluations += 1
        try:
            loss, grads = evaluate()
        except PARAMETER_ERRORS as error:
            if self.evaluations == 1:
                raise
            raise self.diverged(f"a {type(error).__name__} was raised", where, error) from error
        if not np.isfinite(loss):
            raise self.diverged("the loss became NaN or inf", where)
        bad = first_non_finite(grads)
        if bad is not None:
            raise self.diverged(f"the gradient of {bad!r} became NaN or inf", where)
        return loss, grads

    def value(self, evaluate: Callable[[], float], what: str, where: str) -> float:
        """``evaluate()`` at the current parameters (e.g. a validation NLL), checked as a loss is:
        :class:`TrainingDiverged` (restored) for a NaN or inf or a :data:`PARAMETER_ERRORS`."""
        try:
            value = evaluate()
        except PARAMETER_ERRORS as error:
            raise self.diverged(
                f"a {type(error).__name__} was raised computing {what}", where, error
            ) from error
        if not np.isfinite(value):
            raise self.diverged(f"{what} became NaN or inf", where)
        return value

    def step(
        self, evaluate: Callable[[], tuple[float, Tree]], apply: Callable[[Tree], None], where
    ):
        """:meth:`evaluate`, then ``apply(grads)`` (the optimizer's step), then check the new
        parameters (:class:`TrainingDiverged`, restored, for a NaN or inf). Returns the loss."""
        loss, grads = self.evaluate(evaluate, where)
        self.good, self.current = self.current, self.good  # current is good; reuse the old buffer
        apply(grads)
        self.current = flatten(self.params, out=self.current)
        if not np.isfinite(self.current).all():
            bad = first_non_finite(self.params)
            raise self.diverged(
                f"the parameter {bad!r} became NaN or inf", f"after the step {where}"
            )
        return loss

    def diverged(self, what: str, where: str, error: Exception | None = None) -> TrainingDiverged:
        """Restore the last good parameters and return the exception to raise: ``what`` happened
        ``where`` (``error`` the exception, if one was the cause)."""
        located = None
        if self.locate is not None:
            with np.errstate(all="ignore"):
                located = self.locate()
        assign_flat(self.params, self.good)
        if located:
            message = f"{what} {where}, in {located}"
        else:
            message = f"{what} {where}" + (f": {error}" if error is not None else "")
        return TrainingDiverged(
            f"{message}; the flow was left at its last parameters with a finite loss and "
            f"gradient. {self.advice}".rstrip()
        )


def locate_failure(flow, h: np.ndarray, context, direction: str) -> str | None:
    """Run ``flow``'s layers one by one on ``h`` (``"inverse"``: data to noise; ``"forward"``: noise
    to data) and name the first that raises or gives NaN or inf, as "layer k (Name): reason"."""
    layers = list(enumerate(getattr(flow, "layers", [])))
    for k, layer in layers if direction == "forward" else reversed(layers):
        ctx = context if layer.context_dim else None
        try:
            h, log_det = getattr(layer, direction)(h, ctx)
        except PARAMETER_ERRORS as error:
            return f"layer {k} ({type(layer).__name__}): {error}"
        if not (np.isfinite(h).all() and np.isfinite(log_det).all()):
            return f"layer {k} ({type(layer).__name__}), whose output has NaN or inf"
    return None


# -- the best parameters ------------------------------------------------------------------------------
class Best:
    """The parameters with the lowest score offered so far, the starting ones the first candidate."""

    def __init__(self, params: Tree, start_score: float):
        self.params = params
        self.score = start_score if np.isfinite(start_score) else np.inf
        self.flat = flatten(params)
        self.epoch = -1  # -1: the starting parameters

    def offer(self, score: float, epoch: int) -> bool:
        """Keep the current parameters if ``score`` is lower than the best; True if it was."""
        if not score < self.score:
            return False
        self.score, self.epoch = score, epoch
        self.flat = flatten(self.params, out=self.flat)
        return True

    def restore(self) -> None:
        assign_flat(self.params, self.flat)


# -- before the first step ----------------------------------------------------------------------------
def check_data(flow, x: np.ndarray, context) -> np.ndarray:
    """The per-row log-density at the starting parameters (:func:`per_row_log_prob`), refusing
    data outside the flow's support or given a non-finite density (ValueError, nothing changed),
    and warning about data outside a spline's bound (:func:`warn_if_outside_bounds`)."""
    log_p = per_row_log_prob(flow, x, context)
    if not np.isfinite(log_p).all():
        row = int(np.flatnonzero(~np.isfinite(log_p))[0])
        raise ValueError(
            f"the flow gives row {row} of x a log-density of {log_p[row]} at its starting "
            "parameters; training cannot start from there"
        )
    warn_if_outside_bounds(flow, x, context)
    return log_p


def per_row_log_prob(flow, x: np.ndarray, context, chunk: int = 8192) -> np.ndarray:
    """``flow.log_prob`` of every row, ``chunk`` rows at a time (float64, (N,)). Raises the flow's
    ValueError for data outside its support, before anything is changed."""
    out = np.empty(len(x))
    for start in range(0, len(x), chunk):
        rows = slice(start, start + chunk)
        ctx = None if context is None else context[rows]
        try:
            out[rows] = flow.log_prob(x[rows], ctx)
        except ValueError as error:
            located = locate_failure(flow, x[rows], ctx, "inverse")
            if located is None:
                raise
            raise ValueError(
                f"the data are outside the flow's support (nothing was changed): {located}"
            ) from error
    return out


def warn_if_outside_bounds(flow, x: np.ndarray, context, rows: int = 10_000) -> None:
    """Warn when most values entering the data-side-most spline or piecewise-linear layer lie
    outside its bound [−B, B], where such a transformer is the identity and gets no gradient."""
    h = x[:rows]
    ctx = None if context is None else context[:rows]
    layers = list(enumerate(getattr(flow, "layers", [])))
    for k, layer in reversed(layers):
        transformer = getattr(getattr(layer, "layer", layer), "transformer", None)
        bound = getattr(transformer, "bound", None)
        if bound is not None:
            outside = float(np.mean(np.abs(h) > bound))
            if outside > 0.5:
                warnings.warn(
                    f"{100 * outside:.0f}% of the values entering layer {k} "
                    f"({type(layer).__name__} with {type(transformer).__name__}) lie outside its "
                    f"bound [-{bound:g}, {bound:g}], where the map is the identity and gets no "
                    "gradient: standardize the data (zero mean, unit variance) or raise the bound",
                    UserWarning,
                    stacklevel=4,
                )
            return
        h, _ = layer.inverse(h, ctx if layer.context_dim else None)


# -- progress -----------------------------------------------------------------------------------------
class Progress:
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
        """Report ``done`` (counted from 1) of ``total`` units with ``metrics`` (floats to four
        decimals, ints as they are, None as "-")."""
        shown = {
            k: "-" if v is None else str(v) if isinstance(v, int) else f"{v:.4f}"
            for k, v in metrics.items()
        }
        if self.bar is None:
            values = "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in shown.items())
            print(f"{self.unit} {done}/{self.total}  {values}", file=sys.stderr)
        else:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
