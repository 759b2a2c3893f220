"""Two designs of Adam compared on the speed benchmark's training steps (benchmarks/speed.py).

- ``flat``: ``npflows.optim.Adam``. The moments of all leaves of one dtype live in one flat vector;
  a step concatenates the gradients, runs Algorithm 1 as a dozen operations on long vectors, and
  subtracts the step from every leaf through views.
- ``per-leaf``: :class:`PerLeafAdam` below, Algorithm 1 written once per parameter array, the
  simplest design: a dozen small numpy operations per leaf (48 leaves in config A).

Both apply a step all or nothing (compute every new array first, then write). The steps are timed
in one process, alternating between the two designs step by step on two copies of the same flow
and data, so that the load of a shared machine falls on both alike; each round is one full training
step (``nll_and_grad`` plus the optimizer's step) and one optimizer step alone. The script checks
that the two designs give bit-identical parameters.

    OPENBLAS_NUM_THREADS=1 python benchmarks/adam_designs.py          # A, B, M; float64 and float32
    OPENBLAS_NUM_THREADS=1 python benchmarks/adam_designs.py --only D --rounds 10

``--before FILE`` adds a third column, the ``Adam`` of another version of ``npflows/optim.py``
(e.g. ``git show f3d2405:npflows/optim.py > /tmp/optim_before.py``), to measure a change.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (the configurations of benchmarks/speed.py)

from npflows.optim import Adam  # noqa: E402
from npflows.tree import flatten, leaves  # noqa: E402


class PerLeafAdam:
    """Algorithm 1 of Kingma & Ba, leaf by leaf (the state a list of arrays per leaf)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.leaves = leaves(params)
        self.m = [np.zeros_like(p) for p in self.leaves]
        self.v = [np.zeros_like(p) for p in self.leaves]

    def step(self, grads):
        g_leaves = leaves(grads)  # the flows here build grads in params' key order
        if len(g_leaves) != len(self.leaves) or not all(
            g.shape == p.shape and np.isfinite(g).all()
            for g, p in zip(g_leaves, self.leaves, strict=True)
        ):
            raise ValueError("grads must mirror params and be finite")
        beta1, beta2 = self.betas
        t = self.t + 1
        correction1, correction2 = 1.0 - beta1**t, 1.0 - beta2**t
        new_m, new_v, steps = [], [], []
        for theta, m, v, g in zip(self.leaves, self.m, self.v, g_leaves, strict=True):
            g = g.astype(theta.dtype, copy=False)
            m = beta1 * m + (1.0 - beta1) * g
            v = beta2 * v + (1.0 - beta2) * g * g
            steps.append(self.lr * (m / correction1) / (np.sqrt(v / correction2) + self.eps))
            new_m.append(m)
            new_v.append(v)
        for theta, step in zip(self.leaves, steps, strict=True):
            theta -= step
        self.m, self.v, self.t = new_m, new_v, t


def blas() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{i['internal_api']} {i['version']} kernel {i.get('architecture')} threads {i['num_threads']}"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )


def load_adam(path: str):
    """The ``Adam`` class of the optim.py at ``path``, imported as a module of npflows."""
    spec = importlib.util.spec_from_file_location("npflows._optim_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Adam


def compare(name: str, dtype: str, rounds: int, designs: dict) -> dict:
    _, _, dim, batch = speed.CONFIGS[name]
    x = np.random.default_rng(0).standard_normal((batch, dim)).astype(dtype)
    runs = {}
    for design, optimizer in designs.items():
        flow = speed.build(name).astype(dtype)
        runs[design] = (flow, optimizer(flow.params, lr=1e-4), {"step": [], "adam": []})
    for _ in range(3):  # warm-up
        for flow, optimizer, _ in runs.values():
            optimizer.step(flow.nll_and_grad(x)[1])
    for _ in range(rounds):
        for flow, optimizer, times in runs.values():
            start = time.perf_counter()
            _, grads = flow.nll_and_grad(x)
            optimizer.step(grads)
            times["step"].append(time.perf_counter() - start)
            start = time.perf_counter()
            optimizer.step(grads)
            times["adam"].append(time.perf_counter() - start)
    first = flatten(runs["flat"][0].params)
    same = all(np.array_equal(first, flatten(flow.params)) for flow, _, _ in runs.values())
    result = {
        "config": name,
        "dtype": dtype,
        "equal": same,
        "leaves": len(leaves(runs["flat"][0].params)),
    }
    for design, (_, _, times) in runs.items():
        result[design] = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(speed.CONFIGS), default=["A", "B", "M"])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--before", help="an older optim.py whose Adam to time as well")
    args = parser.parse_args()
    designs = {"flat": Adam, "per-leaf": PerLeafAdam}
    if args.before:
        designs["before"] = load_adam(args.before)
    print(f"BLAS: {blas()}; numpy {np.__version__}; {args.rounds} rounds, medians in ms")
    print(
        "| config | dtype | leaves | step ms, flat | step ms, per-leaf | per-leaf / flat "
        "| Adam ms, flat | Adam ms, per-leaf | bit-identical |"
        + (" step ms, before | flat / before | Adam ms, before |" if args.before else "")
    )
    print("|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if args.before else ""))
    for name in args.only:
        for dtype in ("float64", "float32"):
            r = compare(name, dtype, args.rounds, designs)
            flat, leaf = r["flat"], r["per-leaf"]
            before = r.get("before")
            print(
                f"| {name}: {speed.CONFIGS[name][0]} | {dtype} | {r['leaves']} | {flat['step']:.2f} "
                f"| {leaf['step']:.2f} | {leaf['step'] / flat['step']:.3f} | {flat['adam']:.3f} "
                f"| {leaf['adam']:.3f} | {r['equal']} |"
                + (
                    f" {before['step']:.2f} | {flat['step'] / before['step']:.3f} "
                    f"| {before['adam']:.3f} |"
                    if before
                    else ""
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
