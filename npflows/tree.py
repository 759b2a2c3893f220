"""Parameter trees: nested dicts and lists whose leaves are numpy arrays.

A layer's ``params`` is such a tree, and so is the ``grads`` its pullback returns. The helpers here
walk two trees in step (for the optimizer), name every leaf by a path such as ``layers/3/theta``
(for saving), and pack the leaves into one flat vector (for ``scipy.optimize``).
Leaves are visited in a fixed order: dict insertion order, then list order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

Tree = Any  # dict[str, Tree] | list[Tree] | np.ndarray


def leaves_with_paths(tree: Tree, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(path, leaf)`` for every array in ``tree``, paths joined by ``/``."""
    if isinstance(tree, dict):
        for key, sub in tree.items():
            _check_key(key)
            yield from leaves_with_paths(sub, f"{prefix}{key}/")
    elif isinstance(tree, (list, tuple)):
        for i, sub in enumerate(tree):
            yield from leaves_with_paths(sub, f"{prefix}{i}/")
    elif isinstance(tree, np.ndarray):
        yield prefix[:-1], tree
    else:
        _not_a_tree(tree)


def leaves(tree: Tree) -> list[np.ndarray]:
    """The arrays of ``tree`` in visiting order."""
    out: list[np.ndarray] = []
    _collect(tree, out)
    return out


def _collect(tree: Tree, out: list) -> None:
    """Append the arrays of ``tree`` to ``out``: :func:`leaves_with_paths` without the paths, which
    cost more than the walk (training walks its trees every step)."""
    if isinstance(tree, dict):
        for key, sub in tree.items():
            _check_key(key)
            _collect(sub, out)
    elif isinstance(tree, (list, tuple)):
        for sub in tree:
            _collect(sub, out)
    elif isinstance(tree, np.ndarray):
        out.append(tree)
    else:
        _not_a_tree(tree)


def _check_key(key) -> None:
    if not isinstance(key, str) or "/" in key or not key:
        raise ValueError(f"parameter names must be non-empty strings without '/', got {key!r}")


def _not_a_tree(tree) -> None:
    raise ValueError(f"a parameter tree holds dicts, lists and arrays, got {type(tree).__name__}")


def tree_map(fn: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:
    """Apply ``fn`` leaf by leaf to trees of the same structure, keeping the structure."""
    if isinstance(tree, dict):
        return {k: tree_map(fn, v, *(r[k] for r in rest)) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [tree_map(fn, v, *(r[i] for r in rest)) for i, v in enumerate(tree)]
    return fn(tree, *rest)


def cast(tree: Tree, dtype) -> None:
    """Replace every leaf of ``tree`` by ``leaf.astype(dtype)`` inside its own dict or list.

    The containers are kept, so every object that shares them (a Flow and its layers) sees the
    new arrays; arrays held elsewhere are not updated.
    """
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, sub in list(items):
        if isinstance(sub, np.ndarray):
            tree[key] = sub.astype(dtype)
        else:
            cast(sub, dtype)


def size(tree: Tree) -> int:
    """The number of scalars in ``tree``."""
    return sum(leaf.size for leaf in leaves(tree))


def flatten(tree: Tree, out: np.ndarray | None = None) -> np.ndarray:
    """All leaves raveled and concatenated into one float64 vector, written into ``out`` if given
    (a float64 vector of the right size, reused instead of a new one)."""
    parts = [leaf.ravel() for leaf in leaves(tree)]
    if not parts:
        return np.zeros(0) if out is None else out
    if out is None:
        return np.concatenate(parts, dtype=np.float64)
    return np.concatenate(parts, out=out)


def assign_flat(tree: Tree, vector: np.ndarray) -> None:
    """Write ``vector`` (as made by :func:`flatten`) into the leaves of ``tree`` in place."""
    vector = np.asarray(vector)
    if vector.shape != (size(tree),):
        raise ValueError(f"expected a vector of shape ({size(tree)},), got {vector.shape}")
    start = 0
    for leaf in leaves(tree):
        leaf[...] = vector[start : start + leaf.size].reshape(leaf.shape)
        start += leaf.size
