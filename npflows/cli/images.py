"""``python -m npflows fit --data digits``: multi-scale flows on the 8×8 digits, scored in bits/dim;
and the image side of ``sample`` and ``score`` for saved image models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .. import datasets, flows
from ..dequantization import (
    bits_per_dim,
    categorical_bits_per_dim,
    fit_pixels,
    uniform_bits_per_dim,
)
from ..io import save
from .common import UsageError, stderr
from .points import read_points

IMAGE_DATA = ("digits",)
"""The image data sets ``fit --data`` knows (integer images with a fixed split)."""

IMAGE_FLOWS = {"glow": flows.Glow, "realnvp-multiscale": flows.MultiScaleRealNVP}
"""The multi-scale flows ``fit --flow`` builds for image data."""

DEFAULTS = {"flow": "glow", "epochs": 40, "batch_size": 64, "lr": 2e-3}
N_SAMPLES_TEST = 8  # dequantization draws per test image for the reported bits/dim
N_SHOWN = 32  # samples (and as many real test digits) in samples.png


def fit_command(args: argparse.Namespace) -> int:
    """``fit`` on an image data set: train on the fixed train split, select the epoch by the
    validation bits/dim, print the test bits/dim beside two simple baselines computed on the same
    split, save DIR/model.npz and DIR/samples.png."""
    opts = {k: DEFAULTS[k] if getattr(args, k) is None else getattr(args, k) for k in DEFAULTS}
    if args.data not in IMAGE_DATA:
        raise UsageError(
            f"--flow {opts['flow']} models images: use --data {' or '.join(IMAGE_DATA)}"
        )
    if opts["flow"] not in IMAGE_FLOWS:
        raise UsageError(
            f"--data {args.data} takes --flow {' or '.join(IMAGE_FLOWS)}, got {opts['flow']!r}"
        )
    if args.n_train is not None or args.n_test is not None:
        raise UsageError(f"--n-train and --n-test do not apply to {args.data}: its split is fixed")
    rng_fit, rng_init, rng_test, rng_sample = map(
        np.random.default_rng, np.random.SeedSequence(args.seed).spawn(4)
    )
    train, validation, test = (datasets.load_digits(s) for s in ("train", "validation", "test"))
    levels = datasets.DIGITS_LEVELS
    kwargs = {"hidden": args.hidden, "rng": rng_init}
    if args.layers is not None:
        kwargs["steps"] = args.layers
    flow = IMAGE_FLOWS[opts["flow"]](train.shape[1:], **kwargs)
    out = Path("runs") / args.data if args.out is None else args.out
    out.mkdir(parents=True, exist_ok=True)  # before training, so a bad --out fails at once
    print(
        f"fitting a {opts['flow']} flow to the {len(train)} training digits (1×8×8, {levels} levels, "
        f"dequantized); the epoch is chosen on the {len(validation)} validation digits; "
        f"seed {args.seed}"
    )

    def report(epoch, train_nll, val_bits):
        print(
            f"epoch {epoch}/{opts['epochs']}  train NLL {train_nll:.3f} nats  "
            f"validation {val_bits:.4f} bits/dim",
            file=sys.stderr,
        )

    history = fit_pixels(
        flow,
        train,
        validation,
        levels,
        epochs=opts["epochs"],
        batch_size=opts["batch_size"],
        lr=opts["lr"],
        rng=rng_fit,
        report=None if args.no_progress else report,
    )
    bits = bits_per_dim(flow, test, levels, rng_test, n_samples=N_SAMPLES_TEST, per_image=True)
    print(
        f"test bits/dim {bits.mean():.4f} ± {stderr(bits):.4f} ({len(test)} test digits, "
        f"{N_SAMPLES_TEST} dequantizations each, ± one standard error; epoch "
        f"{history.best_epoch + 1} of {len(history.val_bits_per_dim)})"
    )
    print("baselines on the same split:")
    uniform = f"uniform over {levels} levels"
    print(f"  {uniform:<35} {uniform_bits_per_dim(levels):.4f} bits/dim")
    print(
        f"  {'independent categorical per pixel':<35} "
        f"{categorical_bits_per_dim(train, test, levels):.4f} bits/dim (Laplace-smoothed, fitted "
        "to the training digits)"
    )
    save(flow, out / "model.npz")
    print(f"saved {out / 'model.npz'}")
    title = f"{opts['flow']} on digits: test {bits.mean():.3f} bits/dim"
    if plot_samples(out / "samples.png", flow, test, levels, title, rng_sample):
        print(f"saved {out / 'samples.png'}")
    else:
        print("matplotlib is not installed; pip install 'npflows[plot]' to get samples.png")
    return 0


def plot_samples(path: Path, flow, test, levels: int, title: str, rng) -> bool:
    """Save a grid of ``N_SHOWN`` samples of ``flow`` beside as many real test images; False
    (nothing drawn) without matplotlib. Samples are shown on the pixel scale, x·levels clipped to
    [0, levels]."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    samples = np.clip(flow.sample(N_SHOWN, rng) * levels, 0, levels)
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    panels = fig.subfigures(1, 2)
    for panel, shown, label in (
        (panels[0], samples, "flow samples"),
        (panels[1], test[:N_SHOWN], "real test digits"),
    ):
        axes = panel.subplots(4, N_SHOWN // 4)
        for ax, image in zip(axes.ravel(), shown, strict=True):
            ax.imshow(image[0], cmap="gray_r", vmin=0, vmax=levels)
            ax.set_axis_off()
        panel.suptitle(label)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    return True


def is_image_flow(flow) -> bool:
    """Whether a saved flow models images (x of shape (N, C, H, W))."""
    return len(flow.event_shape) > 1


def read_images(path: Path, flow) -> np.ndarray:
    """Float images for an image ``flow`` from a .npy file of shape (N, *event_shape), or rows of
    C·H·W numbers (.npy (N, D) or .csv), reshaped. Integer pixels are refused: the flow's density
    is on the dequantized [0, 1] scale (use npflows.bits_per_dim for pixels)."""
    if path.suffix.lower() == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, EOFError) as error:
            raise ValueError(f"{path}: not a numeric .npy array ({error})") from None
    else:
        x = read_points(path)
    shape = tuple(flow.event_shape)
    if x.dtype.kind in "iub":
        raise ValueError(
            f"{path}: integer pixels; the model scores images on the [0, 1] scale it was trained "
            "on (pixels + noise)/levels; for the bits/dim of pixels use npflows.bits_per_dim"
        )
    if x.dtype.kind != "f":
        raise ValueError(f"{path}: expected numbers, got an array of dtype {x.dtype}")
    if x.ndim == 2 and x.shape[1] == flow.dim:
        x = x.reshape(len(x), *shape)
    if x.shape[1:] != shape:
        raise ValueError(
            f"{path}: expected images of shape (N, {', '.join(map(str, shape))}) or rows of "
            f"{flow.dim} numbers, got shape {x.shape}"
        )
    return x.astype(np.float64)


def as_rows(x: np.ndarray, path: Path | None) -> np.ndarray:
    """Samples to write: images kept as (N, C, H, W) for a .npy file, one row each otherwise."""
    if path is not None and path.suffix.lower() == ".npy":
        return x
    return x.reshape(len(x), -1)
