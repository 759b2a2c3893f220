"""Accuracy of the residual layers: round trips, the roulette estimator's bias, the series' bias.

1. Round trip: for Planar, Radial and ResidualBlock (LipSwish and ELU, hidden (16, 16),
   lipschitz 0.9), 10 parameter draws (every parameter moved off its initial value by N(0, 0.5²)
   noise, as in tests/registry.py) × 10,000 rows z ~ N(0, 3² I), D = 4: the largest relative error
   max|f⁻¹(f(z)) − z| / max(1, max|z|), and the same for f(f⁻¹(x)) − x.
2. Roulette (2 exact terms, one probe) against the exact log-det for D = 2, 3, 5: over 10⁴ draws
   at one point, (mean − exact) / standard error, for the value and for the gradient along a
   random parameter direction (50 batches of 200 rows). Two blocks: "network" (hidden (16, 16),
   count Geometric(0.5)) and "linear" (no hidden layer, W = 0.85 · a random orthogonal matrix, so
   every eigenvalue of J has modulus 0.85; Geometric(0.25), which keeps the variance finite).
3. Series: |E[estimate] − exact| against the bound D Σ_{k>n} Lip^k / k, for n = 1, 2, 4, 8, 16,
   for the same two kinds of block at D = 3.

    python benchmarks/residual_accuracy.py
"""

from __future__ import annotations

import numpy as np

import npflows as nf
from npflows.layers import lipschitz_bound, residual_logdet
from npflows.lipschitz import ContractiveNet
from npflows.tree import leaves, tree_map


def perturbed(layer, rng, scale=0.5):
    for leaf in leaves(layer.params):
        leaf += scale * rng.standard_normal(leaf.shape)
    return layer


def round_trips():
    makers = {
        "Planar": lambda rng: nf.Planar(4, rng=rng),
        "Radial": lambda rng: nf.Radial(4, rng=rng),
        "ResidualBlock lipswish": lambda rng: nf.ResidualBlock(4, (16, 16), rng=rng),
        "ResidualBlock elu": lambda rng: nf.ResidualBlock(4, (16, 16), activation="elu", rng=rng),
    }
    print("| layer | max rel. error f⁻¹(f(z)) − z | max rel. error f(f⁻¹(x)) − x |")
    print("|---|---|---|")
    for name, make in makers.items():
        worst = [0.0, 0.0]
        for seed in range(10):
            rng = np.random.default_rng(seed)
            layer = perturbed(make(rng), rng)
            z = 3.0 * rng.standard_normal((10_000, 4))
            x = layer.forward(z)[0]
            worst[0] = max(
                worst[0], np.abs(layer.inverse(x)[0] - z).max() / max(1, np.abs(z).max())
            )
            x_again = layer.forward(layer.inverse(x)[0])[0]
            worst[1] = max(worst[1], np.abs(x_again - x).max() / max(1, np.abs(x).max()))
        print(f"| {name} | {worst[0]:.1e} | {worst[1]:.1e} |")


def tree_dot(a, b):
    return sum(float(np.sum(p * q)) for p, q in zip(leaves(a), leaves(b), strict=True))


def make_block(kind, dim, **options):
    rng = np.random.default_rng(20 + dim)
    if kind == "network":
        return perturbed(nf.ResidualBlock(dim, (16, 16), rng=rng, **options), rng)
    block = nf.ResidualBlock(dim, (), lipschitz=0.95, count_param=0.25, rng=rng, **options)
    block.params["weights"][0][:] = 0.85 * np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    block.params["biases"][0][:] = 0.3
    return block


def roulette():
    print(
        "\n| block | D | exact log-det | roulette mean | (mean − exact)/SE | gradient (mean − exact)/SE |"
    )
    print("|---|---|---|---|---|---|")
    for kind in ("network", "linear"):
        for dim in (2, 3, 5):
            block = make_block(kind, dim, logdet="roulette")
            exact = nf.ResidualBlock(dim, block.hidden, lipschitz=block.lipschitz, rng=0)
            exact.params = block.params
            point = np.random.default_rng(dim).standard_normal((1, dim))
            _, exact_ld, pullback = exact.inverse_vjp(point)
            _, exact_grads = pullback(np.zeros_like(point), np.ones(1))
            direction = tree_map(
                lambda p: np.random.default_rng(1).standard_normal(p.shape), exact_grads
            )
            values, grads = [], []
            x = np.repeat(point, 200, axis=0)
            for _ in range(50):
                _, ld, pb = block.inverse_vjp(x)
                values.append(ld)
                grads.append(tree_dot(pb(np.zeros_like(x), np.ones(200))[1], direction) / 200)
            values, grads = np.concatenate(values), np.array(grads)
            z_value = (values.mean() - exact_ld[0]) / (values.std(ddof=1) / np.sqrt(len(values)))
            z_grad = (grads.mean() - tree_dot(exact_grads, direction)) / (
                grads.std(ddof=1) / np.sqrt(len(grads))
            )
            print(
                f"| {kind} | {dim} | {exact_ld[0]:.5f} | {values.mean():.5f} | {z_value:+.2f} "
                f"| {z_grad:+.2f} |"
            )


def series():
    for kind in ("network", "linear"):
        block = make_block(kind, 3)
        x = np.random.default_rng(4).standard_normal((8, 3))
        net = ContractiveNet(
            x,
            block.normalized_weights()[0],
            block.params["biases"],
            "lipswish",
            block.params.get("beta_raw", []),
        )
        exact = residual_logdet.exact(net)[0]
        basis = np.broadcast_to(np.sqrt(3) * np.eye(3), (8, 3, 3))  # exact Hutchinson average
        lip = lipschitz_bound(block)
        print(f"\nseries, {kind} block, D = 3, Lip(g) ≤ {lip:.3f}, max over 8 points")
        print("| n_terms | max abs. bias | bound D Σ_{k>n} Lip^k/k |")
        print("|---|---|---|")
        for n in (1, 2, 4, 8, 16):
            bias = np.abs(residual_logdet.series(net, basis, n)[0] - exact).max()
            bound = 3 * (-np.log1p(-lip) - sum(lip**k / k for k in range(1, n + 1)))
            print(f"| {n} | {bias:.2e} | {bound:.2e} |")


if __name__ == "__main__":
    round_trips()
    roulette()
    series()
