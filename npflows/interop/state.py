"""Reading a peer library's exported ``state_dict`` and constructor arguments, refusing by name.

Every key is taken exactly once, with its expected shape; what was never taken is an extra key. A
float32 array is accepted and converted to float64 (exactly: every float32 is a float64), so an
exported float32 model is scored in float64; other float dtypes, NaN and inf are refused.
docs/interop.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class StateDict:
    """The arrays of one exported model, taken key by key with their shapes checked.

    Args:
        arrays: maps each ``state_dict()`` key to its array (numpy, or anything ``np.asarray``
            takes; an ``np.load`` result works).
        library: "zuko" or "nflows", for the messages.
    """

    def __init__(self, arrays: Mapping, library: str):
        if not isinstance(arrays, Mapping) and not hasattr(arrays, "files"):
            raise TypeError(
                f"arrays must map {library} state_dict keys to arrays, got {type(arrays).__name__}"
            )
        keys = list(arrays.files if hasattr(arrays, "files") else arrays.keys())
        for key in keys:
            if not isinstance(key, str):
                raise TypeError(f"state_dict keys must be strings, got {key!r}")
        self._arrays = {key: np.asarray(arrays[key]) for key in keys}
        self._taken: set[str] = set()
        self.library = library

    def has(self, key: str) -> bool:
        return key in self._arrays

    def _take(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        if key not in self._arrays:
            raise ValueError(
                f"the {self.library} state_dict has no key {key!r} (expected shape {shape}); "
                "are the class name and constructor arguments those the model was built with?"
            )
        a = self._arrays[key]
        if a.shape != tuple(shape):
            raise ValueError(f"{key!r} has shape {a.shape}, expected {tuple(shape)}")
        self._taken.add(key)
        return a

    def float(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """The float64 array at ``key``; float32 is converted exactly, other dtypes are refused."""
        a = self._take(key, shape)
        if a.dtype not in (np.float32, np.float64):
            raise ValueError(f"{key!r} must be float32 or float64, got dtype {a.dtype}")
        if not np.isfinite(a).all():
            raise ValueError(f"{key!r} has NaN or inf entries")
        return a.astype(np.float64)

    def exact(self, key: str, expected: np.ndarray) -> None:
        """Check that the buffer at ``key`` (a mask, order or permutation) equals ``expected``."""
        a = self._take(key, expected.shape)
        if a.dtype.kind not in "biuf" or not np.array_equal(a.astype(expected.dtype), expected):
            raise ValueError(
                f"{key!r} is {a.astype(int).tolist() if a.size <= 32 else 'different'}, but the "
                f"constructor arguments give {expected.astype(int).tolist() if a.size <= 32 else 'another'}"
                " (a custom or corrupted model, or other constructor arguments)"
            )

    def integers(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """The integer buffer at ``key`` (an order or a permutation) as int64."""
        a = self._take(key, shape)
        if a.dtype.kind not in "iu":
            raise ValueError(f"{key!r} must hold integers, got dtype {a.dtype}")
        return a.astype(np.int64)

    def booleans(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """The boolean buffer at ``key`` (a coupling mask)."""
        a = self._take(key, shape)
        if a.dtype.kind not in "biu" or not np.isin(a, (0, 1)).all():
            raise ValueError(f"{key!r} must hold booleans, got {a.dtype} values")
        return a.astype(bool)

    def finish(self) -> None:
        """Refuse keys that the model's structure has no place for."""
        extra = sorted(set(self._arrays) - self._taken)
        if extra:
            shown = ", ".join(repr(k) for k in extra[:5]) + (" ..." if len(extra) > 5 else "")
            raise ValueError(
                f"{len(extra)} unexpected key(s) in the {self.library} state_dict: {shown} "
                "(a larger model, other constructor arguments, or an option npflows does not import)"
            )


def options(name: str, kwargs: dict, defaults: dict, refused: dict[str, str]) -> dict:
    """``defaults`` updated by ``kwargs``; an unknown keyword is a TypeError naming it, a refused
    one (``refused`` maps its name to the reason) a ValueError unless given its default value.

    ``refused`` entries with a key in ``defaults`` are refused only away from that default.
    """
    out = dict(defaults)
    for key, value in kwargs.items():
        if key in refused and (key not in defaults or value != defaults[key]):
            raise ValueError(f"{name}: {key}={value!r} is not supported: {refused[key]}")
        if key not in defaults:
            raise TypeError(
                f"{name} got an unexpected keyword argument {key!r}; "
                f"known: {', '.join(sorted(set(defaults) | set(refused)))}"
            )
        out[key] = value
    return out


def positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum``, or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
