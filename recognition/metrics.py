"""Verification and identification metrics: pure numpy functions of scores.

Nothing here loads a model or a file. Conventions:

- a *score* is a cosine similarity; a pair is predicted "same" when its score
  is above a threshold (``>`` for the LFW accuracy thresholds, which lie
  between observed scores; ``>=`` on the ROC, whose thresholds are observed
  scores, as in sklearn);
- ``same`` is a boolean array (genuine pair = True, impostor = False).

Functions:

- ``roc_curve``: every operating point (sklearn's ``roc_curve`` with
  ``drop_intermediate=False``);
- ``tar_at_far``: TAR at the lowest threshold whose FAR does not exceed the
  target; ``auc`` (trapezoid, ties count one half); ``eer`` (linear
  interpolation where FPR = 1 - TPR);
- ``best_threshold`` / ``lfw_accuracy``: the LFW protocol (per fold, the
  threshold maximising accuracy on the other folds, accuracy on the held one);
- ``identification``: the paper's CelebA protocol (one seeded target image
  per identity, the rest are queries; ROC of all query x target scores);
- ``mcnemar`` and ``paired_bootstrap``: significance of a difference
  between two models scored on the same pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from augment.data.errors import DatasetError

FARS: tuple[float, ...] = (1e-3, 1e-2, 1e-1)


def far_key(far: float) -> str:
    """``1e-3`` -> ``"0.001"`` (the JSON key of a FAR)."""
    return f"{far:g}" if far >= 1e-4 else repr(far)


class EvaluationError(DatasetError):
    """Embeddings or pairs that cannot be evaluated (NaN, too few pairs of a kind)."""


def _check(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    same = np.asarray(same, dtype=bool).ravel()
    if scores.shape != same.shape:
        raise EvaluationError(f"{scores.size} scores but {same.size} labels")
    if not np.isfinite(scores).all():
        raise EvaluationError(f"{int((~np.isfinite(scores)).sum())} score(s) are NaN or infinite")
    if same.all() or not same.any():
        kind = "impostor (different)" if same.all() else "genuine (same)"
        raise EvaluationError(f"no {kind} pairs: a ROC needs both kinds")
    return scores, same


# --------------------------------------------------------------------------- #
# ROC and the figures read off it
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Roc:
    """Operating points, threshold decreasing: ``fpr``/``tpr`` non-decreasing,
    starting at (0, 0) with threshold +inf; a pair is accepted when score >= threshold."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


def roc_curve(scores: np.ndarray, same: np.ndarray) -> Roc:
    """Every distinct threshold's (FPR, TPR), as sklearn's ``roc_curve(drop_intermediate=False)``."""
    scores, same = _check(scores, same)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], same[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each run of equal scores
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    return Roc(
        fpr=np.r_[0.0, fps / (~same).sum()],
        tpr=np.r_[0.0, tps / same.sum()],
        thresholds=np.r_[np.inf, s[last]],
    )


def tar_at_far(roc: Roc, far: float) -> tuple[float, float]:
    """(TAR, threshold) at the lowest threshold whose FAR does not exceed ``far``."""
    i = int(np.searchsorted(roc.fpr, far, side="right")) - 1  # last point with fpr <= far
    return float(roc.tpr[i]), float(roc.thresholds[i])


def auc(roc: Roc) -> float:
    """Area under the ROC (trapezoid rule: a tied genuine/impostor score counts 1/2)."""
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
    return float(trapezoid(roc.tpr, roc.fpr))


def eer(roc: Roc) -> float:
    """Equal error rate: FPR where FPR = FNR (= 1 - TPR), linearly interpolated."""
    d = roc.fpr - (1.0 - roc.tpr)  # rises from -1 to +1
    i = int(np.argmax(d >= 0))
    if i == 0:
        return float(roc.fpr[0])
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(roc.fpr[i - 1] + t * (roc.fpr[i] - roc.fpr[i - 1]))


def roc_metrics(scores: np.ndarray, same: np.ndarray, fars: tuple[float, ...] = FARS) -> dict:
    """TAR at each FAR (with its threshold), AUC and EER over all pairs pooled."""
    roc = roc_curve(scores, same)
    tars = {far_key(f): tar_at_far(roc, f) for f in fars}
    same = np.asarray(same, dtype=bool)
    return {
        "tar_at_far": {k: v[0] for k, v in tars.items()},
        "far_thresholds": {k: v[1] for k, v in tars.items()},
        "auc": auc(roc),
        "eer": eer(roc),
        "genuine": int(same.sum()),
        "impostor": int((~same).sum()),
    }


# --------------------------------------------------------------------------- #
# The LFW protocol
# --------------------------------------------------------------------------- #


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy of ``score > threshold``.

    Candidates are every midpoint between consecutive distinct scores plus one
    below and one above them all, so the optimum is exact. Among equally good
    thresholds the lowest is returned.
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    u = np.unique(scores)
    cand = np.r_[u[0] - 1.0, (u[:-1] + u[1:]) / 2.0, u[-1] + 1.0]
    s_same, s_diff = np.sort(scores[same]), np.sort(scores[~same])
    same_above = s_same.size - np.searchsorted(s_same, cand, side="right")
    diff_at_or_below = np.searchsorted(s_diff, cand, side="right")
    acc = (same_above + diff_at_or_below) / scores.size
    i = int(np.argmax(acc))
    return float(cand[i]), float(acc[i])


@dataclass
class FoldResult:
    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: list[float]
    thresholds: list[float]
    threshold_from_same_fold: bool  # True with a single fold (LFW View 1): optimistic
    correct: np.ndarray = field(repr=False)  # (P,) bool, each pair's decision at its fold's threshold


def lfw_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> FoldResult:
    """LFW protocol: for each fold, the threshold chosen on the other folds is
    applied to it; mean and (population) std of the fold accuracies.

    With a single fold (View 1 files) the threshold is chosen on that same
    fold, which is optimistic; ``threshold_from_same_fold`` says so.
    """
    scores, same = _check(scores, same)
    folds = np.asarray(folds).ravel()
    if folds.shape != scores.shape:
        raise EvaluationError(f"{folds.size} fold labels for {scores.size} pairs")
    ids = np.unique(folds)
    correct = np.zeros(scores.size, dtype=bool)
    accs, ths = [], []
    for k in ids:
        held = folds == k
        fit = ~held if ids.size > 1 else held
        th, _ = best_threshold(scores[fit], same[fit])
        correct[held] = (scores[held] > th) == same[held]
        accs.append(float(correct[held].mean()))
        ths.append(th)
    return FoldResult(float(np.mean(accs)), float(np.std(accs)), accs, ths, ids.size == 1, correct)


# --------------------------------------------------------------------------- #
# The paper's CelebA identification protocol
# --------------------------------------------------------------------------- #


@dataclass
class Identification:
    """One seeded target per identity; every other image is a query.

    ``scores``/``same``: ``(Q, T)`` query x target cosine scores and genuine
    flags; ``correct``: ``(Q,)`` rank-1 identification success;
    ``query_fold``: the identity-disjoint fold of each query (for mean/std).
    """

    targets: np.ndarray
    queries: np.ndarray
    scores: np.ndarray
    same: np.ndarray
    correct: np.ndarray
    query_fold: np.ndarray


def choose_targets(identities: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(target indices, query indices): per identity (sorted) one random image is the target."""
    identities = np.asarray(identities)
    rng = np.random.default_rng(seed)
    targets = []
    for ident in np.unique(identities):
        members = np.flatnonzero(identities == ident)
        targets.append(members[rng.integers(members.size)])
    targets = np.sort(np.array(targets, dtype=np.int64))
    queries = np.setdiff1d(np.arange(identities.size), targets)
    return targets, queries


def identification(embeddings: np.ndarray, identities: np.ndarray, seed: int, n_folds: int = 10) -> Identification:
    """The paper's CelebA protocol on L2-normalised ``embeddings`` ``(N, E)``."""
    identities = np.asarray(identities)
    targets, queries = choose_targets(identities, seed)
    if queries.size == 0:
        raise EvaluationError("every identity has a single image: no queries for the identification protocol")
    if targets.size < 2:
        raise EvaluationError("the identification protocol needs at least 2 identities")
    scores = embeddings[queries] @ embeddings[targets].T
    same = identities[queries][:, None] == identities[targets][None, :]
    correct = identities[targets][np.argmax(scores, axis=1)] == identities[queries]
    q_ids = np.unique(identities[queries])
    fold_of = {ident: i % n_folds for i, ident in enumerate(q_ids)}
    query_fold = np.array([fold_of[i] for i in identities[queries]], dtype=np.int64)
    return Identification(targets, queries, scores, same, correct, query_fold)


def fold_mean_std(correct: np.ndarray, folds: np.ndarray) -> tuple[float, float, list[float]]:
    accs = [float(correct[folds == k].mean()) for k in np.unique(folds)]
    return float(np.mean(accs)), float(np.std(accs)), accs


# --------------------------------------------------------------------------- #
# Significance of a difference between two models on the same pairs
# --------------------------------------------------------------------------- #


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact (binomial) two-sided McNemar test on paired right/wrong decisions.

    ``b``: A right and B wrong; ``c``: A wrong and B right. p = the probability,
    under "both equally good", of a split at least this uneven.
    """
    a, b_ = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    b = int((a & ~b_).sum())
    c = int((~a & b_).sum())
    n, k = b + c, min(b, c)
    if n == 0:
        return {"b": b, "c": c, "p_value": 1.0}
    # log-space binomial tail: exact for any n without overflow
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    m = max(logs)
    tail = math.exp(m) * sum(math.exp(v - m) for v in logs)
    return {"b": b, "c": c, "p_value": min(1.0, 2.0 * tail)}


def paired_bootstrap(
    metric: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    same: np.ndarray,
    n: int,
    seed: int,
) -> dict[str, dict]:
    """Paired bootstrap of ``metric(B) - metric(A)`` for every key ``metric`` returns.

    The arrays are ``(G, k)``: one row per resampling unit (a pair for LFW, a
    query image with its k target scores for the identification protocol);
    rows are drawn with replacement, the same rows for both models. Returns per
    key the observed delta, a 95% percentile interval and a two-sided p-value
    (twice the smaller share of resampled deltas on either side of 0).
    """
    scores_a, scores_b, same = (np.asarray(x).reshape(len(x), -1) for x in (scores_a, scores_b, same))
    observed_a, observed_b = metric(scores_a.ravel(), same.ravel()), metric(scores_b.ravel(), same.ravel())
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in observed_a}
    g = scores_a.shape[0]
    for _ in range(n):
        rows = rng.integers(0, g, g)
        y = same[rows].ravel()
        if y.all() or not y.any():
            continue  # a resample without both kinds of pairs has no ROC
        ma, mb = metric(scores_a[rows].ravel(), y), metric(scores_b[rows].ravel(), y)
        for k in draws:
            draws[k].append(mb[k] - ma[k])
    out = {}
    for k, vals in draws.items():
        v = np.asarray(vals)
        entry: dict = {"delta": observed_b[k] - observed_a[k], "test": "paired bootstrap", "resamples": int(v.size)}
        if v.size:
            entry["ci95"] = [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]
            entry["p_value"] = float(min(1.0, 2.0 * min((v <= 0).mean(), (v >= 0).mean())))
        out[k] = entry
    return out


def roc_summary(scores: np.ndarray, same: np.ndarray) -> dict[str, float]:
    """Flat ``{"tar_at_far_0.001": ..., "auc": ..., "eer": ...}`` (the bootstrap's metric)."""
    r = roc_metrics(scores, same)
    flat = {f"tar_at_far_{k}": v for k, v in r["tar_at_far"].items()}
    flat.update(auc=r["auc"], eer=r["eer"])
    return flat
