"""Milliseconds per training step, against the time of the same step's matrix products alone.

A step is what ``npflows.fit`` does per minibatch: ``flow.nll_and_grad(x)`` (log-density and its
gradient by the hand-written pullbacks) plus one ``Adam.step``. The BLAS floor is the time of the
matrix products that step must do (each conditioner layer's forward product, and the two products
of its backward pass), run back to back on arrays of the same shapes and dtype; the ratio step /
floor says how much the rest (elementwise work, Python, allocation) costs on top.

    python benchmarks/speed.py                 # every configuration, float64/float32, 1/2 threads
    python benchmarks/speed.py --only A B      # some of them
    python benchmarks/speed.py --one A float64 1   # one measurement as JSON (used internally)
    python benchmarks/speed.py --only S --rounds 5 # MAF against IAF sampling, 5 fresh processes
    python benchmarks/speed.py --only S --trees /tmp/before .   # two source trees, alternated
    python benchmarks/speed.py --only B --dtypes float64 --threads 1 --trees /tmp/before .
    python benchmarks/speed.py --only C L --rounds 3            # chunking; small-batch latency

S times ``flow.sample(10_000)`` of a 16-D MAF (the sequential direction of each layer) and of the
IAF of the same size (one MADE pass per layer), and ``flow.log_prob`` of 10,000 points, sequential
for the IAF and one pass for the MAF, alternating the four in one process, and reports the ratios
sequential / one pass (CPU time); ``--rounds`` repeats it in fresh processes and prints every
round and the medians, so that a shared machine's load changes hit all of them alike.

C (chunking) times ``nll_and_grad`` and ``log_prob`` per point on A's 2-D RealNVP and M's 16-D MAF
at batches of 1024 to 65,536 rows, in one pass (chunk "None") and in chunks of 1024 to 8192 rows
("default" is the call without the keyword, ``npflows.flow.CHUNK_SIZE`` since issue 15), all
alternated in one process, CPU time, medians over its repeats and then over ``--rounds`` processes.
L (latency) times ``log_prob`` of 1 and of 16 points on ``NSF(2, bins=8, bound=5.0)`` and
``MAF(16)``, µs per call, the median of 25 blocks of 200 calls, CPU time.

With ``--trees``, every table alternates the source trees: S, C and L round by round, the step
table (A, B, D, M) ``--rounds`` runs per row and tree, reporting their medians. Every table ends
with the BLAS library and kernel it ran on (threadpoolctl).

Thread counts are set with OPENBLAS_NUM_THREADS/OMP_NUM_THREADS in a fresh process per run, since
BLAS reads them at import. Each run also sets MALLOC_TRIM_THRESHOLD_ and MALLOC_MMAP_THRESHOLD_
high, so that glibc keeps freed memory instead of returning it to the OS after every step and
faulting it back in on the next (measured at ~2.3 µs a page on this VM, up to ~30 % of a small
step, and varying with allocation order rather than with the code's work). Pass ``--default-malloc``
to measure with glibc's defaults. Results are medians over repeated steps; record them in
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc

CONFIGS = {
    "A": ("2-D RealNVP, 8 layers, hidden (64, 64), batch 512", "RealNVP", 2, 512),
    "B": ("2-D NSF, 4 layers, 8 bins, hidden (64, 64), batch 512", "NSF", 2, 512),
    "D": ("64-D RealNVP, 5 layers, hidden (512, 512), batch 4096", "RealNVP", 64, 4096),
    "M": ("16-D MAF, 5 layers, hidden (128, 128), batch 1024", "MAF", 16, 1024),
    "S": ("16-D MAF vs IAF, 5 layers, hidden (128, 128), 10k points", "MAF", 16, 10_000),
    "C": ("chunking: 2-D RealNVP (A's) and 16-D MAF (M's), batch 1024 to 65536", "", 0, 0),
    "L": ("latency: log_prob of 1 and 16 points, 2-D NSF and 16-D MAF", "", 0, 0),
}
SAMPLING_ONLY = {"S"}  # measured in float64 on one thread: the sequential direction's cost
OWN_TABLES = {"S", "C", "L"}  # float64, one thread, each with its own table
CHUNK_BATCHES = (1024, 4096, 16_384, 65_536)
CHUNK_SIZES = (None, 1024, 2048, 4096, 8192)  # None: one pass


def build(name):
    from npflows.flows import MAF, NSF, RealNVP

    _, family, dim, _ = CONFIGS[name]
    if family == "RealNVP":
        n_layers, hidden = (8, (64, 64)) if dim == 2 else (5, (512, 512))
        return RealNVP(dim, n_layers=n_layers, hidden=hidden, rng=0)
    if family == "NSF":
        return NSF(dim, n_layers=4, bins=8, hidden=(64, 64), rng=0)
    return MAF(dim, n_layers=5, hidden=(128, 128), rng=0)


def median_ms(fn, repeats):
    """Median ms of ``fn()``: wall time, or this process's CPU time when the environment variable
    SPEED_CPU_TIME is set (``--cpu-time``: on a shared machine, wall time also counts the time
    other processes hold the core)."""
    import numpy as np

    clock = time.process_time if os.environ.get("SPEED_CPU_TIME") else time.perf_counter
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return 1e3 * float(np.median(times))


def blas_floor(flow, batch, dtype, rng):
    """The step's matrix products: per conditioner layer (fan_in → fan_out) at batch N,
    (N, fan_in) @ (fan_in, fan_out) forward, (fan_in, N) @ (N, fan_out) for ∂L/∂W and
    (N, fan_out) @ (fan_out, fan_in) for ∂L/∂input."""
    shapes = []
    for layer in flow.layers:
        net = getattr(layer, "net", None)
        if net is None:
            continue
        widths = [net.in_dim, *net.hidden, net.out_dim]
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            shapes += [((batch, a), (a, b)), ((a, batch), (batch, b)), ((batch, b), (b, a))]
    pairs = [
        (rng.standard_normal(s1).astype(dtype), rng.standard_normal(s2).astype(dtype))
        for s1, s2 in shapes
    ]

    def products():
        for a, b in pairs:
            a @ b

    return products


def blas_library():
    """The BLAS numpy calls and its kernel, from threadpoolctl (or numpy's config without it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        import numpy as np

        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas['version']} (threadpoolctl not installed: kernel unknown)"
    return "; ".join(
        f"{i['internal_api']} {i['version']}, kernel {i.get('architecture')}, "
        f"{i['num_threads']} thread(s)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )


def measure_sampling(repeats=5):
    """The two sequential directions against the one-pass ones, 10,000 points, alternated:
    sampling (MAF sequential, IAF one pass) and log_prob (IAF sequential, MAF one pass).
    Median ms of each and the ratios sequential / one pass.

    CPU time of this process (one BLAS thread), not wall time: on a shared machine the wall time
    also counts the time other processes hold the core.
    """
    import numpy as np

    from npflows.flows import IAF, MAF

    flows = {"MAF": MAF(16, n_layers=5, hidden=(128, 128), rng=0)}
    flows["IAF"] = IAF(16, n_layers=5, hidden=(128, 128), rng=0)
    x = np.random.default_rng(2).standard_normal((10_000, 16))
    runs = {
        f"sample_10k_{name}_ms": (lambda flow=flow: flow.sample(10_000, rng=1))
        for name, flow in flows.items()
    }
    runs |= {
        f"log_prob_10k_{name}_ms": (lambda flow=flow: flow.log_prob(x))
        for name, flow in flows.items()
    }
    for run in runs.values():
        run()
    times = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            start = time.process_time()
            run()
            times[key].append(time.process_time() - start)
    result = {key: 1e3 * float(np.median(t)) for key, t in times.items()}
    return result | {
        "config": "S",
        "dtype": "float64",
        "ratio": result["sample_10k_MAF_ms"] / result["sample_10k_IAF_ms"],
        "log_prob_ratio": result["log_prob_10k_IAF_ms"] / result["log_prob_10k_MAF_ms"],
        "blas": blas_library(),
    }


def _chunk_keywords(method):
    """Whether ``method`` takes a ``chunk_size`` keyword (npflows since issue 15)."""
    import inspect

    return "chunk_size" in inspect.signature(method).parameters


def measure_chunking(repeats=3):
    """µs per point of ``nll_and_grad`` and ``log_prob`` on A's 2-D RealNVP and M's 16-D MAF, at
    each batch of ``CHUNK_BATCHES``, in one pass and in chunks of each of ``CHUNK_SIZES`` (those
    smaller than the batch), alternated within each repeat; CPU time, median over the repeats.
    A tree without the ``chunk_size`` keyword (before issue 15) is measured in one pass only,
    as "default"."""
    import numpy as np

    flows = {"A": build("A"), "M": build("M")}
    chunked = _chunk_keywords(flows["A"].log_prob)
    runs = {}
    for name, flow in flows.items():
        for batch in CHUNK_BATCHES:
            x = np.random.default_rng(batch).standard_normal((batch, flow.dim))
            sizes = [c for c in CHUNK_SIZES if c is None or c < batch] if chunked else ["default"]
            for size in sizes:
                kw = {} if size == "default" else {"chunk_size": size}
                for op in ("nll_and_grad", "log_prob"):
                    method = getattr(flow, op)
                    runs[(name, batch, op, str(size))] = (
                        lambda method=method, x=x, kw=kw: method(x, **kw),
                        batch,
                    )
    for run, _ in runs.values():
        run()
    times = {key: [] for key in runs}
    for _ in range(repeats):
        for key, (run, batch) in runs.items():
            start = time.process_time()
            run()
            times[key].append(1e6 * (time.process_time() - start) / batch)
    rows = [[*key, float(np.median(t))] for key, t in times.items()]
    return {"config": "C", "dtype": "float64", "rows": rows, "blas": blas_library()}


LATENCY_FLOWS = {
    "NSF": "2-D NSF, 4 layers, 8 bins, (64, 64)",
    "MAF": "16-D MAF, 5 layers, (128, 128)",
}


def measure_latency(calls=200, blocks=25):
    """µs per call of ``log_prob`` of 1 and of 16 points on ``npflows.flows.NSF(2, bins=8,
    bound=5.0)`` and ``MAF(16)`` (4 layers of 8 bins, hidden (64, 64), as B; 5 layers, hidden
    (128, 128)), each in its default orientation:
    CPU time of ``blocks`` blocks of ``calls`` calls each, the four alternated block by block;
    the median block's time per call."""
    import numpy as np

    from npflows.flows import MAF, NSF

    flows = {"NSF": NSF(2, bins=8, bound=5.0, rng=0), "MAF": MAF(16, rng=0)}
    runs = {}
    for name, flow in flows.items():
        for n in (1, 16):
            x = np.random.default_rng(n).standard_normal((n, flow.dim))
            runs[f"{name}_{n}"] = lambda flow=flow, x=x: flow.log_prob(x)
    for run in runs.values():
        for _ in range(calls):
            run()
    times = {key: [] for key in runs}
    for _ in range(blocks):
        for key, run in runs.items():
            start = time.process_time()
            for _ in range(calls):
                run()
            times[key].append(1e6 * (time.process_time() - start) / calls)
    result = {f"{key}_us": float(np.median(t)) for key, t in times.items()}
    return result | {"config": "L", "dtype": "float64", "blas": blas_library()}


def measure(name, dtype_name, repeats=30):
    import numpy as np

    from npflows.optim import Adam

    if name in SAMPLING_ONLY:
        return measure_sampling()
    if name == "C":
        return measure_chunking()
    if name == "L":
        return measure_latency()

    dtype = np.dtype(dtype_name)
    _, _, dim, batch = CONFIGS[name]
    rng = np.random.default_rng(0)
    flow = build(name).astype(dtype)
    x = rng.standard_normal((batch, dim)).astype(dtype)
    optimizer = Adam(flow.params, lr=1e-4)

    def step():
        _, grads = flow.nll_and_grad(x)
        optimizer.step(grads)

    for _ in range(3):
        step()
    if name == "D":
        repeats = 8
    step_ms = median_ms(step, repeats)
    floor = blas_floor(flow, batch, dtype, rng)
    floor()
    floor_ms = median_ms(floor, repeats)
    result = {
        "config": name,
        "dtype": dtype_name,
        "blas": blas_library(),
        "step_ms": step_ms,
        "blas_floor_ms": floor_ms,
        "ratio": step_ms / floor_ms,
        "ms_per_conditioned_layer": step_ms / sum(hasattr(la, "net") for la in flow.layers),
    }
    if name == "D":
        tracemalloc.start()
        step()
        result["peak_step_memory_MiB"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return result


def run_one_in_subprocess(name, dtype_name, threads, keep_freed_memory=True, tree=None):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    if tree is not None:  # import npflows from this source tree
        env["PYTHONPATH"] = os.path.abspath(tree)
    if keep_freed_memory:
        env |= {"MALLOC_TRIM_THRESHOLD_": "4000000000", "MALLOC_MMAP_THRESHOLD_": "4000000000"}
    out = subprocess.run(
        [sys.executable, __file__, "--one", name, dtype_name, str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out) | {"threads": threads}


def sampling_table(rounds, keep_freed_memory, trees):
    """S: one row per fresh process (float64, one thread), then the medians over the rounds.

    With several ``trees`` (npflows source trees, e.g. before and after a change), each round runs
    every tree in turn, so that the machine's load changes hit all of them alike.
    """
    import numpy as np

    print(f"S: {CONFIGS['S'][0]}, float64, 1 thread")
    print(
        "| tree | round | MAF sample ms | IAF sample ms | MAF / IAF "
        "| IAF log_prob ms | MAF log_prob ms | IAF / MAF |"
    )
    print("|---|---|---|---|---|---|---|---|")
    keys = (
        "sample_10k_MAF_ms",
        "sample_10k_IAF_ms",
        "ratio",
        "log_prob_10k_IAF_ms",
        "log_prob_10k_MAF_ms",
        "log_prob_ratio",
    )
    rows = {tree: [] for tree in trees}

    def print_row(tree, label, row):
        cells = " | ".join(
            f"{v:.2f}" if "ratio" in k else f"{v:.1f}" for k, v in zip(keys, row, strict=True)
        )
        print(f"| {tree} | {label} | {cells} |", flush=True)

    for i in range(rounds):
        for tree in trees:
            r = run_one_in_subprocess("S", "float64", 1, keep_freed_memory, tree)
            rows[tree].append([r[k] for k in keys])
            print_row(tree, i + 1, rows[tree][-1])
    for tree in trees:
        print_row(tree, "median", np.median(rows[tree], axis=0))
    print(f"BLAS: {r['blas']}\n", flush=True)


def chunking_table(rounds, keep_freed_memory, trees):
    """C: µs per point, one row per (tree, flow, operation, batch), one column per chunk size
    ("-" where the chunk is not smaller than the batch), medians over ``rounds`` fresh processes
    (float64, one thread), the trees alternated in each round."""
    import numpy as np

    results = {tree: [] for tree in trees}
    for _ in range(rounds):
        for tree in trees:
            r = run_one_in_subprocess("C", "float64", 1, keep_freed_memory, tree)
            results[tree].append({tuple(row[:4]): row[4] for row in r["rows"]})
    columns = ["default", *map(str, CHUNK_SIZES)]
    print(f"C: {CONFIGS['C'][0]}, float64, 1 thread, µs per point, median of {rounds} processes")
    print("| tree | flow | operation | batch | " + " | ".join(columns) + " |")
    print("|---|---|---|---|" + "---|" * len(columns))
    for tree in trees:
        keys = sorted({key[:3] for key in results[tree][0]}, key=lambda k: (k[0], k[2], k[1]))
        for flow, batch, op in keys:
            cells = []
            for column in columns:
                values = [r.get((flow, batch, op, column)) for r in results[tree]]
                known = [v for v in values if v is not None]
                cells.append(f"{np.median(known):.2f}" if known else "-")
            print(f"| {tree} | {flow} | {op} | {batch} | " + " | ".join(cells) + " |", flush=True)
    print(f"BLAS: {r['blas']}\n", flush=True)


def latency_table(rounds, keep_freed_memory, trees):
    """L: µs per ``log_prob`` call, one row per fresh process and tree, then the medians."""
    import numpy as np

    keys = ("NSF_1_us", "NSF_16_us", "MAF_1_us", "MAF_16_us")
    print(f"L: {CONFIGS['L'][0]}, float64, 1 thread, µs per call")
    print("| tree | round | NSF, 1 point | NSF, 16 points | MAF, 1 point | MAF, 16 points |")
    print("|---|---|---|---|---|---|")
    rows = {tree: [] for tree in trees}
    for i in range(rounds):
        for tree in trees:
            r = run_one_in_subprocess("L", "float64", 1, keep_freed_memory, tree)
            rows[tree].append([r[k] for k in keys])
            print(f"| {tree} | {i + 1} | " + " | ".join(f"{v:.0f}" for v in rows[tree][-1]) + " |")
    for tree in trees:
        medians = np.median(rows[tree], axis=0)
        print(f"| {tree} | median | " + " | ".join(f"{v:.0f}" for v in medians) + " |")
    print(f"BLAS: {r['blas']}\n", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CONFIGS), default=sorted(CONFIGS))
    parser.add_argument("--one", nargs=3, metavar=("CONFIG", "DTYPE", "THREADS"))
    parser.add_argument("--default-malloc", action="store_true", help="glibc's default trimming")
    parser.add_argument(
        "--rounds", type=int, default=3, help="fresh processes for S, C, L (per tree: all)"
    )
    parser.add_argument(
        "--trees", nargs="+", default=["."], help="npflows source trees to alternate"
    )
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument(
        "--cpu-time", action="store_true", help="step table in CPU time, not wall time"
    )
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    args = parser.parse_args()
    if args.cpu_time:  # read by median_ms in every fresh process
        os.environ["SPEED_CPU_TIME"] = "1"
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1])))
        return
    tables = {"S": sampling_table, "C": chunking_table, "L": latency_table}
    for name in sorted(OWN_TABLES & set(args.only)):
        tables[name](args.rounds, not args.default_malloc, args.trees)
    args.only = [name for name in args.only if name not in OWN_TABLES]
    if not args.only:
        return
    step_table(args, not args.default_malloc)


def step_table(args, keep_freed_memory):
    """The training-step table of ``args.only`` (A, B, D, M) for ``args.dtypes`` × ``args.threads``.
    With several ``args.trees``, each row is run ``args.rounds`` times per tree, the trees
    alternated, and the medians are printed, one row per tree."""
    import numpy as np

    trees = args.trees
    keys = ("step_ms", "blas_floor_ms", "ratio", "ms_per_conditioned_layer")
    print(
        ("| tree " if len(trees) > 1 else "")
        + "| config | dtype | threads | step ms | BLAS floor ms | ratio | ms per conditioned layer "
        "| extra |"
    )
    print("|---" * (9 if len(trees) > 1 else 8) + "|")
    for name in args.only:
        for dtype_name in args.dtypes:
            for threads in args.threads:
                runs = {tree: [] for tree in trees}
                for _ in range(1 if len(trees) == 1 else args.rounds):
                    for tree in trees:
                        r = run_one_in_subprocess(
                            name, dtype_name, threads, keep_freed_memory, tree
                        )
                        runs[tree].append(r)
                for tree in trees:
                    step, floor, ratio, per_layer = np.median(
                        [[r[k] for k in keys] for r in runs[tree]], axis=0
                    )
                    extra = ", ".join(
                        f"{k} {v:.1f}"
                        for k, v in runs[tree][0].items()
                        if k.startswith(("peak", "sample"))
                    )
                    print(
                        (f"| {tree} " if len(trees) > 1 else "")
                        + f"| {name}: {CONFIGS[name][0]} | {dtype_name} | {threads} | {step:.2f} "
                        f"| {floor:.2f} | {ratio:.2f} | {per_layer:.3f} | {extra} |",
                        flush=True,
                    )
    print(f"BLAS (last run): {r['blas']}\n", flush=True)


if __name__ == "__main__":
    main()
