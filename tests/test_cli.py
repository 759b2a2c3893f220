"""The command line (`python -m npflows ...`), run in-process through `npflows.cli.main` on small budgets."""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import npflows
from npflows import cli, datasets, plotting
from npflows.cli import fit_data
from npflows.cli.common import FLOWS, build_flow

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
        cli.main(["fit", "--data", "nosuch"])
    assert exit_info.value.code == 2
    assert "expected a built-in data set (bimodal, moons," in capsys.readouterr().err


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

    monkeypatch.setattr(fit_data, "fit", diverge)
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


# -- 2-D data sets, users' files, saved models, reverse KL ---------------------------------------
TINY = ["--epochs", "1", "--batch-size", "100", "--hidden", "8", "--layers", "2", "--no-progress"]
TINY_MOONS = ["--data", "moons", "--n-train", "300", "--n-test", "100", *TINY]
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(autouse=True)
def small_plots(monkeypatch):
    """Few points and a coarse grid in the plots, so that the tests stay fast."""
    monkeypatch.setattr(plotting, "N_SHOWN", 100)
    monkeypatch.setattr(plotting, "GRID", 10)


@pytest.fixture(scope="module")
def moons_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("moons")
    assert cli.main(["fit", *TINY_MOONS, "--flow", "realnvp", "--out", str(out)]) == 0
    return out / "model.npz"


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("flow", [name for name in FLOWS if not name.startswith("iaf")])
def test_fit_on_moons_with_each_flow_writes_the_model_and_plot(flow, tmp_path, capsys):
    assert cli.main(["fit", *TINY_MOONS, "--flow", flow, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"fitting a {flow} flow to 300 points of 'moons' in 2-D" in out
    assert np.isfinite(printed_nll(out)) and "no KL(p‖q) to report" in out
    model = npflows.load(tmp_path / "model.npz")
    assert model.dim == 2 and isinstance(model.layers[-1], npflows.Diagonal)
    assert (tmp_path / "density.png").exists() == HAS_MATPLOTLIB


def test_fit_reports_kl_for_a_data_set_with_a_known_density(tmp_path, capsys):
    args = ["fit", *TINY_MOONS, "--data", "checkerboard", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert f"entropy H[p]  {np.log(32):.4f} nats" in out
    kl = float(re.search(r"KL\(p‖q\)\s+(\S+)", out).group(1))
    assert abs(printed_nll(out) - np.log(32) - kl) < 1e-3  # NLL − H[p] = KL on the same points


def test_the_data_side_layer_starts_at_the_data_mean_and_std():
    x = np.array([[0.0, 1.0], [2.0, 5.0], [4.0, 3.0]])
    flow = build_flow([], x.mean(axis=0), x.std(axis=0))
    np.testing.assert_allclose(flow.forward(np.zeros((1, 2)))[0], [[2.0, 3.0]])
    np.testing.assert_allclose(np.exp(flow.layers[-1].params["log_scale"]), x.std(axis=0))
    with pytest.raises(ValueError, match="column 2 of the data is constant"):
        build_flow([], np.zeros(2), np.array([1.0, 0.0]))


def test_fit_on_a_csv_and_the_same_npy_file_gives_the_same_model(tmp_path, capsys):
    x = datasets.get("banana").sample(400, rng=0)
    csv, npy = tmp_path / "points.csv", tmp_path / "points.npy"
    csv.write_text("x1,x2\n" + "".join(f"{a!r},{b!r}\n" for a, b in x.tolist()))  # a header line
    np.save(npy, x)
    nlls = []
    for path in (csv, npy):
        args = ["fit", "--data", str(path), "--flow", "nice", *TINY, "--out", str(tmp_path / "o")]
        assert cli.main(args) == 0
        out = capsys.readouterr().out
        assert f"read 400 points from {path}; 40 of them held out for testing" in out
        nlls.append(printed_nll(out))
    assert nlls[0] == nlls[1]


def test_fit_on_a_3d_file_saves_the_model_without_a_plot(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(200, 3)))
    assert cli.main(["fit", "--data", str(tmp_path / "x.npy"), *TINY, "--out", str(tmp_path)]) == 0
    assert "no density.png: the plot shows 1-D and 2-D data, not 3-D" in capsys.readouterr().out
    assert npflows.load(tmp_path / "model.npz").dim == 3


def test_sample_and_score_round_trip(moons_model, tmp_path, monkeypatch, capsys):
    flow = npflows.load(moons_model)
    assert cli.main(["sample", str(moons_model), "-n", "50", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    x = np.loadtxt(io.StringIO(text), delimiter=",")
    np.testing.assert_array_equal(x, flow.sample(50, rng=3))  # printed exactly, to the last bit
    (tmp_path / "x.csv").write_text(text)
    assert cli.main(["score", str(moons_model), str(tmp_path / "x.csv")]) == 0
    scores = np.array(capsys.readouterr().out.split(), dtype=float)
    np.testing.assert_array_equal(scores, flow.log_prob(x))

    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert cli.main(["score", str(moons_model), "-", "--mean"]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(scores.mean(), rel=1e-14)
    assert cli.main(["sample", str(moons_model), "-n", "5", "--out", str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().out == f"saved 5 points to {tmp_path / 'x.npy'}\n"
    assert np.load(tmp_path / "x.npy").shape == (5, 2)


def test_fit_density_reports_elbo_log_z_and_ess(tmp_path, capsys):
    args = ["fit-density", "--target", "mixture", "--steps", "20", "--batch-size", "32"]
    args += ["--n-eval", "200", "--hidden", "8", "--layers", "2", "--no-progress"]
    assert cli.main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for line in ("ELBO ", "log Ẑ ", "log Z         0.0000 nats (exact)", "ESS "):
        assert line in out
    elbo = float(re.search(r"ELBO\s+(\S+)", out).group(1))
    assert elbo < 0.05  # ELBO ≤ log Z = 0, up to the estimate's noise
    assert npflows.load(tmp_path / "model.npz").dim == 2
    assert (tmp_path / "density.png").exists() == HAS_MATPLOTLIB


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--data", "missing.csv"], "missing.csv: No such file or directory"),
        (["fit", "--data", "bad.csv"], "bad.csv: not a CSV of numbers"),
        (["fit", "--data", "nan.csv"], "nan.csv: 1 row(s) with NaN or inf, the first is point 2"),
        (
            ["fit", "--data", "cube.npy"],
            "expected points in rows, shape (N, D), got shape (2, 2, 2)",
        ),
        (["fit", "--data", "const.csv", "--flow", "gaussian"], "column 1 of the data is constant"),
        (["fit", *TINY_MOONS, "--flow", "iaf"], "the iaf flow has no inverse_vjp"),
        (["fit-density", "--flow", "maf"], "reverse-KL training needs forward_vjp"),
        (["score", "MODEL", "wide.csv"], "has points of 3 coordinates; "),
        (["score", "bad.csv", "wide.csv"], "not an npflows model file"),
    ],
)
def test_failures_exit_1_with_one_line(args, message, moons_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("bad.csv").write_text("1,2\n3,x\n")
    Path("nan.csv").write_text("1,2\nnan,3\n")
    Path("wide.csv").write_text("1,2,3\n")
    Path("const.csv").write_text("1,2\n1,3\n1,4\n")
    np.save("cube.npy", np.zeros((2, 2, 2)))
    args = [str(moons_model) if a == "MODEL" else a for a in args]
    assert cli.main([*args, "--out", "o"] if args[0] != "score" else args) == 1
    assert message in error_line(capsys)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "--data", "x.csv", "--n-train", "10"], "--n-train and --n-test apply to built-in"),
        (["sample", "m.npz", "-n", "5", "--out", "x.txt"], "expected a .npy or .csv file"),
        (["score", "m.npz", "x.json"], "expected a .npy or .csv file"),
        (["fit-density", "--target", "nosuch"], "invalid choice: 'nosuch'"),
        (["sample", "m.npz"], "the following arguments are required: -n"),
    ],
)
def test_usage_errors_exit_2(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("x.csv").write_text("1,2\n3,4\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["fit", "sample", "score", "fit-density"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: python -m npflows {command}" in capsys.readouterr().out
