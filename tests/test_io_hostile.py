"""Crafted and damaged model files: every refusal is one ModelFileError, raised before anything
larger than the file is allocated (peak memory measured with tracemalloc), and nothing blocks."""

import io
import json
import os
import struct
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

from npflows import ModelFileError, load, save
from npflows.flows import RealNVP
from npflows.io.format import META, digest

# Peak memory a refusal may take: a few times the file (the arrays are read once, the model built
# from them once) plus a fixed allowance for the interpreter's own bookkeeping.
PEAK_FACTOR, PEAK_ALLOWANCE = 3, 512 * 1024


def npy(array=None, *, shape=None, descr="<f8", fortran_order=False, data=b""):
    """The bytes of an .npy member: a real array, or a header declaring ``shape`` and ``descr``
    followed by ``data``."""
    buffer = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
        return buffer.getvalue()
    header = {"descr": descr, "fortran_order": fortran_order, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def meta_bytes(meta):
    return npy(np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))


def signed(model, arrays):
    """A consistent (re-signed) metadata dict for ``model`` (a description) and ``arrays``."""
    meta = {
        "format": "npflows",
        "version": 1,
        "model": model,
        "arrays": {k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in arrays.items()},
    }
    return {**meta, "sha256": digest(meta, arrays)}


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def write_model(path, model, arrays, meta=None):
    members = {f"{name}.npy": npy(a) for name, a in arrays.items()}
    members[f"{META}.npy"] = meta_bytes(meta or signed(model, arrays))
    write_zip(path, members)


def refused(path, match, **kwargs):
    """Assert that load(path) raises ModelFileError matching ``match`` within the memory bound;
    return the peak in bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=match):
            load(path, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = os.path.getsize(path) if os.path.isfile(path) else 0
    assert peak <= PEAK_FACTOR * size + PEAK_ALLOWANCE, (peak, size)
    return peak


LINEAR2 = {"class": "Linear", "args": {"dim": 2}}
LINEAR2_ARRAYS = {"Omega": np.eye(2), "beta": np.zeros(2)}


def test_the_consistent_forgery_helper_writes_a_loadable_file(tmp_path):
    """The helpers above write what load accepts, so each refusal below is due to its one change."""
    write_model(tmp_path / "m.npz", LINEAR2, LINEAR2_ARRAYS)
    np.testing.assert_array_equal(load(tmp_path / "m.npz").params["Omega"], np.eye(2))


# -- the archive ------------------------------------------------------------------------------------
def test_metadata_entry_without_npy_suffix(tmp_path):
    path = tmp_path / "m.npz"
    members = {f"{k}.npy": npy(a) for k, a in LINEAR2_ARRAYS.items()}
    members[META] = json.dumps(signed(LINEAR2, LINEAR2_ARRAYS)).encode()
    write_zip(path, members)
    refused(path, "member '__npflows__' is not an .npy array")


def test_raw_extra_member(tmp_path):
    path = tmp_path / "m.npz"
    write_model(path, LINEAR2, LINEAR2_ARRAYS)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("README.txt", b"hello")
    refused(path, "member 'README.txt' is not an .npy array")


def test_duplicate_member(tmp_path):
    path = tmp_path / "m.npz"
    write_model(path, LINEAR2, LINEAR2_ARRAYS)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as archive:
        archive.writestr("beta.npy", npy(np.ones(2)))
    refused(path, "appears twice")


def test_a_header_declaring_175_mb_in_a_466_byte_file(tmp_path):
    path = tmp_path / "m.npz"
    members = {"Omega.npy": npy(shape=(4800, 4800), data=b"\0" * 16), "beta.npy": npy(np.zeros(2))}
    write_zip(path, members)
    assert path.stat().st_size < 600
    refused(path, r"declares shape \(4800, 4800\) and dtype float64 \(184320000 bytes\)")


def test_a_central_directory_declaring_more_bytes_than_the_file_holds(tmp_path):
    path = tmp_path / "m.npz"
    write_model(path, LINEAR2, LINEAR2_ARRAYS)
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the first central-directory entry: sizes at +20 and +24
    struct.pack_into("<II", data, entry + 20, 175_000_000, 175_000_000)
    path.write_bytes(bytes(data))
    refused(path, "beyond the end of the")


def test_a_deflate_bomb_is_refused_without_inflating_it(tmp_path):
    path = tmp_path / "bomb.npz"
    n = 2**27 // 8  # 128 MiB of zeros inflate from about 0.5 MB
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("Omega.npy", "w", force_zip64=True) as member:
            member.write(npy(shape=(n,)))
            for _ in range(2**27 // 2**22):
                member.write(bytes(2**22))
    assert path.stat().st_size < 2**27 / 100
    refused(path, "is compressed")


@pytest.mark.parametrize(
    "member, match",
    [
        (npy(shape=(2, 2), fortran_order=True, data=bytes(32)), "Fortran order"),
        (npy(shape=(2,), descr="|O", data=bytes(16)), "only numbers"),
        (npy(shape=(2,), descr=[("a", "<f8")], data=bytes(16)), "only numbers"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': (((((" + b" " * 10, "no readable .npy header"),
        (b"\x93NUMPY\x09\x00" + b" " * 20, "no readable .npy header"),
        (b"not an npy", "no readable .npy header"),
    ],
)
def test_bad_npy_headers(tmp_path, member, match):
    path = tmp_path / "m.npz"
    write_zip(path, {"Omega.npy": member, f"{META}.npy": meta_bytes({})})
    refused(path, match)


def test_a_damaged_member_fails_its_crc(tmp_path):
    path = tmp_path / "m.npz"
    write_model(path, LINEAR2, {"Omega": np.full((2, 2), 7.0), "beta": np.zeros(2)})
    data = bytearray(path.read_bytes())
    at = data.index(np.full(4, 7.0).tobytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))
    refused(path, "damaged")


# -- files that are not regular files ---------------------------------------------------------------
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(_error_of(fifo)), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "load blocked on a FIFO"
    assert isinstance(outcome[0], ModelFileError) and "FIFO" in str(outcome[0])


def test_a_symlink_to_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link.npz").symlink_to("pipe")
    refused(tmp_path / "link.npz", "FIFO")


def _error_of(path):
    try:
        load(path)
    except Exception as error:
        return error
    return None


def test_a_directory_is_refused(tmp_path):
    refused(tmp_path, "is a directory")


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero", "/dev/urandom"])
def test_a_device_is_refused(device):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    refused(device, "character device")


# -- the JSON ---------------------------------------------------------------------------------------
def _with_meta_text(path, text):
    members = {f"{k}.npy": npy(a) for k, a in LINEAR2_ARRAYS.items()}
    members[f"{META}.npy"] = npy(np.frombuffer(text.encode(), dtype=np.uint8))
    write_zip(path, members)


@pytest.mark.parametrize(
    "replace, match",
    [
        ('"dim": 2', '"dim": 1e400'),
        ('"dim": 2', '"dim": -1e400'),
        ('"dim": 2', '"dim": NaN'),
        ('"dim": 2', '"dim": Infinity'),
        ('"dim": 2', '"dim": ' + "9" * 5000),
    ],
)
def test_numbers_json_or_a_float_cannot_hold(tmp_path, replace, match):
    text = json.dumps(signed(LINEAR2, LINEAR2_ARRAYS)).replace(replace, match)
    _with_meta_text(tmp_path / "m.npz", text)
    refused(tmp_path / "m.npz", "not valid UTF-8 JSON")


def test_deeply_nested_json_beyond_the_parser(tmp_path):
    meta = json.dumps(signed(LINEAR2, LINEAR2_ARRAYS))
    text = meta.replace('"dim": 2', '"dim": 2, "x": ' + "[" * 100_000 + "]" * 100_000)
    _with_meta_text(tmp_path / "m.npz", text)
    refused(tmp_path / "m.npz", "not valid UTF-8 JSON")


def test_nested_json_beyond_the_format_limit(tmp_path):
    meta = json.dumps(signed(LINEAR2, LINEAR2_ARRAYS))
    _with_meta_text(
        tmp_path / "m.npz", meta.replace('"dim": 2', '"dim": 2, "x": ' + "[" * 150 + "]" * 150)
    )
    refused(tmp_path / "m.npz", "nested more than 100 levels")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.update(arrays=[]), "'arrays'"),
        (lambda m: m.update(arrays={"Omega": 5}), "'Omega': TypeError"),
        (lambda m: m["arrays"]["Omega"].pop("shape"), "'Omega': KeyError"),
        (lambda m: m["arrays"]["Omega"].update(shape=[-1, 2]), "non-negative integers"),
        (lambda m: m["arrays"]["Omega"].update(shape=[True, 2]), "non-negative integers"),
        (lambda m: m["arrays"]["Omega"].update(dtype="O"), "dtype object, not float32/float64"),
        (lambda m: m["arrays"]["Omega"].update(dtype="<i8"), "dtype int64, not float32/float64"),
        (lambda m: m["arrays"]["Omega"].update(dtype="no such dtype"), "'Omega': TypeError"),
        (lambda m: m.update(model=[]), "'model' \\(a dict\\)"),
        (lambda m: m.update(sha256=None), "'sha256' \\(a string\\)"),
        (lambda m: m.update(version=True), "positive integer format version"),
    ],
)
def test_malformed_metadata_fields(tmp_path, edit, match):
    meta = signed(LINEAR2, LINEAR2_ARRAYS)
    edit(meta)
    write_model(tmp_path / "m.npz", None, LINEAR2_ARRAYS, meta)
    refused(tmp_path / "m.npz", match)


def test_top_level_json_that_is_not_an_object(tmp_path):
    _with_meta_text(tmp_path / "m.npz", "[1, 2, 3]")
    refused(tmp_path / "m.npz", "expected format 'npflows', got 'list'")


# -- descriptions: the allowlist and the sizes ------------------------------------------------------
@pytest.mark.parametrize("name", ["Transformer", "Layer", "_Autoregressive", "MLP", "os.system"])
def test_abstract_bases_and_other_classes_are_not_buildable(tmp_path, name):
    model = {"class": "Elementwise", "args": {"dim": 2, "transformer": {"class": name, "args": {}}}}
    write_model(tmp_path / "m.npz", model, {"theta": np.zeros((2, 0))})
    refused(tmp_path / "m.npz", f"unknown class '{name}'")


def test_a_declared_linear_40000_with_tiny_arrays_is_refused_before_building(tmp_path):
    write_model(tmp_path / "m.npz", {"class": "Linear", "args": {"dim": 40000}}, LINEAR2_ARRAYS)
    refused(tmp_path / "m.npz", r"Linear: dim=40000 is outside \[0, \d+\]")


def test_a_declared_parameter_free_layer_of_huge_dimension_is_refused(tmp_path):
    model = {"class": "Permutation", "args": {"dim": 10**10, "perm": "reverse"}}
    write_model(tmp_path / "m.npz", model, {})
    refused(tmp_path / "m.npz", "Permutation: dim=10000000000 is outside")


def test_sizes_within_the_limit_whose_product_is_not_are_refused(tmp_path):
    """hidden=[600, 600] passes the per-size limit of a file holding 2,000 scalars, but a net with
    those widths has 360,000 weights: refused before any is allocated."""
    model = {
        "class": "Coupling",
        "args": {
            "dim": 2,
            "transformer": {"class": "AffineTransformer", "args": {}},
            "hidden": [600, 600],
        },
    }
    write_model(tmp_path / "m.npz", model, {"net/weights/0": np.zeros((2000,))})
    refused(tmp_path / "m.npz", r"implies 363\d+ parameters, but the file's arrays hold only 2000")


def test_an_image_whose_entries_exceed_the_limit_is_refused_before_building(tmp_path):
    """H = W = 1000 each pass the per-size limit of a file holding 2,000 scalars, and the ConvNet
    they imply is small, but an ImageCoupling builds its (C, H, W) mask: C·H·W is a size too."""
    model = {
        "class": "ImageCoupling",
        "args": {
            "shape": [1, 1000, 1000],
            "transformer": {"class": "AffineTransformer", "args": {}},
            "hidden": 1,
        },
    }
    write_model(tmp_path / "m.npz", model, {"net/kernels/0": np.zeros((2000,))})
    refused(tmp_path / "m.npz", r"ImageCoupling: C·H·W \(the shape's number of entries\)=1000000")


def test_a_declared_linear_40000_with_matching_metadata_but_small_members(tmp_path):
    meta = signed({"class": "Linear", "args": {"dim": 40000}}, LINEAR2_ARRAYS)
    meta["arrays"] = {
        "Omega": {"shape": [40000, 40000], "dtype": "<f8"},
        "beta": {"shape": [40000], "dtype": "<f8"},
    }
    write_model(tmp_path / "m.npz", None, LINEAR2_ARRAYS, meta)
    refused(tmp_path / "m.npz", r"its metadata expects 'Omega' with shape \(40000, 40000\)")


@pytest.mark.parametrize(
    "model, match",
    [
        ({"class": "Coupling", "args": {"dim": 2, "transformer": "x"}}, "expected a transformer"),
        (
            {"class": "Elementwise", "args": {"dim": 2, "transformer": LINEAR2}},
            "expected a transformer",
        ),
        ({"class": "Flow", "args": {"layers": "abc"}}, "cannot build Flow"),
        ({"class": "Invert", "args": {"layer": 5}}, "cannot build Invert"),
        ({"class": "Linear", "args": {"dim": 2, "bogus": 1}}, "cannot build Linear"),
        ({"class": "Linear", "args": {"dim": "2"}}, "dim must be an integer"),
        ({"class": "Linear"}, "a description must be"),
        ({"class": "AffineTransformer", "args": {}}, "must be a layer or Flow"),
        ({"class": "Linear", "args": [2]}, "a description must be"),
    ],
)
def test_descriptions_that_cannot_be_built(tmp_path, model, match):
    write_model(tmp_path / "m.npz", model, LINEAR2_ARRAYS)
    refused(tmp_path / "m.npz", match)


# -- fuzzing: whatever the damage, the only error is ModelFileError ----------------------------------
@pytest.fixture(scope="module")
def valid_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "model.npz"
    save(RealNVP(2, n_layers=3, hidden=(4,), mixing="lu", rng=0), path)
    return path


def test_byte_flips_and_truncations_raise_only_model_file_errors(valid_file, tmp_path):
    data, rng = valid_file.read_bytes(), np.random.default_rng(0)
    path = tmp_path / "m.npz"
    for trial in range(300):
        damaged = bytearray(data)
        if trial % 3 == 0:
            damaged = damaged[: rng.integers(len(data))]
        else:
            for at in rng.integers(len(data), size=rng.integers(1, 4)):
                damaged[at] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(damaged))
        error = _error_of(path)
        assert error is None or isinstance(error, ModelFileError), (trial, repr(error))


JUNK = [
    None,
    True,
    -1,
    0,
    1,
    2**40,
    1e308,
    -0.5,
    "x",
    "",
    [],
    [1, 2],
    [[]],
    {},
    {"class": "Linear", "args": {"dim": 2}},
]


def _paths(value, prefix=()):
    """Every path to a value inside a JSON tree."""
    yield prefix
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, sub in items:
        yield from _paths(sub, (*prefix, key))


def test_re_signed_junk_anywhere_in_the_description_raises_only_model_file_errors(
    valid_file, tmp_path
):
    with np.load(valid_file) as npz:
        arrays = {k: npz[k] for k in npz.files if k != META}
        meta = json.loads(npz[META].tobytes())
    paths = list(_paths(meta["model"]))[1:]
    rng, path = np.random.default_rng(1), tmp_path / "m.npz"
    for trial in range(250):
        model = json.loads(json.dumps(meta["model"]))
        *parents, last = paths[rng.integers(len(paths))]
        node = model
        for key in parents:
            node = node[key]
        node[last] = JUNK[rng.integers(len(JUNK))]
        write_model(path, model, arrays)
        tracemalloc.start()
        error = _error_of(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert error is None or isinstance(error, ModelFileError), (
            trial,
            parents,
            last,
            repr(error),
        )
        assert peak <= PEAK_FACTOR * path.stat().st_size + PEAK_ALLOWANCE, (trial, peak)
