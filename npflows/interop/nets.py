"""The peers' conditioner networks and their mask (degree) rules, in numpy.

Weights keep torch's layout: W (out, in), so a row batch computes h @ Wᵀ + b (torch.nn.Linear).
Masked layers use W ⊙ M (zuko.nn.MaskedLinear and nflows' MaskedLinear). Every activation is
ReLU, the peers' default. Forward passes only: these nets have no pullbacks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _relu(a):
    return np.maximum(a, 0.0)


class Dense:
    """One (masked) linear map h ↦ h @ (W ⊙ M)ᵀ + b, W (out, in)."""

    def __init__(self, weight, bias, mask=None):
        self.weight = weight if mask is None else weight * mask
        self.bias = bias

    def __call__(self, h):
        return h @ self.weight.T + self.bias


class Sequential:
    """zuko.nn.MLP and zuko.nn.MaskedMLP: dense maps with ReLU between them, none after the last."""

    def __init__(self, layers: Sequence[Dense]):
        self.layers = list(layers)

    def __call__(self, h):
        for layer in self.layers[:-1]:
            h = _relu(layer(h))
        return self.layers[-1](h)


class ResidualNet:
    """nflows.nn.nets.ResidualNet (and nflows' MADE with residual blocks), without context:

    h = W_0 x + b_0;  per block h ← h + L_1(relu(L_0(relu(h))));  out = W_f h + b_f.
    """

    def __init__(self, initial: Dense, blocks: Sequence[tuple[Dense, Dense]], final: Dense):
        self.initial, self.blocks, self.final = initial, list(blocks), final

    def __call__(self, x):
        h = self.initial(x)
        for first, second in self.blocks:
            h = h + second(_relu(first(_relu(h))))
        return self.final(h)


def zuko_made_masks(adjacency: np.ndarray, hidden: Sequence[int]) -> list[np.ndarray]:
    """The masks of zuko.nn.MaskedMLP(adjacency, hidden_features) (M, …), each (out, in).

    Outputs with the same adjacency row are merged; the distinct rows A_u are sorted (as
    torch.unique(dim=0)) and P_uv = [A_u ⊇ A_v] ("u sees everything v sees"). A hidden unit stands
    for one distinct row: layer l's j-th unit takes the (j mod r)-th of the r rows reachable from
    the layer below, and unit u sees unit v below iff P_uv. The output block of an input row sees
    the hidden units whose rows it contains.
    """
    unique, inverse = np.unique(adjacency, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    overlap = unique.astype(float) @ unique.T.astype(float)
    precedence = overlap == unique.sum(axis=-1)  # [u, v]: A_u · A_v = |A_v|, A_u contains A_v
    masks, indices = [], None
    for i, width in enumerate((*hidden, len(adjacency))):
        mask = unique if i == 0 else precedence[:, indices]
        if not mask.any():
            raise ValueError("the adjacency matrix leads to a null Jacobian (as zuko refuses)")
        if i < len(hidden):
            reachable = np.flatnonzero(mask.sum(axis=-1))
            indices = reachable[np.arange(width) % len(reachable)]
            mask = mask[indices]
        else:
            mask = mask[inverse]
        masks.append(mask)
    return masks


def nflows_made_degrees(features: int, hidden: int, n_hidden_layers: int, multiplier: int):
    """Degrees and masks of nflows.transforms.made.MADE (deterministic masks).

    Inputs have degrees 1 … D; every hidden layer's units m_j = (j mod max(1, D − 1)) + min(1, D − 1)
    and see inputs of degree ≤ m_j; output unit o (coordinate o // P, nflows' ``tile``) has degree
    o // P + 1 and sees hidden units of degree < its own. Returns [(degrees, mask (out, in)), …] for
    the ``n_hidden_layers`` hidden maps and the output map.
    """
    degrees_in = np.arange(1, features + 1)
    hidden_degrees = np.arange(hidden) % max(1, features - 1) + min(1, features - 1)
    out = []
    for _ in range(n_hidden_layers):
        out.append((hidden_degrees, hidden_degrees[:, None] >= degrees_in[None, :]))
        degrees_in = hidden_degrees
    output_degrees = np.repeat(np.arange(1, features + 1), multiplier)
    out.append((output_degrees, output_degrees[:, None] > degrees_in[None, :]))
    return out
