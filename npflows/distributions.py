"""Base densities Pr(z) (book: ch. 16, "the base density is usually a standard normal")."""

from __future__ import annotations

import numpy as np

from .layer import RNGLike, as_rng, check_array, check_int

__all__ = ["StandardNormal"]

LOG_2PI = float(np.log(2.0 * np.pi))


class StandardNormal:
    """Pr(z) = N(z; 0, I):  log Pr(z) = −½‖z‖² − (D/2) log 2π.

    Args:
        dim: D, the number of coordinates.

    It has no parameters (``params == {}``), so flows built on it have a fixed base.
    """

    def __init__(self, dim: int):
        self.dim = check_int(dim, "dim")
        self.params: dict = {}

    def log_prob(self, z) -> np.ndarray:
        """log Pr(z) for z of shape (N, D); returns shape (N,)."""
        z = check_array(z, self.dim, "z")
        return self._log_prob(z)

    def _log_prob(self, z: np.ndarray) -> np.ndarray:
        return -0.5 * np.einsum("nd,nd->n", z, z) - 0.5 * self.dim * LOG_2PI

    def log_prob_vjp(self, z: np.ndarray):
        """``log Pr(z)`` (N,) and its pullback ``grad_logp (N,) -> (grad_z (N, D), {})``.

        ∂ log Pr(z) / ∂z = −z.
        """
        log_p = self._log_prob(z)

        def pullback(grad_log_p):
            return -grad_log_p[:, None] * z, {}

        return log_p, pullback

    def sample(self, n: int, rng: RNGLike = None) -> np.ndarray:
        """``n`` draws of shape (n, D), float64, from the ``rng`` given."""
        return as_rng(rng).standard_normal((check_int(n, "n", minimum=0), self.dim))

    def entropy(self) -> float:
        """Differential entropy in nats, (D/2)(1 + log 2π)."""
        return 0.5 * self.dim * (1.0 + LOG_2PI)

    def get_config(self) -> dict:
        return {"dim": self.dim}

    def __repr__(self) -> str:
        return f"StandardNormal(dim={self.dim})"
