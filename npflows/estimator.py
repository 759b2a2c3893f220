"""A scikit-learn style density estimator around the prebuilt flows (no scikit-learn needed).

>>> est = FlowDensity(flow="nsf", epochs=50, random_state=0).fit(X)     # doctest: +SKIP
>>> est.score_samples(X_new)     # log-density of each row, shape (n,)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np

from . import flows
from .flow import Flow
from .layer import RNGLike, as_rng, check_array
from .train import History, fit

__all__ = ["FlowDensity"]

BUILDERS = {
    "nsf": flows.NSF,
    "realnvp": flows.RealNVP,
    "nice": flows.NICE,
    "piecewise-linear": flows.PiecewiseLinearFlow,
    "maf": flows.MAF,
    "maf-spline": lambda dim, **kw: flows.MAF(dim, transformer="spline", **kw),
}


class FlowDensity:
    """Density estimation with a normalizing flow, in the scikit-learn estimator style.

    Hyperparameters are stored unchanged by ``__init__``; ``fit`` builds and trains the flow.
    With ``standardize=True`` the flow models u = (x − mean_) / scale_, and the log-det of that
    map is counted: log p(x) = log q(u) − Σ_d log scale_d.

    Args:
        flow: one of "nsf", "realnvp", "nice", "piecewise-linear", "maf", "maf-spline".
        n_layers: layers of the flow (None: the builder's default).
        hidden: hidden widths of the conditioner networks.
        flow_kwargs: other keyword arguments for the builder in :mod:`npflows.flows` (e.g. bins).
        epochs, batch_size, lr, validation_fraction, patience: as :func:`npflows.fit`.
        standardize: standardize each column before the flow (recommended: spline flows act on
            [−bound, bound]).
        random_state: None, an int or a Generator: the flow's initialization and training.
        progress: show training progress.

    Fitted attributes: ``flow_`` (the trained :class:`Flow`), ``history_`` (:class:`History`),
    ``mean_``, ``scale_`` (D,), ``n_features_in_``.
    """

    def __init__(
        self,
        flow: str = "nsf",
        n_layers: int | None = None,
        hidden: Sequence[int] = (64, 64),
        flow_kwargs: dict | None = None,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        validation_fraction: float = 0.1,
        patience: int | None = 10,
        standardize: bool = True,
        random_state: RNGLike = None,
        progress: bool = False,
    ):
        self.flow = flow
        self.n_layers = n_layers
        self.hidden = hidden
        self.flow_kwargs = flow_kwargs
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.standardize = standardize
        self.random_state = random_state
        self.progress = progress

    # -- scikit-learn's parameter protocol (what sklearn.base.clone uses) --------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor arguments, as given."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> FlowDensity:
        """Set constructor arguments by name; returns self."""
        unknown = set(params) - set(self._param_names())
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {sorted(unknown)}; valid: {self._param_names()}"
            )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = {k: v for k, v in self.get_params().items() if v is not defaults[k]}
        return f"FlowDensity({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # -- estimation -------------------------------------------------------------------------------
    def fit(self, X, y=None) -> FlowDensity:
        """Build the flow and train it on X (n_samples, n_features) by maximum likelihood."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        X = check_array(X, X.shape[1], "X")
        if self.flow not in BUILDERS:
            raise ValueError(f"flow must be one of {sorted(BUILDERS)}, got {self.flow!r}")
        rng = as_rng(self.random_state)
        dim = X.shape[1]
        self.mean_ = X.mean(axis=0) if self.standardize else np.zeros(dim)
        scale = X.std(axis=0) if self.standardize else np.ones(dim)
        self.scale_ = np.where(scale > 0, scale, 1.0)  # a constant column is left unscaled
        kwargs = dict(self.flow_kwargs or {}, hidden=tuple(self.hidden), rng=rng)
        if self.n_layers is not None:
            kwargs["n_layers"] = self.n_layers
        self.flow_: Flow = BUILDERS[self.flow](dim, **kwargs)
        self.history_: History = fit(
            self.flow_,
            (X - self.mean_) / self.scale_,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            validation_fraction=self.validation_fraction,
            patience=self.patience,
            rng=rng,
            progress=self.progress,
        )
        self.n_features_in_ = dim
        return self

    def _check_fitted(self, X=None):
        if not hasattr(self, "flow_"):
            raise ValueError("this FlowDensity is not fitted yet: call fit(X) first")
        return None if X is None else check_array(X, self.n_features_in_, "X")

    def score_samples(self, X) -> np.ndarray:
        """log p(x) of each row (nats), shape (n_samples,)."""
        X = self._check_fitted(X)
        u = (X - self.mean_) / self.scale_
        return self.flow_.log_prob(u) - np.log(self.scale_).sum()

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of the rows of X (nats)."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_state: RNGLike = None) -> np.ndarray:
        """Draw ``n_samples`` rows, shape (n_samples, n_features)."""
        self._check_fitted()
        return self.flow_.sample(n_samples, random_state) * self.scale_ + self.mean_
