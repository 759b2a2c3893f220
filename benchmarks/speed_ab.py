"""Before against after in one process: training steps (A, B, M) and log_prob latencies (L).

    python benchmarks/speed_ab.py --before /tmp/speed-before      # that tree's npflows vs this one

speed.py compares source trees in separate processes, one after the other; on a busy machine
their difference can then be larger than any change of the code (memory layout, the load of the
moment). Here the ``npflows`` package of ``--before`` is copied to a temporary directory as
``npflows_before`` (its imports are relative), imported beside this tree's ``npflows``, and every
measurement alternates the two, in alternating order, in one process: CPU time, medians over
``--rounds`` rounds. Steps are ``nll_and_grad`` plus ``Adam.step`` on speed.py's A, B and M;
latencies are ``log_prob`` of 1 and 16 points on ``NSF(2, bins=8, bound=5.0)`` (B's size: the
NSF's default was 8 bins on [−5, 5] before this round) and ``MAF(16)``, per call, over
blocks of 100 calls. Run with OPENBLAS_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def runs_of(mod, tag):
    """{(what, tag): fn} for one npflows module: the three steps and the four latencies."""
    optim = importlib.import_module(f"{mod.__name__}.optim")
    flows = importlib.import_module(f"{mod.__name__}.flows")
    runs = {}
    for name, flow, n, d in (
        ("A step", flows.RealNVP(2, n_layers=8, hidden=(64, 64), rng=0), 512, 2),
        ("B step", flows.NSF(2, n_layers=4, bins=8, hidden=(64, 64), rng=0), 512, 2),
        ("M step", flows.MAF(16, n_layers=5, hidden=(128, 128), rng=0), 1024, 16),
    ):
        x = np.random.default_rng(0).standard_normal((n, d))
        adam = optim.Adam(flow.params, lr=1e-4)

        def step(flow=flow, x=x, adam=adam):
            adam.step(flow.nll_and_grad(x)[1])

        runs[(f"{name} ms", tag)] = (step, 1)
    for name, flow in (
        ("NSF", flows.NSF(2, bins=8, bound=5.0, rng=0)),
        ("MAF", flows.MAF(16, rng=0)),
    ):
        for n in (1, 16):
            x = np.random.default_rng(n).standard_normal((n, flow.dim))
            runs[(f"L {name} {n} point(s) µs", tag)] = (lambda f=flow, x=x: f.log_prob(x), 100)
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a source tree holding npflows/")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    from speed import blas_library

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(Path(args.before) / "npflows", Path(tmp) / "npflows_before")
        sys.path.insert(0, tmp)
        before = importlib.import_module("npflows_before")
        after = importlib.import_module("npflows")
        runs = runs_of(before, "before") | runs_of(after, "after")
        for fn, calls in runs.values():
            for _ in range(3 * calls):
                fn()
        times = {key: [] for key in runs}
        keys = list(runs)
        for i in range(args.rounds):
            for key in keys if i % 2 else keys[::-1]:
                fn, calls = runs[key]
                start = time.process_time()
                for _ in range(calls):
                    fn()
                elapsed = (time.process_time() - start) / calls
                times[key].append(elapsed * (1e6 if key[0].startswith("L") else 1e3))
    print(f"before: {args.before} ({before.__file__}), after: {after.__file__}")
    print(f"CPU time, medians of {args.rounds} alternated rounds in one process")
    print("| measurement | before | after | after / before |")
    print("|---|---|---|---|")
    for what in dict.fromkeys(key[0] for key in keys):
        b, a = np.median(times[(what, "before")]), np.median(times[(what, "after")])
        print(f"| {what} | {b:.2f} | {a:.2f} | {a / b:.3f} |")
    print(f"BLAS: {blas_library()}")


if __name__ == "__main__":
    main()
