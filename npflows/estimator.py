"""A scikit-learn style density estimator around the prebuilt flows (no scikit-learn needed).

>>> est = FlowDensity(flow="nsf", epochs=50, random_state=0).fit(X)     # doctest: +SKIP
>>> est.score_samples(X_new)     # log-density of each row, shape (n,)  # doctest: +SKIP

Conditional: with ``context_columns=k`` the last k columns of X are a context c, and the estimator
models p(x | c) of the other columns (see :class:`FlowDensity`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np

from . import flow_names
from .context_map import absorb_context_map, context_map_from_data
from .flow import Flow
from .layer import RNGLike, as_rng
from .layers.standardize import MIN_ROWS, standardized
from .train import History, fit

__all__ = ["FlowDensity", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """A FlowDensity used before ``fit`` (a ValueError and an AttributeError, as scikit-learn's)."""


class FlowDensity:
    """Density estimation with a normalizing flow, in the scikit-learn estimator style.

    Hyperparameters are stored unchanged by ``__init__``; ``fit`` builds and trains the flow.
    With ``standardize=True`` (the default) the flow ends, on its data side, in a fixed
    :class:`~npflows.Standardize` estimated from the training data (:func:`npflows.standardized`):
    x = mean_ + scale_ ⊙ u, its log-det counted, so log p(x) = log q(u) − Σ_d log scale_d and the
    fit is scale-equivariant (rescaling X by a adds D log a to every NLL, nothing else changes).

    Args:
        flow: a name of :data:`npflows.flow_names.BUILDERS` ("nsf", "realnvp", "nice",
            "piecewise-linear", "maf", "maf-spline", "spline", "gaussian", …), or "auto": "spline"
            for one feature, "nsf" for more.
        n_layers: layers of the flow (None: the builder's default).
        hidden: hidden widths of the conditioner networks.
        flow_kwargs: other keyword arguments for the builder in :mod:`npflows.flows` (e.g. bins).
        epochs, batch_size, lr, validation_fraction, patience: as :func:`npflows.fit` (lr None:
            fit's default schedule, warm-up and cosine decay from 1e-3; a number: constant).
        standardize: put the fixed standardization on the data side (recommended: spline flows
            act on [−bound, bound]); refuses data with a (nearly) constant feature.
        random_state: None, an int or a Generator: the flow's initialization and training.
        progress: show training progress.
        context_columns: k ≥ 0. With k > 0 the last k columns of X are a context c and the
            estimator is a conditional density p(x | c) of the first n_features − k columns:
            ``score_samples(X)`` is log p(x | c) of each row and ``sample(n, context=c)`` draws x
            given c. Keeping c inside X (rather than passing it as ``y``) lets pipelines,
            grid searches and cross-validation split and score rows of (x, c) together. With
            ``standardize=True`` the context is standardized for training too (its column means
            and standard deviations, a constant column refused) and that fixed map is then folded
            into the conditioners' first weights (:func:`npflows.context_map.absorb_context_map`),
            so ``flow_`` takes the raw context. The flow must be one with a context
            (``flow="auto"`` is "nsf" then).

    Fitted attributes:
        flow_: the trained :class:`~npflows.Flow`, a density of the data itself in data units:
            ``flow_.log_prob(X) == score_samples(X)`` and ``flow_.sample(n)`` draws data rows.
            With ``standardize=True`` its last layer is the :class:`~npflows.Standardize`.
        history_: the :class:`~npflows.History` of training.
        mean_, scale_: (n_features − k,) the standardization (zeros and ones without it).
        context_mean_, context_scale_: (k,) the context's standardization (folded into
            ``flow_``; zeros and ones without it).
        n_features_in_: the number of features seen by ``fit``, context columns included.

    scikit-learn is not needed; with it installed (≥ 1.6) the estimator works in pipelines, grid
    searches and cross-validation (``score`` is the mean log-likelihood, higher is better).
    """

    def __init__(
        self,
        flow: str = "auto",
        n_layers: int | None = None,
        hidden: Sequence[int] = (64, 64),
        flow_kwargs: dict | None = None,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float | None = None,
        validation_fraction: float = 0.1,
        patience: int | None = 10,
        standardize: bool = True,
        random_state: RNGLike = None,
        progress: bool = False,
        context_columns: int = 0,
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
        self.context_columns = context_columns

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

    def __sklearn_tags__(self):
        """scikit-learn's tags (imported only when scikit-learn asks): an unsupervised density
        estimator of dense, finite, numeric 2-D data."""
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="density_estimator",
            target_tags=TargetTags(required=False),
            input_tags=InputTags(two_d_array=True, sparse=False, allow_nan=False),
        )

    # -- estimation -------------------------------------------------------------------------------
    def fit(self, X, y=None) -> FlowDensity:
        """Build the flow and train it on X (n_samples, n_features) by maximum likelihood; ``y``
        is ignored (a context is given as X's last ``context_columns`` columns). Returns self."""
        self._check_hyperparameters()
        X = _as_samples(X)
        n, n_features = X.shape
        if n < MIN_ROWS:
            raise ValueError(
                f"FlowDensity needs at least {MIN_ROWS} samples to fit, got n_samples = {n}"
            )
        k = self.context_columns
        if k >= n_features:
            raise ValueError(
                f"context_columns = {k} leaves no data column: X has {n_features} feature(s)"
            )
        X, context = X[:, : n_features - k], (X[:, n_features - k :] if k else None)
        dim = n_features - k
        auto = "spline" if dim == 1 and not k else "nsf"
        name = auto if self.flow == "auto" else self.flow
        options = dict(
            self.flow_kwargs or {}, hidden=tuple(self.hidden), rng=as_rng(self.random_state)
        )
        if self.n_layers is not None:
            options["n_layers"] = self.n_layers
        if k:
            options["context_dim"] = k
        try:
            flow = flow_names.build(name, dim, **options)
        except TypeError as error:
            if not k or "context_dim" not in str(error):
                raise
            raise ValueError(
                f"the {name} flow takes no context; with context_columns use a conditional flow "
                "such as 'nsf', 'realnvp', 'maf' or 'auto'"
            ) from error
        except ValueError as error:
            if dim > 1:
                raise
            raise ValueError(
                f"the {name} flow cannot model n_features = 1 ({error}); for one feature use "
                "flow='spline' or 'auto'"
            ) from error
        if not flow.has_inverse_vjp:
            raise ValueError(
                f"the {name} flow has no inverse_vjp (its density is computed one coordinate at a time), so it cannot "
                "be fitted to data; use maf, its mirror"
            )
        if self.standardize:
            flow = standardized(flow, X)
            mean, scale = flow.layers[-1].mean.copy(), flow.layers[-1].scale.copy()
        else:
            mean, scale = np.zeros(dim), np.ones(dim)
        context_map = context_map_from_data(context) if k and self.standardize else None
        history = fit(
            flow,
            X,
            context=context if context_map is None else context_map.inverse(context)[0],
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            validation_fraction=self.validation_fraction,
            patience=self.patience,
            rng=options["rng"],
            progress=self.progress,
        )
        if context_map is not None:
            absorb_context_map(flow, context_map)
        # Set only now, together: a fit that raises leaves a previous fit's attributes as they were.
        self.flow_: Flow = flow
        self.history_: History = history
        self.mean_, self.scale_ = mean, scale
        self.context_mean_ = np.zeros(k) if context_map is None else context_map.mean.copy()
        self.context_scale_ = np.ones(k) if context_map is None else context_map.scale.copy()
        self.n_features_in_ = n_features
        return self

    def _check_hyperparameters(self) -> None:
        """TypeError/ValueError naming a hyperparameter that cannot work (``fit`` checks the
        training ones: epochs, batch_size, lr's range, validation_fraction, patience)."""
        if self.flow != "auto" and self.flow not in flow_names.BUILDERS:
            raise ValueError(
                f"flow must be 'auto' or one of {sorted(flow_names.BUILDERS)}, got {self.flow!r}"
            )
        hidden = self.hidden
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise TypeError(f"hidden must be a sequence of positive integers, got {hidden!r}")
        if not all(_is_int(h) and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be a sequence of positive integers, got {hidden!r}")
        if self.flow_kwargs is not None:
            if not isinstance(self.flow_kwargs, dict):
                raise TypeError(f"flow_kwargs must be None or a dict, got {self.flow_kwargs!r}")
            own = sorted({"hidden", "n_layers", "rng"} & set(self.flow_kwargs))
            if own:
                raise ValueError(
                    f"flow_kwargs must not hold {own}: set FlowDensity's own hidden, n_layers "
                    "and random_state instead"
                )
        if not _is_int(self.context_columns):
            raise TypeError(
                f"context_columns must be a non-negative integer, got {self.context_columns!r}"
            )
        if self.context_columns < 0:
            raise ValueError(f"context_columns must be at least 0, got {self.context_columns}")
        for name in ("standardize", "progress"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.lr is not None and (
            isinstance(self.lr, (bool, np.bool_))
            or not isinstance(self.lr, (int, float, np.number))
        ):
            raise TypeError(f"lr must be a number or None, got {self.lr!r}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "flow_"):
            raise NotFittedError(
                "This FlowDensity instance is not fitted yet. Call 'fit' with appropriate "
                "arguments before using this estimator."
            )

    def score_samples(self, X) -> np.ndarray:
        """log p(x) of each row (nats), shape (n_samples,); with ``context_columns=k``,
        log p(x | c) with c the row's last k columns."""
        self._check_fitted()
        X = _as_samples(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but FlowDensity is expecting "
                f"{self.n_features_in_} features as input"
            )
        k = self.flow_.context_dim
        if not k:
            return self.flow_.log_prob(X)
        return self.flow_.log_prob(X[:, :-k], context=X[:, -k:])

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of the rows of X (nats); ``y`` is ignored."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_state: RNGLike = None, context=None) -> np.ndarray:
        """Draw ``n_samples`` rows, shape (n_samples, n_features).

        Conditional (``context_columns=k``): draws x given ``context`` (raw, as in X's last k
        columns), one row (k,) or (1, k) for all draws or (n_samples, k), and returns the data
        columns only, shape (n_samples, n_features − k)."""
        self._check_fitted()
        if not _is_int(n_samples):
            raise TypeError(f"n_samples must be an integer, got {n_samples!r}")
        if n_samples < 0:
            raise ValueError(f"n_samples must be non-negative, got {n_samples}")
        k = self.flow_.context_dim
        if k and context is None:
            raise ValueError(
                f"this FlowDensity is conditional (context_columns={k}): pass context, one row "
                f"of {k} value(s) or one row per sample"
            )
        if context is not None:
            context = _as_context(context, k)
        return self.flow_.sample(int(n_samples), random_state, context=context)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _as_context(context, k: int) -> np.ndarray:
    """A context for ``sample`` as float64 (the flow checks its shape), or a ValueError when the
    estimator is unconditional."""
    if not k:
        raise ValueError("this FlowDensity is not conditional (context_columns=0); pass no context")
    context = np.asarray(context)
    if context.dtype.kind in "biu":
        context = context.astype(np.float64)
    return context


def _as_samples(X) -> np.ndarray:
    """X as a finite float array (float32 kept, other numbers as float64) of shape (n_samples,
    n_features), or the error scikit-learn's conventions expect, naming the problem."""
    if X is None:
        raise TypeError("X must be an array-like of shape (n_samples, n_features), got None")
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(
            "sparse data is not supported by FlowDensity: pass a dense array (X.toarray())"
        )
    X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported: X must hold real numbers")
    if X.dtype.kind == "O":
        X = X.astype(np.float64)  # numbers stored as objects; anything else raises TypeError
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold numbers, got an array of dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead: X must have shape (n_samples, "
            "n_features); reshape one feature with X.reshape(-1, 1)"
        )
    for axis, what in ((0, "sample"), (1, "feature")):
        if X.shape[axis] == 0:
            raise ValueError(
                f"Found array with 0 {what}(s) (shape={X.shape}) while a minimum of 1 is required."
            )
    X = X if X.dtype in (np.float32, np.float64) else X.astype(np.float64)
    if np.isnan(X).any():
        raise ValueError(f"Input X contains NaN (first in row {np.argwhere(np.isnan(X))[0, 0]}).")
    if not np.isfinite(X).all():
        row = np.argwhere(~np.isfinite(X))[0, 0]
        raise ValueError(f"Input X contains infinity (first in row {row}).")
    return X
