"""``python -m npflows fit``, run in-process through ``npflows.cli.main`` on a small budget."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import npflows
from npflows import cli, datasets

SMALL = ["--n-train", "3000", "--n-test", "3000", "--epochs", "12", "--no-progress"]


def printed_nll(out: str) -> float:
    return float(re.search(r"test NLL\s+(\S+)", out).group(1))


def test_fit_writes_a_model_close_to_the_true_density(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default output directory is runs/<data>
    assert cli.main(["fit", *SMALL]) == 0
    out = capsys.readouterr().out
    entropy = datasets.get("bimodal").entropy()
    assert f"entropy H[p]  {entropy:.4f}" in out and "KL(p‖q)" in out
    assert abs(printed_nll(out) - entropy) < 0.1

    flow = npflows.load(tmp_path / "runs" / "bimodal" / "model.npz")
    x = datasets.get("bimodal").sample(20_000, rng=123)
    assert abs(-flow.log_prob(x).mean() - entropy) < 0.1


def test_fit_writes_the_density_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert cli.main(["fit", *SMALL, "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "density.png").stat().st_size > 0
    assert f"saved {tmp_path / 'density.png'}" in capsys.readouterr().out


def test_fit_without_matplotlib_says_how_to_get_the_plot(tmp_path, monkeypatch, capsys):
    for name in ("matplotlib", "matplotlib.figure"):  # None in sys.modules makes the import fail
        monkeypatch.setitem(sys.modules, name, None)
    assert cli.main(["fit", *SMALL, "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert "pip install 'npflows[plot]'" in capsys.readouterr().out
    assert (tmp_path / "model.npz").exists() and not (tmp_path / "density.png").exists()


def test_gaussian_flow_is_the_single_gaussian_baseline(tmp_path, capsys):
    assert cli.main(["fit", *SMALL, "--flow", "gaussian", "--out", str(tmp_path)]) == 0
    # One Gaussian cannot show two modes: it stays well above the entropy.
    assert printed_nll(capsys.readouterr().out) - datasets.get("bimodal").entropy() > 0.1


def test_unknown_dataset_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", "--data", "moons"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'moons'" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--epochs", "0"], ["--n-test", "1"], ["--n-train", "x"]])
def test_bad_numbers_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", *args])
    assert exit_info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


def test_value_error_exits_1_with_one_line(tmp_path, capsys):
    # Five rows leave none for validation, which fit refuses with a ValueError.
    assert cli.main(["fit", *SMALL, "--n-train", "5", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: x has 5 rows") and err.count("\n") == 1


def test_diverged_training_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    def diverge(*args, **kwargs):
        raise npflows.TrainingDiverged("the loss became NaN or inf at epoch 1, step 1")

    monkeypatch.setattr(cli, "fit", diverge)
    assert cli.main(["fit", *SMALL, "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "error: the loss became NaN or inf at epoch 1, step 1\n"


def test_module_help_runs_and_import_stays_light():
    help_run = subprocess.run(
        [sys.executable, "-m", "npflows", "fit", "--help"], capture_output=True, text=True
    )
    assert help_run.returncode == 0 and "--n-train" in help_run.stdout
    code = (
        "import sys, npflows, npflows.cli; print(sorted({'matplotlib', 'tqdm'} & set(sys.modules)))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert imported.stdout.strip() == "[]", imported.stderr


def test_seed_fixes_the_result(tmp_path, capsys):
    runs = []
    for name in ("a", "b"):
        assert cli.main(["fit", *SMALL, "--epochs", "2", "--out", str(tmp_path / name)]) == 0
        runs.append(printed_nll(capsys.readouterr().out))
        flow = npflows.load(tmp_path / name / "model.npz")
        runs.append(flow.log_prob(np.zeros((1, 1)))[0])
    assert runs[:2] == runs[2:]


def test_unusable_output_directory_fails_before_training(tmp_path, capsys):
    taken = tmp_path / "a_file"
    taken.write_text("")
    assert cli.main(["fit", *SMALL, "--out", str(taken)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and "test NLL" not in captured.out
