"""The command line (`python -m npflows ...`), run in-process through `npflows.cli.main` on small budgets."""

from __future__ import annotations

import configparser
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import npflows
from npflows import cli, datasets, plotting
from npflows.cli import common, fit_data, points
from npflows.cli.common import FLOWS

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
    assert capsys.readouterr().err == (
        "error: training diverged: the loss became NaN or inf at epoch 1, step 1 "
        f"Nothing was written to {tmp_path}.\n"
    )


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


@pytest.fixture
def no_plots(monkeypatch):
    """Skip the density plot where a test is not about it (it is most of a tiny fit's time)."""
    monkeypatch.setattr(plotting, "plot_fit", lambda *args, **kwargs: False)


@pytest.fixture(scope="module")
def moons_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("moons")
    assert cli.main(["fit", *TINY_MOONS, "--flow", "realnvp", "--out", str(out)]) == 0
    return out / "model.npz"


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_a_data_set_known_only_by_its_sampler_has_no_kl_to_report(tmp_path, capsys):
    args = ["--data", "2spirals", "--n-train", "300", "--n-test", "100", *TINY]
    assert cli.main(["fit", *args, "--flow", "realnvp", "--out", str(tmp_path)]) == 0
    assert "no KL(p‖q) to report" in capsys.readouterr().out


@pytest.mark.parametrize("flow", [name for name in FLOWS if not name.startswith("iaf")])
def test_fit_on_moons_with_each_flow_writes_the_model_and_plot(flow, tmp_path, capsys):
    args = TINY_MOONS if flow not in ("gaussian", "spline") else TINY_MOONS[:-3] + TINY_MOONS[-1:]
    assert cli.main(["fit", *args, "--flow", flow, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"fitting a {flow} flow to 300 points of 'moons' in 2-D" in out
    assert np.isfinite(printed_nll(out)) and "KL(p‖q)" in out
    assert f"{npflows.datasets.get('moons').entropy():.4f}" in out  # moons' density is known
    model = npflows.load(tmp_path / "model.npz")
    assert model.dim == 2 and isinstance(model.layers[-1], npflows.Standardize)
    assert (tmp_path / "density.png").exists() == HAS_MATPLOTLIB


def test_fit_reports_kl_for_a_data_set_with_a_known_density(tmp_path, capsys):
    args = ["fit", *TINY_MOONS, "--data", "checkerboard", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert f"entropy H[p]  {np.log(32):.4f} nats" in out
    kl = float(re.search(r"KL\(p‖q\)\s+(\S+)", out).group(1))
    assert abs(printed_nll(out) - np.log(32) - kl) < 1e-3  # NLL − H[p] = KL on the same points


def test_the_data_side_layer_is_a_fixed_standardization_of_the_training_points(tmp_path, no_plots):
    x = datasets.get("banana").sample(400, rng=0) * [3.0, 0.01] + [100.0, -2.0]
    np.save(tmp_path / "x.npy", x)
    args = ["fit", "--data", str(tmp_path / "x.npy"), "--flow", "nice", *TINY]
    assert cli.main([*args, "--out", str(tmp_path / "o")]) == 0
    data_side = npflows.load(tmp_path / "o" / "model.npz").layers[-1]
    assert isinstance(data_side, npflows.Standardize) and data_side.params == {}
    x_train = np.random.default_rng(np.random.SeedSequence(0).spawn(4)[0]).permutation(x)[40:]
    np.testing.assert_allclose(data_side.mean, x_train.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(data_side.scale, x_train.std(axis=0), rtol=1e-14)


def test_fit_on_a_csv_and_the_same_npy_file_gives_the_same_model(tmp_path, capsys, no_plots):
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
        (["fit", "--data", "bad.csv"], "bad.csv: line 2, column 2 is 'x', not a number"),
        (["fit", "--data", "nan.csv"], "nan.csv: point 2 has NaN or inf values"),
        (
            ["fit", "--data", "cube.npy"],
            "expected points in rows, shape (N, D), got shape (2, 2, 2)",
        ),
        (
            ["fit", "--data", "const.csv", "--flow", "gaussian"],
            "column 1 of the data is (nearly) constant",
        ),
        (["fit", "--data", "two.csv"], "two.csv has 2 row(s); fit needs at least 10 points"),
        (["fit", *TINY_MOONS, "--flow", "iaf"], "the iaf flow has no inverse_vjp"),
        (["fit", *TINY_MOONS, "--flow", "spline"], "the spline flow has a fixed set of layers"),
        (["fit-density", "--flow", "maf"], "reverse-KL training needs forward_vjp"),
        (["score", "MODEL", "wide.csv"], "has rows of 3 values; "),
        (["score", "bad.csv", "wide.csv"], "not an npflows model file"),
    ],
)
def test_failures_exit_1_with_one_line(args, message, moons_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("bad.csv").write_text("1,2\n3,x\n")
    Path("nan.csv").write_text("1,2\nnan,3\n")
    Path("wide.csv").write_text("1,2,3\n")
    Path("const.csv").write_text("".join(f"1,{k}\n" for k in range(12)))
    Path("two.csv").write_text("1,2\n3,4\n")
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
        (["fit", "--lr", "nan"], "argument --lr: must be a finite number > 0, got 'nan'"),
        (["fit", "--lr", "0"], "argument --lr: must be a finite number > 0"),
        (["fit-density", "--lr", "-1"], "argument --lr: must be a finite number > 0"),
        (["fit", "--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
        (["fit", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
        (["sample", "m.npz", "-n", "1e11"], "argument -n: expected an integer, got '1e11'"),
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


# -- scale, refusals, sizes and keeping previous runs (issue 8 items 1, 3, 9) --------------------
def moons_file(path: Path, scale: float, n: int = 1000) -> Path:
    np.save(path, scale * datasets.get("moons").sample(n, rng=0))
    return path


@pytest.mark.parametrize("scale", [1e-200, 1e-4, 1e4, 1e200])
def test_fitting_is_scale_equivariant(scale, tmp_path, capsys, no_plots):
    # The data-side map is fixed and absorbs the scale exactly: NLL(a·x) = NLL(x) + D log a.
    nlls = []
    for a in (1.0, scale):
        path = moons_file(tmp_path / f"m{a:g}.npy", a)
        args = ["fit", "--data", str(path), "--flow", "realnvp", *TINY, "--epochs", "2"]
        assert cli.main([*args, "--out", str(tmp_path / f"o{a:g}")]) == 0
        nlls.append(printed_nll(capsys.readouterr().out))
    assert nlls[1] == pytest.approx(nlls[0] + 2 * np.log(scale), abs=1e-3)


def test_identical_rows_are_refused_naming_the_column(tmp_path, capsys):
    np.save(tmp_path / "same.npy", np.tile([0.3, 0.1], (300, 1)))
    assert cli.main(["fit", "--data", str(tmp_path / "same.npy"), *TINY, "--out", "o"]) == 1
    assert "column 1 of the data is (nearly) constant" in error_line(capsys)


def test_diverging_run_keeps_the_previous_good_run(tmp_path, capsys, no_plots):
    out = tmp_path / "run"
    assert cli.main(["fit", *TINY_MOONS, "--flow", "realnvp", "--out", str(out)]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    args = ["fit", *TINY_MOONS, "--flow", "realnvp", "--lr", "10", "--out", str(out)]
    assert cli.main(args) == 1
    err = error_line(capsys)
    assert err.startswith("error: training diverged: the validation NLL went from")
    assert f"Nothing was written to {out}." in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no leftovers either


def test_an_interrupt_keeps_the_previous_run_and_exits_130(tmp_path, monkeypatch, capsys):
    (tmp_path / "model.npz").write_text("the previous model")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_data, "fit", interrupt)
    assert cli.main(["fit", *TINY_MOONS, "--out", str(tmp_path)]) == 130
    assert "interrupted" in error_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    assert (tmp_path / "model.npz").read_text() == "the previous model"


def test_a_failed_run_does_not_leave_a_new_empty_directory(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    assert cli.main(["fit", *TINY_MOONS, "--lr", "100", "--out", str(out)]) == 1
    assert not out.exists() and "training diverged" in error_line(capsys)


def test_a_successful_run_replaces_the_files_and_leaves_no_staging_directory(tmp_path, capsys):
    (tmp_path / "model.npz").write_text("an older model")
    assert cli.main(["fit", *TINY_MOONS, "--out", str(tmp_path)]) == 0
    assert npflows.load(tmp_path / "model.npz").dim == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_unwritable_output_directory_fails_before_training(tmp_path, monkeypatch, capsys):
    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(common.tempfile, "mkdtemp", refuse)
    monkeypatch.setattr(fit_data, "fit", lambda *a, **k: pytest.fail("training started"))
    assert cli.main(["fit", *TINY_MOONS, "--out", str(tmp_path)]) == 1
    assert error_line(capsys) == f"error: {tmp_path}: Permission denied\n"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_output_directory_fails_before_training(tmp_path, capsys):
    tmp_path.chmod(0o500)
    try:
        assert cli.main(["fit", *TINY_MOONS, "--out", str(tmp_path)]) == 1
        captured = capsys.readouterr()
        assert "Permission denied" in captured.err and "fitting" not in captured.out
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sample", "MODEL", "-n", "100000000000"], "-n = 100000000000 points of 2 coordinates"),
        (
            ["fit", "--data", "moons", "--n-train", "100000000000", "--out", "o"],
            "--n-train = 100000000000 points of 2 coordinates would take 1.6e+03 GB",
        ),
        (["fit", "--data", "moons", "--n-test", "67108865", "--out", "o"], "more than the"),
        (["fit-density", "--n-eval", "100000000", "--out", "o"], "--n-eval = 100000000 points"),
    ],
)
def test_huge_point_counts_are_refused_with_the_size(args, message, moons_model, capsys):
    args = [str(moons_model) if a == "MODEL" else a for a in args]
    assert cli.main(args) == 1
    err = error_line(capsys)
    assert message in err and "limit of 1.07 GB" in err


def test_sampling_and_scoring_in_chunks_give_the_same_numbers(moons_model, monkeypatch, capsys):
    flow = npflows.load(moons_model)
    monkeypatch.setattr(common, "CHUNK_ROWS", 7)
    assert cli.main(["sample", str(moons_model), "-n", "30", "--seed", "4"]) == 0
    x = np.loadtxt(io.StringIO(capsys.readouterr().out), delimiter=",")
    # The same normal draws; BLAS may round differently for another number of rows.
    np.testing.assert_allclose(x, flow.sample(30, rng=4), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(common.log_prob_in_chunks(flow, x), flow.log_prob(x), rtol=1e-13)


def test_the_gaussian_baseline_is_a_full_covariance_fit(tmp_path, capsys, no_plots):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 2)) @ [[2.0, 0.0], [1.5, 0.1]] + [5.0, -1.0]
    np.save(tmp_path / "x.npy", x)
    args = ["fit", "--data", str(tmp_path / "x.npy"), "--flow", "nice", *TINY]
    assert cli.main([*args, "--out", str(tmp_path / "o")]) == 0
    printed = float(re.search(r"Gaussian NLL\s+(\S+)", capsys.readouterr().out).group(1))
    x = np.random.default_rng(np.random.SeedSequence(0).spawn(4)[0]).permutation(x)
    x_test, x_train = x[:50], x[50:]
    gauss = stats.multivariate_normal(x_train.mean(axis=0), np.cov(x_train.T, bias=True))
    assert printed == pytest.approx(-gauss.logpdf(x_test).mean(), abs=1e-4)


# -- users' files: delimiters, headers, index columns, errors, streaming (issue 12 item 6) -------
POINTS = np.array([[0.5, -1.25], [2.0, 3.0], [-4.5, 1e-3]])


@pytest.mark.parametrize(
    "text",
    [
        "0.5,-1.25\n2,3\n-4.5,0.001\n",
        "a;b\n0.5;-1.25\n2;3\n-4.5;0.001\n",
        "x\ty\n0.5\t-1.25\n2\t3\n-4.5\t0.001\n",
        "0.5   -1.25\n  2 3\n-4.5  0.001\n",
        "a, b\n0.5, -1.25\n2, 3\n\n-4.5, 0.001\r\n",
    ],
    ids=["comma", "semicolon-header", "tab-header", "spaces", "comma-space-blank-line"],
)
def test_delimiters_and_headers_are_detected(text, tmp_path):
    (tmp_path / "p.csv").write_text(text)
    np.testing.assert_array_equal(points.read_points(tmp_path / "p.csv"), POINTS)
    np.testing.assert_array_equal(points.read_points(tmp_path / "p.csv", chunk_rows=2), POINTS)


def test_a_binary_file_is_refused_as_not_text(tmp_path):
    (tmp_path / "p.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match="p.csv: not a UTF-8 text file"):
        points.read_points(tmp_path / "p.csv")


def test_one_column_without_delimiters(tmp_path):
    (tmp_path / "p.csv").write_text("value\n1.5\n-2\n3e-5\n")
    np.testing.assert_array_equal(points.read_points(tmp_path / "p.csv"), [[1.5], [-2.0], [3e-5]])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n" + "1,2\n" * 6 + "1,\n", "p.csv: line 8, column 2 is empty"),
        ("1,2\n3,4\n5,x\n", "p.csv: line 3, column 2 is 'x', not a number"),
        ("1,2\n3,4,5\n", "p.csv: line 2 has 3 values, the lines before have 2"),
        ("1,2\n3,4\n5,6\n7,8,9\n", "p.csv: line 4 has 3 values, the lines before have 2"),
        ("1,2\n3,4\n5,6\n7,8\n9,1_0\n", "p.csv: line 5, column 2 is '1_0', not a number"),
        ("a,b\n", "p.csv: no points in the file"),
        ("a;b\n1,5;2\n", "line 2, column 1 is '1,5', not a number (write decimals with a point"),
        (",a,b\n0,1,2\n1,3,4\n", "column 1 is a row index (header '', values 0, 1, 2, …)"),
    ],
)
@pytest.mark.parametrize("chunk_rows", [2, 2**16])
def test_file_errors_name_the_line_and_column(text, message, chunk_rows, tmp_path):
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)):
        points.read_points(tmp_path / "p.csv", chunk_rows=chunk_rows)


def test_a_pandas_index_column_is_dropped_with_skip_columns(tmp_path, capsys, no_plots):
    x = datasets.get("banana").sample(200, rng=0)
    text = ",x1,x2\n" + "".join(f"{i},{a!r},{b!r}\n" for i, (a, b) in enumerate(x.tolist()))
    (tmp_path / "p.csv").write_text(text)
    np.testing.assert_array_equal(points.read_points(tmp_path / "p.csv", skip_columns=1), x)
    args = ["fit", "--data", str(tmp_path / "p.csv"), "--flow", "nice", *TINY]
    assert cli.main([*args, "--out", str(tmp_path / "o")]) == 1
    assert "pass --skip-columns 1" in error_line(capsys)
    assert cli.main([*args, "--skip-columns", "1", "--out", str(tmp_path / "o")]) == 0
    assert "in 2-D" in capsys.readouterr().out


def test_score_streams_chunks_and_prints_the_same_numbers(
    moons_model, tmp_path, monkeypatch, capsys
):
    x = datasets.get("moons").sample(50, rng=5)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.csv").write_text("".join(f"{a!r};{b!r}\n" for a, b in x.tolist()))
    runs = {}
    for chunk in (7, 2**16):
        monkeypatch.setattr(common, "CHUNK_ROWS", chunk)
        for name in ("x.npy", "x.csv"):
            assert cli.main(["score", str(moons_model), str(tmp_path / name)]) == 0
            runs[chunk, name] = np.array(capsys.readouterr().out.split(), dtype=float)
            assert cli.main(["score", str(moons_model), str(tmp_path / name), "--mean"]) == 0
            runs[chunk, name, "mean"] = float(capsys.readouterr().out)
    expected = npflows.load(moons_model).log_prob(x)
    for key, value in runs.items():
        if "mean" in key:
            assert value == runs[7, "x.npy", "mean"]  # exact sums: the chunks do not matter
            assert value == pytest.approx(expected.mean(), rel=1e-13)
        else:
            np.testing.assert_allclose(value, expected, rtol=1e-13)


def test_skip_columns_applies_to_files_only(capsys):
    with pytest.raises(SystemExit):
        cli.main(["fit", "--data", "moons", "--skip-columns", "1"])
    assert "--skip-columns and --context-columns apply to a file" in capsys.readouterr().err


# -- the console script, --version and BLAS threads (issue 12 item 7) ---------------------------
def test_version_and_the_console_script_entry_point(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"npflows {npflows.__version__}\n"
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[1] / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"].split("\n")
    assert "npflows = npflows.cli:main" in [line.strip() for line in scripts]


@pytest.mark.parametrize("variable", [None, "OPENBLAS_NUM_THREADS"])
def test_commands_run_with_one_blas_thread_unless_the_user_chose(
    variable, tmp_path, monkeypatch, capsys
):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.chdir(tmp_path)
    for name in cli.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if variable:
        monkeypatch.setenv(variable, "2")
    seen = []

    def record(*args, **kwargs):
        seen.extend(
            p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"
        )
        raise npflows.TrainingDiverged("stopped by the test")

    monkeypatch.setattr(fit_data, "fit", record)
    before = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    assert cli.main(["fit", *TINY_MOONS, "--out", "o"]) == 1
    assert seen == (before if variable else [1] * len(before))


def test_score_says_when_a_log_density_is_below_float64(moons_model, tmp_path, capsys):
    np.save(tmp_path / "far.npy", np.array([[0.5, 0.0], [1e200, 0.0]]))
    assert cli.main(["score", str(moons_model), str(tmp_path / "far.npy")]) == 0
    captured = capsys.readouterr()
    values = captured.out.split()
    assert np.isfinite(float(values[0])) and values[1] == "-inf"
    assert captured.err.startswith("note: 1 point(s) have a log-density below the most negative")


# -- conditional flows from a file's context columns (issue 12 item 4) ----------------------------
@pytest.fixture(scope="module")
def conditional_model(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """A flow of x0 given x1 on moons, x1 in raw units far from standardized (1000 + 100 x1)."""
    out = tmp_path_factory.mktemp("conditional")
    rows = datasets.get("moons").sample(3000, rng=0) * [1.0, 100.0] + [0.0, 1000.0]
    np.savetxt(out / "rows.csv", rows, delimiter=",")
    args = ["fit", "--data", str(out / "rows.csv"), "--context-columns", "1", "--epochs", "15"]
    assert cli.main([*args, "--no-progress", "--out", str(out)]) == 0
    return out / "model.npz", out / "rows.csv", rows


def test_fit_with_context_columns_saves_a_flow_of_the_raw_context(conditional_model, capsys):
    model, _, rows = conditional_model
    flow = npflows.load(model)
    assert flow.dim == 1 and flow.context_dim == 1
    # The context map is folded in: the saved flow takes the context in the file's units, and
    # knowing x1 makes x0 far more predictable than its marginal (a histogram's in-sample NLL).
    conditional_nll = -flow.log_prob(rows[:, :1], context=rows[:, 1:]).mean()
    edges = np.histogram_bin_edges(rows[:, 0], 40)
    density = np.histogram(rows[:, 0], edges, density=True)[0]
    marginal_nll = -np.log(density[np.clip(np.digitize(rows[:, 0], edges) - 1, 0, 39)]).mean()
    assert conditional_nll < marginal_nll - 0.3


def test_conditional_fit_prints_the_conditional_gaussian_baseline(tmp_path, capsys, no_plots):
    rng = np.random.default_rng(0)
    c = rng.normal(size=(2000, 1)) * 50.0
    x = 0.02 * c + rng.normal(size=(2000, 1)) * 0.5  # x | c ~ N(0.02 c, 0.25): NLL 0.726 nats
    np.savetxt(tmp_path / "lin.csv", np.c_[x, c], delimiter=",")
    args = ["fit", "--data", str(tmp_path / "lin.csv"), "--context-columns", "1", "--flow"]
    assert (
        cli.main([*args, "gaussian", "--epochs", "1", "--no-progress", "--out", str(tmp_path)]) == 1
    )
    assert "takes no context" in error_line(capsys)
    assert (
        cli.main([*args, "realnvp", "--epochs", "5", "--no-progress", "--out", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out
    baseline = float(re.search(r"Gaussian NLL\s+(\S+)", out).group(1))
    assert (
        "Gaussian of x given c" in out
        and abs(baseline - (0.5 * np.log(2 * np.pi * 0.25) + 0.5)) < 0.1
    )
    assert "no density.png" in out


def test_sample_and_score_take_the_context(conditional_model, tmp_path, capsys):
    model, rows_csv, rows = conditional_model
    assert cli.main(["sample", str(model), "-n", "400", "--context", "960", "--seed", "1"]) == 0
    below = np.loadtxt(io.StringIO(capsys.readouterr().out), delimiter=",")
    assert cli.main(["sample", str(model), "-n", "400", "--context", "1090", "--seed", "1"]) == 0
    above = np.loadtxt(io.StringIO(capsys.readouterr().out), delimiter=",")
    # x1 = -0.4 is the lower moon's bottom (x0 near 1), x1 = 0.9 the upper moon's top (x0 near 0).
    assert below.shape == (400,) and np.median(below) > np.median(above) + 0.4
    assert cli.main(["score", str(model), str(rows_csv)]) == 0
    scores = np.loadtxt(io.StringIO(capsys.readouterr().out))
    flow = npflows.load(model)
    np.testing.assert_allclose(scores, flow.log_prob(rows[:, :1], context=rows[:, 1:]), rtol=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sample", "COND", "-n", "3"], "is a conditional flow: pass --context with 1"),
        (["sample", "COND", "-n", "3", "--context", "1,2"], "--context must be 1 finite number"),
        (["sample", "COND", "-n", "3", "--context", "a"], "--context must be comma-separated"),
        (["sample", "COND", "-n", "3", "--context", "nan"], "--context must be 1 finite number"),
        (["sample", "MODEL", "-n", "3", "--context", "1"], "is not a conditional flow"),
        (["score", "COND", "one.csv"], "expects 1 coordinate(s) and 1 context value(s)"),
        (["fit", "--data", "one.csv", "--context-columns", "1"], "leaves no data column"),
    ],
)
def test_context_errors_exit_1_with_one_line(
    args, message, conditional_model, moons_model, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    Path("one.csv").write_text("".join(f"{k}\n" for k in range(20)))
    models = {"COND": str(conditional_model[0]), "MODEL": str(moons_model)}
    assert cli.main([models.get(a, a) for a in args]) == 1
    assert message in error_line(capsys)


def test_context_columns_apply_to_files_only(capsys):
    with pytest.raises(SystemExit):
        cli.main(["fit", "--data", "moons", "--context-columns", "1"])
    assert "--context-columns apply to a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["fit", "--data", "digits", "--context-columns", "1"])
    assert "--context-columns applies to a file of points, not to images" in capsys.readouterr().err
