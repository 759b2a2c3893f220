"""Density quality on 2-D data with an exact density: KL(p ‖ q) of what a user gets, over seeds.

For each data set of ``npflows.datasets`` with an exact log-density, draw 50,000 training and
50,000 test points (fixed: seeds 1 and 2), and for each flow and each seed s (``--seeds``) build
the prebuilt flow with ``rng=s``, put ``npflows.standardized`` on its data side (the training
points' means and standard deviations) and train it with ``npflows.fit(flow, x, epochs=57,
batch_size=512, rng=s)`` — 10 % of the points held out for validation, 88 steps an epoch, 5,016
Adam steps, the best epoch restored — with fit's default step size and schedule unless
``--lr``/``--schedule`` say otherwise. Reported per run:

    KL(p ‖ q) ≈ mean over test points of [log p(x) − log q(x)]   (± its standard error)
    test NLL = −mean log q(x);  max rise = the largest increase of the validation NLL from one epoch
    to the next (a spike detector: a smooth run stays below ~0.05 nats);  seconds;  ms per step

and then, per data set and flow, the median KL over seeds with its range. ``gmm`` is the baseline:
a full-covariance Gaussian mixture fitted by EM (benchmarks/gmm_em.py), its K ∈ {8, 16}
(one k-means++ start each) chosen on the same validation points (larger K took more than ten
minutes per fit on the shared machine).

    python benchmarks/quality_2d.py                                # defaults, 3 seeds
    python benchmarks/quality_2d.py --flows nsf-large gmm
    python benchmarks/quality_2d.py --datasets 8gaussians-narrow --flows nsf --set bins=16
    python benchmarks/quality_2d.py --flows nsf --set orientation=generative --schedule constant
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time

import numpy as np

import npflows as nf
from npflows.flow_names import BUILDERS

try:
    from gmm_em import fit_selected
except ImportError:  # run from the repository root as python benchmarks/quality_2d.py
    from benchmarks.gmm_em import fit_selected

DEFAULT_FLOWS = ["nsf", "nsf-large", "realnvp", "maf", "gmm"]
GMM_COMPONENTS = (8, 16)


def exact_datasets():
    return [
        name for name, data in nf.datasets.DATASETS.items() if data.dim == 2 and data.log_density
    ]


def parse_override(text):
    """``key=value`` with value read as JSON where it parses (numbers, lists), else as a string."""
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def step_size(args):
    """What to pass as fit's ``lr``: None (fit's default), a number, or a schedule."""
    if args.schedule == "default":
        return args.lr
    peak = 1e-3 if args.lr is None else args.lr
    if args.schedule == "constant":
        return peak
    return nf.schedules.Cosine(peak, warmup_steps=args.warmup)


def blas_report():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{i['internal_api']} {i['version']} ({i.get('architecture')}, {i['num_threads']} thread(s))"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )


def randomize_output_layers(flow, scale, rng):
    """Draw the last weights of every conditioner net from N(0, scale²) (zero by default)."""
    for layer in flow.layers:
        if hasattr(layer, "net"):
            last = layer.net.params["weights"][-1]
            last[...] = scale * rng.standard_normal(last.shape)


def run_flow(name, overrides, x_train, args, seed):
    flow = BUILDERS[name](2, rng=seed, **overrides)
    if args.out_init:
        randomize_output_layers(flow, args.out_init, np.random.default_rng([seed, 1]))
    flow = nf.standardized(flow, x_train)
    epochs = math.ceil(args.steps / math.ceil(0.9 * len(x_train) / args.batch_size))
    start = time.perf_counter()
    history = nf.fit(
        flow,
        x_train,
        epochs=epochs,
        batch_size=args.batch_size,
        lr=step_size(args),
        rng=seed,
        progress=False,
    )
    seconds = time.perf_counter() - start
    rises = np.diff([history.initial_nll, *history.val_nll])
    return flow, seconds, history.steps, float(rises.max(initial=0.0))


def run_gmm(x_train, seed):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x_train))
    n_val = round(0.1 * len(x_train))
    start = time.perf_counter()
    model = fit_selected(x_train[order[n_val:]], x_train[order[:n_val]], GMM_COMPONENTS, rng)
    return model, time.perf_counter() - start, 0, float("nan")


def main():
    names = exact_datasets()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=names, choices=names)
    parser.add_argument("--flows", nargs="*", default=DEFAULT_FLOWS, choices=[*BUILDERS, "gmm"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=50_000, help="train and test points, each")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=None, help="the (peak) step size")
    parser.add_argument("--schedule", choices=["default", "constant", "cosine"], default="default")
    parser.add_argument("--warmup", type=int, default=0, help="warm-up steps of --schedule cosine")
    parser.add_argument(
        "--out-init", type=float, default=0.0, help="std of the nets' last weights at the start"
    )
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="flow constructor arguments"
    )
    args = parser.parse_args()
    overrides = dict(parse_override(text) for text in args.set)
    print(
        f"npflows {nf.__version__}, numpy {np.__version__}, Python {platform.python_version()}; "
        f"BLAS: {blas_report()}"
    )
    print(
        f"{args.n} train / {args.n} test points; batch {args.batch_size}, ~{args.steps} steps; "
        f"lr {args.lr if args.lr is not None else 'default'}, schedule {args.schedule}"
        + (f", warm-up {args.warmup}" if args.schedule == "cosine" else "")
        + (f"; flow arguments {overrides}" if overrides else "")
        + (f"; last weights ~ N(0, {args.out_init}²)" if args.out_init else "")
    )
    print(
        "| dataset | flow | seed | KL(p‖q) | ± stderr | test NLL | max rise | steps | s | ms/step |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    for name in args.datasets:
        data = nf.datasets.get(name)
        x_train = data.sample(args.n, rng=1)
        x_test = data.sample(args.n, rng=2)
        log_p = data.log_density(x_test)
        for flow_name in args.flows:
            for seed in args.seeds:
                if flow_name == "gmm":
                    model, seconds, steps, rise = run_gmm(x_train, seed)
                else:
                    model, seconds, steps, rise = run_flow(
                        flow_name, overrides, x_train, args, seed
                    )
                log_q = model.log_prob(x_test)
                gap = log_p - log_q
                kl, se = gap.mean(), gap.std() / np.sqrt(len(gap))
                results.setdefault((name, flow_name), []).append((kl, rise, seconds))
                ms = f"{1e3 * seconds / steps:.2f}" if steps else ""
                print(
                    f"| {name} | {flow_name} | {seed} | {kl:.4f} | {se:.4f} | {-log_q.mean():.4f} "
                    f"| {rise:.3f} | {steps} | {seconds:.0f} | {ms} |",
                    flush=True,
                )
    print()
    print("| dataset | flow | median KL | range over seeds | largest max rise | median s |")
    print("|---|---|---|---|---|---|")
    for (name, flow_name), rows in results.items():
        kls, rises, secs = zip(*rows, strict=True)
        print(
            f"| {name} | {flow_name} | {statistics.median(kls):.4f} | {min(kls):.4f}–{max(kls):.4f} "
            f"| {max(rises):.3f} | {statistics.median(secs):.0f} |"
        )


if __name__ == "__main__":
    main()
