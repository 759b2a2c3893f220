"""Make ``tests/data/peers/*.npz``: zuko and nflows models, their arrays and their own numbers.

Each file is one model made by the real library, with weights perturbed away from their
initialization (so no layer is near the identity), and what the library computes with it in
float64: ``log_prob`` at points inside and beyond the spline bounds, and the sampling map applied to
fixed base draws. ``tests/test_interop.py`` rebuilds every model with ``npflows.interop`` from the
arrays alone and compares. This script is run by hand, not in CI; it needs torch, zuko and nflows,
which npflows never imports. To regenerate, from the repo root:

    python -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install torch zuko==1.6.0 nflows==0.14 numpy
    /tmp/peers-venv/bin/python tests/data/make_peer_references.py

(Made with torch 2.14.1 on CPU, zuko 1.6.0 and nflows 0.14, in float64.)

Members of each file:
    library, name, kwargs_json, versions_json: 0-d strings; kwargs_json holds the constructor's
        keyword arguments exactly as passed (``from_zuko(name, arrays, **kwargs)``).
    state/<key>: ``model.state_dict()[key]`` as numpy (bool masks, int64 orders, float64 weights).
    x (N, D), context (N, C) when conditional, log_prob (N,): the library's log-density.
    z (M, D), [z_context (M, C)], sample (M, D): the library's sampling map applied to the draws z.
The *_float32 files hold a model trained (here: perturbed) and exported in float32: state/ arrays
are float32, x, z and context are float32 values, log_prob and sample are what the library computes
in float64 with those weights (model.double(), exact), and log_prob_float32 and sample_float32 what
it computes in float32, the numbers a float32 user sees.
"""

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import zuko
from nflows.flows import MaskedAutoregressiveFlow, SimpleRealNVP

OUT = Path(__file__).parent / "peers"
N_POINTS, N_DRAWS = 24, 16

# (file stem, library, class name, constructor kwargs, weight noise, context width)
CASES = [
    ("zuko_realnvp", "zuko", "RealNVP", {"features": 3, "transforms": 3, "hidden_features": [8, 8]}, 0.5),
    ("zuko_realnvp_context", "zuko", "RealNVP", {"features": 4, "context": 2, "transforms": 2, "hidden_features": [8]}, 0.5),
    ("zuko_realnvp_randmask", "zuko", "RealNVP", {"features": 5, "transforms": 3, "hidden_features": [8, 8], "randmask": True}, 0.5),
    ("zuko_maf", "zuko", "MAF", {"features": 3, "transforms": 2, "hidden_features": [8, 8]}, 0.5),
    ("zuko_maf_context", "zuko", "MAF", {"features": 3, "context": 2, "transforms": 3, "hidden_features": [8, 8]}, 0.5),
    ("zuko_maf_randperm", "zuko", "MAF", {"features": 4, "transforms": 2, "hidden_features": [8], "randperm": True}, 0.5),
    ("zuko_maf_passes2", "zuko", "MAF", {"features": 4, "transforms": 2, "hidden_features": [8, 8], "passes": 2}, 0.5),
    ("zuko_nsf", "zuko", "NSF", {"features": 2, "transforms": 2, "bins": 4, "hidden_features": [8, 8]}, 1.0),
    ("zuko_nsf_context", "zuko", "NSF", {"features": 3, "context": 2, "transforms": 2, "bins": 5, "hidden_features": [8, 8]}, 1.0),
    ("zuko_nsf_slope", "zuko", "NSF", {"features": 2, "transforms": 2, "bins": 3, "slope": 0.01, "hidden_features": [8]}, 1.0),
    ("zuko_nsf_benchmark_b", "zuko", "NSF", {"features": 2, "transforms": 4, "bins": 8, "hidden_features": [64, 64]}, 0.2),
    ("nflows_maf", "nflows", "MaskedAutoregressiveFlow", {"features": 3, "hidden_features": 8, "num_layers": 2, "num_blocks_per_layer": 2}, 0.5),
    ("nflows_maf_feedforward", "nflows", "MaskedAutoregressiveFlow", {"features": 4, "hidden_features": 8, "num_layers": 3, "num_blocks_per_layer": 1, "use_residual_blocks": False}, 0.5),
    ("nflows_maf_randperm", "nflows", "MaskedAutoregressiveFlow", {"features": 4, "hidden_features": 8, "num_layers": 2, "num_blocks_per_layer": 2, "use_random_permutations": True}, 0.5),
    ("nflows_realnvp", "nflows", "SimpleRealNVP", {"features": 3, "hidden_features": 8, "num_layers": 3, "num_blocks_per_layer": 2}, 0.5),
    ("nflows_realnvp_volume_preserving", "nflows", "SimpleRealNVP", {"features": 4, "hidden_features": 8, "num_layers": 2, "num_blocks_per_layer": 1, "use_volume_preserving": True}, 0.5),
    ("zuko_nsf_float32", "zuko", "NSF", {"features": 2, "transforms": 2, "bins": 6, "hidden_features": [16, 16]}, 0.5),
    ("nflows_realnvp_float32", "nflows", "SimpleRealNVP", {"features": 3, "hidden_features": 16, "num_layers": 4, "num_blocks_per_layer": 1}, 0.5),
]  # fmt: skip


def build(library, name, kwargs):
    if library == "zuko":
        return getattr(zuko.flows, name)(**kwargs)
    return {"MaskedAutoregressiveFlow": MaskedAutoregressiveFlow, "SimpleRealNVP": SimpleRealNVP}[
        name
    ](**kwargs)


def points(rng, n, dim, spread):
    """Standard normal points scaled by ``spread``, with a few beyond ±5 (zuko's spline bound)."""
    x = spread * rng.standard_normal((n, dim))
    x[:4] = rng.choice([-1.0, 1.0], (4, dim)) * rng.uniform(5.2, 8.0, (4, dim))
    x[4, 0] = 5.0 + 1e-9  # just outside the bound, then just inside
    x[5, 0] = 5.0 - 1e-9
    return x


def library_numbers(library, model, t):
    """The library's log_prob at t["x"] and its sampling map at t["z"] (with the contexts)."""
    with torch.no_grad():
        if library == "zuko":
            log_prob = model(t.get("context")).log_prob(t["x"])
            sample = model(t.get("z_context")).transform.inv(t["z"])
        else:
            log_prob = model.log_prob(t["x"])
            sample = model._transform.inverse(t["z"])[0]
    return log_prob.numpy(), sample.numpy()


def main():
    torch.set_default_dtype(torch.float64)
    OUT.mkdir(exist_ok=True)
    versions = {"torch": torch.__version__, "zuko": zuko.__version__, "nflows": version("nflows")}
    for seed, (stem, library, name, kwargs, noise) in enumerate(CASES):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = build(library, name, kwargs).double()
        with torch.no_grad():
            for param in model.parameters():
                param.add_(noise * torch.randn_like(param))
        model.eval()
        dim, ctx = kwargs["features"], kwargs.get("context", 0)
        x = points(rng, N_POINTS, dim, 1.5)
        z = points(rng, N_DRAWS, dim, 1.0)
        data = {"x": x, "z": z}
        if ctx:
            data["context"] = rng.standard_normal((N_POINTS, ctx))
            data["z_context"] = rng.standard_normal((N_DRAWS, ctx))
        if stem.endswith("_float32"):
            model.float()
            data = {k: v.astype(np.float32).astype(np.float64) for k, v in data.items()}
            t32 = {k: torch.from_numpy(v.astype(np.float32)) for k, v in data.items()}
            data["log_prob_float32"], data["sample_float32"] = library_numbers(library, model, t32)
            arrays = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
            # The same weights in a fresh float64 model (float32 → float64 is exact); not
            # model.double(), which would keep constants such as nflows' log normalizer rounded
            # to float32.
            torch.manual_seed(seed)
            model = build(library, name, kwargs).double()
            model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
            model.eval()
            arrays = {f"state/{k}": v for k, v in arrays.items()}
        else:
            arrays = {f"state/{k}": v.detach().numpy() for k, v in model.state_dict().items()}
        t = {k: torch.from_numpy(v) for k, v in data.items() if not k.endswith("_float32")}
        log_prob, sample = library_numbers(library, model, t)
        np.savez_compressed(
            OUT / f"{stem}.npz",
            library=np.array(library),
            name=np.array(name),
            kwargs_json=np.array(json.dumps(kwargs)),
            versions_json=np.array(json.dumps(versions)),
            log_prob=log_prob,
            sample=sample,
            **data,
            **arrays,
        )
        print(
            f"{stem}: {len(arrays)} arrays, log_prob in [{log_prob.min():.3g}, {log_prob.max():.3g}]"
        )


if __name__ == "__main__":
    main()
