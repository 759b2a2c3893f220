"""Scoring a Dask array with a saved flow across worker processes: the model file is all a worker
needs (the README's recipe; npflows itself never imports Dask)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import npflows as nf

da = pytest.importorskip("dask.array")


def test_map_blocks_over_rows_on_worker_processes_matches_one_call(tmp_path):
    x = nf.datasets.get("moons").sample(3000, rng=0)
    flow = nf.standardized(nf.flows.RealNVP(2, n_layers=2, hidden=(8,), rng=0), x)
    path = str(tmp_path / "model.npz")
    nf.save(flow, path)
    rows = da.from_array(x, chunks=(700, -1))  # blocks of rows, every column in each block
    log_p = rows.map_blocks(lambda block: nf.load(path).log_prob(block), drop_axis=1, dtype=float)
    scores = log_p.compute(scheduler="processes", num_workers=2)
    assert scores.shape == (3000,)
    np.testing.assert_allclose(scores, flow.log_prob(x), rtol=1e-13)


def test_the_package_does_not_import_dask():
    code = "import sys, npflows, npflows.cli, npflows.estimator; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
