"""Argument checks of the transformers' constructors, and the check that a result did not overflow."""

from __future__ import annotations

import numbers

import numpy as np


def _real(value, name: str) -> float:
    """``value`` as a float; TypeError unless it is a real number (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    return float(value)


def positive_finite(value, name: str, none_ok: bool = False) -> float | None:
    """``value`` as a float in (0, ∞), or None when ``none_ok``; TypeError or ValueError naming it."""
    if value is None and none_ok:
        return None
    number = _real(value, name)
    if not (np.isfinite(number) and number > 0):
        allowed = "None or a positive finite number" if none_ok else "a positive finite number"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return number


def in_open_interval(value, name: str, low: float, high: float) -> float:
    """``value`` as a float in (low, high), or TypeError / ValueError naming it and the interval."""
    number = _real(value, name)
    if not low < number < high:
        raise ValueError(f"{name} must lie in ({low:g}, {high:g}), got {value!r}")
    return number


def finite_real(value, name: str) -> float:
    """``value`` as a finite float, or TypeError / ValueError naming it."""
    number = _real(value, name)
    if not np.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def check_finite(result: np.ndarray, formula: str, source: np.ndarray, name: str) -> np.ndarray:
    """``result``, or ValueError when an entry overflowed to ±inf (or NaN) from a finite ``source``.

    Maps that scale (affine, leaky ReLU) can send a finite input beyond the largest float; that is
    refused with the formula and the first offending input, never returned as inf.
    """
    if np.isfinite(result).all():  # the common case, in two calls; the rest only for the message
        return result
    bad = ~np.isfinite(result)
    example = np.broadcast_to(source, result.shape)[bad][0]
    raise ValueError(
        f"{formula} overflows the {result.dtype} range for {int(bad.sum())} value(s), "
        f"e.g. {name} = {example!r}; see docs/ranges.md for the inputs with finite results"
    )
