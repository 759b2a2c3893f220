import numpy as np
import pytest

import npflows as nf
from npflows.transformers import AffineTransformer
from npflows.tree import leaves, tree_map
from npflows.variational import fit_to_density, reverse_kl_and_grad

MEAN = np.array([1.0, -2.0])
COV = np.array([[2.0, 0.8], [0.8, 1.0]])
PRECISION = np.linalg.inv(COV)
LOG_Z = 3.0 + np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(COV)[1]  # of exp(3 − ½ dᵀ P d)


def gaussian(x):
    d = x - MEAN
    return 3.0 - 0.5 * np.einsum("ni,ij,nj->n", d, PRECISION, d), -d @ PRECISION


def iaf_flow(seed=0):
    return nf.Flow([nf.IAF(2, AffineTransformer(), (16, 16), "tanh", rng=seed), nf.Linear(2)])


def test_reverse_kl_gradient_matches_central_differences():
    rng = np.random.default_rng(1)
    flow = iaf_flow()
    for p in leaves(flow.params):
        p += 0.2 * rng.standard_normal(p.shape)
    z = rng.standard_normal((16, 2))
    _, grads = reverse_kl_and_grad(flow, gaussian, z)
    direction = tree_map(lambda p: rng.standard_normal(p.shape), flow.params)

    def loss_at(step):
        for p, d in zip(leaves(flow.params), leaves(direction), strict=True):
            p += step * d
        value = reverse_kl_and_grad(flow, gaussian, z)[0]
        for p, d in zip(leaves(flow.params), leaves(direction), strict=True):
            p -= step * d
        return value

    numeric = (loss_at(1e-6) - loss_at(-1e-6)) / 2e-6
    analytic = sum(np.sum(g * d) for g, d in zip(leaves(grads), leaves(direction), strict=True))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def test_reverse_kl_recovers_a_gaussian_target():
    flow = iaf_flow()
    result = fit_to_density(flow, gaussian, steps=3000, lr=3e-3, rng=0, progress=False)
    x = flow.sample(100_000, rng=1)
    np.testing.assert_allclose(x.mean(axis=0), MEAN, atol=0.05)
    np.testing.assert_allclose(np.cov(x.T), COV, atol=0.1)
    assert abs(result.log_z - LOG_Z) < 0.02 and result.ess > 0.9
    assert result.final_elbo <= result.log_z + 1e-9  # the ELBO bounds log Z from below
    assert len(result.elbo) == 3000


def test_same_seed_same_result():
    a = fit_to_density(iaf_flow(), gaussian, steps=20, rng=3, progress=False)
    b = fit_to_density(iaf_flow(), gaussian, steps=20, rng=3, progress=False)
    assert a.elbo == b.elbo and a.log_z == b.log_z


def test_a_flow_without_generative_pullback_is_refused():
    flow = nf.Flow([nf.MAF(2, AffineTransformer(), (8,), rng=0)])
    with pytest.raises(ValueError, match="MAF does not offer it"):
        fit_to_density(flow, gaussian, steps=5, progress=False)


def test_bad_target_output_is_refused():
    with pytest.raises(ValueError, match="log_density must return"):
        fit_to_density(iaf_flow(), lambda x: (x.sum(1), x[:, :1]), steps=5, progress=False)


def test_divergence_stops_and_keeps_finite_parameters():
    def exploding(x):
        return np.full(len(x), np.nan), np.full(x.shape, np.nan)

    flow = iaf_flow()
    with pytest.raises(nf.TrainingDiverged, match="step 1"):
        fit_to_density(flow, exploding, steps=5, progress=False)
    assert all(np.isfinite(p).all() for p in leaves(flow.params))


def test_a_huge_lr_is_divergence_and_the_flow_stays_usable():
    flow = nf.Flow([nf.Triangular(2), nf.Diagonal(2)])
    with (
        np.errstate(all="ignore"),
        pytest.raises(nf.TrainingDiverged, match=r"in layer 0 \(Triangular\)"),
    ):
        fit_to_density(flow, gaussian, steps=30, lr=1e6, rng=0, progress=False)
    assert all(np.isfinite(p).all() for p in leaves(flow.params))
    x, log_q = flow.sample_and_log_prob(100, rng=0)
    assert np.isfinite(x).all() and np.isfinite(log_q).all()


def test_a_cosine_schedule_and_clipping_are_accepted():
    flow = iaf_flow()
    schedule = nf.schedules.Cosine(3e-3, warmup_steps=50)
    result = fit_to_density(
        flow, gaussian, steps=300, lr=schedule, clip_grad_norm=100.0, rng=0, progress=False
    )
    assert result.elbo[-1] > result.elbo[0] and np.isfinite(result.log_z)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"lr": "0.1"}, TypeError),
        ({"steps": True}, TypeError),
        ({"progress": None}, TypeError),
        ({"weight_decay": -1.0}, ValueError),
        ({"log_density": 3}, TypeError),
    ],
)
def test_bad_arguments_are_named(kwargs, error):
    args = {"log_density": gaussian, "steps": 5, "progress": False, **kwargs}
    with pytest.raises(error, match=next(iter(kwargs))):
        fit_to_density(iaf_flow(), args.pop("log_density"), **args)
