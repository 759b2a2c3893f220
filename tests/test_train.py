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
    assert lines[2].endswith("steps 3")  # 45 training rows in batches of 256: one step an epoch


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


# -- divergence of every kind (non-finite anywhere, or an error the parameters cause) -------------
def moons(n=2000):
    return npflows.datasets.get("moons").sample(n, rng=0)


def test_linear_flow_at_huge_lr_diverges_with_flow_restored_and_usable():
    # At this lr the parameters overflow exp(): a layer refuses the overflowing result (a
    # ValueError; before that check existed, scipy's triangular solve raised one).
    flow = RecordingFlow([npflows.Triangular(2), npflows.Diagonal(2)])
    data = moons()
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged) as caught:
        fit(flow, data, lr=1e3, epochs=5, batch_size=64, rng=0, progress=False)
    # The first evaluation that failed was recorded before it raised: the flow is at the one before.
    np.testing.assert_array_equal(flatten(flow.params), flow.seen[-2])
    assert len(flow.seen) > 1 and "Error was raised" in str(caught.value)
    assert "in layer" in str(caught.value)
    assert np.isfinite(flow.log_prob(data)).all()


def test_a_finite_blow_up_is_not_returned_as_the_best():
    flow = npflows.flows.RealNVP(2, rng=0)
    data = moons()
    start = flatten(flow.params)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="did not improve"):
        history = fit(flow, data, lr=10.0, epochs=3, batch_size=256, rng=0, progress=False)
    assert min(history.val_nll) > 1e6  # it blew up, finitely
    assert history.best_epoch == -1 and not history.improved
    np.testing.assert_array_equal(flatten(flow.params), start)
    val = data[np.random.default_rng(0).permutation(len(data))[:200]]
    assert history.initial_nll == mean_nll(flow, val)


def test_the_start_is_the_first_candidate_for_the_best():
    x = bimodal()
    flow = small_flow()
    val = x[np.random.default_rng(3).permutation(len(x))[:60]]
    start_nll = mean_nll(flow, val)
    history = fit(flow, x, epochs=3, batch_size=64, lr=0.05, rng=3, progress=False)
    assert history.initial_nll == start_nll
    assert history.improved and history.best_epoch >= 0
    assert min(history.val_nll) < start_nll
    assert history.steps == 3 * 9  # 540 training rows in batches of 64


def test_data_on_a_sigmoid_bound_is_refused_before_the_first_step():
    flow = Flow([Elementwise(1, AffineTransformer()), npflows.Sigmoid(1)])
    flow.params["layers"][0]["theta"][:] = 0.1
    before = flatten(flow.params)
    x = np.random.default_rng(0).uniform(0.2, 0.8, (400, 1))
    x[377] = 1.0  # exactly on the upper bound
    with pytest.raises(ValueError, match=r"outside the flow's support.*layer 1 \(Sigmoid\)"):
        fit(flow, x, epochs=2, rng=0, progress=False)
    np.testing.assert_array_equal(flatten(flow.params), before)


def test_an_intermediate_leaving_a_support_during_training_is_divergence_naming_the_layer():
    flow = RecordingFlow([npflows.PiecewiseLinear(1, bins=4), Elementwise(1, AffineTransformer())])
    x = np.random.default_rng(0).uniform(0.2, 0.8, (400, 1))
    with pytest.raises(
        TrainingDiverged, match=r"ValueError.*step 2, in layer 0 \(PiecewiseLinear\)"
    ):
        fit(flow, x, epochs=5, batch_size=50, lr=0.3, rng=0, progress=False)
    np.testing.assert_array_equal(flatten(flow.params), flow.seen[0])
    assert np.isfinite(flow.log_prob(x)).all()


# -- interrupts ------------------------------------------------------------------------------------
def test_interrupted_fit_lbfgs_is_left_at_the_best_point_evaluated():
    x = bimodal(300)

    class Interrupted(Flow):
        def nll_and_grad(self, x, context=None):
            loss, grads = super().nll_and_grad(x, context)
            self.calls = [*getattr(self, "calls", []), (loss, flatten(self.params))]
            if len(self.calls) == 8:
                raise KeyboardInterrupt
            return loss, grads

    flow = Interrupted([Elementwise(1, AffineTransformer()), LeakyReLU(1, 0.5)])
    with pytest.raises(KeyboardInterrupt):
        fit_lbfgs(flow, x)
    losses = [loss for loss, _ in flow.calls[:-1]]
    best = flow.calls[int(np.argmin(losses))][1]
    np.testing.assert_array_equal(flatten(flow.params), best)
    assert not np.array_equal(best, flow.calls[-1][1])  # not the trial point it was stopped at


def test_fit_lbfgs_divergence_restores_the_best_point_evaluated():
    flow = Flow([Elementwise(1, AffineTransformer())])

    class Sabotaged(type(flow)):
        def nll_and_grad(self, x, context=None):
            loss, grads = super().nll_and_grad(x, context)
            self.calls = [*getattr(self, "calls", []), (loss, flatten(self.params))]
            return (np.nan if len(self.calls) == 6 else loss), grads

    flow = Sabotaged(flow.layers)
    with pytest.raises(TrainingDiverged, match="the loss became NaN or inf during L-BFGS"):
        fit_lbfgs(flow, bimodal(100))
    losses = [loss for loss, _ in flow.calls[:-1]]
    np.testing.assert_array_equal(flatten(flow.params), flow.calls[int(np.argmin(losses))][1])


# -- every argument checked, the bad one named ------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr": "0.1"}, TypeError, "lr"),
        ({"lr": np.inf}, ValueError, "lr"),
        ({"optimizer": "adam"}, TypeError, "optimizer"),
        ({"epochs": True}, TypeError, "epochs"),
        ({"epochs": 1e3}, ValueError, "epochs"),
        ({"batch_size": "64"}, TypeError, "batch_size"),
        ({"patience": 2.0}, ValueError, "patience"),
        ({"validation_fraction": "0.1"}, TypeError, "validation_fraction"),
        ({"validation_fraction": np.nan}, ValueError, "validation_fraction"),
        ({"progress": "yes"}, TypeError, "progress"),
        ({"callback": 3}, TypeError, "callback"),
        ({"clip_grad_norm": 0.0}, ValueError, "clip_grad_norm"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay"),
        ({"lr": lambda step: -1.0}, ValueError, "schedule returned -1.0 for step 0"),
    ],
)
def test_every_argument_is_checked_and_named(kwargs, error, match):
    flow = small_flow()
    before = flatten(flow.params)
    with pytest.raises(error, match=match):
        fit(flow, bimodal(50), **{"progress": False, **kwargs})
    np.testing.assert_array_equal(flatten(flow.params), before)


def test_fit_and_fit_lbfgs_refuse_what_is_not_a_flow_or_a_bad_setting():
    with pytest.raises(TypeError, match="flow must be an npflows.Flow"):
        fit(Elementwise(1, AffineTransformer()), bimodal(50))
    with pytest.raises(TypeError, match="max_iter"):
        fit_lbfgs(small_flow(), bimodal(50), max_iter=True)
    with pytest.raises(TypeError, match="tol"):
        fit_lbfgs(small_flow(), bimodal(50), tol="1e-9")


# -- training options ------------------------------------------------------------------------------
def test_a_schedule_sets_the_step_size_of_every_step():
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.01 / (1 + step)

    flow = small_flow()
    opt = npflows.optim.Adam(flow.params)
    history = fit(
        flow,
        bimodal(100),
        epochs=2,
        batch_size=30,
        lr=schedule,
        optimizer=opt,
        rng=0,
        progress=False,
    )
    assert history.steps == 2 * 3 and seen == [0, *range(6)]  # checked once before the first step
    assert opt.lr == 0.01 / 6


def test_cosine_schedule_is_planned_over_the_run():
    cosine = npflows.schedules.Cosine(0.01, warmup_steps=2)
    lrs = []
    flow = small_flow()

    class Recording(npflows.optim.Adam):
        def step(self, grads):
            lrs.append(self.lr)
            super().step(grads)

    fit(
        flow,
        bimodal(100),
        epochs=2,
        batch_size=30,
        lr=cosine,
        optimizer=Recording(flow.params),
        rng=0,
        progress=False,
    )
    planned = cosine.for_run(6)
    assert lrs == [planned(s) for s in range(6)]
    assert lrs[0] == 0.005 and lrs[1] == 0.01 and lrs[2] == 0.01
    assert lrs[-1] == pytest.approx(0.01 * 0.5 * (1 + np.cos(np.pi * 3 / 4)), rel=1e-15)


def test_the_default_step_size_is_a_warm_up_then_cosine_over_the_run(monkeypatch):
    lrs = []
    flow = small_flow()

    class Recording(npflows.optim.Adam):
        def step(self, grads):
            lrs.append(self.lr)
            super().step(grads)

    # Without an optimizer fit builds Adam(flow.params); record its steps through a subclass.
    monkeypatch.setattr(sys.modules["npflows.train"], "Adam", Recording)
    fit(flow, bimodal(1000), epochs=10, batch_size=9, rng=0, progress=False)
    total = 10 * 100  # 900 training rows in batches of 9
    warmup = int(npflows.schedules.DEFAULT_WARMUP_FRACTION * total)
    assert len(lrs) == total and warmup == 20
    assert lrs[:warmup] == pytest.approx([1e-3 * (s + 1) / warmup for s in range(warmup)])
    assert lrs[warmup] == 1e-3 and max(lrs) == 1e-3
    assert lrs[-1] == pytest.approx(
        1e-3 * 0.5 * (1 + np.cos(np.pi * (total - 1 - warmup) / (total - warmup)))
    )


def test_warmup_fraction_is_worked_out_when_the_run_is_known():
    cosine = npflows.schedules.Cosine(0.1, warmup_fraction=0.1)
    assert cosine.for_run(50).warmup_steps == 5
    assert npflows.schedules.Cosine(0.1, 7, warmup_fraction=0.5).warmup_steps == 3
    assert cosine.for_run(3).warmup_steps == 0  # ⌊0.3⌋: no warm-up in a 3-step run
    with pytest.raises(ValueError, match="not both"):
        npflows.schedules.Cosine(0.1, warmup_steps=2, warmup_fraction=0.1)
    with pytest.raises(ValueError, match="warmup_fraction"):
        npflows.schedules.Cosine(0.1, warmup_fraction=1.0)
    assert "warmup_fraction=0.1" in repr(cosine) and "warmup_steps=5" in repr(cosine.for_run(50))


def test_a_given_optimizer_keeps_its_own_constant_step_size_by_default():
    flow = small_flow()
    opt = npflows.optim.Adam(flow.params, lr=0.02)
    fit(flow, bimodal(100), epochs=2, batch_size=30, optimizer=opt, rng=0, progress=False)
    assert opt.lr == 0.02


def test_resuming_with_a_loaded_optimizer_continues_its_step_count(tmp_path):
    x = bimodal(100)
    flow = small_flow()
    opt = npflows.optim.Adam(flow.params, lr=0.01)
    fit(flow, x, epochs=1, batch_size=30, optimizer=opt, rng=0, progress=False)
    opt.save(tmp_path / "adam.npz")
    resumed = npflows.optim.Adam(flow.params, lr=0.5)
    resumed.load(tmp_path / "adam.npz")
    assert resumed.t == 3 and resumed.lr == 0.01
    seen = []
    fit(
        flow,
        x,
        epochs=1,
        batch_size=30,
        lr=lambda s: seen.append(s) or 0.01,
        optimizer=resumed,
        rng=1,
        progress=False,
    )
    assert seen == [3, 3, 4, 5]


def test_gradient_clipping_caps_the_norm_the_optimizer_sees():
    norms = []
    flow = small_flow()

    class Recording(npflows.optim.Adam):
        def step(self, grads):
            norms.append(np.linalg.norm(flatten(grads)))
            super().step(grads)

    fit(
        flow,
        bimodal(100),
        epochs=2,
        clip_grad_norm=1e-3,
        optimizer=Recording(flow.params),
        rng=0,
        progress=False,
    )
    assert len(norms) == 2 and max(norms) == pytest.approx(1e-3, rel=1e-12)


def test_weight_decay_reaches_a_new_optimizer_as_adamw():
    x = bimodal(100)
    runs = []
    for weight_decay, optimizer in ((None, None), (0.5, None), (None, 0.5)):
        flow = small_flow()
        if optimizer is not None:
            optimizer = npflows.optim.Adam(flow.params, lr=0.05, weight_decay=optimizer)
        fit(
            flow,
            x,
            epochs=2,
            lr=0.05,
            weight_decay=weight_decay,
            optimizer=optimizer,
            validation_fraction=0,
            rng=0,
            progress=False,
        )
        runs.append(flatten(flow.params))
    np.testing.assert_array_equal(runs[1], runs[2])
    assert not np.array_equal(runs[0], runs[1])


def test_a_callback_can_stop_training():
    calls = []

    def stop_after_two(history):
        calls.append(len(history.train_nll))
        return len(history.train_nll) == 2

    history = fit(
        small_flow(), bimodal(100), epochs=10, callback=stop_after_two, rng=0, progress=False
    )
    assert calls == [1, 2] and len(history.train_nll) == 2 and history.stopped_by_callback


def test_unscaled_data_outside_a_spline_bound_warns():
    data = moons(500)
    with pytest.warns(UserWarning, match=r"outside its bound \[-5, 5\]"):
        fit(npflows.flows.NSF(2, rng=0), 100 * data, epochs=1, rng=0, progress=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        fit(npflows.flows.NSF(2, rng=0), data, epochs=1, rng=0, progress=False)


def test_a_non_finite_validation_nll_is_divergence():
    class NaNValidation(RecordingFlow):
        log_prob_calls = 0

        def log_prob(self, x, context=None):
            self.log_prob_calls += 1  # call 1 is the data check, call 2 the first validation
            out = super().log_prob(x, context)
            return np.full_like(out, np.nan) if self.log_prob_calls == 2 else out

    flow = small_flow(flow_class=NaNValidation)
    with pytest.raises(
        TrainingDiverged, match="the validation NLL became NaN or inf at the end of epoch 1"
    ):
        fit(flow, bimodal(100), epochs=3, batch_size=30, lr=0.01, rng=0, progress=False)
    # Restored to where the last (third) loss of epoch 1 was evaluated, before its step.
    np.testing.assert_array_equal(flatten(flow.params), flow.seen[-1])


def test_clipping_by_global_norm_is_exact_and_does_not_overflow():
    from npflows._loop import clip_by_global_norm

    grads = {"a": np.array([3.0, 0.0]), "b": [np.array([[4.0]])]}
    clipped = clip_by_global_norm(grads, 1.0)
    np.testing.assert_allclose(flatten(clipped), [0.6, 0.0, 0.8], rtol=1e-15)
    assert clip_by_global_norm(grads, 5.0) is grads  # already within the norm
    huge = {"a": np.array([3e200, 4e200])}  # squaring would overflow
    np.testing.assert_allclose(clip_by_global_norm(huge, 10.0)["a"], [6.0, 8.0], rtol=1e-15)


def test_an_interrupt_between_epochs_leaves_the_last_completed_step():
    flow = small_flow()
    opt = npflows.optim.Adam(flow.params, lr=0.01)
    after_epoch = []

    def interrupt_after_two(history):
        after_epoch.append(flatten(flow.params))
        if len(history.train_nll) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            flow,
            bimodal(100),
            epochs=5,
            batch_size=30,
            optimizer=opt,
            callback=interrupt_after_two,
            rng=0,
            progress=False,
        )
    np.testing.assert_array_equal(flatten(flow.params), after_epoch[-1])
    assert opt.t == 2 * 3
