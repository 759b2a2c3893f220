"""`python -m npflows fit --data digits` end to end at a tiny budget, and sample/score on the model."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

import npflows as nf
from npflows import cli

pytest.importorskip("sklearn")
TINY = ["--epochs", "2", "--hidden", "4", "--layers", "1", "--no-progress"]


@pytest.mark.parametrize("flow", ["glow", "realnvp-multiscale"])
def test_fit_on_digits_reports_bits_per_dim_beside_the_baselines(flow, tmp_path, capsys):
    assert cli.main(["fit", "--data", "digits", "--flow", flow, *TINY, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    bits = float(re.search(r"test bits/dim (\S+)", out).group(1))
    assert "uniform over 17 levels" in out and "4.0875 bits/dim" in out
    assert re.search(r"independent categorical per pixel\s+2\.40\d\d bits/dim", out)
    model = nf.load(tmp_path / "model.npz")
    assert model.event_shape == (1, 8, 8)
    # The printed figure is the model's own: recompute it from the saved file.
    test = nf.datasets.load_digits("test")
    again = nf.bits_per_dim(model, test, 17, rng=1, n_samples=8)
    assert abs(again - bits) < 0.02
    assert bits < 4.0875  # two epochs already beat the uniform distribution
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "samples.png").stat().st_size > 0


def test_sample_and_score_on_a_saved_image_model(tmp_path, capsys):
    flow = nf.flows.Glow((1, 8, 8), 2, steps=1, hidden=4, rng=0)
    flow.log_prob(np.random.default_rng(0).uniform(size=(10, 1, 8, 8)))
    nf.save(flow, tmp_path / "m.npz")
    assert (
        cli.main(
            [
                "sample",
                str(tmp_path / "m.npz"),
                "-n",
                "4",
                "--seed",
                "3",
                "--out",
                str(tmp_path / "s.npy"),
            ]
        )
        == 0
    )
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (4, 1, 8, 8)
    np.testing.assert_array_equal(samples, flow.sample(4, rng=3))
    capsys.readouterr()
    assert cli.main(["score", str(tmp_path / "m.npz"), str(tmp_path / "s.npy")]) == 0
    scores = np.array(capsys.readouterr().out.split(), dtype=float)
    np.testing.assert_allclose(scores, flow.log_prob(samples), rtol=1e-12)
    assert (
        cli.main(
            [
                "sample",
                str(tmp_path / "m.npz"),
                "-n",
                "2",
                "--seed",
                "3",
                "--out",
                str(tmp_path / "s.csv"),
            ]
        )
        == 0
    )
    assert cli.main(["score", str(tmp_path / "m.npz"), str(tmp_path / "s.csv"), "--mean"]) == 0
    capsys.readouterr()
    np.save(tmp_path / "pixels.npy", nf.datasets.load_digits("test")[:2])
    assert cli.main(["score", str(tmp_path / "m.npz"), str(tmp_path / "pixels.npy")]) == 1
    assert "integer pixels" in capsys.readouterr().err


def test_image_options_are_checked(capsys):
    for argv, message in (
        (["--data", "digits", "--flow", "nsf"], "takes --flow glow or realnvp-multiscale"),
        (["--data", "digits", "--n-train", "10"], "split is fixed"),
        (["--data", "moons", "--flow", "glow"], "models images"),
    ):
        with pytest.raises(SystemExit) as info:
            cli.main(["fit", *argv])
        assert info.value.code == 2 and message in capsys.readouterr().err
