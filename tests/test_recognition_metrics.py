"""The evaluator against independent computations (brute-force sweeps, sklearn, scipy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from recognition import metrics as M


def generated_pairs(n_ids=40, per_id=6, dim=32, noise=0.9, pairs_per_fold=60, folds=10, seed=0, decimals=None):
    """Embeddings of people (a centre + noise), LFW-style folds of same/different pairs, cosine scores."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    ident = np.repeat(np.arange(n_ids), per_id)
    emb = centres[ident] + noise * rng.normal(size=(ident.size, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    a, b, same, fold = [], [], [], []
    for k in range(folds):
        for s in (True, False):
            for _ in range(pairs_per_fold // 2):
                i = rng.integers(ident.size)
                if s:
                    j = rng.choice(np.flatnonzero((ident == ident[i]) & (np.arange(ident.size) != i)))
                else:
                    j = rng.choice(np.flatnonzero(ident != ident[i]))
                a.append(i), b.append(j), same.append(s), fold.append(k)
    scores = np.einsum("ij,ij->i", emb[a], emb[b])
    if decimals is not None:
        scores = np.round(scores, decimals)  # many ties
    return emb, ident, scores, np.array(same), np.array(fold)


@pytest.mark.parametrize("decimals", [None, 2])
def test_roc_curve_matches_sklearn(decimals):
    _, _, scores, same, _ = generated_pairs(decimals=decimals)
    roc = M.roc_curve(scores, same)
    fpr, tpr, th = sk_roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(roc.fpr, fpr)
    np.testing.assert_allclose(roc.tpr, tpr)
    np.testing.assert_allclose(roc.thresholds[1:], th[1:])
    assert M.auc(roc) == pytest.approx(roc_auc_score(same, scores), abs=1e-12)


def brute_tar_at_far(scores, same, far):
    """Sweep every observed score from the lowest up; the first whose FAR <= far wins."""
    for t in np.sort(np.unique(scores)):
        if np.mean(scores[~same] >= t) <= far:
            return np.mean(scores[same] >= t), t
    return 0.0, np.inf


@pytest.mark.parametrize("decimals", [None, 2])
@pytest.mark.parametrize("far", [1e-3, 1e-2, 1e-1, 0.3])
def test_tar_at_far_matches_brute_force(far, decimals):
    _, _, scores, same, _ = generated_pairs(noise=1.3, decimals=decimals)
    roc = M.roc_curve(scores, same)
    tar, th = M.tar_at_far(roc, far)
    want_tar, want_th = brute_tar_at_far(scores, same, far)
    assert tar == pytest.approx(want_tar)
    assert th == want_th
    # sklearn's curve read the same way gives the same TAR
    fpr, tpr, _ = sk_roc_curve(same, scores, drop_intermediate=False)
    assert tar == pytest.approx(tpr[fpr <= far].max())


def test_eer_matches_interpolated_sklearn_curve():
    _, _, scores, same, _ = generated_pairs(noise=1.2)
    fpr, tpr, _ = sk_roc_curve(same, scores, drop_intermediate=False)
    want = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    assert M.eer(M.roc_curve(scores, same)) == pytest.approx(want, abs=1e-9)


def brute_best_threshold(scores, same):
    """Try a dense set of thresholds (every midpoint and the ends) one by one."""
    u = np.unique(scores)
    cands = [u[0] - 1.0] + [(x + y) / 2 for x, y in zip(u[:-1], u[1:])] + [u[-1] + 1.0]
    best_t, best_acc = None, -1.0
    for t in cands:
        acc = np.mean((scores > t) == same)
        if acc > best_acc:
            best_t, best_acc = t, acc
    return best_t, best_acc


@pytest.mark.parametrize("decimals", [None, 2])
def test_best_threshold_matches_sweep(decimals):
    _, _, scores, same, _ = generated_pairs(noise=1.2, decimals=decimals)
    th, acc = M.best_threshold(scores, same)
    want_th, want_acc = brute_best_threshold(scores, same)
    assert acc == pytest.approx(want_acc)
    assert th == pytest.approx(want_th)
    # and no threshold on a fine grid does better
    grid = np.linspace(scores.min() - 0.01, scores.max() + 0.01, 4001)
    assert max(np.mean((scores > t) == same) for t in grid) <= acc + 1e-12


@pytest.mark.parametrize("decimals", [None, 2])
def test_lfw_accuracy_is_ten_fold_cross_validated(decimals):
    _, _, scores, same, folds = generated_pairs(noise=1.2, decimals=decimals)
    res = M.lfw_accuracy(scores, same, folds)
    want = []
    for k in range(10):
        held = folds == k
        t, _ = brute_best_threshold(scores[~held], same[~held])
        want.append(np.mean((scores[held] > t) == same[held]))
    np.testing.assert_allclose(res.fold_accuracies, want)
    assert res.accuracy_mean == pytest.approx(np.mean(want))
    assert res.accuracy_std == pytest.approx(np.std(want))
    assert not res.threshold_from_same_fold
    assert res.correct.mean() == pytest.approx(np.mean(want))  # equal folds


def test_single_fold_uses_its_own_threshold_and_says_so():
    _, _, scores, same, folds = generated_pairs(folds=1, pairs_per_fold=400, noise=1.2)
    res = M.lfw_accuracy(scores, same, folds)
    assert res.threshold_from_same_fold
    assert res.accuracy_mean == pytest.approx(brute_best_threshold(scores, same)[1])
    assert res.accuracy_std == 0.0


def test_better_embeddings_score_better():
    _, _, s_good, same, folds = generated_pairs(noise=0.6, seed=1)
    _, _, s_bad, same_b, folds_b = generated_pairs(noise=1.6, seed=1)
    assert (same == same_b).all()
    good, bad = M.lfw_accuracy(s_good, same, folds), M.lfw_accuracy(s_bad, same, folds)
    assert good.accuracy_mean > bad.accuracy_mean + 0.1
    assert M.auc(M.roc_curve(s_good, same)) > M.auc(M.roc_curve(s_bad, same))


def test_errors_on_nan_and_one_sided_pairs():
    scores = np.array([0.1, np.nan, 0.3])
    with pytest.raises(M.EvaluationError, match="NaN"):
        M.roc_curve(scores, np.array([True, False, True]))
    with pytest.raises(M.EvaluationError, match="impostor"):
        M.roc_curve(np.array([0.1, 0.2]), np.array([True, True]))


def test_identification_protocol_against_a_loop():
    emb, ident, _, _, _ = generated_pairs(n_ids=12, per_id=5, noise=1.0, seed=3)
    res = M.identification(emb, ident, seed=7)
    # one target per identity, chosen by the seed, the rest are queries
    assert sorted(ident[res.targets]) == list(range(12))
    assert res.queries.size == ident.size - 12
    again = M.identification(emb, ident, seed=7)
    assert (again.targets == res.targets).all()
    assert not (M.identification(emb, ident, seed=8).targets == res.targets).all()
    # scores and rank-1 decisions, element by element
    for qi, q in enumerate(res.queries):
        for ti, t in enumerate(res.targets):
            assert res.scores[qi, ti] == pytest.approx(float(emb[q] @ emb[t]))
            assert res.same[qi, ti] == (ident[q] == ident[t])
        assert res.correct[qi] == (ident[res.targets[np.argmax(res.scores[qi])]] == ident[q])
    assert res.same.sum() == res.queries.size  # each query has exactly one genuine target


def test_mcnemar_matches_scipy_binomtest():
    rng = np.random.default_rng(0)
    a = rng.random(500) < 0.8
    b = a.copy()
    flip = rng.choice(500, 40, replace=False)
    b[flip[:30]] = True
    b[flip[30:]] = False
    res = M.mcnemar(a, b)
    want = binomtest(min(res["b"], res["c"]), res["b"] + res["c"], 0.5).pvalue
    assert res["p_value"] == pytest.approx(want)
    assert M.mcnemar(a, a)["p_value"] == 1.0


def test_paired_bootstrap_separates_real_from_no_difference():
    _, _, s_good, same, _ = generated_pairs(noise=0.7, seed=2)
    _, _, s_bad, _, _ = generated_pairs(noise=1.4, seed=2)
    better = M.paired_bootstrap(M.roc_summary, s_bad, s_good, same, n=300, seed=0)
    assert better["auc"]["delta"] > 0
    assert better["auc"]["p_value"] < 0.01
    assert better["auc"]["ci95"][0] > 0
    same_model = M.paired_bootstrap(M.roc_summary, s_bad, s_bad, same, n=100, seed=0)
    assert same_model["auc"]["delta"] == 0
    assert same_model["auc"]["ci95"] == [0.0, 0.0]
    # seeded: the same interval twice
    again = M.paired_bootstrap(M.roc_summary, s_bad, s_good, same, n=300, seed=0)
    assert again["auc"]["ci95"] == better["auc"]["ci95"]
