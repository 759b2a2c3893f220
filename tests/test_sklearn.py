"""FlowDensity inside scikit-learn: its own estimator checks, pipelines, grid search and
cross-validation with real (finite, comparable) scores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6")

from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import npflows as nf  # noqa: E402
from npflows.estimator import FlowDensity  # noqa: E402


def tiny(**kw):
    return FlowDensity(
        **({"flow": "realnvp", "n_layers": 1, "hidden": (4,), "epochs": 2, "random_state": 0} | kw)
    )


with warnings.catch_warnings():
    # FlowDensity follows the protocol without inheriting BaseEstimator (sklearn stays optional).
    warnings.filterwarnings("ignore", "Estimator FlowDensity does not inherit", UserWarning)
    every_check = parametrize_with_checks([tiny()])


@every_check
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def moons(n, seed):
    return nf.datasets.get("moons").sample(n, rng=seed) * [100.0, 0.01]


def test_pipeline_with_a_scaler_fits_and_scores():
    X = moons(600, 0)
    pipe = make_pipeline(StandardScaler(), tiny(epochs=5)).fit(X)
    score = pipe.score(moons(300, 1))
    assert np.isfinite(score)
    # The scaler does not count its log-det: the pipeline scores the standardized data.
    direct = tiny(epochs=5).fit(X).score(moons(300, 1))
    assert score == pytest.approx(direct + np.log(X.std(axis=0)).sum(), abs=0.3)


def test_grid_search_picks_by_real_scores():
    X = moons(600, 0)
    search = GridSearchCV(tiny(), {"epochs": [1, 15]}, cv=3).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and scores[1] > scores[0]
    assert search.best_params_ == {"epochs": 15}


def test_cross_val_score_gives_finite_log_likelihoods():
    scores = cross_val_score(tiny(epochs=5), moons(600, 0), cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
