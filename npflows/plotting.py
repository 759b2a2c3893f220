"""Pictures of a trained flow for the command line: data, densities and samples side by side.

matplotlib is optional and imported only inside these functions (``import npflows`` never loads
it); each returns False, drawing nothing, when it is not installed. They draw on a
``matplotlib.figure.Figure`` rendered by Agg rather than through pyplot, so no global backend or
figure state changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .flow import Flow
from .layer import RNGLike

GRID = 200  # points per axis of a 2-D density heat map
N_SHOWN = 5000  # points per scatter plot


def plot_fit(
    path: Path, flow: Flow, x: np.ndarray, title: str, dataset=None, rng: RNGLike = None
) -> bool:
    """Plot a flow q fitted to data ``x`` (N, D), D = 1 or 2, to ``path``.

    1-D: a histogram of x, q(x) and, when ``dataset`` has a known density, the true p(x).
    2-D: three panels: x (up to 5000 points), q(x) as a heat map, and 5000 samples of q.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    if flow.dim == 1:
        fig = Figure(figsize=(7, 4.2), layout="constrained")
        ax = fig.add_subplot()
        margin = 0.1 * (x.max() - x.min())
        grid = np.linspace(x.min() - margin, x.max() + margin, 500)[:, None]
        ax.hist(x[:, 0], bins=80, density=True, color="0.8", label=f"test data ({len(x)} points)")
        if dataset is not None and dataset.log_density is not None:
            ax.plot(grid[:, 0], np.exp(dataset.log_density(grid)), "k", label="true density p(x)")
        ax.plot(grid[:, 0], np.exp(flow.log_prob(grid)), "--", color="tab:red", label="flow q(x)")
        ax.set(xlabel="x", ylabel="density", title=title)
        ax.legend()
    else:
        samples = flow.sample(N_SHOWN, rng)
        box = _box(x)
        fig, axes = _three_panels(Figure, box)
        _scatter(axes[0], x[:N_SHOWN], f"data ({min(len(x), N_SHOWN)} test points)")
        _heat_map(axes[1], flow.log_prob, box, "flow density q(x)")
        _scatter(axes[2], samples, f"flow samples ({N_SHOWN})", color="tab:red")
        _frame(axes, box)
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return True


def plot_target(path: Path, flow: Flow, target, title: str, rng: RNGLike = None) -> bool:
    """Plot a 2-D target p̃ beside the flow q trained to it and 5000 samples of q, to ``path``.

    The box covers the flow's samples and, when the target can be sampled, its samples too.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    samples = flow.sample(N_SHOWN, rng)
    shown = samples if target.sample is None else np.vstack([samples, target.sample(N_SHOWN, rng)])
    box = _box(shown)
    fig, axes = _three_panels(Figure, box)
    _heat_map(axes[0], lambda x: target.log_density(x)[0], box, f"target p̃(x): {target.name}")
    _heat_map(axes[1], flow.log_prob, box, "flow density q(x)")
    _scatter(axes[2], samples, f"flow samples ({N_SHOWN})", color="tab:red")
    _frame(axes, box)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return True


def _three_panels(Figure, box: np.ndarray):
    """A figure of three panels side by side, each shaped like ``box`` (height ≤ 1.5 × width)."""
    aspect = min(1.5, (box[1, 1] - box[0, 1]) / (box[1, 0] - box[0, 0]))
    fig = Figure(figsize=(13, 1.0 + 4.0 * aspect), layout="constrained")
    return fig, fig.subplots(1, 3, sharex=True, sharey=True)


def _box(x: np.ndarray) -> np.ndarray:
    """[[x1_low, x2_low], [x1_high, x2_high]]: the 0.1 % to 99.9 % quantiles of x (N, 2), widened
    by 10 % on each side."""
    low, high = np.quantile(x, [0.001, 0.999], axis=0)
    margin = 0.1 * (high - low)
    return np.stack([low - margin, high + margin])


def _heat_map(ax, log_density, box: np.ndarray, title: str) -> None:
    """exp(log_density) on a GRID × GRID grid over ``box``, rescaled so its maximum is 1."""
    axes = [np.linspace(box[0, d], box[1, d], GRID) for d in range(2)]
    grid = np.stack(np.meshgrid(*axes), axis=-1).reshape(-1, 2)  # x1 varies along rows of the image
    log_p = log_density(grid).reshape(GRID, GRID)
    ax.imshow(np.exp(log_p - log_p.max()), origin="lower", extent=box.T.ravel(), aspect="auto")
    ax.set_title(title)


def _scatter(ax, x: np.ndarray, title: str, color: str = "tab:blue") -> None:
    ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.5, color=color, linewidths=0)
    ax.set_title(title)


def _frame(axes, box: np.ndarray) -> None:
    axes[0].set(xlim=box[:, 0], ylim=box[:, 1], xlabel="x1", ylabel="x2")
    for ax in axes[1:]:
        ax.set(xlabel="x1")
    for ax in axes:
        ax.set_aspect("equal", adjustable="box")
