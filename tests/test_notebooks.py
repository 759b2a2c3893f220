"""Run every notebook in notebooks/ top to bottom in a real Jupyter kernel; any error fails the test.

The notebooks are stored with their outputs; this test executes a fresh copy in memory and never
writes them back. The kernel is always this interpreter: a kernelspec named "python3" pointing at
``sys.executable`` is written to a temporary directory placed first on JUPYTER_PATH, so a "python3"
kernelspec elsewhere (a user's, another environment's) cannot be picked up instead. The kernel gets
the repository on PYTHONPATH, so it imports this checkout's npflows even when it is not installed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _prepend(path, var):
    """``path`` followed by the entries already in the environment variable ``var``."""
    entries = [p for p in os.environ.get(var, "").split(os.pathsep) if p]
    return os.pathsep.join([str(path), *entries])


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """Environment for the kernels: our "python3" kernelspec first, the repository importable."""
    from ipykernel.kernelspec import write_kernel_spec

    jupyter_dir = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(jupyter_dir / "kernels" / "python3")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", _prepend(jupyter_dir, "JUPYTER_PATH"))
        mp.setenv("PYTHONPATH", _prepend(ROOT, "PYTHONPATH"))
        mp.delenv("MPLBACKEND", raising=False)  # let the kernel use its inline backend
        # The notebooks' networks are small; one BLAS thread avoids oversubscribing a shared machine.
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            mp.setenv(var, "1")
        yield


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 6, f"expected the six chapter notebooks in {NOTEBOOK_DIR}"


def test_the_kernel_is_this_interpreter(kernel_env):
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.argv[0] == sys.executable, spec.argv


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_env):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_run_in_order_and_small(path):
    """The committed file shows outputs from one top-to-bottom run, without errors, in < 300 KB."""
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: execution counts {counts}"
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} is stored with an error output: {errors[0].ename}"
    assert path.stat().st_size < 300_000, f"{path.name} is {path.stat().st_size} bytes"
