"""A fixed permutation of the coordinates: a linear flow with Ω a permutation matrix.

Book: ch. 16, "Linear flows": permutations mix the coordinates between coupling or autoregressive
layers at no cost; |det Ω| = 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layer import Layer, RNGLike, as_rng, check_int


def check_perm(perm, dim: int) -> np.ndarray:
    """``perm`` as an int array, or ValueError unless it is a permutation of range(dim)."""
    p = np.asarray(perm)
    if p.shape != (dim,) or p.dtype.kind not in "iu" or set(p.tolist()) != set(range(dim)):
        raise ValueError(f"perm must be a permutation of range({dim}), got {perm!r}")
    return p.astype(np.intp)


class Permutation(Layer):
    """x = P z, (P z)_i = z_{perm[i]} (row-vector code: ``x = z[:, perm]``).

    Book: ch. 16, "Linear flows": f[h] = Ω h with Ω the permutation matrix Ω_{i, perm[i]} = 1.

    Args:
        dim: D.
        perm: "reverse" (default), "random" (drawn from ``rng``), or a sequence holding each of
            0, …, D − 1 once.
        rng: None, an int seed or a Generator; used only for ``perm="random"``.

    No parameters (``params == {}``). Log-det 0 both ways, shape (N,). Cost: O(D) per row.
    """

    def __init__(self, dim: int, perm: str | Sequence[int] = "reverse", rng: RNGLike = None):
        self.dim = check_int(dim, "dim")
        if isinstance(perm, str):
            if perm == "reverse":
                perm = np.arange(self.dim)[::-1]
            elif perm == "random":
                perm = as_rng(rng).permutation(self.dim)
            else:
                raise ValueError(f'perm must be "reverse", "random" or a sequence, got {perm!r}')
        self.perm = check_perm(perm, self.dim)
        self.params = {}

    def get_config(self) -> dict:
        return {"dim": self.dim, "perm": self.perm.tolist()}

    def _forward_vjp(self, z, context):
        perm = self.perm

        def pullback(grad_x, grad_log_det):
            # x[:, i] = z[:, perm[i]], so grad_z[:, perm[i]] = grad_x[:, i].
            grad_z = np.empty_like(grad_x)
            grad_z[:, perm] = grad_x
            return grad_z, {}

        return z[:, perm], np.zeros(len(z), dtype=z.dtype), pullback

    def _inverse_vjp(self, x, context):
        perm = self.perm
        z = np.empty_like(x)
        z[:, perm] = x  # undoes x = z[:, perm]

        def pullback(grad_z, grad_log_det):
            # z[:, perm[i]] = x[:, i], so grad_x[:, i] = grad_z[:, perm[i]].
            return grad_z[:, perm], {}

        return z, np.zeros(len(x), dtype=x.dtype), pullback
