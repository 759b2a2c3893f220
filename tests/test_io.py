"""Saving and loading: round trips (every registry case, every prebuilt flow, per-array dtypes,
registered custom classes, files of the previous version), the file layout, tampering, arguments
and the side effects of writing. Hostile files are in tests/test_io_hostile.py."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from registry import CASES, IMAGE_CASES

import npflows
from npflows import Elementwise, Flow, Invert, LeakyReLU, ModelFileError, flows, load, save
from npflows.flows import RealNVP
from npflows.io import register
from npflows.io.classes import allowed_classes, build, class_names
from npflows.io.format import META, digest
from npflows.io.sizes import check_buildable_size, counted_classes
from npflows.transformers import AffineTransformer
from npflows.tree import flatten, leaves, leaves_with_paths


def make_flow(seed=0):
    flow = Flow(
        [
            Elementwise(2, AffineTransformer()),
            LeakyReLU(2, 0.3),
            Invert(Elementwise(2, AffineTransformer(clamp=None))),
        ]
    )
    for _, leaf in npflows.tree.leaves_with_paths(flow.params):
        leaf[...] = np.random.default_rng(seed).normal(size=leaf.shape)
    return flow


def perturb(model, seed=3):
    """Move every parameter off its initial value, in place, so a round trip is not trivially exact."""
    rng = np.random.default_rng(seed)
    for leaf in leaves(model.params):
        leaf += (0.1 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)
    return model


def x_data():
    return np.random.default_rng(1).normal(size=(50, 2))


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    save(make_flow(), path)
    return path


def read(path):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return arrays, json.loads(arrays.pop(META).tobytes())


def write(path, arrays, meta, sign=True):
    """Write an npflows-like file, re-signed (a consistent forgery) unless ``sign=False``."""
    if sign:
        meta = {**meta, "sha256": digest(meta, arrays)}
    text = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as file:
        np.savez(file, **arrays, **{META: text})


def test_round_trip_gives_bit_identical_log_prob(saved):
    flow, loaded = make_flow(), load(saved)
    assert repr(loaded) == repr(flow)
    np.testing.assert_array_equal(loaded.log_prob(x_data()), flow.log_prob(x_data()))
    np.testing.assert_array_equal(flatten(loaded.params), flatten(flow.params))


def test_file_layout_loads_without_pickle(saved):
    arrays, meta = read(saved)  # read() itself uses allow_pickle=False
    assert meta["format"] == "npflows" and meta["version"] == 1
    assert meta["model"] == npflows.layer.describe(make_flow())
    assert set(arrays) == {"layers/0/theta", "layers/2/theta"} == set(meta["arrays"])
    assert meta["arrays"]["layers/0/theta"] == {"shape": [2, 2], "dtype": "<f8"}


def test_path_without_npz_suffix_is_kept(tmp_path):
    path = tmp_path / "model"
    save(make_flow(), path)
    assert os.listdir(tmp_path) == ["model"]  # no suffix appended, no temporary file left
    np.testing.assert_array_equal(load(path).log_prob(x_data()), make_flow().log_prob(x_data()))


def test_save_replaces_an_existing_file(saved):
    save(make_flow(seed=5), saved)
    np.testing.assert_array_equal(flatten(load(saved).params), flatten(make_flow(seed=5).params))


def test_save_refuses_non_finite_parameters(tmp_path):
    flow = make_flow()
    flow.params["layers"][0]["theta"][0, 0] = np.nan
    with pytest.raises(ValueError, match="layers/0/theta"):
        save(flow, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nothing.npz")


def test_truncated_file(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a readable .npz"):
        load(saved)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(ModelFileError, match="not an npflows model file"):
        load(path)


def test_single_npy_array(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ModelFileError, match="single .npy"):
        load(path)


def test_plain_savez_without_metadata(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, **{"layers/0/theta": np.zeros((2, 2))})
    with pytest.raises(ModelFileError, match="not written by npflows.save"):
        load(path)


def test_edited_json_without_fixing_checksum(saved):
    arrays, meta = read(saved)
    meta["model"]["args"]["layers"][1]["args"]["alpha"] = 0.5
    write(saved, arrays, meta, sign=False)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load(saved)


def test_flipped_array_byte(saved):
    arrays, meta = read(saved)
    raw = bytearray(arrays["layers/2/theta"].tobytes())
    raw[3] ^= 0x01
    arrays["layers/2/theta"] = np.frombuffer(bytes(raw)).reshape(2, 2)
    write(saved, arrays, meta, sign=False)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load(saved)


def test_bad_json(saved):
    arrays, _ = read(saved)
    with open(saved, "wb") as file:
        np.savez(file, **arrays, **{META: np.frombuffer(b"{not json", dtype=np.uint8)})
    with pytest.raises(ModelFileError, match="not valid UTF-8 JSON"):
        load(saved)


def test_wrong_format(saved):
    arrays, meta = read(saved)
    write(saved, arrays, {**meta, "format": "other"})
    with pytest.raises(ModelFileError, match="expected format 'npflows', got 'other'"):
        load(saved)


def test_newer_version(saved):
    arrays, meta = read(saved)
    write(saved, arrays, {**meta, "version": 999})
    with pytest.raises(ModelFileError, match="newer npflows.*upgrade"):
        load(saved)


def test_unknown_class(saved):
    arrays, meta = read(saved)
    meta["model"]["args"]["layers"][1]["class"] = "os.system"
    write(saved, arrays, meta)
    with pytest.raises(ModelFileError, match="unknown class 'os.system'"):
        load(saved)


def test_missing_array(saved):
    arrays, meta = read(saved)
    del arrays["layers/2/theta"], meta["arrays"]["layers/2/theta"]
    write(saved, arrays, meta)
    with pytest.raises(ModelFileError, match="implies 8 parameters.*hold only 4"):
        load(saved)


def test_extra_array(saved):
    arrays, meta = read(saved)
    arrays["layers/1/theta"] = np.zeros((2, 1))
    meta["arrays"]["layers/1/theta"] = {"shape": [2, 1], "dtype": "<f8"}
    write(saved, arrays, meta)
    with pytest.raises(ModelFileError, match=r"unexpected \['layers/1/theta'\]"):
        load(saved)


def test_wrong_shape(saved):
    arrays, meta = read(saved)
    arrays["layers/0/theta"] = np.zeros((3, 2))
    meta["arrays"]["layers/0/theta"]["shape"] = [3, 2]
    write(saved, arrays, meta)
    with pytest.raises(ModelFileError, match=r"shape \(2, 2\).*shape \(3, 2\)"):
        load(saved)


def test_array_not_matching_its_metadata(saved):
    arrays, meta = read(saved)
    arrays["layers/0/theta"] = arrays["layers/0/theta"].astype(np.float32)
    write(saved, arrays, meta)
    with pytest.raises(ModelFileError, match="its metadata expects 'layers/0/theta'"):
        load(saved)


def test_non_finite_values(saved):
    arrays, meta = read(saved)
    arrays["layers/0/theta"][0, 0] = np.inf
    write(saved, arrays, meta)
    with pytest.raises(ModelFileError, match="NaN or inf"):
        load(saved)


def test_constructor_rejecting_args(saved):
    arrays, meta = read(saved)
    meta["model"]["args"]["layers"][1]["args"]["alpha"] = -1.0
    write(saved, arrays, meta)
    with pytest.raises(ModelFileError, match="cannot build LeakyReLU"):
        load(saved)


def test_a_float32_flow_round_trips_in_float32(tmp_path):
    flow = RealNVP(2, n_layers=2, hidden=(4,), rng=0).astype(np.float32)
    save(flow, tmp_path / "f32.npz")
    loaded = load(tmp_path / "f32.npz")
    assert loaded.dtype == np.float32
    x = np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.log_prob(x), flow.log_prob(x))


# -- files written by format version 1 before this io package still load ---------------------------
DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["io_v1_realnvp.npz", "io_v1_nsf_float32.npz"])
def test_files_written_by_the_previous_version_still_load(name):
    with np.load(DATA / "io_v1_expected.npz") as expected:
        x, old_log_prob = expected["x"], expected[name.replace(".", "_")]
    x = x.astype(old_log_prob.dtype)
    flow = load(DATA / name)
    # Exactly the stored parameters (values and dtypes), and exactly what the current code computes
    # on them: the same flow built from the stored description with the stored arrays copied in.
    arrays, meta = read(DATA / name)
    loaded = dict(leaves_with_paths(flow.params))
    assert set(loaded) == set(arrays)
    for path, array in arrays.items():
        assert loaded[path].dtype == array.dtype, path
        np.testing.assert_array_equal(loaded[path], array)
    (dtype,) = {array.dtype for array in arrays.values()}
    rebuilt = build("test", meta["model"], allowed_classes()).astype(dtype)
    for path, leaf in leaves_with_paths(rebuilt.params):
        leaf[...] = arrays[path]
    log_prob = flow.log_prob(x)
    assert log_prob.dtype == old_log_prob.dtype
    np.testing.assert_array_equal(log_prob, rebuilt.log_prob(x))
    if "nsf" in name:
        # The spline's inverse root is now the cancellation-free form of the quadratic formula
        # (docs/elementwise.md), which rounds differently: in float32 the log-densities the previous
        # version stored differ in the last digits (at most 2.4e-7 relative, about 2 float32 ε).
        np.testing.assert_allclose(log_prob, old_log_prob, rtol=8 * np.finfo(np.float32).eps)
    else:  # no spline: the float64 RealNVP still computes bit for bit what it stored
        np.testing.assert_array_equal(log_prob, old_log_prob)


# -- per-array dtypes -------------------------------------------------------------------------------
def test_a_flow_with_one_float32_layer_round_trips_with_per_layer_dtypes(tmp_path):
    flow = RealNVP(2, n_layers=3, hidden=(4,), mixing="lu", rng=0)
    perturb(flow)
    flow.layers[1].astype(np.float32)
    save(flow, tmp_path / "mixed.npz")
    loaded = load(tmp_path / "mixed.npz")
    for (name, a), (_, b) in zip(
        leaves_with_paths(flow.params), leaves_with_paths(loaded.params), strict=True
    ):
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b)
    assert {leaf.dtype for leaf in leaves(loaded.layers[1].params)} == {np.dtype(np.float32)}
    assert {leaf.dtype for leaf in leaves(loaded.layers[0].params)} == {np.dtype(np.float64)}
    x = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_array_equal(loaded.log_prob(x), flow.log_prob(x))


def test_save_refuses_a_parameter_of_another_dtype(tmp_path):
    flow = make_flow()
    flow.layers[0].params["theta"] = flow.layers[0].params["theta"].astype(np.float16)
    with pytest.raises(ValueError, match="'layers/0/theta' has dtype float16"):
        save(flow, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# -- every registry case, every public layer, every prebuilt flow ----------------------------------
def assert_same_layer(layer, loaded, dtype):
    """Bit-identical parameters (dtype kept), forward, inverse and log_prob."""
    assert type(loaded) is type(layer) and loaded.get_config() == layer.get_config()
    pairs = zip(leaves_with_paths(layer.params), leaves_with_paths(loaded.params), strict=True)
    for (name, a), (name_b, b) in pairs:
        assert name == name_b and a.dtype == b.dtype == dtype, name
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(2)
    context = rng.normal(size=(7, layer.context_dim)).astype(dtype) if layer.context_dim else None
    return rng, context


# The vector cases and the image cases (tests/test_image_properties.py runs the latter), by name.
ALL_CASES = {**CASES, **IMAGE_CASES}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(ALL_CASES))
def test_save_load_is_bit_exact_for_every_registry_case(name, dtype, tmp_path):
    case = ALL_CASES[name]
    layer = case.build(np.random.default_rng(0)).astype(dtype)
    save(layer, tmp_path / "layer.npz")
    loaded = load(tmp_path / "layer.npz")
    rng, context = assert_same_layer(layer, loaded, np.dtype(dtype))
    z = rng.uniform(case.low, case.high, size=(7, *layer.latent_shape)).astype(dtype)
    for a, b in zip(layer.forward(z, context), loaded.forward(z, context), strict=True):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a, b)
    x = layer.forward(z, context)[0]
    for a, b in zip(layer.inverse(x, context), loaded.inverse(x, context), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        Flow([loaded]).log_prob(x, context), Flow([layer]).log_prob(x, context)
    )


def test_every_public_layer_class_is_loadable_and_covered_by_a_registry_case():
    allowed = allowed_classes()
    public = {
        getattr(npflows, name)
        for name in npflows.__all__
        if isinstance(getattr(npflows, name), type)
        and issubclass(getattr(npflows, name), npflows.Layer)
        and getattr(npflows, name) is not npflows.Layer
    }
    assert public <= set(allowed.values())
    covered = set()
    for case in ALL_CASES.values():
        covered |= {type(obj) for obj in _walk(case.build(np.random.default_rng(0)))}
    assert public - covered == set()


def _walk(layer):
    yield layer
    for sub in getattr(layer, "layers", []):
        yield from _walk(sub)
    if hasattr(layer, "layer"):
        yield from _walk(layer.layer)


def test_abstract_bases_are_not_on_the_allowlist():
    allowed = allowed_classes()
    for name in ("Layer", "Transformer", "_Autoregressive"):
        assert name not in allowed
    assert all(not name.startswith("_") for name in allowed)
    assert {"Flow", "Linear", "Coupling", "RQSplineTransformer", "StandardNormal"} <= set(allowed)


PREBUILT = {
    "NICE": lambda: flows.NICE(3, n_layers=2, hidden=(4,), rng=0),
    "RealNVP": lambda: flows.RealNVP(3, n_layers=2, hidden=(4,), mixing="orthogonal", rng=0),
    "NSF": lambda: flows.NSF(3, n_layers=2, hidden=(4,), rng=0),
    "PiecewiseLinearFlow": lambda: flows.PiecewiseLinearFlow(3, n_layers=2, hidden=(4,), rng=0),
    "MAF": lambda: flows.MAF(3, n_layers=2, hidden=(4,), rng=0),
    "IAF": lambda: flows.IAF(3, n_layers=2, hidden=(4,), rng=0),
    "coupling_flow": lambda: flows.coupling_flow(3, AffineTransformer(), 2, (4,), rng=0),
    "PlanarFlow": lambda: flows.PlanarFlow(3, n_layers=2, rng=0),
    "RadialFlow": lambda: flows.RadialFlow(3, n_layers=2, rng=0),
    "ResidualFlow": lambda: flows.ResidualFlow(3, n_layers=2, hidden=(4,), rng=0),
    "Glow": lambda: flows.Glow((1, 4, 4), 2, steps=1, hidden=4, rng=0),
    "MultiScaleRealNVP": lambda: flows.MultiScaleRealNVP((1, 4, 4), 2, steps=1, hidden=4, rng=0),
}


def test_every_prebuilt_flow_is_listed_here():
    assert set(PREBUILT) == set(flows.__all__)


@pytest.mark.parametrize("name", sorted(PREBUILT))
def test_every_prebuilt_flow_round_trips(name, tmp_path):
    flow = perturb(PREBUILT[name]())
    save(flow, tmp_path / "f.npz")
    loaded = load(tmp_path / "f.npz")
    assert_same_layer(flow, loaded, np.dtype(np.float64))
    x = flow.sample(6, rng=1)
    np.testing.assert_array_equal(loaded.log_prob(x), flow.log_prob(x))


def test_the_size_formulas_match_every_registry_case_and_prebuilt_flow():
    """The pre-build size check counts exactly the parameters every library layer builds (a class
    without a formula is only bounded, so there the check is not exact)."""
    models = [case.build(np.random.default_rng(0)) for case in ALL_CASES.values()]
    models += [build() for build in PREBUILT.values()]
    allowed, counted = allowed_classes(), counted_classes()
    for model in models:
        text = json.dumps(npflows.layer.describe(model))
        description, n = json.loads(text), npflows.tree.size(model.params)
        check_buildable_size("model", description, allowed, n, len(text))
        classes = {allowed[name] for name in class_names(description)}
        exact = all(
            c in counted or issubclass(c, npflows.transformers.Transformer) for c in classes
        )
        if n and exact:
            with pytest.raises(ModelFileError, match=f"implies {n} parameters"):
                check_buildable_size("model", description, allowed_classes(), n - 1, len(text))


# -- custom classes: an explicit registration, never pickle ----------------------------------------
@register
class ScaleShift(npflows.Layer):
    """x = z · exp(s) + b elementwise; log|det ∂x/∂z| = Σ s; a user's own layer."""

    def __init__(self, dim):
        self.dim = dim
        self.params = {"s": np.zeros(dim), "b": np.zeros(dim)}

    def get_config(self):
        return {"dim": self.dim}

    def _forward_vjp(self, z, context):
        s, b = self.params["s"], self.params["b"]
        x, log_det = z * np.exp(s) + b, np.full(len(z), s.sum())

        def pullback(gx, gld):  # ∂x/∂z = e^s, ∂x/∂s = z e^s, ∂x/∂b = 1, ∂log_det/∂s = 1
            return gx * np.exp(s), {"s": (gx * z * np.exp(s)).sum(0) + gld.sum(), "b": gx.sum(0)}

        return x, log_det, pullback

    def _inverse_vjp(self, x, context):
        s, b = self.params["s"], self.params["b"]
        z = (x - b) * np.exp(-s)

        def pullback(gz, gld):  # ∂z/∂x = e^−s, ∂z/∂s = −z, ∂z/∂b = −e^−s, ∂log_det/∂s = −1
            return gz * np.exp(-s), {
                "s": -(gz * z).sum(0) - gld.sum(),
                "b": -(gz * np.exp(-s)).sum(0),
            }

        return z, np.full(len(x), -s.sum()), pullback


def test_a_registered_custom_layer_passes_check_layer_and_round_trips(tmp_path):
    layer = perturb(ScaleShift(2))
    z = np.random.default_rng(0).normal(size=(5, 2))
    errors = npflows.testing.check_layer(layer, z)
    assert max(errors.values()) < 1e-6, errors
    flow = Flow([layer, Elementwise(2, AffineTransformer())])
    save(flow, tmp_path / "custom.npz")
    loaded = load(tmp_path / "custom.npz")
    assert type(loaded.layers[0]) is ScaleShift
    np.testing.assert_array_equal(loaded.log_prob(z), flow.log_prob(z))


def test_an_unregistered_class_is_refused_before_writing_with_how_to_register(tmp_path):
    class Unlisted(ScaleShift):
        pass

    with pytest.raises(
        ValueError, match=r"Unlisted is not a class.*npflows.io.register\(Unlisted\)"
    ):
        save(Flow([Unlisted(2)]), tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_a_subclass_of_a_library_layer_loads_once_registered(tmp_path):
    class MyDiagonal(npflows.Diagonal):
        pass

    with pytest.raises(ValueError, match="MyDiagonal is not a class"):
        save(MyDiagonal(2), tmp_path / "d.npz")
    register(MyDiagonal)
    layer = perturb(MyDiagonal(2))
    save(layer, tmp_path / "d.npz")
    assert type(load(tmp_path / "d.npz")) is MyDiagonal


def test_a_class_named_like_a_library_class_is_refused(tmp_path):
    class Linear(npflows.Linear):
        pass

    with pytest.raises(ValueError, match="has the name of npflows.layers.dense.Linear"):
        save(Flow([Linear(2)]), tmp_path / "m.npz")
    with pytest.raises(ValueError, match="already belongs to npflows.layers.dense.Linear"):
        register(Linear)


def test_a_get_config_that_does_not_rebuild_the_layer_is_refused_at_save(tmp_path):
    @register
    class Forgetful(ScaleShift):
        def __init__(self, dim, scale):
            super().__init__(dim)

    with pytest.raises(ValueError, match="cannot build Forgetful.*load could not read"):
        save(Forgetful(2, 1.0), tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_a_get_config_that_rebuilds_other_shapes_is_refused_at_save(tmp_path):
    @register
    class Wider(ScaleShift):
        def get_config(self):
            return {"dim": self.dim + 1}

    with pytest.raises(ValueError, match="parameter 'b' has shape \\(3,\\) instead of \\(2,\\)"):
        save(Wider(2), tmp_path / "m.npz")


def test_a_layer_without_get_config_is_refused_with_a_message(tmp_path):
    class NoConfig(ScaleShift):
        get_config = npflows.Layer.get_config

    with pytest.raises(ValueError, match="has no get_config"):
        save(Flow([NoConfig(2)]), tmp_path / "m.npz")


@pytest.mark.parametrize(
    "cls, error",
    [(npflows.Layer, ValueError), (npflows.transformers.Transformer, ValueError), (3, TypeError)],
)
def test_register_refuses_abstract_bases_and_non_classes(cls, error):
    with pytest.raises(error, match="abstract|expects a class"):
        register(cls)


# -- arguments --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [{}, None, [make_flow()], AffineTransformer()])
def test_save_refuses_what_is_not_a_layer(model, tmp_path):
    with pytest.raises(TypeError, match="model must be an npflows Layer or Flow"):
        save(model, tmp_path / "m.npz")


@pytest.mark.parametrize(
    "path, error",
    [
        (None, TypeError),
        (3, TypeError),
        (b"m.npz", TypeError),
        ("", ValueError),
        ("a\0b", ValueError),
    ],
)
def test_bad_paths_are_refused_by_name(path, error):
    with pytest.raises(error, match="path"):
        save(make_flow(), path)
    with pytest.raises(error, match="path"):
        load(path)


@pytest.mark.parametrize("max_bytes, error", [(0, ValueError), (True, TypeError), ("1", TypeError)])
def test_bad_max_bytes(saved, max_bytes, error):
    with pytest.raises(error, match="max_bytes"):
        load(saved, max_bytes=max_bytes)


def test_the_size_limit_is_documented_in_the_message_and_can_be_raised(saved):
    size = saved.stat().st_size
    with pytest.raises(ModelFileError, match=rf"more than the limit of 1000.*max_bytes={size}"):
        load(saved, max_bytes=1000)
    load(saved, max_bytes=size)


def test_saving_to_a_directory_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        save(make_flow(), tmp_path)


# -- side effects of writing ------------------------------------------------------------------------
def test_saving_to_a_symlink_writes_through_to_its_target(tmp_path):
    target, link = tmp_path / "real.npz", tmp_path / "link.npz"
    save(make_flow(), target)
    link.symlink_to(target.name)
    save(make_flow(seed=5), link)
    assert link.is_symlink() and os.readlink(link) == target.name
    np.testing.assert_array_equal(flatten(load(target).params), flatten(make_flow(5).params))
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "real.npz"]


def test_saving_to_a_dangling_symlink_creates_its_target(tmp_path):
    (tmp_path / "link.npz").symlink_to("new.npz")
    save(make_flow(), tmp_path / "link.npz")
    assert (tmp_path / "link.npz").is_symlink() and (tmp_path / "new.npz").is_file()


def test_an_existing_file_keeps_its_permission_bits(saved):
    saved.chmod(0o600)
    save(make_flow(seed=5), saved)
    assert saved.stat().st_mode & 0o7777 == 0o600


def test_a_new_file_gets_the_umask_default(tmp_path):
    old = os.umask(0o027)
    try:
        save(make_flow(), tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "m.npz").stat().st_mode & 0o7777 == 0o640


@pytest.mark.parametrize("length", [249, 255])
def test_a_long_legal_file_name_is_accepted(tmp_path, length):
    path = tmp_path / ("m" * (length - 4) + ".npz")
    save(make_flow(), path)
    assert os.listdir(tmp_path) == [path.name]
    np.testing.assert_array_equal(flatten(load(path).params), flatten(make_flow().params))


def test_an_interrupted_save_removes_its_temporary_file_and_keeps_the_old_one(saved, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(make_flow(seed=5), saved)
    assert os.listdir(saved.parent) == [saved.name]
    np.testing.assert_array_equal(flatten(load(saved).params), flatten(make_flow().params))


KILLED_SAVE = """
import os, sys, time
import numpy as np
import npflows
from npflows.flows import RealNVP

def hang(fd):  # stop between writing the temporary file and renaming it
    print("writing", flush=True)
    time.sleep(60)

os.fsync = hang
npflows.save(RealNVP(2, n_layers=2, hidden=(4,), rng=0), sys.argv[1])
"""


def test_a_killed_save_leaves_the_target_intact_and_a_later_save_removes_its_remains(saved):
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(Path(npflows.__file__).parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE, str(saved)], stdout=subprocess.PIPE, env=env
    )
    assert child.stdout.readline() == b"writing\n"
    child.send_signal(signal.SIGKILL)
    child.wait()
    (remains,) = [name for name in os.listdir(saved.parent) if name != saved.name]
    assert remains.startswith(f".npflows-{child.pid}-") and remains.endswith(".tmp")
    assert len(remains) < 40
    np.testing.assert_array_equal(flatten(load(saved).params), flatten(make_flow().params))
    save(make_flow(seed=5), saved)  # recent remains are left alone: their writer might be remote
    assert remains in os.listdir(saved.parent)
    an_hour_ago = time.time() - 3600
    os.utime(saved.parent / remains, (an_hour_ago, an_hour_ago))
    save(make_flow(seed=6), saved)
    assert os.listdir(saved.parent) == [saved.name]


def test_a_temporary_file_of_a_running_process_is_left_alone(saved):
    import time

    mine = saved.parent / f".npflows-{os.getppid()}-0123abcd.tmp"  # the parent process runs
    mine.write_bytes(b"partial")
    an_hour_ago = time.time() - 3600
    os.utime(mine, (an_hour_ago, an_hour_ago))
    save(make_flow(), saved)
    assert mine.exists()
