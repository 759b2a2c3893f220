"""Learning-rate schedules for :func:`npflows.fit` and :func:`npflows.fit_to_density`.

A schedule is any callable ``lr(step) -> float`` of the step index s = 0, 1, 2, … (the number of
optimizer steps taken before this one, so a resumed optimizer continues where it left off); the
trainers set the optimizer's step size to ``lr(s)`` before step s. A plain number is the constant
schedule. :class:`Cosine` is the usual warm-up-then-cosine-decay (Loshchilov & Hutter 2017,
arXiv:1608.03983, without restarts).
"""

from __future__ import annotations

import math

from ._loop import check_positive_float, check_real
from .layer import check_int


class Cosine:
    """Linear warm-up to ``peak_lr``, then cosine decay to ``final_lr`` at ``total_steps``.

    With W = ``warmup_steps``, T = ``total_steps``, α = ``peak_lr`` and α_T = ``final_lr``:

        lr(s) = α (s + 1) / W                                   for s < W,
        lr(s) = α_T + ½ (α − α_T) (1 + cos(π min(1, (s − W) / (T − W))))   otherwise,

    so the first step already moves (lr(0) = α/W), the decay starts at α at s = W and reaches α_T
    at s = T (and stays there beyond T).

    Args:
        peak_lr: α > 0.
        total_steps: T > W, the planned number of steps; None lets ``fit`` and ``fit_to_density``
            fill in the steps of the run they are given (:meth:`for_run`).
        warmup_steps: W ≥ 0.
        warmup_fraction: instead of ``warmup_steps``, W = ⌊fraction · T⌋ with the fraction in
            [0, 1), worked out once T is known.
        final_lr: α_T in [0, α].
    """

    def __init__(
        self,
        peak_lr: float,
        total_steps: int | None = None,
        *,
        warmup_steps: int = 0,
        warmup_fraction: float | None = None,
        final_lr: float = 0.0,
    ):
        self.peak_lr = check_positive_float(peak_lr, "peak_lr")
        self.final_lr = check_real(final_lr, "final_lr", 0.0)
        if self.final_lr > self.peak_lr:
            raise ValueError(f"final_lr ({final_lr!r}) must not exceed peak_lr ({peak_lr!r})")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
        if warmup_fraction is not None:
            if warmup_steps:
                raise ValueError("give warmup_steps or warmup_fraction, not both")
            warmup_fraction = check_real(warmup_fraction, "warmup_fraction", 0.0, high=1.0)
        self.warmup_fraction = warmup_fraction
        if total_steps is not None:
            check_int(total_steps, "total_steps")
            if warmup_fraction is not None:
                warmup_steps = int(warmup_fraction * total_steps)
            if total_steps <= warmup_steps:
                raise ValueError(
                    f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})"
                )
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def for_run(self, total_steps: int) -> Cosine:
        """This schedule if its ``total_steps`` is set, else a copy planned over ``total_steps``."""
        if self.total_steps is not None:
            return self
        return Cosine(
            self.peak_lr,
            max(total_steps, self.warmup_steps + 1),
            warmup_steps=self.warmup_steps,
            warmup_fraction=self.warmup_fraction,
            final_lr=self.final_lr,
        )

    def __call__(self, step: int) -> float:
        if self.total_steps is None:
            raise ValueError("this Cosine schedule has no total_steps; pass it or use for_run")
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.final_lr + 0.5 * (self.peak_lr - self.final_lr) * (
            1 + math.cos(math.pi * progress)
        )

    def __repr__(self) -> str:
        warmup = (
            f"warmup_fraction={self.warmup_fraction!r}"
            if self.warmup_fraction is not None and self.total_steps is None
            else f"warmup_steps={self.warmup_steps!r}"
        )
        return (
            f"Cosine({self.peak_lr!r}, {self.total_steps!r}, {warmup}, final_lr={self.final_lr!r})"
        )


DEFAULT_PEAK_LR = 1e-3
DEFAULT_WARMUP_FRACTION = 0.02


def default_schedule(peak_lr: float = DEFAULT_PEAK_LR) -> Cosine:
    """The default of ``fit`` and of the command line's fit: a linear warm-up over the first 2 %
    of the run's steps to ``peak_lr`` (1e-3), then cosine decay to 0 at its last step.
    benchmarks/quality_2d.py measured it against a constant step size and the cosine without
    warm-up (benchmarks/README.md)."""
    return Cosine(peak_lr, warmup_fraction=DEFAULT_WARMUP_FRACTION)


def as_schedule(lr, total_steps: int):
    """``lr`` as a callable of the step: a number becomes a constant, a :class:`Cosine` without
    ``total_steps`` is planned over ``total_steps``; TypeError/ValueError naming ``lr`` otherwise."""
    if isinstance(lr, Cosine):
        return lr.for_run(total_steps)
    if callable(lr):
        return lr
    value = check_positive_float(lr, "lr")
    return lambda step: value
