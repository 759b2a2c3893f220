"""Adam, the optimizer ``fit`` uses (Kingma & Ba 2015, arXiv:1412.6980), with optional decoupled
weight decay (AdamW, Loshchilov & Hutter 2019, arXiv:1711.05101).

Algorithm 1 of the paper, run on every parameter array θ with its gradient g, all operations
elementwise, t counting the steps taken so far (starting at 0, with m = v = 0):

    t ← t + 1
    m ← β₁ m + (1 − β₁) g                    (biased first moment)
    v ← β₂ v + (1 − β₂) g²                   (biased second raw moment)
    m̂ ← m / (1 − β₁ᵗ)                        (bias-corrected first moment)
    v̂ ← v / (1 − β₂ᵗ)                        (bias-corrected second raw moment)
    θ ← θ − α m̂ / (√v̂ + ε) − α λ θ           (the last term only with weight decay λ > 0)

Defaults are the paper's: α = 1e-3, β₁ = 0.9, β₂ = 0.999, ε = 1e-8, and λ = 0. The decay is
decoupled from the gradient (it does not pass through m and v) and scaled by the current α, as in
PyTorch's AdamW, so a learning-rate schedule scales it too.

A step is applied entirely or not at all: every new array is computed before any is written, and
the writes run with Ctrl-C (SIGINT) held back until they are done, so an interrupt never leaves some
parameters moved and others not.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

import numpy as np

from ._loop import check_positive_float, check_real
from .tree import Tree, leaves, leaves_with_paths, tree_map


class Adam:
    """Adam on a parameter tree, updating its arrays in place.

    Args:
        params: the live parameter tree to train, e.g. ``flow.params``. Its arrays are changed in
            place by :meth:`step`, so the layers that own them train.
        lr: the step size α > 0. A plain attribute: a schedule sets it before each step.
        betas: (β₁, β₂), the moment decay rates, each in [0, 1).
        eps: ε > 0, added to √v̂ so the step stays finite where v̂ = 0.
        weight_decay: λ ≥ 0, the decoupled weight decay (0: plain Adam).

    Attributes:
        t: the number of steps taken.
        m, v: the first and second moment estimates, trees mirroring ``params`` (their dtypes),
            as copies: change the state with :meth:`load_state_dict` or :meth:`load`.
    """

    def __init__(
        self,
        params: Tree,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        weight_decay: float = 0.0,
    ):
        self.lr, self.betas, self.eps, self.weight_decay = _hyperparameters(
            lr, betas, eps, weight_decay
        )
        self._leaves = leaves(params)
        for path, leaf in leaves_with_paths(params):
            if leaf.dtype not in (np.float32, np.float64) or not leaf.flags.writeable:
                raise ValueError(
                    f"Adam updates float32 or float64 arrays in place; {path!r} is a "
                    f"{'read-only ' if not leaf.flags.writeable else ''}{leaf.dtype} array"
                )
        self.params = params
        self.t = 0
        # The leaves of one dtype keep m and v in one flat vector each, so that a step is a dozen
        # operations on long vectors rather than a dozen per leaf (most leaves are small; per leaf
        # measured slower, see benchmarks/README.md). The next moments are computed into spare
        # vectors and the step into a buffer viewed in every leaf's shape, so that nothing is
        # written until all is computed.
        dtypes = dict.fromkeys(p.dtype for p in self._leaves)
        self._groups = [_Group(self._leaves, dtype) for dtype in dtypes]

    @property
    def m(self) -> Tree:
        """The first moment estimates, a tree mirroring ``params`` (copies of the state)."""
        return self._as_tree(lambda group: group.m)

    @property
    def v(self) -> Tree:
        """The second moment estimates, a tree mirroring ``params`` (copies of the state)."""
        return self._as_tree(lambda group: group.v)

    def _as_tree(self, moment) -> Tree:
        arrays = {}
        for group in self._groups:
            for i, start, stop, shape in group.spans:
                arrays[i] = moment(group)[start:stop].reshape(shape).copy()
        in_order = iter(arrays[i] for i in range(len(self._leaves)))
        return tree_map(lambda _: next(in_order), self.params)

    def step(self, grads: Tree) -> None:
        """One step of Algorithm 1 with gradient ``grads`` (a tree mirroring ``params``).

        Raises ValueError, changing nothing, when ``grads`` does not have the keys and shapes of
        ``params``, is not real-valued, or holds a NaN or inf.
        """
        g_leaves = _aligned(self.params, grads, "grads", finite=False)
        beta1, beta2 = self.betas
        t = self.t + 1
        correction1, correction2 = 1.0 - beta1**t, 1.0 - beta2**t
        for group in self._groups:
            g = np.concatenate([g_leaves[i].ravel() for i, *_ in group.spans], dtype=group.dtype)
            if not np.isfinite(g).all():
                _aligned(self.params, grads, "grads")  # raises, naming the first bad leaf
            np.multiply(group.m, beta1, out=group.next_m)
            group.next_m += (1.0 - beta1) * g
            g_squared = (1.0 - beta2) * g
            g_squared *= g
            np.multiply(group.v, beta2, out=group.next_v)
            group.next_v += g_squared
            step, denominator = group.step, g_squared  # reuses the temporary's memory
            np.divide(group.next_m, correction1, out=step)
            step *= self.lr
            np.divide(group.next_v, correction2, out=denominator)
            np.sqrt(denominator, out=denominator)
            denominator += self.eps
            step /= denominator
            if self.weight_decay:
                for (i, *_), view in zip(group.spans, group.step_views, strict=True):
                    view += (self.lr * self.weight_decay) * self._leaves[i]
        with _interrupts_deferred():  # nothing was written above; now write it all
            for group in self._groups:
                for (i, *_), view in zip(group.spans, group.step_views, strict=True):
                    self._leaves[i] -= view
                group.m, group.next_m = group.next_m, group.m
                group.v, group.next_v = group.next_v, group.v
            self.t = t

    def state_dict(self) -> dict:
        """``{"t": steps taken, "m": tree, "v": tree}``, the arrays copied."""
        return {"t": self.t, "m": tree_map(np.copy, self.m), "v": tree_map(np.copy, self.v)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`, so that the next steps continue exactly where it left off.

        Raises ValueError, changing nothing, unless ``state`` has a non-negative integer ``"t"`` and
        trees ``"m"``, ``"v"`` with the keys and shapes of ``params``, finite, with ``v ≥ 0``.
        """
        if not isinstance(state, dict) or set(state) != {"t", "m", "v"}:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state must be a dict with keys ['m', 't', 'v'], got {got}")
        t = state["t"]
        if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or t < 0:
            raise ValueError(f"state['t'] must be a non-negative integer, got {t!r}")
        m_leaves = _aligned(self.params, state["m"], "state['m']")
        v_leaves = _aligned(self.params, state["v"], "state['v']")
        if any((v < 0).any() for v in v_leaves):
            raise ValueError("state['v'] must be non-negative: it estimates the mean of g²")
        flat = [
            [
                np.concatenate([leaves[i].ravel() for i, *_ in g.spans], dtype=g.dtype)
                for g in self._groups
            ]
            for leaves in (m_leaves, v_leaves)
        ]
        with _interrupts_deferred():
            for group, m, v in zip(self._groups, *flat, strict=True):
                group.m, group.v = m, v
            self.t = int(t)

    def save(self, path) -> None:
        """Write the state (t, m, v) and the hyperparameters to an ``.npz`` file at ``path``.

        Arrays are stored under ``m/<leaf path>`` and ``v/<leaf path>`` (the paths of
        ``npflows.tree.leaves_with_paths``); no pickled objects, so :meth:`load` reads it with
        ``allow_pickle=False``. Save it beside the model (``npflows.save``) to resume training.
        """
        arrays = {"t": np.array(self.t), "lr": np.array(self.lr), "eps": np.array(self.eps)}
        arrays |= {"betas": np.array(self.betas), "weight_decay": np.array(self.weight_decay)}
        paths = [path for path, _ in leaves_with_paths(self.params)]
        for prefix, tree in (("m", self.m), ("v", self.v)):
            arrays |= {f"{prefix}/{p}": a for p, a in zip(paths, leaves(tree), strict=True)}
        np.savez(path, **arrays)

    def load(self, path) -> None:
        """Restore what :meth:`save` wrote, for this optimizer's ``params`` (same paths and shapes):
        the state and the hyperparameters. Raises ValueError, changing nothing, for a file that
        does not match."""
        with np.load(path, allow_pickle=False) as file:
            stored = {name: file[name] for name in file.files}
        fixed = ("t", "lr", "betas", "eps", "weight_decay")
        missing = [name for name in fixed if name not in stored]
        if missing:
            raise ValueError(f"{path} is not an Adam state file: it lacks {missing}")
        hyper = _hyperparameters(*(stored[name].tolist() for name in fixed[1:]))

        def tree(prefix):
            arrays = iter(
                stored.get(f"{prefix}/{path}") for path, _ in leaves_with_paths(self.params)
            )
            return tree_map(lambda p: _or_missing(next(arrays), prefix, p), self.params)

        self.load_state_dict({"t": stored["t"].item(), "m": tree("m"), "v": tree("v")})
        self.lr, self.betas, self.eps, self.weight_decay = hyper


def _hyperparameters(lr, betas, eps, weight_decay) -> tuple:
    """(lr, betas, eps, weight_decay) checked, as floats; TypeError/ValueError naming the bad one."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    betas = tuple(check_real(b, f"betas[{i}]", 0.0, high=1.0) for i, b in enumerate(betas))
    lr, eps = check_positive_float(lr, "lr"), check_positive_float(eps, "eps")
    return lr, betas, eps, check_real(weight_decay, "weight_decay", 0.0)


class _Group:
    """The leaves of one dtype: their places in the flat vectors, the moments and the step buffer."""

    def __init__(self, param_leaves: list[np.ndarray], dtype: np.dtype):
        self.dtype, self.spans, size = dtype, [], 0  # spans: (leaf index, start, stop, shape)
        for i, leaf in enumerate(param_leaves):
            if leaf.dtype == dtype:
                self.spans.append((i, size, size + leaf.size, leaf.shape))
                size += leaf.size
        self.m, self.v, self.next_m, self.next_v, self.step = (
            np.zeros(size, dtype) for _ in range(5)
        )
        self.step_views = [self.step[a:b].reshape(shape) for _, a, b, shape in self.spans]


def _or_missing(array, prefix, param):
    if array is None:
        raise ValueError(f"the Adam state file has no {prefix} entry for a {param.shape} parameter")
    return array


def _aligned(params: Tree, tree: Tree, name: str, finite: bool = True) -> list[np.ndarray]:
    """The leaves of ``tree`` in the order and dtypes of ``params``' leaves, matched by key (not by
    position, so a dict built in another key order is read correctly), after checking that it has
    the same keys and shapes, real values, and (if ``finite``) no NaN or inf; else ValueError
    naming the place."""
    out: list[np.ndarray] = []
    try:
        _align_into(params, tree, finite, out)
    except _Mismatch as mismatch:
        where = "/".join(reversed(mismatch.keys))
        raise ValueError(f"{name}[{where!r}] {mismatch.problem}; nothing was changed") from None
    return out


class _Mismatch(Exception):
    """What is wrong where; ``keys`` collects the path from the leaf up, only when raised."""

    def __init__(self, problem: str):
        self.problem, self.keys = problem, []


def _align_into(params, tree, finite, out):
    if isinstance(params, dict):
        if not isinstance(tree, dict) or tree.keys() != params.keys():
            given = set(tree) if isinstance(tree, dict) else set()
            raise _Mismatch(
                f"must mirror params: missing {sorted(params.keys() - given)}, "
                f"unexpected {sorted(given - params.keys(), key=str)}"
                + ("" if isinstance(tree, dict) else f" (got a {type(tree).__name__})")
            )
        for key, sub in params.items():
            try:
                _align_into(sub, tree[key], finite, out)
            except _Mismatch as mismatch:
                mismatch.keys.append(key)
                raise
    elif isinstance(params, (list, tuple)):
        if not isinstance(tree, (list, tuple)) or len(tree) != len(params):
            raise _Mismatch(f"must be a list of {len(params)} like params, got {tree!r:.60}")
        for i, (sub, sub_tree) in enumerate(zip(params, tree, strict=True)):
            try:
                _align_into(sub, sub_tree, finite, out)
            except _Mismatch as mismatch:
                mismatch.keys.append(str(i))
                raise
    else:
        leaf = tree if isinstance(tree, np.ndarray) else np.asarray(tree)
        if leaf.dtype.kind not in "fiu":
            raise _Mismatch(f"must be a real float array, got dtype {leaf.dtype}")
        if leaf.shape != params.shape:
            raise _Mismatch(f"must have shape {params.shape}, got {leaf.shape}")
        if finite and not np.isfinite(leaf).all():
            raise _Mismatch("has NaN or inf values")
        out.append(leaf.astype(params.dtype, copy=False))


@contextmanager
def _interrupts_deferred():
    """Hold back a SIGINT (Ctrl-C) arriving inside the block, and deliver it when the block ends.

    Only the main thread receives signals and may set handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN or SIG_DFL: nothing Python-level to hold back
        yield
        return
    caught = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            previous(*caught[0])  # the default handler raises KeyboardInterrupt here
