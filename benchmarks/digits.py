"""Test bits/dim of the multi-scale flows on the 8×8 digits (fixed split), over seeds; and speed.

Quality: for each flow and seed, ``npflows.dequantization.fit_pixels`` trains on the first 1,000
digits for ``--epochs`` epochs (batch 64, Adam), keeps the epoch with the best validation bits/dim
(the next 350 digits, one dequantization each), and scores the remaining 447 test digits with 8
dequantizations each. Reported: mean ± standard error over seeds, and wall time per run.
The baselines on the same split (uniform, independent categorical) are computed here too.

Speed: the ConvNet's 3×3 convolutions at the training shapes, forward and backward, in GFLOP/s
(2 · multiply-adds / time) against one GEMM of the same products (the im2col floor), and ms per
training step (``nll_and_grad`` + ``Adam.step``, batch 64) of the default Glow.

    python benchmarks/digits.py quality --epochs 40 --seeds 0 1 2
    python benchmarks/digits.py speed

Run with OPENBLAS_NUM_THREADS=1 on a shared machine (the BLAS and its thread count are printed).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import npflows as nf
from npflows.conv import conv2d_vjp
from npflows.dequantization import (
    categorical_bits_per_dim,
    dequantize,
    fit_pixels,
    uniform_bits_per_dim,
)

FLOWS = {"glow": nf.flows.Glow, "realnvp-multiscale": nf.flows.MultiScaleRealNVP}


def blas_name() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if info:
            i = info[0]
            return f"{i['internal_api']} {i['version']} ({i.get('architecture')}), {i['num_threads']} thread(s)"
    except ImportError:
        pass
    return "unknown BLAS (install threadpoolctl to name it)"


def quality(args):
    train, validation, test = (nf.datasets.load_digits(s) for s in ("train", "validation", "test"))
    levels = nf.datasets.DIGITS_LEVELS
    print(f"BLAS: {blas_name()}")
    print(f"uniform: {uniform_bits_per_dim(levels):.4f} bits/dim")
    print(f"independent categorical: {categorical_bits_per_dim(train, test, levels):.4f} bits/dim")
    for name in args.flows:
        results, times = [], []
        for seed in args.seeds:
            rng_init, rng_fit, rng_test = map(
                np.random.default_rng, np.random.SeedSequence(seed).spawn(3)
            )
            flow = FLOWS[name]((1, 8, 8), rng=rng_init)
            start = time.perf_counter()
            history = fit_pixels(
                flow, train, validation, levels, epochs=args.epochs, lr=args.lr, rng=rng_fit
            )
            times.append(time.perf_counter() - start)
            bits = nf.bits_per_dim(flow, test, levels, rng_test, n_samples=8)
            results.append(bits)
            print(
                f"{name} seed {seed}: test {bits:.4f} bits/dim (best epoch {history.best_epoch + 1}"
                f" of {args.epochs}, validation {min(history.val_bits_per_dim):.4f}), "
                f"{times[-1]:.0f} s",
                flush=True,
            )
        r = np.array(results)
        se = r.std(ddof=1) / np.sqrt(len(r)) if len(r) > 1 else float("nan")
        n_params = nf.tree.size(flow.params)
        print(
            f"| {name} | {n_params} | {args.epochs} | {len(r)} | {r.mean():.3f} ± {se:.3f} | "
            f"{np.mean(times) / 60:.1f} min |"
        )


def median_seconds(fn, repeats=20):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def couplings(layer):
    """Every ImageCoupling inside ``layer`` (Flows and FactorOuts opened)."""
    if isinstance(layer, nf.ImageCoupling):
        yield layer
    for inner in getattr(layer, "layers", []):
        yield from couplings(inner)
    if isinstance(layer, nf.FactorOut):
        yield from couplings(layer.inner)


def conv_speed(batch, h, w, kernel, rng):
    """GFLOP/s of one 3×3 convolution forward, its backward (∂K and ∂x: two products) and one
    GEMM of the forward's im2col shapes, on random arrays."""
    k, _, c_in, c_out = kernel.shape
    x, bias = rng.standard_normal((batch, h, w, c_in)), np.zeros(c_out)
    flops = 2.0 * batch * h * w * k * k * c_in * c_out
    forward = median_seconds(lambda: conv2d_vjp(x, kernel, bias, need_pullback=False))
    out, pullback = conv2d_vjp(x, kernel, bias)
    grad = rng.standard_normal(out.shape)
    backward = median_seconds(lambda: pullback(grad))
    cols = rng.standard_normal((batch * h * w, k * k * c_in))
    weight = kernel.reshape(k * k * c_in, c_out)
    gemm = median_seconds(lambda: cols @ weight)
    return flops / forward / 1e9, 2 * flops / backward / 1e9, flops / gemm / 1e9


def speed(args):
    print(f"BLAS: {blas_name()}")
    rng = np.random.default_rng(0)
    batch = 64
    flow = nf.flows.Glow((1, 8, 8), rng=0)
    print(f"The 3×3 convolutions of the default Glow's ConvNets at batch {batch}:")
    print(
        "| conv (N, H, W, C_in → C_out) | forward GFLOP/s | backward GFLOP/s | one GEMM GFLOP/s |"
    )
    print("|---|---|---|---|")
    seen = set()
    for layer in couplings(flow):
        _, h, w = layer.shape
        for kernel in layer.net.params["kernels"]:
            key = (h, w, kernel.shape)
            if kernel.shape[0] != 3 or key in seen:
                continue
            seen.add(key)
            kernel = rng.standard_normal(kernel.shape)
            fwd, bwd, gemm = conv_speed(batch, h, w, kernel, rng)
            print(
                f"| {batch}, {h}, {w}, {kernel.shape[2]} → {kernel.shape[3]} | {fwd:.2f} | "
                f"{bwd:.2f} | {gemm:.2f} |"
            )
    x = dequantize(nf.datasets.load_digits("train")[:batch], 17, rng=0)
    flow.log_prob(x)  # initializes the ActNorms
    optimizer = nf.optim.Adam(flow.params, lr=1e-3)

    def step():
        _, grads = flow.nll_and_grad(x)
        optimizer.step(grads)

    step_s = median_seconds(step, 30)
    print(
        f"default Glow ({nf.tree.size(flow.params)} parameters), batch {batch}: "
        f"{1e3 * step_s:.1f} ms per training step (median of 30)"
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--flows", nargs="+", default=list(FLOWS), choices=list(FLOWS))
    q.add_argument("--epochs", type=int, default=40)
    q.add_argument("--lr", type=float, default=2e-3)
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sub.add_parser("speed")
    args = parser.parse_args()
    quality(args) if args.what == "quality" else speed(args)


if __name__ == "__main__":
    main()
