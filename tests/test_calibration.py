"""Recalibration of soft assignments on a few labels (mixclust.calibration): the maths and its errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mixclust import FewLabelCalibrator, metrics
from mixclust.calibration import METHODS, recalibrate

proba_rows = arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(2, 6)),
                    elements=st.floats(0.01, 1.0)).map(lambda a: a / a.sum(axis=1, keepdims=True))


@settings(max_examples=60, deadline=None)
@given(proba_rows, st.floats(0.05, 50.0), st.floats(0.0, 0.99))
def test_recalibrate_keeps_argmax_and_rows_sum_to_one(proba, temperature, smoothing):
    tempered = recalibrate(proba, temperature, smoothing)
    np.testing.assert_allclose(tempered.sum(axis=1), 1.0, atol=1e-12)
    # a row with a tie keeps its tie; elsewhere the winner stays the winner
    strict = np.sort(proba, axis=1)[:, -1] - np.sort(proba, axis=1)[:, -2] > 1e-9
    np.testing.assert_array_equal(tempered.argmax(1)[strict], proba.argmax(1)[strict])


@settings(max_examples=60, deadline=None)
@given(proba_rows)
def test_identity_at_t_one_alpha_zero_and_flatter_as_either_grows(proba):
    np.testing.assert_allclose(recalibrate(proba), proba, atol=1e-12)
    for grid in ([recalibrate(proba, t) for t in (0.5, 1.0, 2.0, 8.0)],
                 [recalibrate(proba, smoothing=a) for a in (0.0, 0.2, 0.5, 0.9)]):
        confidences = [p.max(axis=1) for p in grid]
        for sharper, flatter in zip(confidences, confidences[1:]):
            assert np.all(flatter <= sharper + 1e-12)
        assert np.all(confidences[-1] >= 1.0 / proba.shape[1] - 1e-12)
    # smoothing alpha is a mixture with the uniform row: its confidence is affine in the old one
    K = proba.shape[1]
    np.testing.assert_allclose(recalibrate(proba, smoothing=0.3).max(axis=1), 0.7 * proba.max(axis=1) + 0.3 / K)


def _overconfident(n, accuracy, rng, confidence=0.99, K=4):
    """Assignments of confidence ``confidence`` whose cluster is the label for a fraction ``accuracy``."""
    y = rng.integers(0, K, n)
    wrong = rng.random(n) > accuracy
    clusters = np.where(wrong, (y + rng.integers(1, K, n)) % K, y)
    proba = np.full((n, K), (1 - confidence) / (K - 1))
    proba[np.arange(n), clusters] = confidence
    return proba, y


@pytest.mark.parametrize("method", METHODS)
def test_fit_lowers_an_over_confident_model_to_its_accuracy_on_unseen_samples(method):
    rng = np.random.default_rng(0)
    proba, y = _overconfident(4000, 0.6, rng)
    few = rng.choice(len(y), 100, replace=False)
    rest = np.setdiff1d(np.arange(len(y)), few)
    scaler = FewLabelCalibrator(method).fit(proba[few], y[few])
    assert scaler.temperature_ > 1.0 or scaler.smoothing_ > 0.1
    calibrated = scaler.transform(proba[rest])
    before = metrics.expected_calibration_error(y[rest], proba[rest])
    after = metrics.expected_calibration_error(y[rest], calibrated)
    assert before > 0.35 and after < 0.1, (before, after)
    np.testing.assert_array_equal(calibrated.argmax(1), proba[rest].argmax(1))


def test_temperature_sharpens_an_under_confident_model_and_smoothing_leaves_it():
    rng = np.random.default_rng(1)
    proba, y = _overconfident(2000, 0.95, rng, confidence=0.4)
    assert FewLabelCalibrator("smoothing").fit(proba[:200], y[:200]).smoothing_ < 1e-3  # it can only flatten
    scaler = FewLabelCalibrator("temperature").fit(proba[:200], y[:200])
    assert scaler.temperature_ < 1.0
    assert metrics.expected_calibration_error(y[200:], scaler.transform(proba[200:])) < \
        metrics.expected_calibration_error(y[200:], proba[200:]) / 3


def test_a_class_without_a_cluster_counts_as_wrong_not_as_an_error():
    rng = np.random.default_rng(2)
    proba, y = _overconfident(300, 1.0, rng, K=3)
    y = np.where(rng.random(300) < 0.2, 7, y)  # a fourth class the 3 clusters cannot hold
    scaler = FewLabelCalibrator().fit(proba, y)
    assert 0.7 < scaler.labelled_accuracy_ < 0.9
    assert scaler.smoothing_ > 0.05


def test_bad_input_is_named():
    proba = np.full((20, 2), 0.5)
    with pytest.raises(ValueError, match="at least 10 labelled"):
        FewLabelCalibrator().fit(proba[:5], np.zeros(5))
    with pytest.raises(ValueError, match="one label per row"):
        FewLabelCalibrator().fit(proba, np.zeros(19))
    with pytest.raises(ValueError, match="NaN"):
        FewLabelCalibrator().fit(np.full((20, 2), np.nan), np.zeros(20))
    with pytest.raises(ValueError, match="sum to 1"):
        FewLabelCalibrator().fit(np.ones((20, 2)), np.zeros(20))
    with pytest.raises(ValueError, match="method"):
        FewLabelCalibrator("isotonic").fit(proba, np.zeros(20))
    with pytest.raises(RuntimeError, match="not fitted"):
        FewLabelCalibrator().transform(proba)
    with pytest.raises(ValueError, match="temperature must be positive"):
        recalibrate(proba, 0.0)
    with pytest.raises(ValueError, match="smoothing must be in"):
        recalibrate(proba, smoothing=1.0)
    assert "smoothing_" in repr(FewLabelCalibrator().fit(proba, np.arange(20) % 2))
