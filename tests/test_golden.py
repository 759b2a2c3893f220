"""The conformance pack (npflows.golden, docs/golden.md): coverage, its committed copy, and
npflows.testing.check_against_golden on npflows' own layers and on wrong ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import npflows as nf
from npflows import cli
from npflows.golden import (
    GOLDEN_VERSION,
    case_rng,
    check_against_golden,
    load_golden,
    write_pack,
)
from npflows.golden.cases import LAYER_CASES, TRANSFORMER_CASES
from npflows.layer import Layer
from npflows.testing import check_against_golden as reexported
from npflows.transformers import Transformer
from npflows.tree import leaves_with_paths

COMMITTED = Path(__file__).parent / "data" / "golden"


def is_input(member):
    """Inputs (drawn from the seeded generators) must be equal bit for bit; the computed members
    may differ in the last bits with another BLAS, so they are compared to 1e-12 relative."""
    return (
        member.startswith(("param/", "block/", "theta/"))
        or member in ("context", "z", "u")
        or "_cot_" in member
    )


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    return out, write_pack(out)


def _classes(obj, found):
    found.add(type(obj))
    for inner in getattr(obj, "layers", []):
        _classes(inner, found)
    for attribute in ("layer", "inner", "transformer"):
        inner = getattr(obj, attribute, None)
        if inner is not None:
            _classes(inner, found)
    return found


def _public(base):
    return {
        obj
        for module in (nf, nf.layers, nf.transformers)
        for obj in (getattr(module, name) for name in module.__all__)
        if isinstance(obj, type) and issubclass(obj, base) and obj not in (Layer, Transformer)
    }


def test_every_public_layer_and_transformer_class_has_a_case():
    found: set = set()
    for name, case in LAYER_CASES.items():
        _classes(case.build(case_rng(name)), found)
    found |= {type(t) for t, _ in TRANSFORMER_CASES.values()}
    missing = sorted(c.__name__ for c in (_public(Layer) | _public(Transformer)) - found)
    assert not missing, f"no golden case for {missing}"


def test_the_pack_written_today_equals_the_committed_copy(pack):
    out, index = pack
    committed = json.loads((COMMITTED / "index.json").read_text())
    assert committed["version"] == GOLDEN_VERSION == index["version"]
    assert [c["name"] for c in committed["cases"]] == [c["name"] for c in index["cases"]]
    for new, old in zip(index["cases"], committed["cases"], strict=True):
        assert new["members"] == old["members"] and new["description"] == old["description"]
        today, before = load_golden(out / new["file"]), load_golden(COMMITTED / old["file"])
        for member, value in today.items():
            if is_input(member):
                np.testing.assert_array_equal(value, before[member], err_msg=member)
            else:
                scale = np.maximum(1.0, np.abs(before[member]))
                assert np.all(np.abs(value - before[member]) <= 1e-12 * scale), (
                    new["name"],
                    member,
                )


def test_the_committed_pack_is_small_and_indexed():
    files = [p for p in COMMITTED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 1_000_000
    index = json.loads((COMMITTED / "index.json").read_text())
    listed = {COMMITTED / c["file"] for c in index["cases"]}
    assert listed == set(files) - {COMMITTED / "index.json"}
    for case in index["cases"]:
        data = load_golden(COMMITTED / case["file"])
        assert {k: list(v.shape) for k, v in data.items()} == case["members"]
        assert all(v.dtype == np.float64 for v in data.values())


def _rebuilt(name, data):
    """The case's layer with its parameters read back from the pack file."""
    layer = LAYER_CASES[name].build(case_rng(name))
    for path, leaf in leaves_with_paths(layer.params):
        leaf[...] = data[f"param/{path}"]
    return layer


def _flat_vjp(vjp):
    def run(*args):
        out, log_det, pullback = vjp(*args)

        def flat(cot_out, cot_log_det):
            grad_in, grads = pullback(cot_out, cot_log_det)
            return grad_in, dict(leaves_with_paths(grads))

        return out, log_det, flat

    return run


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_npflows_layers_pass_their_pack_files(name, pack):
    out, _ = pack
    file = out / "layers" / f"{name}.npz"
    layer = _rebuilt(name, load_golden(file))
    vjps = {
        f"{d}_vjp": _flat_vjp(getattr(layer, f"{d}_vjp"))
        for d in ("forward", "inverse")
        if getattr(layer, f"has_{d}_vjp")
    }
    errors = check_against_golden(layer.forward, layer.inverse, file, **vjps)
    assert max(errors.values()) <= 1.0
    assert any(k.endswith("_grad_in") for k in errors) == bool(vjps)


def _transformer_maps(name, data, delta=0.0):
    transformer, _ = TRANSFORMER_CASES[name]
    rows = (
        transformer.join_params({b: data[f"theta/{b}"] for b, _ in transformer.blocks})
        if transformer.blocks
        else np.zeros((data["u"].shape[1], 0))
    )
    theta = np.broadcast_to(rows + delta, (*data["u"].shape, transformer.n_params))

    def vjp(method):
        def run(h):
            out, log_deriv, pullback = method(h, theta)

            def by_block(cot_out, cot_log):
                grad_in, grad_theta = pullback(cot_out, cot_log)
                blocks = transformer.split_params(grad_theta) if transformer.n_params else {}
                return grad_in, blocks

            return out, log_deriv, by_block

        return run

    return (
        lambda u: transformer.forward(u, theta),
        lambda y: transformer.inverse(y, theta),
        vjp(transformer.forward_vjp),
        vjp(transformer.inverse_vjp),
    )


@pytest.mark.parametrize("name", sorted(TRANSFORMER_CASES))
def test_npflows_transformers_pass_their_pack_files(name, pack):
    out, _ = pack
    file = out / "transformers" / f"{name}.npz"
    forward, inverse, forward_vjp, inverse_vjp = _transformer_maps(name, load_golden(file))
    errors = check_against_golden(
        forward, inverse, file, forward_vjp=forward_vjp, inverse_vjp=inverse_vjp
    )
    assert max(errors.values()) <= 1.0 and "inverse_grad_in" in errors


def test_the_spline_file_holds_knots_bounds_and_tails(pack):
    out, _ = pack
    data = load_golden(out / "transformers" / "RQSplineTransformer.npz")
    u = data["u"]
    assert (np.abs(u) > 3.0).any() and (np.abs(u) == 3.0).any()
    tails = np.abs(u) > 3.0
    np.testing.assert_array_equal(data["y"][tails], u[tails])  # identity outside [−B, B]


def test_check_against_golden_catches_a_wrong_map(pack):
    out, _ = pack
    file = out / "layers" / "Coupling-spline-context.npz"
    data = load_golden(file)
    layer = _rebuilt("Coupling-spline-context", data)
    layer.params["net"]["biases"][-1][0] += 1e-7
    with pytest.raises(AssertionError, match="differs from the pack"):
        check_against_golden(layer.forward, layer.inverse, file)
    file = out / "transformers" / "RQSplineTransformer.npz"
    forward, inverse, forward_vjp, _ = _transformer_maps("RQSplineTransformer", load_golden(file))
    wrong = _transformer_maps("RQSplineTransformer", load_golden(file), delta=1e-6)[2]
    check_against_golden(forward, inverse, file, forward_vjp=forward_vjp)
    with pytest.raises(AssertionError, match="forward_grad"):
        check_against_golden(forward, inverse, file, forward_vjp=wrong)
    assert reexported is check_against_golden


def test_golden_command_writes_the_pack(tmp_path, capsys):
    assert cli.main(["golden", "--out", str(tmp_path / "pack")]) == 0
    assert f"cases (pack version {GOLDEN_VERSION})" in capsys.readouterr().out
    index = json.loads((tmp_path / "pack" / "index.json").read_text())
    assert index["format"] == "npflows-golden" and len(index["cases"]) == len(LAYER_CASES) + len(
        TRANSFORMER_CASES
    )
