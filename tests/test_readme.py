"""The README's Python examples and shell commands run as written (in a temporary directory)."""

from __future__ import annotations

import configparser
import contextlib
import importlib.util
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).parents[1]
README = ROOT / "README.md"

# Lines of the README's shell blocks that are not run here: the installs (the test environment is
# the installed one; a fresh machine runs them first) and what they lead to.
INSTALL = ("python3 -m venv", "pip install")

# Commands that would take more than a few seconds get smaller budgets, appended to the command as
# written (the later option wins in argparse). The first command's full run takes about 10 s on a
# quiet 2-core machine and trains 20,000 points for 30 epochs; here it trains 4,000 for 3.
REDUCED = {
    "npflows fit --data moons --flow nsf": "--n-train 4000 --n-test 1000 --epochs 3",
    "python -m npflows fit --data banana --flow maf-spline": "--n-train 4000 --n-test 500 --epochs 3",
    "python -m npflows fit-density --target ring --flow iaf": "--steps 100 --n-eval 1000",
}


def one_blas_thread():
    if importlib.util.find_spec("threadpoolctl") is None:
        return contextlib.nullcontext()
    import scipy.linalg  # noqa: F401  (loaded first: threadpoolctl limits the BLAS copies loaded)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


CHECK_MODEL = (
    "python -m npflows check-model model.npz zuko NSF --kwargs "
    '\'{"features": 2, "transforms": 4, "bins": 8}\' --points points.npz'
)
# The files a command reads that the README asks the reader to make elsewhere: check-model's
# model.npz and points.npz are a user's torch export, here the bundled zuko NSF export (its
# state_dict and zuko's own numbers), which torch made once (tests/data/peers/).
INPUTS = {
    CHECK_MODEL: {"model.npz": "zuko_nsf_benchmark_b.npz", "points.npz": "zuko_nsf_benchmark_b.npz"}
}


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def shell_commands() -> list[str]:
    """Every command of the README's bash blocks, split at ``&&``, comments dropped, installs
    dropped (see ``INSTALL``)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for command in (part.strip() for part in line.split("&&")):
                if command and not command.startswith(INSTALL) and not command.startswith("."):
                    commands.append(command)
    return commands


def test_the_python_examples_run(tmp_path, monkeypatch):
    # The blocks run in order in one namespace, as a reader would paste them; the "Check your own
    # flow" block shows placeholders (my_forward, ...) for the reader's own callables.
    blocks = [b for b in python_blocks() if "my_forward" not in b]
    assert len(blocks) == 4, "the tour (2 blocks), conditional flows, your own layer"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with one_blas_thread():  # as the README advises for small networks: 3 s instead of 30 s
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)
    assert os.path.exists("moons.npz") and namespace["grads"]["layers"]
    assert namespace["draws"].shape == (500, 1)
    # The custom layer's file names its class and loads only because it was registered.
    assert os.path.exists("custom.npz") and namespace["errors"]["forward_vjp/params"] < 1e-6


def test_the_shell_commands_run(tmp_path):
    """Each command of the README (after the installs) in a fresh directory, in order, each
    through ``python -m npflows`` (the ``npflows`` console script is the same entry point; the
    test environment need not have the package installed); budgets reduced as ``REDUCED`` says."""
    commands = shell_commands()
    assert commands[0] == "npflows fit --data moons --flow nsf"
    assert "python -m npflows fit --data points.csv --context-columns 1" in commands
    run, skipped = 0, []
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    start = time.monotonic()
    for command in commands:
        words = shlex.split(command)
        if words[0] == "npflows":
            words = ["python", "-m", *words]
        if words[:3] != ["python", "-m", "npflows"]:
            skipped.append(command)  # the docs build and jupyter: not commands of npflows
            continue
        for name, peer in INPUTS.get(command, {}).items():
            shutil.copyfile(ROOT / "tests" / "data" / "peers" / peer, tmp_path / name)
        words += shlex.split(REDUCED.get(command, ""))
        if words[3] in ("fit", "fit-density"):  # progress bars are for a terminal
            words.append("--no-progress")
        result = subprocess.run(
            [sys.executable, *words[1:]], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        run += 1
    assert run == 9 and all(c.split()[0] in ("python", "jupyter") for c in skipped), skipped
    assert (tmp_path / "runs" / "points" / "model.npz").exists()
    assert time.monotonic() - start < 120  # 29 s on a busy 2-core machine (load average 5)


def test_the_notebooks_extra_installs_what_opens_them():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    extra = config["options.extras_require"]["notebooks"]
    names = {re.match(r"[A-Za-z0-9_.-]+", line).group(0) for line in extra.split() if line}
    assert {"jupyterlab", "matplotlib", "ipykernel"} <= names
    assert 'pip install -e ".[notebooks]"' in README.read_text()
    assert ".[notebooks]" in (ROOT / "notebooks" / "README.md").read_text()


@pytest.mark.parametrize("command", sorted([*REDUCED, *INPUTS]))
def test_every_reduced_command_is_in_the_readme(command):
    assert command in shell_commands()
