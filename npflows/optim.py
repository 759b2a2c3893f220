"""Adam, the optimizer ``fit`` uses (Kingma & Ba 2015, arXiv:1412.6980).

Algorithm 1 of the paper, run on every parameter array θ with its gradient g, all operations
elementwise, t counting the steps taken so far (starting at 0, with m = v = 0):

    t ← t + 1
    m ← β₁ m + (1 − β₁) g                    (biased first moment)
    v ← β₂ v + (1 − β₂) g²                   (biased second raw moment)
    m̂ ← m / (1 − β₁ᵗ)                        (bias-corrected first moment)
    v̂ ← v / (1 − β₂ᵗ)                        (bias-corrected second raw moment)
    θ ← θ − α m̂ / (√v̂ + ε)

Defaults are the paper's: α = 1e-3, β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
"""

from __future__ import annotations

import numpy as np

from .tree import Tree, leaves, leaves_with_paths, tree_map

_CHUNK = 1 << 16  # entries updated at a time: 512 KiB in float64


class Adam:
    """Adam on a parameter tree, updating its arrays in place.

    Args:
        params: the live parameter tree to train, e.g. ``flow.params``. Its arrays are changed in
            place by :meth:`step`, so the layers that own them train.
        lr: the step size α > 0.
        betas: (β₁, β₂), the moment decay rates, each in [0, 1).
        eps: ε > 0, added to √v̂ so the step stays finite where v̂ = 0.

    Attributes:
        t: the number of steps taken.
        m, v: the first and second moment estimates, trees mirroring ``params`` (their dtypes),
            read-only properties whose arrays are live: writing into them changes the state.
    """

    def __init__(
        self,
        params: Tree,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        if not (np.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a positive finite number, got {eps!r}")
        for path, leaf in leaves_with_paths(params):
            if leaf.dtype not in (np.float32, np.float64) or not leaf.flags.writeable:
                raise ValueError(
                    f"Adam updates float32 or float64 arrays in place; {path!r} is a "
                    f"{'read-only ' if not leaf.flags.writeable else ''}{leaf.dtype} array"
                )
        self.params = params
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.t = 0
        # The leaves of one dtype keep their m and v in one flat vector each, so that a step is a
        # dozen operations on long vectors rather than a dozen per leaf (most leaves are small).
        self._groups = []  # per dtype: [(leaf index, start, stop, shape)], flat m, flat v
        param_leaves = leaves(params)
        for dtype in dict.fromkeys(leaf.dtype for leaf in param_leaves):
            spans, size = [], 0
            for i, leaf in enumerate(param_leaves):
                if leaf.dtype == dtype:
                    spans.append((i, size, size + leaf.size, leaf.shape))
                    size += leaf.size
            self._groups.append((spans, np.zeros(size, dtype), np.zeros(size, dtype)))

    @property
    def m(self) -> Tree:
        """The first moment estimates, a tree mirroring ``params`` of views into the flat vectors."""
        return self._as_tree(1)

    @property
    def v(self) -> Tree:
        """The second moment estimates, as :attr:`m`."""
        return self._as_tree(2)

    def _as_tree(self, which: int) -> Tree:
        views = {}
        for spans, *flat in self._groups:
            for i, start, stop, shape in spans:
                views[i] = flat[which - 1][start:stop].reshape(shape)
        in_order = iter(views[i] for i in range(len(views)))
        return tree_map(lambda _: next(in_order), self.params)

    def _aligned(self, tree: Tree, name: str) -> list[np.ndarray]:
        """The leaves of ``tree`` in the dtypes and order of ``params``' leaves, after
        checking that ``tree`` has exactly the same paths and shapes and only finite values."""
        given = dict(leaves_with_paths(tree))
        expected = {path: leaf for path, leaf in leaves_with_paths(self.params)}
        missing, extra = expected.keys() - given.keys(), given.keys() - expected.keys()
        if missing or extra:
            raise ValueError(
                f"{name} must mirror params; missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        out = []
        for path, param in expected.items():
            leaf = np.asarray(given[path], dtype=param.dtype)
            if leaf.shape != param.shape:
                raise ValueError(
                    f"{name}[{path!r}] must have shape {param.shape}, got {leaf.shape}"
                )
            if not np.isfinite(leaf).all():
                raise ValueError(f"{name}[{path!r}] has NaN or inf values; nothing was changed")
            out.append(leaf)
        return out

    def step(self, grads: Tree) -> None:
        """One step of Algorithm 1 with gradient ``grads`` (a tree mirroring ``params``).

        Raises ValueError, changing nothing, when ``grads`` does not have the paths and shapes of
        ``params`` or holds a NaN or inf.
        """
        pairs = []
        if _leaf_pairs(self.params, grads, pairs):
            param_leaves, g_leaves = [p for p, _ in pairs], [g for _, g in pairs]
        else:  # the full check says what is wrong, or converts leaves of another dtype
            param_leaves, g_leaves = leaves(self.params), self._aligned(grads, "grads")
        flat_grads = [
            np.concatenate([g_leaves[i].ravel() for i, *_ in spans], dtype=m.dtype)
            for spans, m, _ in self._groups
        ]
        if not all(np.isfinite(g).all() for g in flat_grads):
            self._aligned(grads, "grads")  # raises, naming the first leaf with a NaN or inf
        beta1, beta2 = self.betas
        self.t += 1
        correction1, correction2 = 1.0 - beta1**self.t, 1.0 - beta2**self.t
        for (spans, m_all, v_all), g_all in zip(self._groups, flat_grads, strict=True):
            step = np.empty_like(g_all)
            # In slices of _CHUNK entries, so that the temporaries stay in the cache.
            for start in range(0, len(g_all), _CHUNK):
                part = slice(start, start + _CHUNK)
                m, v, g = m_all[part], v_all[part], g_all[part]
                m *= beta1
                m += (1.0 - beta1) * g
                v *= beta2
                v += (1.0 - beta2) * g * g
                m_hat, v_hat = m / correction1, v / correction2
                step[part] = self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
            for i, start, stop, shape in spans:
                param_leaves[i] -= step[start:stop].reshape(shape)

    def state_dict(self) -> dict:
        """``{"t": steps taken, "m": tree, "v": tree}``, the arrays copied."""
        return {"t": self.t, "m": tree_map(np.copy, self.m), "v": tree_map(np.copy, self.v)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`, so that the next steps continue exactly where it left off.

        Raises ValueError, changing nothing, unless ``state`` has a non-negative integer ``"t"`` and
        trees ``"m"``, ``"v"`` with the paths and shapes of ``params``, finite, with ``v ≥ 0``.
        """
        if not isinstance(state, dict) or set(state) != {"t", "m", "v"}:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state must be a dict with keys ['m', 't', 'v'], got {got}")
        t = state["t"]
        if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or t < 0:
            raise ValueError(f"state['t'] must be a non-negative integer, got {t!r}")
        m_leaves, v_leaves = (
            self._aligned(state["m"], "state['m']"),
            self._aligned(state["v"], "state['v']"),
        )
        if any((v < 0).any() for v in v_leaves):
            raise ValueError("state['v'] must be non-negative: it estimates the mean of g²")
        for dst, src in zip(leaves(self.m) + leaves(self.v), m_leaves + v_leaves, strict=True):
            dst[...] = src
        self.t = int(t)


def _leaf_pairs(params: Tree, grads: Tree, pairs: list) -> bool:
    """Append ``(param, grad)`` for each leaf of ``params`` to ``pairs``, in its order. False (the
    pairs then incomplete) where ``grads`` differs in a key, a length or a leaf's shape, or has a
    leaf that is not a float array: :meth:`Adam._aligned` then decides. The walk is much cheaper
    than naming every leaf by its path, which it needs only to report an error."""
    if isinstance(params, dict):
        if not isinstance(grads, dict) or grads.keys() != params.keys():
            return False
        return all(_leaf_pairs(params[key], grads[key], pairs) for key in params)
    if isinstance(params, (list, tuple)):
        if not isinstance(grads, (list, tuple)) or len(grads) != len(params):
            return False
        return all(_leaf_pairs(p, g, pairs) for p, g in zip(params, grads, strict=True))
    if not (
        isinstance(grads, np.ndarray) and grads.dtype.kind == "f" and grads.shape == params.shape
    ):
        return False
    pairs.append((params, grads))
    return True
