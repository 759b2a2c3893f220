"""``python -m npflows check-model`` on the peer reference files (tests/data/peers/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from npflows import cli

PEERS = Path(__file__).parent / "data" / "peers"


def split(tmp_path, stem):
    """The reference file as a user has it: a state_dict .npz and a points .npz, apart."""
    with np.load(PEERS / f"{stem}.npz") as f:
        data = {k: f[k] for k in f.files}
    arrays = {k[len("state/") :]: v for k, v in data.items() if k.startswith("state/")}
    np.savez(tmp_path / "model.npz", **arrays)
    points = {
        k: data[k] for k in ("x", "log_prob", "z", "sample", "context", "z_context") if k in data
    }
    np.savez(tmp_path / "points.npz", **points)
    return str(data["library"]), str(data["name"]), str(data["kwargs_json"]), points


def test_check_model_reports_the_largest_deviation_and_passes(tmp_path, capsys):
    library, name, kwargs, _ = split(tmp_path, "zuko_nsf_context")
    args = [str(tmp_path / "model.npz"), library, name, "--kwargs", kwargs]
    assert cli.main(["check-model", *args, "--points", str(tmp_path / "points.npz")]) == 0
    out = capsys.readouterr().out
    assert "log_prob: 24 rows, largest deviation" in out and "at row" in out
    assert "sampling map: 16 rows" in out and out.rstrip().endswith("tolerance 1e-10")


def test_check_model_fails_past_the_tolerance(tmp_path, capsys):
    library, name, kwargs, points = split(tmp_path, "nflows_realnvp")
    points["log_prob"] = points["log_prob"].copy()
    points["log_prob"][7] += 1e-6 * max(1.0, abs(points["log_prob"][7]))
    np.savez(tmp_path / "points.npz", **points)
    args = [str(tmp_path / "model.npz"), library, name, "--kwargs", kwargs]
    assert cli.main(["check-model", *args, "--points", str(tmp_path / "points.npz")]) == 1
    out = capsys.readouterr().out
    assert "at row 7:" in out and "FAIL" in out


def test_check_model_reads_a_bundled_reference_file(capsys):
    assert cli.main(["check-model", str(PEERS / "nflows_maf.npz")]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_model_without_points_only_imports(tmp_path, capsys):
    library, name, kwargs, _ = split(tmp_path, "zuko_maf")
    assert (
        cli.main(["check-model", str(tmp_path / "model.npz"), library, name, "--kwargs", kwargs])
        == 0
    )
    assert "nothing compared" in capsys.readouterr().out


def test_check_model_refusals(tmp_path, capsys):
    library, name, kwargs, _ = split(tmp_path, "zuko_maf")
    model = str(tmp_path / "model.npz")
    bad = json.dumps({**json.loads(kwargs), "residual": True})
    assert cli.main(["check-model", model, library, name, "--kwargs", bad]) == 1
    assert "residual" in capsys.readouterr().err
    unknown = json.dumps({**json.loads(kwargs), "colour": 1})
    assert cli.main(["check-model", model, library, name, "--kwargs", unknown]) == 1
    assert "colour" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["check-model", model, "pyro", name, "--kwargs", kwargs])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["check-model", model, library, name, "--kwargs", "{features: 3}"])
    with pytest.raises(SystemExit):
        cli.main(["check-model", model])


def test_check_model_shows_a_float32_export_beside_the_verdict(capsys):
    assert cli.main(["check-model", str(PEERS / "zuko_nsf_float32.npz")]) == 0
    out = capsys.readouterr().out
    assert "log_prob (library in float32)" in out and out.rstrip().endswith("tolerance 1e-10")
