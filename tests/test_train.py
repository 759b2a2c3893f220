import sys

import numpy as np
import pytest

import npflows
from npflows import Elementwise, Flow, LeakyReLU, TrainingDiverged, fit, fit_lbfgs
from npflows.transformers import AffineTransformer
from npflows.tree import flatten


def bimodal(n=600, seed=0):
    """1-D data from ½ N(−2, 0.5²) + ½ N(2, 0.5²)."""
    rng = np.random.default_rng(seed)
    centers = np.where(rng.random(n) < 0.5, -2.0, 2.0)
    return (centers + 0.5 * rng.standard_normal(n))[:, None]


def small_flow(clamp=5.0, flow_class=Flow):
    def affine():
        return Elementwise(1, AffineTransformer(clamp))

    return flow_class([affine(), LeakyReLU(1, 0.2), affine(), LeakyReLU(1, 5.0), affine()])


def mean_nll(flow, x):
    return -float(np.mean(flow.log_prob(x)))


class RecordingFlow(Flow):
    """Records the parameters at every loss evaluation; can sabotage the gradient at call ``bad_call``."""

    bad_call = None

    def nll_and_grad(self, x, context=None):
        self.seen = [*getattr(self, "seen", []), flatten(self.params)]
        loss, grads = super().nll_and_grad(x, context)
        if len(self.seen) == self.bad_call:
            grads["layers"][2]["theta"][0, 1] = np.nan
        return loss, grads


def test_fit_lowers_the_nll_of_bimodal_data():
    x = bimodal()
    flow = small_flow()
    start = mean_nll(flow, x)
    history = fit(flow, x, epochs=30, batch_size=64, lr=0.05, rng=0, progress=False)
    assert len(history.train_nll) == len(history.val_nll) == 30
    assert mean_nll(flow, x) < start - 1.0
    assert history.val_nll[-1] < history.val_nll[0]


def test_same_seed_gives_the_same_history_and_parameters():
    x = bimodal()
    runs = []
    for _ in range(2):
        flow = small_flow()
        runs.append((fit(flow, x, epochs=5, batch_size=50, lr=0.05, rng=7, progress=False), flow))
    (h1, f1), (h2, f2) = runs
    assert h1 == h2
    np.testing.assert_array_equal(flatten(f1.params), flatten(f2.params))


def test_best_validation_parameters_are_restored_and_patience_stops():
    x = bimodal(200)
    flow = small_flow()
    # A large lr makes the validation NLL bounce, so the best epoch is not the last one.
    history = fit(flow, x, epochs=60, batch_size=20, lr=0.3, patience=3, rng=1, progress=False)
    assert history.best_epoch == int(np.argmin(history.val_nll))
    assert history.stopped_early
    assert len(history.val_nll) == history.best_epoch + 1 + 3
    # The validation rows are the first round(0.1 N) of rng's first permutation (documented).
    val = x[np.random.default_rng(1).permutation(len(x))[:20]]
    assert mean_nll(flow, val) == history.val_nll[history.best_epoch]


def test_without_validation_best_is_by_train_nll():
    x = bimodal(100)
    history = fit(small_flow(), x, epochs=4, validation_fraction=0, rng=0, progress=False)
    assert history.val_nll == []
    assert history.best_epoch == int(np.argmin(history.train_nll))


def test_sabotaged_gradient_raises_and_keeps_last_good_parameters():
    x = bimodal(200)
    flow = small_flow(flow_class=RecordingFlow)
    flow.bad_call = 5
    with pytest.raises(
        TrainingDiverged, match=r"gradient of 'layers/2/theta'.*epoch 2, step 2.*lower lr"
    ):
        fit(flow, x, epochs=10, batch_size=60, lr=0.01, rng=0, progress=False)
    # Calls 1-4 were good; the 5th gave a NaN gradient: the flow is where call 4 was evaluated.
    assert len(flow.seen) == 5
    np.testing.assert_array_equal(flatten(flow.params), flow.seen[3])
    assert not np.array_equal(flow.seen[3], flow.seen[4])


def test_huge_learning_rate_diverges_and_leaves_finite_parameters():
    x = bimodal(200)
    flow = small_flow(clamp=None, flow_class=RecordingFlow)
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match="became NaN or inf"):
        fit(flow, x, epochs=5, batch_size=50, lr=1e6, rng=0, progress=False)
    params = flatten(flow.params)
    assert np.isfinite(params).all()
    # The last good parameters: where the last loss evaluation before the bad one was made.
    np.testing.assert_array_equal(params, flow.seen[-2])
    assert np.isfinite(flow.nll_and_grad(x)[0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": np.zeros((10, 2))}, r"shape \(N, 1\)"),
        ({"x": np.zeros((10, 1), dtype=int)}, "float32 or float64"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"patience": 0}, "patience"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"validation_fraction": -0.1}, "validation_fraction"),
        ({"x": np.zeros((3, 1)), "validation_fraction": 0.1}, "0 validation rows"),
        ({"lr": -1.0}, "lr"),
        ({"rng": "seed"}, "rng"),
        ({"context": np.zeros((10, 1))}, "not conditional"),
        ({"optimizer": npflows.optim.Adam(small_flow().params)}, "this flow's params"),
    ],
)
def test_bad_inputs_are_refused_before_training(kwargs, match):
    flow = small_flow()
    flow.params["layers"][0]["theta"][:] = 0.3
    before = flatten(flow.params)
    args = {"x": np.zeros((10, 1)), "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        fit(flow, args.pop("x"), **args)
    np.testing.assert_array_equal(flatten(flow.params), before)


def test_progress_false_prints_nothing(capsys):
    fit(small_flow(), bimodal(50), epochs=2, rng=0, progress=False)
    assert capsys.readouterr() == ("", "")


def test_progress_without_tqdm_prints_one_line_per_epoch(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # makes the import fail
    fit(small_flow(), bimodal(50), epochs=3, rng=0, progress=True)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 3
    assert lines[0].startswith("epoch 1/3  train NLL ") and "val NLL " in lines[0]


def test_progress_with_tqdm_draws_a_bar(capsys):
    pytest.importorskip("tqdm")
    fit(small_flow(), bimodal(50), epochs=2, rng=0, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "2/2" in err and "val_NLL=" in err


def test_fit_lbfgs_reaches_the_gaussian_maximum_likelihood_fit():
    # One affine layer (smooth in its parameters, unlike the leaky ReLU kinks) fits a Gaussian,
    # whose best mean NLL is ½ log(2πe σ²) with σ² the data's variance.
    x = bimodal(300)
    flow = Flow([Elementwise(1, AffineTransformer())])
    start = mean_nll(flow, x)
    result = fit_lbfgs(flow, x, max_iter=300)
    loss, grads = flow.nll_and_grad(x)
    assert loss < start - 0.5
    assert loss == pytest.approx(0.5 * np.log(2 * np.pi * np.e * x.var()), abs=1e-9)
    assert loss == pytest.approx(result.fun, abs=1e-12)
    np.testing.assert_array_equal(flatten(flow.params), result.x)
    assert np.linalg.norm(flatten(grads)) < 1e-4


def test_fit_lbfgs_divergence_restores_the_start():
    flow = small_flow(flow_class=RecordingFlow)
    flow.bad_call = 3
    before = flatten(flow.params)
    with pytest.raises(TrainingDiverged, match="gradient of 'layers/2/theta'"):
        fit_lbfgs(flow, bimodal(100))
    np.testing.assert_array_equal(flatten(flow.params), before)
