"""``python -m npflows check-model``: an independent float64 verdict on a zuko or nflows model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..interop import from_nflows, from_zuko
from .common import UsageError, add_command

IMPORTERS = {"zuko": from_zuko, "nflows": from_nflows}
STATE_PREFIX = "state/"


def check_model_command(args: argparse.Namespace) -> int:
    """Rebuild a zuko or nflows model from its exported arrays with npflows.interop, and compare.

    ARRAYS is an .npz of the model's state_dict, written in torch by
        import numpy as np
        sd = model.state_dict()
        np.savez("model.npz", **{k: v.detach().cpu().numpy() for k, v in sd.items()})
    LIBRARY is zuko or nflows, CLASS the class name (zuko: MAF, NSF, RealNVP; nflows:
    MaskedAutoregressiveFlow, SimpleRealNVP) and --kwargs the constructor's keyword arguments as
    JSON, e.g. '{"features": 2, "transforms": 4, "bins": 8}'.

    --points FILE.npz holds the library's own numbers: x (N, D) and log_prob (N,) (and context
    (N, C) for a conditional model), and/or z (M, D) base draws with sample (M, D), the library's
    sampling map at them (and z_context (M, C)). For each, the largest deviation relative to
    max(1, |value|) is printed with the row where it occurs; past --tolerance the exit code is 1.
    An .npz whose arrays are named state/<key> (as tests/data/peers/*.npz) may hold the points,
    library, class and kwargs itself, and log_prob_float32 / sample_float32, the library's numbers
    in float32, which are reported beside (not judged against the tolerance).
    """
    with np.load(args.arrays, allow_pickle=False) as f:
        members = {k: f[k] for k in f.files}
    arrays = {k[len(STATE_PREFIX) :]: v for k, v in members.items() if k.startswith(STATE_PREFIX)}
    bundled = bool(arrays)
    if not bundled:
        arrays, members = members, {}
    library = args.library or _member(members, "library")
    name = args.class_name or _member(members, "name")
    kwargs_text = args.kwargs or _member(members, "kwargs_json")
    if library is None or name is None or kwargs_text is None:
        raise UsageError("give LIBRARY, CLASS and --kwargs (or an .npz that holds them)")
    if library not in IMPORTERS:
        raise UsageError(f"LIBRARY must be zuko or nflows, got {library!r}")
    try:
        kwargs = json.loads(kwargs_text)
    except json.JSONDecodeError as error:
        raise UsageError(f"--kwargs is not JSON: {error}") from None
    if not isinstance(kwargs, dict):
        raise UsageError("--kwargs must be a JSON object of keyword arguments")
    try:
        flow = IMPORTERS[library](name, arrays, **kwargs)
    except TypeError as error:
        raise ValueError(str(error)) from None
    print(f"{library}.flows.{name}({_call(kwargs)}): {len(arrays)} arrays imported")
    points = members if args.points is None else _load(args.points)
    worst = []
    if "x" in points and "log_prob" in points:
        got = flow.log_prob(points["x"], context=points.get("context"))
        worst.append(_report("log_prob", got, _vector(points, "log_prob", len(got))))
    if "z" in points and "sample" in points:
        got = flow.forward(points["z"], context=points.get("z_context"))[0]
        worst.append(_report("sampling map", got, _vector(points, "sample", got.shape)))
    # A bundled float32 export also holds the library's own float32 numbers: shown, not judged.
    if "log_prob_float32" in points:
        got = flow.log_prob(points["x"], context=points.get("context"))
        _report("log_prob (library in float32)", got, _vector(points, "log_prob_float32", len(got)))
    if "sample_float32" in points:
        got = flow.forward(points["z"], context=points.get("z_context"))[0]
        _report(
            "sampling map (library in float32)", got, _vector(points, "sample_float32", got.shape)
        )
    if not worst:
        print("no points with the library's numbers given (--points): nothing compared")
        return 0
    largest = max(worst)
    if largest > args.tolerance:
        print(f"FAIL: largest deviation {largest:.3e} exceeds the tolerance {args.tolerance:g}")
        return 1
    print(f"OK: largest deviation {largest:.3e} within the tolerance {args.tolerance:g}")
    return 0


def _member(members, key):
    return str(members[key]) if key in members else None


def _call(kwargs) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _load(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _vector(points, key, shape):
    value = np.asarray(points[key])
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if value.shape != shape:
        raise ValueError(f"{key} must have shape {shape} to match the points, got {value.shape}")
    return value.astype(np.float64)


def _report(what, got, library) -> float:
    """Print the largest deviation of ``library`` from npflows' ``got`` and where; return it."""
    deviation = np.abs(got - library) / np.maximum(1.0, np.abs(library))
    at = np.unravel_index(int(np.argmax(deviation)), deviation.shape)
    where = f"row {at[0]}" + (f", coordinate {at[1]}" if len(at) > 1 else "")
    print(
        f"{what}: {len(got)} rows, largest deviation {deviation[at]:.3e} (relative to "
        f"max(1, |value|)) at {where}: library {float(library[at])!r}, npflows {float(got[at])!r}"
    )
    return float(deviation[at])


def add_parsers(commands) -> None:
    """Register ``check-model``."""
    p = add_command(
        commands, "check-model", check_model_command, "score a zuko or nflows model independently"
    )
    p.add_argument("arrays", type=Path, metavar="ARRAYS", help="the model's state_dict as .npz")
    p.add_argument("library", nargs="?", metavar="LIBRARY", help="zuko or nflows")
    p.add_argument("class_name", nargs="?", metavar="CLASS", help="e.g. NSF, SimpleRealNVP")
    p.add_argument("--kwargs", metavar="JSON", help="the constructor's keyword arguments")
    p.add_argument("--points", type=Path, metavar="FILE", help="an .npz of the library's numbers")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-10,
        metavar="TOL",
        help="largest relative deviation accepted (default 1e-10)",
    )
