"""``from_nflows``: rebuild an nflows 0.14 ``MaskedAutoregressiveFlow`` or ``SimpleRealNVP``.

What nflows computes (nflows/flows/autoregressive.py, realnvp.py; nflows/transforms/made.py,
autoregressive.py, coupling.py, permutations.py; nflows/nn/nets/resnet.py), in nflows' direction
x → z, transform 0 first:
- MaskedAutoregressiveFlow: per layer a permutation z = x[:, p] (ReversePermutation, or
  RandomPermutation with ``use_random_permutations``; the buffer ``_permutation`` holds p), then a
  MaskedAffineAutoregressiveTransform: a MADE (residual blocks by default, or feedforward blocks)
  whose output, viewed (D, 2), is (raw scale s, shift t); z = x · (softplus(s) + 10⁻³) + t.
- SimpleRealNVP: layer l passes the coordinates j with j % 2 == l % 2 through (buffer
  ``identity_features``) and transforms the others (``transform_features``) with an
  AffineCouplingTransform, z_b = x_b · (sigmoid(s + 2) + 10⁻³) + t, or with
  ``use_volume_preserving`` an AdditiveCouplingTransform, z_b = x_b + t. The net is a ResidualNet
  whose output is blocked: t = out[:, :|b|], s = out[:, |b|:].
- Base: StandardNormal. These two classes take no context.
Dropout is the identity (npflows computes the model as ``model.eval()`` does); batch norm is refused.
"""

from __future__ import annotations

import numpy as np

from ..flow import Flow
from ..layers.permutation import Permutation
from .layers import autoregressive_layer, coupling_layer
from .nets import Dense, ResidualNet, Sequential, nflows_made_degrees
from .state import StateDict, options, positive_int
from .transformers import nflows_additive, nflows_affine

COMMON = {
    "features": None,
    "hidden_features": None,
    "num_layers": None,
    "num_blocks_per_layer": None,
    "dropout_probability": 0.0,
    "batch_norm_within_layers": False,
    "batch_norm_between_layers": False,
}
REFUSED = {
    "activation": "npflows rebuilds nflows' default ReLU only",
    "batch_norm_within_layers": "batch norm is not imported (its statistics depend on the batch in "
    "training mode)",
    "batch_norm_between_layers": "batch norm is not imported (its statistics depend on the batch in "
    "training mode)",
    "use_random_masks": "random MADE masks are not imported",
}
CLASSES = ("MaskedAutoregressiveFlow", "SimpleRealNVP")


def from_nflows(name: str, arrays, **kwargs) -> Flow:
    """The npflows :class:`~npflows.Flow` that computes what ``nflows.flows.<name>(**kwargs)`` with
    these arrays computes, in float64.

    Args:
        name: "MaskedAutoregressiveFlow" or "SimpleRealNVP".
        arrays: maps every key of the model's ``state_dict()`` to its numpy array (float32 is
            converted to float64 exactly).
        kwargs: the constructor's arguments: ``features``, ``hidden_features``, ``num_layers``,
            ``num_blocks_per_layer``, ``dropout_probability`` (ignored: eval mode), and
            ``use_residual_blocks``, ``use_random_permutations`` (MaskedAutoregressiveFlow) or
            ``use_volume_preserving`` (SimpleRealNVP). Batch norm, random masks and other
            activations are refused.

    Returns a Flow whose ``log_prob(x)`` equals ``model.log_prob(x)`` and whose ``forward(z)[0]``
    equals nflows' sampling map ``model._transform.inverse(z)[0]``. Its layers have no pullbacks.
    """
    if name not in CLASSES:
        raise ValueError(f"from_nflows imports {', '.join(CLASSES)}; got {name!r}")
    if name == "MaskedAutoregressiveFlow":
        defaults = {
            **COMMON,
            "use_residual_blocks": True,
            "use_random_masks": False,
            "use_random_permutations": False,
        }
    else:
        defaults = {**COMMON, "use_volume_preserving": False}
    opts = options(f"nflows.flows.{name}", kwargs, defaults, REFUSED)
    for key in ("features", "hidden_features", "num_layers", "num_blocks_per_layer"):
        if opts[key] is None:
            raise TypeError(f"nflows.flows.{name} needs the argument {key!r}")
    features = positive_int("features", opts["features"], 2)
    hidden = positive_int("hidden_features", opts["hidden_features"])
    n_layers = positive_int("num_layers", opts["num_layers"])
    n_blocks = positive_int("num_blocks_per_layer", opts["num_blocks_per_layer"], 0)
    state = StateDict(arrays, "nflows")
    layers = []
    if name == "MaskedAutoregressiveFlow":
        for layer in range(n_layers):
            layers.append(_permutation(state, 2 * layer, features, opts["use_random_permutations"]))
            layers.append(
                _maf(state, 2 * layer + 1, features, hidden, n_blocks, opts["use_residual_blocks"])
            )
    else:
        for layer in range(n_layers):
            layers.append(
                _coupling(state, layer, features, hidden, n_blocks, opts["use_volume_preserving"])
            )
    state.finish()
    return Flow(layers[::-1])


def _prefix(index):
    return f"_transform._transforms.{index}"


def _permutation(state, index, features, random):
    key = f"{_prefix(index)}._permutation"
    if random:
        p = state.integers(key, (features,))
        if sorted(p.tolist()) != list(range(features)):
            raise ValueError(f"{key!r} must be a permutation of range({features})")
    else:
        p = np.arange(features)[::-1].copy()
        state.exact(key, p)
    # nflows normalizes by z = x[:, p]; npflows' Permutation(perm=q) normalizes by z[:, q] = x,
    # i.e. z = x[:, argsort(q)], so q = argsort(p).
    return Permutation(features, np.argsort(p))


def _linear(state, key, fan_in, fan_out, mask=None, degrees=None):
    weight = state.float(f"{key}.weight", (fan_out, fan_in))
    bias = state.float(f"{key}.bias", (fan_out,))
    if mask is not None:
        state.exact(f"{key}.mask", mask.astype(float))
        state.exact(f"{key}.degrees", degrees)
    return Dense(weight, bias, mask)


def _maf(state, index, features, hidden, n_blocks, residual):
    net_key = f"{_prefix(index)}.autoregressive_net"
    n_hidden_maps = 1 + n_blocks * (2 if residual else 1)
    rules = nflows_made_degrees(features, hidden, n_hidden_maps, 2)
    initial = _linear(state, f"{net_key}.initial_layer", features, hidden, *rules[0][::-1])
    maps = iter(rules[1:-1])
    blocks = []
    for j in range(n_blocks):
        if residual:
            first = _linear(
                state, f"{net_key}.blocks.{j}.linear_layers.0", hidden, hidden, *next(maps)[::-1]
            )
            second = _linear(
                state, f"{net_key}.blocks.{j}.linear_layers.1", hidden, hidden, *next(maps)[::-1]
            )
            blocks.append((first, second))
        else:
            blocks.append(
                _linear(state, f"{net_key}.blocks.{j}.linear", hidden, hidden, *next(maps)[::-1])
            )
    final = _linear(state, f"{net_key}.final_layer", hidden, 2 * features, *rules[-1][::-1])
    # Residual: h = initial(x), blocks add, no ReLU before the final map. Feedforward: ReLU after
    # the initial map and every block, i.e. a plain masked MLP.
    net = ResidualNet(initial, blocks, final) if residual else Sequential([initial, *blocks, final])
    return autoregressive_layer(features, nflows_affine("softplus"), net, "interleaved", features)


def _coupling(state, layer, features, hidden, n_blocks, volume_preserving):
    prefix = _prefix(layer)
    identity = np.flatnonzero(np.arange(features) % 2 == layer % 2)
    transform = np.flatnonzero(np.arange(features) % 2 != layer % 2)
    state.exact(f"{prefix}.identity_features", identity)
    state.exact(f"{prefix}.transform_features", transform)
    transformer = nflows_additive() if volume_preserving else nflows_affine("sigmoid")
    net_key = f"{prefix}.transform_net"
    out = len(transform) * transformer.n_params
    initial = _linear(state, f"{net_key}.initial_layer", len(identity), hidden)
    blocks = [
        tuple(
            _linear(state, f"{net_key}.blocks.{j}.linear_layers.{k}", hidden, hidden)
            for k in (0, 1)
        )
        for j in range(n_blocks)
    ]
    final = _linear(state, f"{net_key}.final_layer", hidden, out)
    net = ResidualNet(initial, blocks, final)
    return coupling_layer(features, identity, transformer, net, "blocked")
