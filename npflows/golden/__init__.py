"""The conformance pack: versioned float64 reference vectors for every layer and transformer.

``write_pack(out)`` writes one ``.npz`` per case and ``index.json`` (docs/golden.md gives the
format, readable from any language with an ``.npy`` reader). ``check_against_golden(forward,
inverse, file)`` compares another implementation's maps with one file.

Directions as everywhere in npflows (docs/conventions.md): ``forward`` is the generative map
z → x with log|det ∂x/∂z|, ``inverse`` the normalizing map x → z with log|det ∂z/∂x|. A layer file
holds the raw parameters (``param/<path>``, and for a transformer's free θ its named blocks
``block/<path>/<name>``), the inputs ``z`` (random rows, then bounds, tails and kinks), the outputs and
log-dets in both directions, and for fixed cotangents the pullbacks of every offered direction. A
transformer file holds θ by named blocks (``theta/<name>``, one row per coordinate), inputs ``u``
including the knots, bin midpoints, bounds and tails, and the same outputs and pullbacks.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from ..layer import describe
from ..tree import leaves_with_paths
from .cases import LAYER_CASES, ROWS, TRANSFORMER_CASES, transformer_points

GOLDEN_VERSION = 2
FORMAT = "npflows-golden"

__all__ = [
    "FORMAT",
    "GOLDEN_VERSION",
    "case_rng",
    "check_against_golden",
    "load_golden",
    "write_pack",
]


def case_rng(name: str) -> np.random.Generator:
    """A Generator seeded from the case's name, so a case's numbers do not depend on the others."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def layer_arrays(name: str) -> dict[str, np.ndarray]:
    """The members of the layer case ``name``'s file (see the module docstring)."""
    case, rng = LAYER_CASES[name], case_rng(name)
    layer = case.build(rng)
    latent = tuple(getattr(layer, "latent_shape", (layer.dim,)))
    special = np.asarray(case.special, dtype=float)
    z = rng.uniform(case.low, case.high, (ROWS, *latent))
    if special.size:
        z = np.concatenate(
            [z, np.broadcast_to(special.reshape(-1, *[1] * len(latent)), (len(special), *latent))]
        )
    n = len(z)
    out = {
        f"param/{path}": np.array(a, dtype=np.float64)
        for path, a in leaves_with_paths(layer.params)
    }
    transformer = getattr(layer, "transformer", None)
    if transformer is not None and "theta" in layer.params:
        for block, value in transformer.split_params(layer.params["theta"]).items():
            out[f"block/theta/{block}"] = np.array(value)
    context = rng.standard_normal((n, layer.context_dim)) if layer.context_dim else None
    if context is not None:
        out["context"] = context
    x, forward_log_det = layer.forward(z, context)
    z_out, inverse_log_det = layer.inverse(x, context)
    out.update(
        z=z, x=x, forward_log_det=forward_log_det, z_out=z_out, inverse_log_det=inverse_log_det
    )
    for direction, h_in, h_out in (("forward", z, x), ("inverse", x, z_out)):
        if not getattr(layer, f"has_{direction}_vjp"):
            continue
        cot_out = rng.standard_normal(h_out.shape)
        cot_log_det = rng.standard_normal(n)
        _, _, pullback = getattr(layer, f"{direction}_vjp")(h_in, context)
        grad_in, grads = pullback(cot_out, cot_log_det)
        out[f"{direction}_cot_out"], out[f"{direction}_cot_log_det"] = cot_out, cot_log_det
        out[f"{direction}_grad_in"] = grad_in
        for path, g in leaves_with_paths(grads):
            out[f"{direction}_grad/{path}"] = np.array(g, dtype=np.float64)
    return out


def transformer_arrays(name: str) -> dict[str, np.ndarray]:
    """The members of the transformer case ``name``'s file (see the module docstring)."""
    transformer, extra = TRANSFORMER_CASES[name]
    rng = case_rng(name)
    theta_rows = 0.8 * rng.standard_normal((3, transformer.n_params))  # one θ per coordinate
    u = transformer_points(transformer, theta_rows, extra)
    theta = np.broadcast_to(theta_rows, (*u.shape, transformer.n_params))
    out = {f"theta/{k}": np.array(v) for k, v in transformer.split_params(theta_rows).items()}
    y, forward_log_deriv, forward_pullback = transformer.forward_vjp(u, theta)
    u_out, inverse_log_deriv, inverse_pullback = transformer.inverse_vjp(y, theta)
    out.update(
        u=u, y=y, forward_log_det=forward_log_deriv, u_out=u_out, inverse_log_det=inverse_log_deriv
    )
    for direction, pullback in (("forward", forward_pullback), ("inverse", inverse_pullback)):
        cot_out, cot_log_det = rng.standard_normal(u.shape), rng.standard_normal(u.shape)
        grad_in, grad_theta = pullback(cot_out, cot_log_det)
        out[f"{direction}_cot_out"], out[f"{direction}_cot_log_det"] = cot_out, cot_log_det
        out[f"{direction}_grad_in"] = grad_in
        if transformer.n_params:
            for block, g in transformer.split_params(grad_theta).items():
                out[f"{direction}_grad_theta/{block}"] = np.array(g)
    return out


def write_pack(out, *, cases: list[str] | None = None) -> dict:
    """Write every case (or the named ``cases``) into the directory ``out``; return the index.

    Files are ``<kind>/<name>.npz`` (uncompressed .npy members, float64), and ``index.json``
    lists each case's class, constructor arguments, file and members with their shapes.
    """
    from .. import __version__  # here: the top package imports this one before defining it

    out = Path(out)
    index = {"format": FORMAT, "version": GOLDEN_VERSION, "npflows": __version__, "cases": []}
    wanted = None if cases is None else set(cases)
    jobs = [("layer", n, layer_arrays) for n in LAYER_CASES]
    jobs += [("transformer", n, transformer_arrays) for n in TRANSFORMER_CASES]
    for kind, name, make in jobs:
        if wanted is not None and name not in wanted:
            continue
        arrays = make(name)
        obj = (
            LAYER_CASES[name].build(case_rng(name))
            if kind == "layer"
            else TRANSFORMER_CASES[name][0]
        )
        relative = f"{kind}s/{name}.npz"
        (out / f"{kind}s").mkdir(parents=True, exist_ok=True)
        np.savez(out / relative, **arrays)
        index["cases"].append(
            {
                "name": name,
                "kind": kind,
                "description": _description(obj),
                "file": relative,
                "members": {k: list(v.shape) for k, v in arrays.items()},
            }
        )
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return index


def _description(obj) -> dict:
    try:
        return describe(obj)
    except NotImplementedError:
        return {"class": type(obj).__name__, "args": None}


def load_golden(file) -> dict[str, np.ndarray]:
    """The members of one pack file, as a dict of arrays (``allow_pickle=False``)."""
    with np.load(file, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def check_against_golden(
    forward,
    inverse,
    file,
    *,
    forward_vjp=None,
    inverse_vjp=None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> dict[str, float]:
    """Compare an implementation's maps with one conformance-pack file; return the errors.

    Args:
        forward: ``forward(z) -> (x, log_det)`` (or ``forward(z, context)`` when the file has a
            ``context``; for a transformer file ``forward(u) -> (y, log_deriv)``), built by the
            caller from the file's parameters (``param/…`` or ``theta/…``).
        inverse: the normalizing map, likewise.
        file: a ``.npz`` of the pack.
        forward_vjp, inverse_vjp: optional, ``(out, log_det, pullback)`` with
            ``pullback(cot_out, cot_log_det) -> (grad_in, grads)``; ``grad_in`` is compared with the
            file's, and ``grads`` too when it is a dict keyed like the file (``param`` paths, or θ
            block names for a transformer).
        rtol, atol: each output must satisfy |got − expected| ≤ atol + rtol |expected|.

    Returns the largest scaled error max(|got − expected| / (atol + rtol |expected|)) per member
    (≤ 1 passes). Raises AssertionError naming the worst member past the tolerance.
    """
    data = load_golden(file)
    transformer = "u" in data
    h_in, h_out, h_back = ("u", "y", "u_out") if transformer else ("z", "x", "z_out")
    extra = () if "context" not in data else (data["context"],)
    errors: dict[str, float] = {}

    def compare(member, got):
        expected = data[member]
        got = np.asarray(got, dtype=np.float64)
        if got.shape != expected.shape:
            raise AssertionError(f"{member}: shape {got.shape}, expected {expected.shape}")
        scale = atol + rtol * np.abs(expected)
        errors[member] = float(np.max(np.abs(got - expected) / scale, initial=0.0))

    out, log_det = forward(data[h_in], *extra)
    compare(h_out, out)
    compare("forward_log_det", log_det)
    back, log_det = inverse(data[h_out], *extra)
    compare(h_back, back)
    compare("inverse_log_det", log_det)
    for direction, vjp, start in (("forward", forward_vjp, h_in), ("inverse", inverse_vjp, h_out)):
        if vjp is None or f"{direction}_grad_in" not in data:
            continue
        _, _, pullback = vjp(data[start], *extra)
        grad_in, grads = pullback(data[f"{direction}_cot_out"], data[f"{direction}_cot_log_det"])
        compare(f"{direction}_grad_in", grad_in)
        prefix = f"{direction}_grad_theta/" if transformer else f"{direction}_grad/"
        if isinstance(grads, dict):
            for key, value in grads.items():
                if prefix + key in data:
                    compare(prefix + key, value)
    worst = max(errors, key=errors.get)
    if errors[worst] > 1.0:
        raise AssertionError(
            f"{Path(file).name}: {worst} differs from the pack by {errors[worst]:.3g} × the "
            f"tolerance (atol {atol:g} + rtol {rtol:g} |expected|)"
        )
    return errors
