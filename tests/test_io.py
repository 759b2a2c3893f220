import json
import os

import numpy as np
import pytest

import npflows
from npflows import Elementwise, Flow, Invert, LeakyReLU, ModelFileError, load, save
from npflows.io.format import META, digest
from npflows.transformers import AffineTransformer
from npflows.tree import flatten


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
    from npflows.flows import RealNVP

    flow = RealNVP(2, n_layers=2, hidden=(4,), rng=0).astype(np.float32)
    save(flow, tmp_path / "f32.npz")
    loaded = load(tmp_path / "f32.npz")
    assert loaded.dtype == np.float32
    x = np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.log_prob(x), flow.log_prob(x))
