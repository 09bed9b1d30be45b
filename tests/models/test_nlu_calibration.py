"""Temperature scaling, calibration error and out-of-scope calibration on synthetic logits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from models.calibration import (
    expected_calibration_error,
    fit_oos,
    fit_temperature,
    neighbour_distance,
    oos_metrics,
    oos_raw,
    rejection_threshold,
    standardisation,
)


def synthetic(n: int = 3000, classes: int = 5, true_t: float = 3.0, seed: int = 0):
    """Labels drawn from softmax(z / true_t): logits over-confident by a factor ``true_t``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 4.0, size=(n, classes))
    p = softmax(z / true_t, axis=1)
    y = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)  # one draw per row from p
    return z, y


def test_temperature_recovers_overconfidence_and_lowers_ece() -> None:
    z, y = synthetic()
    t = fit_temperature(z, y)
    assert 2.5 < t < 3.5
    before = expected_calibration_error(softmax(z, axis=1), y)
    after = expected_calibration_error(softmax(z / t, axis=1), y)
    assert after < before / 3 and after < 0.03


def test_temperature_of_nothing_is_one() -> None:
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0


def test_ece_of_perfectly_calibrated_confident_model_is_zero() -> None:
    probs = np.eye(4)[[0, 1, 2, 3]]
    assert expected_calibration_error(probs, np.array([0, 1, 2, 3])) == pytest.approx(0.0)
    assert expected_calibration_error(probs, np.array([1, 2, 3, 0])) == pytest.approx(1.0)


def test_oos_raw_scores_are_higher_for_flat_logits() -> None:
    peaked = np.array([[10.0, 0.0, 0.0]])
    flat = np.array([[1.0, 1.0, 1.0]])
    for method in ("energy", "maxlogit", "msp"):
        assert oos_raw(flat, temperature=1.0, method=method, oos_index=None)[0] > \
            oos_raw(peaked, temperature=1.0, method=method, oos_index=None)[0]
    with_oos = np.array([[0.0, 0.0, 5.0], [5.0, 0.0, 0.0]])  # column 2 is the oos class
    raw = oos_raw(with_oos, temperature=1.0, method="energy", oos_index=2)
    assert raw[0] > 0 > raw[1]
    with pytest.raises(ValueError, match="oos method"):
        oos_raw(flat, temperature=1.0, method="nope", oos_index=None)


def test_neighbour_distance_is_one_minus_the_best_cosine() -> None:
    bank = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    queries = np.array([[3.0, 0.0], [-1.0, 0.0], [0.0, -1.0]])
    d = neighbour_distance(queries, bank)
    assert d == pytest.approx([0.0, 1.0, 1.0], abs=1e-6)  # best cosines 1, 0 and 0
    # leave-one-out: a row never matches itself; chunking gives the same answer as one block
    loo = neighbour_distance(bank, bank, leave_one_out=True)
    assert loo == pytest.approx([1 - np.sqrt(0.5), 1 - np.sqrt(0.5), 1 - np.sqrt(0.5)], abs=1e-6)
    big = np.random.default_rng(0).normal(size=(2500, 8))
    from models import calibration

    whole = neighbour_distance(big, big, leave_one_out=True)
    old, calibration.NEIGHBOUR_CHUNK = calibration.NEIGHBOUR_CHUNK, 300
    try:
        assert calibration.neighbour_distance(big, big, leave_one_out=True) == pytest.approx(whole, abs=1e-6)
    finally:
        calibration.NEIGHBOUR_CHUNK = old
    assert (whole > 1e-4).all()  # no row found itself
    with pytest.raises(ValueError, match="expected"):
        neighbour_distance(queries, np.zeros((2, 3)))


def test_msp_plus_knn_adds_the_standardised_parts() -> None:
    logits = np.array([[10.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    msp = oos_raw(logits, temperature=1.0, method="msp", oos_index=None)
    stats = standardisation(np.array([-1.0, -0.5]), np.array([0.1, 0.3]))
    assert stats["msp_mean"] == pytest.approx(-0.75) and stats["knn_std"] == pytest.approx(0.1)
    distance = np.array([0.05, 0.9])
    raw = oos_raw(logits, temperature=1.0, method="msp+knn", oos_index=None, distance=distance, standardise=stats)
    expected = (msp + 0.75) / 0.25 + (distance - 0.2) / 0.1
    assert raw == pytest.approx(expected)
    assert raw[1] > raw[0]
    # a far neighbour alone raises the score of an otherwise confident message
    far = oos_raw(logits[:1], temperature=1.0, method="msp+knn", oos_index=None, distance=np.array([0.9]),
                  standardise=stats)
    assert far[0] > raw[0]
    with pytest.raises(ValueError, match="neighbour distances"):
        oos_raw(logits, temperature=1.0, method="msp+knn", oos_index=None)
    # with an explicit oos class the log-odds are used whatever the method
    with_oos = np.array([[0.0, 0.0, 5.0]])
    assert oos_raw(with_oos, temperature=1.0, method="msp+knn", oos_index=2)[0] > 0


def test_rejection_threshold_keeps_accuracy_within_one_point() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=1000)
    correct = rng.random(1000) < 0.9
    t = rejection_threshold(scores, correct, max_drop=0.01)
    acc = (correct & (scores <= t)).mean()
    assert correct.mean() - 0.0101 <= acc < correct.mean()


def test_fit_oos_without_oos_data_puts_threshold_at_half() -> None:
    rng = np.random.default_rng(2)
    raw_in = rng.normal(0, 1, 500)
    cal = fit_oos(raw_in, np.ones(500, bool), np.zeros(0), method="energy")
    assert cal.fitted_on == "in_scope_quantile" and cal.threshold == 0.5
    s = cal.score(np.array([-3.0, 0.0, 5.0]))
    assert ((0 <= s) & (s <= 1)).all() and s[0] < s[1] < 0.5 < s[2]


def test_fit_oos_with_oos_data_fits_the_slope() -> None:
    rng = np.random.default_rng(3)
    raw_in, raw_oos = rng.normal(0, 1, 300), rng.normal(4, 1, 30)
    cal = fit_oos(raw_in, np.ones(300, bool), raw_oos, method="energy")
    assert cal.fitted_on == "in_scope_quantile+platt_slope" and cal.slope > 1.0 and cal.threshold == 0.5
    assert cal.score(raw_oos).mean() > 0.8
    assert cal.score(raw_in).mean() < 0.2
    m = oos_metrics(cal.score(np.concatenate([raw_in, raw_oos])), np.r_[np.zeros(300), np.ones(30)],
                    np.r_[np.ones(300, bool), np.zeros(30, bool)], threshold=cal.threshold)
    assert m["auroc"] > 0.98 and m["oos_recall_at_1pt"] > 0.8
    assert m["in_scope_accuracy_at_1pt"] >= 0.99 - 1e-9
