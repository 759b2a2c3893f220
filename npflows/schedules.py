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
        final_lr: α_T in [0, α].
    """

    def __init__(
        self,
        peak_lr: float,
        total_steps: int | None = None,
        *,
        warmup_steps: int = 0,
        final_lr: float = 0.0,
    ):
        self.peak_lr = check_positive_float(peak_lr, "peak_lr")
        self.final_lr = check_real(final_lr, "final_lr", 0.0)
        if self.final_lr > self.peak_lr:
            raise ValueError(f"final_lr ({final_lr!r}) must not exceed peak_lr ({peak_lr!r})")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
        self.warmup_steps = warmup_steps
        if total_steps is not None:
            check_int(total_steps, "total_steps")
            if total_steps <= warmup_steps:
                raise ValueError(
                    f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})"
                )
        self.total_steps = total_steps

    def for_run(self, total_steps: int) -> Cosine:
        """This schedule if its ``total_steps`` is set, else a copy planned over ``total_steps``."""
        if self.total_steps is not None:
            return self
        return Cosine(
            self.peak_lr,
            max(total_steps, self.warmup_steps + 1),
            warmup_steps=self.warmup_steps,
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
        return (
            f"Cosine({self.peak_lr!r}, {self.total_steps!r}, warmup_steps={self.warmup_steps!r}, "
            f"final_lr={self.final_lr!r})"
        )


DEFAULT_PEAK_LR = 1e-3
DEFAULT_WARMUP_FRACTION = 0.02
"""fit's default schedule: ``Cosine(1e-3)`` to 0 over the run, after a linear warm-up over the
first 2 % of its steps. benchmarks/quality_2d.py measured it against a constant 1e-3 and the cosine
without warm-up (benchmarks/README.md)."""


def default_schedule(total_steps: int) -> Cosine:
    """fit's default: warm-up over ``DEFAULT_WARMUP_FRACTION`` of ``total_steps`` to
    ``DEFAULT_PEAK_LR``, then cosine decay to 0 at ``total_steps``."""
    total_steps = check_int(total_steps, "total_steps")
    warmup = int(DEFAULT_WARMUP_FRACTION * total_steps)
    return Cosine(DEFAULT_PEAK_LR, max(total_steps, warmup + 1), warmup_steps=warmup)


def as_schedule(lr, total_steps: int):
    """``lr`` as a callable of the step: a number becomes a constant, a :class:`Cosine` without
    ``total_steps`` is planned over ``total_steps``; TypeError/ValueError naming ``lr`` otherwise."""
    if isinstance(lr, Cosine):
        return lr.for_run(total_steps)
    if callable(lr):
        return lr
    value = check_positive_float(lr, "lr")
    return lambda step: value
