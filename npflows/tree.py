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
            if not isinstance(key, str) or "/" in key or not key:
                raise ValueError(
                    f"parameter names must be non-empty strings without '/', got {key!r}"
                )
            yield from leaves_with_paths(sub, f"{prefix}{key}/")
    elif isinstance(tree, (list, tuple)):
        for i, sub in enumerate(tree):
            yield from leaves_with_paths(sub, f"{prefix}{i}/")
    elif isinstance(tree, np.ndarray):
        yield prefix[:-1], tree
    else:
        raise ValueError(
            f"a parameter tree holds dicts, lists and arrays, got {type(tree).__name__}"
        )


def leaves(tree: Tree) -> list[np.ndarray]:
    """The arrays of ``tree`` in visiting order."""
    return [leaf for _, leaf in leaves_with_paths(tree)]


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


def flatten(tree: Tree) -> np.ndarray:
    """All leaves raveled and concatenated into one float64 vector."""
    parts = [leaf.ravel() for leaf in leaves(tree)]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def assign_flat(tree: Tree, vector: np.ndarray) -> None:
    """Write ``vector`` (as made by :func:`flatten`) into the leaves of ``tree`` in place."""
    vector = np.asarray(vector)
    if vector.shape != (size(tree),):
        raise ValueError(f"expected a vector of shape ({size(tree)},), got {vector.shape}")
    start = 0
    for leaf in leaves(tree):
        leaf[...] = vector[start : start + leaf.size].reshape(leaf.shape)
        start += leaf.size
