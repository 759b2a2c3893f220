"""``from_zuko``: rebuild a zuko 1.6 ``RealNVP``, ``MAF`` or ``NSF`` from its ``state_dict`` arrays.

What zuko computes (zuko/flows/coupling.py, autoregressive.py, spline.py; zuko/nn.py;
zuko/transforms.py), in zuko's direction x → z, transform t_0 first:
- RealNVP (NICE with affine maps): layer i keeps the coordinates where ``mask`` is True (by
  default j % 2 == i % 2; ``randmask`` draws it, and the buffer ``transforms.i.mask`` holds it) and
  transforms the others with MonotonicAffineTransform, θ = MLP([x_a, c]) laid out (|b|, 2) as
  (shift, raw scale).
- MAF: layer i is fully autoregressive in ``order`` (ascending for even i, descending for odd, or
  random with ``randperm``; the buffer ``transforms.i.order`` holds order // ⌈D / passes⌉), with a
  MaskedMLP on [x, c] whose output block of coordinate j sees the coordinates of lower rank and all
  of c; univariate map MonotonicAffineTransform. NSF is MAF with MonotonicRQSTransform(bins, slope,
  bound 5).
- Base: DiagNormal(loc 0, scale 1), stored as buffers ``base.loc`` and ``base.scale``.
docs/interop.md gives the maps' formulas; :mod:`npflows.interop.transformers` implements them.
"""

from __future__ import annotations

import math

import numpy as np

from ..flow import Flow
from .layers import autoregressive_layer, coupling_layer
from .nets import Dense, Sequential, zuko_made_masks
from .state import StateDict, options, positive_int
from .transformers import zuko_affine, zuko_spline

COMMON = {"features": None, "context": 0, "transforms": 3, "hidden_features": (64, 64)}
REFUSED = {
    "activation": "npflows rebuilds zuko's default ReLU only",
    "normalize": "layer normalization in the hyper network is not imported",
    "residual": "residual MaskedMLP blocks are not imported",
    "univariate": "only the class's own univariate map is imported",
    "shapes": "only the class's own univariate map is imported",
    "adjacency": "a custom adjacency matrix is not imported",
    "order": "MAF sets the orders itself",
    "mask": "RealNVP sets the masks itself",
    "bias": "networks without biases are not imported",
}
CLASSES = ("MAF", "NSF", "RealNVP")


def from_zuko(name: str, arrays, **kwargs) -> Flow:
    """The npflows :class:`~npflows.Flow` that computes what ``zuko.flows.<name>(**kwargs)`` with
    these arrays computes, in float64.

    Args:
        name: "MAF", "NSF" or "RealNVP".
        arrays: maps every key of the model's ``state_dict()`` to its numpy array, e.g.
            ``np.load("model.npz")`` after
            ``np.savez("model.npz", **{k: v.detach().numpy() for k, v in model.state_dict().items()})``.
            float32 arrays are converted to float64 exactly and the flow computes in float64.
        kwargs: zuko's constructor arguments: ``features``, ``context``, ``transforms``,
            ``hidden_features``, and ``randmask`` (RealNVP), ``randperm`` and ``passes`` (MAF, NSF),
            ``bins`` and ``slope`` (NSF). Random masks and orders are read from their buffers.

    Returns a Flow with ``log_prob(x, context=c)`` equal to zuko's ``model(c).log_prob(x)`` and
    ``forward(z, context=c)[0]`` equal to zuko's sampling map ``model(c).transform.inv(z)``.
    Unknown or unsupported arguments, missing or extra keys and wrong shapes raise errors naming
    them. Its layers have no pullbacks: it scores and samples, it does not train.
    """
    if name not in CLASSES:
        raise ValueError(f"from_zuko imports {', '.join(CLASSES)}; got {name!r}")
    if name == "RealNVP":
        defaults = {**COMMON, "randmask": False}
    else:
        defaults = {**COMMON, "randperm": False, "passes": None}
        if name == "NSF":
            defaults.update(bins=8, slope=1e-3)
    opts = options(f"zuko.flows.{name}", kwargs, defaults, REFUSED)
    if opts["features"] is None:
        raise TypeError(f"zuko.flows.{name} needs the keyword argument 'features'")
    features = positive_int("features", opts["features"], 2)
    context = positive_int("context", opts["context"], 0)
    transforms = positive_int("transforms", opts["transforms"], 1)
    hidden = _hidden(opts["hidden_features"])
    state = StateDict(arrays, "zuko")
    if name == "RealNVP":
        layers = [
            _coupling(state, i, features, context, hidden, opts["randmask"])
            for i in range(transforms)
        ]
    else:
        if name == "NSF":
            bins = positive_int("bins", opts["bins"], 1)
            slope = opts["slope"]
            if not (isinstance(slope, (int, float)) and 0 < slope < 1):
                raise ValueError(f"slope must lie in (0, 1), got {slope!r}")
            transformer = zuko_spline(bins, 5.0, float(slope))
        else:
            transformer = zuko_affine()
        passes = features if opts["passes"] is None else positive_int("passes", opts["passes"])
        passes = min(passes, features)
        layers = [
            _autoregressive(
                state, i, features, context, hidden, transformer, opts["randperm"], passes
            )
            for i in range(transforms)
        ]
    for key in ("base.loc", "base.scale"):
        value = state.float(key, (features,))
        if not np.array_equal(
            value, np.zeros(features) if key == "base.loc" else np.ones(features)
        ):
            raise ValueError(
                f"{key!r} must be all {0 if key == 'base.loc' else 1} (zuko's N(0, I))"
            )
    state.finish()
    return Flow(layers[::-1])  # zuko's transforms[0] meets the data: npflows lists base side first


def _hidden(value) -> tuple[int, ...]:
    if isinstance(value, (int, str)) or not hasattr(value, "__iter__"):
        raise ValueError(f"hidden_features must be a sequence of widths, got {value!r}")
    return tuple(positive_int("hidden_features entries", h) for h in value)


def _mlp(state, prefix, widths, masks=None):
    """zuko's MLP/MaskedMLP at ``prefix``: Linear modules at indices 0, 2, 4, … (ReLUs between)."""
    layers = []
    for j, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        key = f"{prefix}.{2 * j}"
        weight = state.float(f"{key}.weight", (fan_out, fan_in))
        bias = state.float(f"{key}.bias", (fan_out,))
        mask = None
        if masks is not None:
            state.exact(f"{key}.mask", masks[j])
            mask = masks[j]
        layers.append(Dense(weight, bias, mask))
    return Sequential(layers)


def _coupling(state, i, features, context, hidden, randmask):
    prefix = f"transform.transforms.{i}"
    if randmask:
        keep = state.booleans(f"{prefix}.mask", (features,))
        if keep.all() or not keep.any():
            raise ValueError(f"{prefix}.mask must keep some coordinates and transform others")
    else:
        keep = np.arange(features) % 2 == i % 2
        state.exact(f"{prefix}.mask", keep)
    n_a, n_b = int(keep.sum()), int((~keep).sum())
    transformer = zuko_affine()
    net = _mlp(state, f"{prefix}.hyper", (n_a + context, *hidden, n_b * transformer.n_params))
    return coupling_layer(
        features, np.flatnonzero(keep), transformer, net, "interleaved", context_dim=context
    )


def _autoregressive(state, i, features, context, hidden, transformer, randperm, passes):
    prefix = f"transform.transforms.{i}"
    if randperm:
        rank = state.integers(f"{prefix}.order", (features,))
    else:
        order = np.arange(features) if i % 2 == 0 else np.arange(features)[::-1].copy()
        rank = order // math.ceil(features / passes)
        state.exact(f"{prefix}.order", rank)
    # zuko: adjacency[j, k] = rank_j > rank_k, all context columns on, each row repeated P times.
    adjacency = rank[:, None] > rank[None, :]
    adjacency = np.concatenate([adjacency, np.ones((features, context), dtype=bool)], axis=1)
    adjacency = np.repeat(adjacency, transformer.n_params, axis=0)
    masks = zuko_made_masks(adjacency, hidden)
    widths = (features + context, *hidden, features * transformer.n_params)
    net = _mlp(state, f"{prefix}.hyper", widths, masks)
    n_passes = len(np.unique(rank))  # the sampling passes zuko's order gives (its ``passes``)
    return autoregressive_layer(
        features, transformer, net, "interleaved", n_passes, context_dim=context
    )
