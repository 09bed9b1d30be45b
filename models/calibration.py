"""Confidence calibration and out-of-scope scoring, on numpy arrays of logits.

* Temperature scaling (Guo et al. 2017): one scalar ``T`` per head, fitted on validation logits by
  minimising the negative log-likelihood (with a weak prior on ``log T`` for tiny validation
  sets); probabilities are ``softmax(logits / T)``.
* Expected calibration error (ECE), 15 equal-width confidence bins.
* Out-of-scope: a raw score, higher = less like any known intent: with an explicit ``oos`` class
  the log-odds ``z_oos - logsumexp(z_in)``; without one, the energy ``-logsumexp(z_in)`` (Liu et
  al. 2020), or ``-max(z_in)`` / ``-max softmax``, or ``msp+knn``: ``-max softmax`` plus the
  cosine distance from the message's embedding to its nearest in-scope training message (Sun et
  al. 2022), each standardised by its mean and spread on the training messages (leave-one-out for
  the neighbour distance) so that neither dominates. Squashed to [0, 1] by ``sigmoid(a * raw + b)``
  with 0.5 at the threshold that keeps in-scope validation accuracy within 1 point.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.special import expit, logsumexp, softmax

OOS_METHODS = ("energy", "maxlogit", "msp", "msp+knn")
NEIGHBOUR_METHODS = frozenset({"msp+knn"})  # methods that need the in-scope training embeddings
NEIGHBOUR_CHUNK = 1024  # query rows per similarity block (bounds memory to chunk x bank floats)


def needs_neighbours(method: str) -> bool:
    return method in NEIGHBOUR_METHODS


def neighbour_distance(queries: np.ndarray, bank: np.ndarray, *, leave_one_out: bool = False,
                       unit_bank: bool = False) -> np.ndarray:
    """``1 - max cosine`` from each row of ``queries`` (n, d) to the rows of ``bank`` (m, d); both
    are L2-normalised here (the bank not when ``unit_bank`` says it already is). ``leave_one_out``:
    ``queries`` is ``bank`` and a row's own similarity is ignored (the distance of a training
    message to its nearest other one)."""
    if queries.ndim != 2 or bank.ndim != 2 or queries.shape[1] != bank.shape[1]:
        raise ValueError(f"queries and bank: expected (n, d) and (m, d), got {queries.shape} and {bank.shape}")
    if len(bank) < (2 if leave_one_out else 1):
        raise ValueError(f"bank: expected at least {2 if leave_one_out else 1} rows, got {len(bank)}")
    q, b = _unit(queries), (bank if unit_bank else _unit(bank))
    out = np.empty(len(q), dtype=np.float32)
    for start in range(0, len(q), NEIGHBOUR_CHUNK):
        sim = q[start : start + NEIGHBOUR_CHUNK] @ b.T
        if leave_one_out:
            rows = np.arange(len(sim))
            sim[rows, start + rows] = -np.inf
        out[start : start + NEIGHBOUR_CHUNK] = 1.0 - sim.max(axis=1)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def standardisation(msp_raw: np.ndarray, distance: np.ndarray) -> dict[str, float]:
    """Mean and spread of the two parts of ``msp+knn`` on the training messages."""
    def spread(x: np.ndarray) -> float:
        s = float(np.std(x))
        return s if s > 1e-6 else 1.0

    return {"msp_mean": float(np.mean(msp_raw)), "msp_std": spread(msp_raw),
            "knn_mean": float(np.mean(distance)), "knn_std": spread(distance)}


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, max_iter: int = 200, prior_sd: float = 1.0) -> float:
    """The temperature in [0.05, 20] that minimises the summed NLL of ``labels`` (N,) under
    ``logits`` (N, C) plus a log-normal prior ``(log T)^2 / (2 prior_sd^2)``. The prior matters
    only for small validation sets: where every example is right, NLL alone drives T to 0 (and
    confidences to 1); on hundreds of examples it is negligible."""
    if len(labels) == 0:
        return 1.0
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        nll = torch.nn.functional.cross_entropy(z / log_t.exp(), y, reduction="sum")
        loss = nll + log_t**2 / (2 * prior_sd**2)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    return float(min(max(t, 0.05), 20.0)) if math.isfinite(t) else 1.0


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 15) -> float:
    """ECE of the top-1 confidence: sum over bins of |accuracy - confidence| weighted by bin share."""
    if len(labels) == 0:
        return float("nan")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def oos_raw(logits: np.ndarray, *, temperature: float, method: str, oos_index: int | None,
            distance: np.ndarray | None = None, standardise: dict[str, float] | None = None) -> np.ndarray:
    """(N, C) logits -> (N,) raw out-of-scope scores, higher = more out of scope. ``msp+knn`` also
    needs ``distance`` (N,) (``neighbour_distance`` to the in-scope training embeddings) and
    ``standardise`` (``standardisation`` on the training messages)."""
    if method not in OOS_METHODS:
        raise ValueError(f"oos method {method!r}: expected one of {OOS_METHODS}")
    z = logits / temperature
    keep = [i for i in range(z.shape[1]) if i != oos_index]
    z_in = z[:, keep]
    if oos_index is not None:
        return z[:, oos_index] - logsumexp(z_in, axis=1)
    if method == "energy":
        return -logsumexp(z_in, axis=1)
    if method == "maxlogit":
        return -z_in.max(axis=1)
    msp = -softmax(z_in, axis=1).max(axis=1)
    if method == "msp":
        return msp
    if distance is None or standardise is None:
        raise ValueError(f"oos method {method!r}: needs the neighbour distances and their standardisation")
    if distance.shape != msp.shape:
        raise ValueError(f"distance: expected shape {msp.shape}, got {distance.shape}")
    return ((msp - standardise["msp_mean"]) / standardise["msp_std"]
            + (distance - standardise["knn_mean"]) / standardise["knn_std"])


@dataclass(frozen=True, slots=True, kw_only=True)
class OosCalibration:
    """``oos_score = sigmoid(slope * raw + offset)``; ``threshold`` applies to ``oos_score``."""

    method: str
    slope: float
    offset: float
    threshold: float
    fitted_on: str  # "in_scope_quantile" | "platt"
    standardise: dict[str, float] | None = None  # msp+knn: means and spreads of its two parts

    def score(self, raw: np.ndarray) -> np.ndarray:
        return expit(self.slope * raw + self.offset)

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


def rejection_threshold(scores: np.ndarray, correct: np.ndarray, *, max_drop: float = 0.01) -> float:
    """The lowest score threshold (reject when score > t) that keeps in-scope accuracy within
    ``max_drop`` of the accuracy without rejection. ``scores``, ``correct``: (N,) of in-scope data."""
    n = len(scores)
    ok = np.sort(scores[correct.astype(bool)])
    if n == 0 or len(ok) == 0:
        return float("inf")
    k = int(np.floor(max_drop * n + 1e-9))  # correct examples that may be rejected
    if k >= len(ok):
        return float(ok[0]) - 1.0
    return float(ok[len(ok) - 1 - k])  # the k highest-scoring correct ones lie above it


def fit_oos(
    raw_in: np.ndarray, correct_in: np.ndarray, raw_oos: np.ndarray, *, method: str, max_drop: float = 0.01,
    standardise: dict[str, float] | None = None,
) -> OosCalibration:
    """Map raw scores to [0, 1] so that 0.5 is the threshold chosen by the 1-point rule on
    validation (``rejection_threshold``): ``sigmoid(slope * (raw - raw_t))``. The slope is fitted
    by class-balanced logistic regression of in-scope vs out-of-scope validation examples when
    there are at least 5 of each; otherwise it is 1 / (std of in-scope raw scores)."""
    raw_t = rejection_threshold(raw_in, correct_in, max_drop=max_drop)
    slope, fitted_on = 1.0 / (float(np.std(raw_in)) or 1.0), "in_scope_quantile"
    if len(raw_oos) >= 5 and len(raw_in) >= 5:
        from sklearn.linear_model import LogisticRegression

        x = np.concatenate([raw_in, raw_oos])[:, None]
        y = np.concatenate([np.zeros(len(raw_in)), np.ones(len(raw_oos))])
        fitted = float(LogisticRegression(class_weight="balanced", C=10.0).fit(x, y).coef_[0, 0])
        if fitted > 0:
            slope, fitted_on = fitted, "in_scope_quantile+platt_slope"
    if not math.isfinite(raw_t):
        return OosCalibration(method=method, slope=slope, offset=0.0, threshold=1.0, fitted_on=fitted_on,
                              standardise=standardise)
    return OosCalibration(method=method, slope=slope, offset=-slope * raw_t, threshold=0.5, fitted_on=fitted_on,
                          standardise=standardise)


def oos_metrics(scores: np.ndarray, is_oos: np.ndarray, correct: np.ndarray, *,
                threshold: float | None = None, max_drop: float = 0.01) -> dict[str, float]:
    """AUROC of ``scores`` for OOS vs in-scope, and OOS recall at the 1-point threshold chosen on
    these data (and at ``threshold`` when given). ``correct``: in-scope prediction right (N,)."""
    from sklearn.metrics import roc_auc_score

    is_oos = is_oos.astype(bool)
    inn = ~is_oos
    closed = float(correct[inn].mean()) if inn.any() else float("nan")
    out: dict[str, float] = {"n_in_scope": int(inn.sum()), "n_oos": int(is_oos.sum()),
                             "closed_set_accuracy": closed}
    if not is_oos.any() or not inn.any():
        return out
    out["auroc"] = float(roc_auc_score(is_oos, scores))
    t = rejection_threshold(scores[inn], correct[inn], max_drop=max_drop)
    out.update(_at(scores, is_oos, correct, t, "at_1pt"))
    if threshold is not None:
        out.update(_at(scores, is_oos, correct, threshold, "at_model_threshold"))
    return out


def _at(scores: np.ndarray, is_oos: np.ndarray, correct: np.ndarray, t: float, tag: str) -> dict[str, float]:
    inn = ~is_oos
    accepted = scores <= t
    return {
        f"threshold_{tag}": float(t),
        f"oos_recall_{tag}": float((~accepted[is_oos]).mean()),
        f"in_scope_accuracy_{tag}": float((correct[inn] & accepted[inn]).mean()),
    }
