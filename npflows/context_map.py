"""A fixed standardization of a conditional flow's context, folded into its conditioners.

Book: ch. 16, "Conditional flows" (the context c enters the networks that give the transformers'
parameters). Raw context columns can have any scale, and a conditioner network starting on inputs
of size 1e4 saturates or explodes. So a flow is trained on the standardized context
u = (c − mean) / scale (``Standardize.from_data(c)``: column means and standard deviations), and
afterwards :func:`absorb_context_map` rewrites each conditioner's first affine map so that the flow
takes c itself: with the context rows W_c of the first weight matrix (the context is appended to
every conditioner's input, last ``context_dim`` columns) and its bias b,

    u W_c + b = c (W_c / scale) + (b − (mean / scale) W_c),   W_c / scale dividing row d by scale_d,

so W_c ← diag(1 / scale) W_c and b ← b − (mean / scale) W_c. The flow's densities and samples are
those of the trained flow on u, up to rounding (a relative error of about eps · max_d |mean_d| /
scale_d), and the saved model needs nothing beside it. The log-det is unchanged: the context is
conditioned on, not transformed, so no Jacobian of it enters log p(x | c).
"""

from __future__ import annotations

from collections.abc import Iterator

from .flow import Flow
from .layer import Layer
from .layers.invert import Invert
from .layers.standardize import Standardize
from .nn import MLP

__all__ = ["absorb_context_map", "context_map_from_data"]


def context_map_from_data(context) -> Standardize:
    """The :class:`~npflows.Standardize` whose inverse standardizes ``context`` (N, C): column
    means and standard deviations; a (nearly) constant context column is refused by name (a column
    that never changes carries nothing to condition on)."""
    try:
        return Standardize.from_data(context)
    except ValueError as error:
        raise ValueError(f"context: {error}".replace("of the data", "of the context")) from None


def absorb_context_map(flow: Layer, context_map: Standardize) -> None:
    """Change ``flow`` in place from taking u = (c − mean) / scale to taking c (see the module
    docstring for the formula). Every conditional layer must have an :class:`~npflows.nn.MLP`
    conditioner ``net`` whose last ``context_dim`` inputs are the context (Coupling, MAF, IAF and
    the prebuilt flows made of them); any other conditional layer raises ValueError, unchanged.
    """
    if not isinstance(context_map, Standardize):
        raise TypeError(f"context_map must be a Standardize, got {type(context_map).__name__}")
    if context_map.dim != flow.context_dim:
        raise ValueError(
            f"context_map has dim {context_map.dim}; the flow's context_dim is {flow.context_dim}"
        )
    layers = list(_conditional_layers(flow))
    for layer in layers:  # all checked before any is changed
        if not isinstance(getattr(layer, "net", None), MLP):
            raise ValueError(
                f"{type(layer).__name__} takes a context but has no MLP conditioner `net` whose "
                "first weights could absorb the context's standardization"
            )
    for layer in layers:
        net, c = layer.net, layer.context_dim
        weights, bias = net.params["weights"][0], net.params["biases"][0]
        rows = weights[-c:] / context_map.scale[:, None]  # (C, fan_out)
        effective = rows if net.masks is None else rows * net.masks[0][-c:]  # MADE's masks
        bias -= (context_map.mean @ effective).astype(bias.dtype, copy=False)  # (mean/scale) W_c
        weights[-c:] = rows


def _conditional_layers(layer: Layer) -> Iterator[Layer]:
    """The layers inside ``layer`` (through Flow and Invert) that read the context."""
    if isinstance(layer, Flow):
        for inner in layer.layers:
            yield from _conditional_layers(inner)
    elif isinstance(layer, Invert):
        yield from _conditional_layers(layer.layer)
    elif layer.context_dim:
        yield layer
