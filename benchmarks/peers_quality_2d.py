"""Fit quality of the peer libraries (zuko, nflows) on 2-D data with an exact density, trained under
the protocol of ``npflows.fit`` so that their KL(p ‖ q) is comparable with benchmarks/quality_2d.py.

This is a benchmark tool, not part of npflows: it needs PyTorch, zuko and nflows, which npflows
never imports. Install them into a separate environment, never npflows' own:

    python -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install numpy scipy threadpoolctl torch zuko==1.6.0 nflows==0.14

and run it from the repository root (npflows supplies the data and the exact log-densities):

    PYTHONPATH=$PWD OPENBLAS_NUM_THREADS=1 /tmp/peers-venv/bin/python benchmarks/peers_quality_2d.py
    ... benchmarks/peers_quality_2d.py --datasets 8gaussians-narrow --models zuko-nsf --seeds 0
    ... benchmarks/peers_quality_2d.py --dtype float64

Protocol, per data set, model and seed (the same as ``npflows.fit(flow, x_train, epochs=57,
batch_size=512, rng=seed)`` with a cosine learning-rate decay):

* data: ``d = npflows.datasets.get(name)``; x_train = d.sample(50_000, rng=1), x_test =
  d.sample(50_000, rng=2), log p = d.log_density(x_test). The model sees standardized data
  (x − m)/s with the training mean m and standard deviation s; that affine map's log-determinant
  is counted, log q(x) = log q_std((x − m)/s) − Σ log s, so every NLL and KL is in data units.
* split and batches: ``rng = numpy.random.default_rng(seed)``; ``rng.permutation(50_000)``, its
  first 5,000 rows (10 %) are the validation set, the other 45,000 the training rows; every epoch
  shuffles them with ``rng.permutation`` and cuts batches of 512 (the last one smaller): 88 steps
  an epoch, 57 epochs, 5,016 steps. These are the very rows and batches ``npflows.fit`` draws
  with ``rng=seed``. The model's initialization comes from ``torch.manual_seed(seed)``.
* optimizer: ``torch.optim.Adam(lr=1e-3)`` (torch's defaults otherwise), learning rate decayed by
  ``CosineAnnealingLR(T_max=5016, eta_min=0)`` stepped after every Adam step (no warm-up), i.e.
  lr_t = 1e-3 · (1 + cos(π t / 5016)) / 2. Loss = mean NLL of the batch.
* training runs in float32 (what the peers do by default) or, with ``--dtype float64``, in float64.
* after every epoch: the validation NLL (no gradient, in the training dtype). As in
  ``npflows.fit`` the starting parameters are the first candidate for the best, and the
  ``state_dict`` of the best epoch is restored at the end. A non-finite batch loss stops the run
  (marked "diverged"); the best parameters so far are then restored.
* spike detectors: "max val rise" = the largest increase of the validation NLL from one epoch to
  the next (≤ 0 when it never rose); "max batch spike" = the largest batch loss minus the median
  of the (up to) 100 batch losses before it, from step 10 on.
* evaluation: a float64 copy of the restored model scores the 50,000 test points:
  KL(p ‖ q) = mean(log p − log q) ± its standard error, test NLL = −mean(log q).
* time: "seconds" is the whole training loop (with the validation passes); "ms/step" is the time
  of the Adam steps alone (forward, backward, Adam, schedule) over their number.

Models (the sizes of npflows' ``flows.NSF(2)``: 4 layers, 8 bins, hidden (64, 64)):

* zuko-nsf: ``zuko.flows.NSF(2, transforms=4, bins=8, hidden_features=(64, 64))``: autoregressive
  rational-quadratic splines on [−5, 5] (zuko's fixed bound), identity outside.
* nflows-nsf: 4 × ``PiecewiseRationalQuadraticCouplingTransform(mask_i, net, num_bins=8,
  tails="linear", tail_bound=5.0)``, masks alternating (layer i transforms feature 1 − i mod 2),
  net = ``nflows.nn.nets.MLP`` 1 → 64 → 64 → 23 (ReLU) taking the coupling's context argument and
  exposing ``hidden_features = 64`` (as nflows' ``ResidualNet`` does, so nflows divides the raw
  widths and heights by √64), standard-normal base. The bound 5 is zuko's, on standardized data.
* nflows-nsf-resnet: the same couplings with the conditioner most nflows users write,
  ``ResidualNet(1, 23, hidden_features=64, num_blocks=2)``, and tail_bound=3 (the bound of
  normflows' nflows-based NSF layer); its network is deeper than (64, 64).
* zuko-realnvp, zuko-maf: ``zuko.flows.RealNVP`` / ``zuko.flows.MAF(2, transforms=4,
  hidden_features=(64, 64))``, affine, for reference.

Datasets: every 2-D set in ``npflows.datasets`` with an exact ``log_density``, plus
"8gaussians-narrow" (8 Gaussians, radius 2, std 0.04 = 0.02 · radius) built with
``npflows.datasets.gaussian_ring(8, radius=2.0, sd=0.04)`` where npflows does not define it yet.
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import shlex
import statistics
import sys
import time
from importlib.metadata import version

import numpy as np
import torch
import zuko
from nflows.distributions import StandardNormal
from nflows.flows import Flow
from nflows.nn.nets import MLP, ResidualNet
from nflows.transforms import CompositeTransform, PiecewiseRationalQuadraticCouplingTransform
from nflows.utils.torchutils import create_alternating_binary_mask
from threadpoolctl import threadpool_info

import npflows.datasets as nd

N_POINTS = 50_000
VALIDATION_FRACTION = 0.1
SPIKE_WINDOW = 100  # batch losses the "max batch spike" takes its running median over
SPIKE_START = 10  # first step (from 0) the spike detector looks at
NARROW_RING = "8gaussians-narrow"


def datasets_with_density():
    """name -> data set: the 2-D sets of npflows.datasets with an exact log-density, and the
    narrow ring (its own definition where npflows does not have one)."""
    found = {
        name: data
        for name, data in nd.DATASETS.items()
        if data.dim == 2 and data.log_density is not None
    }
    found.setdefault(NARROW_RING, nd.gaussian_ring(8, radius=2.0, sd=0.04))
    return found


class ConditionerMLP(torch.nn.Module):
    """nflows' MLP (in → H → H → out, ReLU) with the ``(inputs, context)`` call of a coupling's
    conditioner; ``hidden_features`` makes nflows scale the raw widths and heights by 1/√H."""

    def __init__(self, in_features, out_features, hidden_features=64):
        super().__init__()
        self.hidden_features = hidden_features
        self.net = MLP((in_features,), (out_features,), [hidden_features, hidden_features])

    def forward(self, inputs, context=None):
        return self.net(inputs)


def nflows_nsf(make_net, tail_bound, layers=4, bins=8):
    """An nflows coupling NSF: layer i transforms feature 1 − (i mod 2) given the other."""
    transforms = [
        PiecewiseRationalQuadraticCouplingTransform(
            mask=create_alternating_binary_mask(2, even=i % 2 == 1),
            transform_net_create_fn=make_net,
            num_bins=bins,
            tails="linear",
            tail_bound=tail_bound,
        )
        for i in range(layers)
    ]
    return Flow(CompositeTransform(transforms), StandardNormal([2]))


class ZukoModel(torch.nn.Module):
    """A zuko flow with nflows' ``log_prob(x)`` interface."""

    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def log_prob(self, x):
        return self.flow().log_prob(x)


MODELS = {
    "zuko-nsf": lambda: ZukoModel(
        zuko.flows.NSF(2, transforms=4, bins=8, hidden_features=(64, 64))
    ),
    "nflows-nsf": lambda: nflows_nsf(ConditionerMLP, tail_bound=5.0),
    "nflows-nsf-resnet": lambda: nflows_nsf(
        lambda i, o: ResidualNet(i, o, hidden_features=64, num_blocks=2), tail_bound=3.0
    ),
    "zuko-realnvp": lambda: ZukoModel(
        zuko.flows.RealNVP(2, transforms=4, hidden_features=(64, 64))
    ),
    "zuko-maf": lambda: ZukoModel(zuko.flows.MAF(2, transforms=4, hidden_features=(64, 64))),
}
DEFAULT_MODELS = ["zuko-nsf", "nflows-nsf"]


def mean_nll(model, x, batch=10_000):
    """−mean log q_std(x) over the rows of x, without gradients, in x's dtype; in chunks of
    ``batch`` rows to keep the memory flat."""
    with torch.no_grad():
        total = sum(float(model.log_prob(x[i : i + batch]).sum()) for i in range(0, len(x), batch))
    return -total / len(x)


def train(model, x, seed, epochs, batch_size, lr):
    """npflows.fit's loop with torch: returns the run's record (the model is left at its best)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = int(round(VALIDATION_FRACTION * len(x)))
    val_rows, train_rows = order[:n_val], order[n_val:]
    x_val = x[torch.as_tensor(val_rows)]
    steps_per_epoch = -(-len(train_rows) // batch_size)
    total_steps = epochs * steps_per_epoch
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=0)

    val_nll = [mean_nll(model, x_val)]  # the start is the first candidate for the best
    best_nll, best_epoch, best_state = val_nll[0], -1, copy.deepcopy(model.state_dict())
    losses, max_spike, step_seconds, diverged = [], -math.inf, 0.0, False
    start = time.perf_counter()
    for epoch in range(epochs):
        rows = rng.permutation(train_rows)
        for first in range(0, len(rows), batch_size):
            batch = x[torch.as_tensor(rows[first : first + batch_size])]
            tic = time.perf_counter()
            loss = -model.log_prob(batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step_seconds += time.perf_counter() - tic
            value = loss.item()
            if not math.isfinite(value):
                diverged = True
                break
            if len(losses) >= SPIKE_START:
                max_spike = max(max_spike, value - statistics.median(losses[-SPIKE_WINDOW:]))
            losses.append(value)
        if diverged:
            break
        val_nll.append(mean_nll(model, x_val))
        if val_nll[-1] < best_nll:
            best_nll, best_epoch, best_state = val_nll[-1], epoch, copy.deepcopy(model.state_dict())
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    rises = np.diff(np.nan_to_num(val_nll[1:], nan=np.inf))
    return {
        "steps": len(losses),
        "seconds": seconds,
        "ms_per_step": 1e3 * step_seconds / max(1, len(losses)),
        "best_epoch": best_epoch,
        "max_val_rise": float(rises.max()) if len(rises) else math.nan,
        "max_spike": max_spike,
        "diverged": diverged,
    }


def run(name, data, model_name, seed, args, dtype):
    """One fit and its test scores, as a row of the per-run table."""
    x_train = data.sample(N_POINTS, rng=1)
    x_test = data.sample(N_POINTS, rng=2)
    log_p = data.log_density(x_test)
    mean, sd = x_train.mean(axis=0), x_train.std(axis=0)
    log_det = -float(np.log(sd).sum())  # log|d(x − m)/s / dx|
    torch.manual_seed(seed)
    model = MODELS[model_name]().to(dtype)
    record = train(
        model,
        torch.as_tensor((x_train - mean) / sd, dtype=dtype),
        seed,
        args.epochs,
        args.batch_size,
        args.lr,
    )
    evaluator = copy.deepcopy(model).to(torch.float64)
    with torch.no_grad():
        z_test = torch.as_tensor((x_test - mean) / sd, dtype=torch.float64)
        log_q = evaluator.log_prob(z_test).numpy() + log_det
    gap = log_p - log_q
    record.update(
        dataset=name,
        model=model_name,
        seed=seed,
        test_nll=-float(log_q.mean()),
        kl=float(gap.mean()),
        kl_se=float(gap.std(ddof=1) / np.sqrt(len(gap))),
        entropy=float(data.entropy()),
    )
    return record


def print_run(r):
    flag = " (diverged)" if r["diverged"] else ""
    print(
        f"| {r['dataset']} | {r['model']}{flag} | {r['seed']} | {r['test_nll']:.4f} "
        f"| {r['kl']:.4f} | {r['kl_se']:.4f} | {r['max_val_rise']:.3f} | {r['max_spike']:.3f} "
        f"| {r['best_epoch'] + 1} | {r['steps']} | {r['seconds']:.0f} | {r['ms_per_step']:.2f} |",
        flush=True,
    )


def print_summary(records):
    print(
        "\n| dataset | model | seeds | KL median | KL range | test NLL median | H[p] "
        "| max val rise (max) | ms/step median |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    groups = {}
    for r in records:
        groups.setdefault((r["dataset"], r["model"]), []).append(r)
    for (name, model_name), rs in groups.items():
        kls = [r["kl"] for r in rs]
        print(
            f"| {name} | {model_name} | {len(rs)} | {statistics.median(kls):.4f} "
            f"| {min(kls):.4f}–{max(kls):.4f} | {statistics.median(r['test_nll'] for r in rs):.4f} "
            f"| {rs[0]['entropy']:.4f} | {max(r['max_val_rise'] for r in rs):.3f} "
            f"| {statistics.median(r['ms_per_step'] for r in rs):.2f} |",
            flush=True,
        )


def print_environment(args):
    print("$ " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, zuko {version('zuko')}, "
        f"nflows {version('nflows')}, numpy {np.__version__}; "
        f"torch threads {torch.get_num_threads()}"
    )
    for lib in threadpool_info():
        print(
            f"BLAS/OpenMP: {lib.get('internal_api')} {lib.get('version')} "
            f"({lib.get('architecture', '-')}), {lib.get('num_threads')} thread(s), "
            f"{lib.get('filepath')}"
        )
    n_train = N_POINTS - int(round(VALIDATION_FRACTION * N_POINTS))
    steps = args.epochs * -(-n_train // args.batch_size)
    print(
        f"{N_POINTS} train ({n_train} fitted, {N_POINTS - n_train} validation) / {N_POINTS} test "
        f"points; {args.epochs} epochs of batch {args.batch_size} = {steps} Adam steps, lr "
        f"{args.lr} with cosine decay to 0; training in {args.dtype}, evaluation in float64\n"
    )


def main():
    available = datasets_with_density()
    default_datasets = [NARROW_RING, "8gaussians", "checkerboard", "banana"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=default_datasets, choices=available)
    parser.add_argument("--models", nargs="*", default=DEFAULT_MODELS, choices=MODELS)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=57, help="57 × 88 = 5,016 steps")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    print_environment(args)
    print(
        "| dataset | model | seed | test NLL | KL(p‖q) | ± stderr | max val rise "
        "| max batch spike | best epoch | steps | seconds | ms/step |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    records = []
    for name in args.datasets:
        for model_name in args.models:
            for seed in args.seeds:
                records.append(run(name, available[name], model_name, seed, args, dtype))
                print_run(records[-1])
    print_summary(records)


if __name__ == "__main__":
    main()
