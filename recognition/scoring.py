"""Comparing models on a protocol: scores, metrics, deltas and their significance.

``score`` turns one model's embeddings into every metric of a protocol;
``evaluate_models`` scores each model and compares each augmented model with
the baseline trained from the same seed (McNemar's exact test on the per-pair
or per-query decisions, a paired bootstrap for TAR@FAR, AUC and EER);
``over_repeats`` summarises models trained from several seeds. The metric
functions themselves live in ``recognition.metrics`` and take only arrays.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from augment.data.errors import DatasetError
from augment.names import child
from recognition import metrics as M
from recognition.paper import paper_key, paper_values
from recognition.protocols import Protocol, strata
from recognition.sources import ImageIndex, Model

log = logging.getLogger("augment.evaluate")


@dataclass
class Scored:
    """One model's scores on a protocol: ``(G, k)`` arrays, one row per resampling unit."""

    metrics: dict
    scores: np.ndarray
    same: np.ndarray
    correct: np.ndarray  # (G,) per-unit decisions for McNemar
    roc: M.Roc


def score(protocol: Protocol, emb: np.ndarray) -> Scored:
    """Every metric of one model on ``protocol`` from its unit embeddings ``(len(keys), E)``."""
    if protocol.is_pairs:
        s = np.einsum("ij,ij->i", emb[protocol.idx_a], emb[protocol.idx_b]).astype(np.float64)
        folds = M.lfw_accuracy(s, protocol.same, protocol.folds)
        metrics = {
            "accuracy_mean": folds.accuracy_mean,
            "accuracy_std": folds.accuracy_std,
            "accuracy_kind": "verification, LFW protocol",
            "fold_accuracies": folds.fold_accuracies,
            "fold_thresholds": folds.thresholds,
            "threshold_from_same_fold": folds.threshold_from_same_fold,
            "pairs": int(s.size),
        }
        metrics.update(M.roc_metrics(s, protocol.same))
        return Scored(metrics, s[:, None], protocol.same[:, None], folds.correct, M.roc_curve(s, protocol.same))
    ident = M.identification(emb.astype(np.float64), protocol.identities, protocol.seed)
    mean, std, accs = M.fold_mean_std(ident.correct, ident.query_fold)
    metrics = {
        "accuracy_mean": mean,
        "accuracy_std": std,
        "accuracy_kind": "rank-1 identification (10 identity-disjoint folds of the queries)",
        "fold_accuracies": accs,
        "threshold_from_same_fold": False,
        "queries": int(ident.queries.size),
        "targets": int(ident.targets.size),
        "pairs": int(ident.scores.size),
    }
    metrics.update(M.roc_metrics(ident.scores, ident.same))
    return Scored(metrics, ident.scores, ident.same, ident.correct, M.roc_curve(ident.scores, ident.same))


def compare(baseline: Scored, other: Scored, bootstrap: int, seed: int) -> dict:
    """Deltas of ``other`` vs ``baseline`` with their significance."""
    out: dict = {
        "accuracy": {
            "delta": other.metrics["accuracy_mean"] - baseline.metrics["accuracy_mean"],
            "test": "McNemar exact, per-pair (lfw) or per-query rank-1 (celeba-ident) decisions",
            **M.mcnemar(baseline.correct, other.correct),
        }
    }
    if bootstrap > 0:
        out.update(M.paired_bootstrap(M.roc_summary, baseline.scores, other.scores, baseline.same, bootstrap, seed))
    else:
        a, b = M.roc_summary(baseline.scores, baseline.same), M.roc_summary(other.scores, other.same)
        out.update({k: {"delta": b[k] - a[k]} for k in a})
    return out


def evaluate_models(
    protocol: Protocol,
    models: Sequence[Model],
    images: ImageIndex | None,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    device="cpu",
    batch_size: int = 128,
    workers: int = 0,
    cache_dir: Path | None = None,
    strata_values: dict[str, np.ndarray] | None = None,
) -> tuple[dict, dict[str, M.Roc]]:
    """Score every model on ``protocol``; the first baseline (or the first model) is the reference.

    ``strata_values``: {attribute: (len(keys),) 1 / 0 / -1} to also report the
    pairs split by whether the two photos share that attribute's value.
    Returns (result dict: protocol, baseline, models, deltas, paper, notes,
    and repeats / oracle_fraction / strata where they apply; ROC per model).
    """
    if not models:
        raise DatasetError("no models to evaluate")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise DatasetError(f"two models share a name: {names}; name them NAME=PATH")
    base = next((m for m in models if m.baseline), models[0])
    scored: dict[str, Scored] = {}
    for m in models:
        cache = None if cache_dir is None else child(cache_dir, f"{_safe(m.name)}.parquet", "an embeddings cache")
        emb = m.embed(protocol.keys, images, device=device, batch_size=batch_size, workers=workers, cache=cache)
        scored[m.name] = score(protocol, emb)
        log.info("%s on %s: accuracy %.4f, TAR@FAR=1e-2 %.4f", m.name, protocol.name,
                 scored[m.name].metrics["accuracy_mean"], scored[m.name].metrics["tar_at_far"]["0.01"])
    result: dict = {
        "protocol": protocol.name,
        "baseline": base.name,
        "models": {n: s.metrics for n, s in scored.items()},
        "deltas": {},
        "paper": {},
        "notes": [],
    }
    if protocol.info:
        result["info"] = protocol.info
    for m in models:
        ref = reference_name(m.name, base.name, scored)
        if ref != m.name:
            result["deltas"][m.name] = compare(scored[ref], scored[m.name], bootstrap, _seed(seed, m.name))
            if ref != base.name:
                result["deltas"][m.name]["reference"] = ref
        # The paper trained no model on perfect edits: an oracle has no counterpart.
        key = None if split_repeat(m.name)[0].endswith(ORACLE) else paper_key(m.name, m.attributes,
                                                                           is_baseline=m.name == base.name)
        vals = paper_values(protocol.name, key)
        if vals:
            result["paper"][m.name] = {f"tar_at_far_{k}": v for k, v in vals.items()} | {"paper_model": key}
    if any(s.metrics.get("threshold_from_same_fold") for s in scored.values()):
        result["notes"].append(
            "single fold (LFW View 1 file): accuracy uses the threshold chosen on that same fold, "
            "which is optimistic; View 2 (pairs.txt, 10 folds) gives the standard protocol"
        )
    if result["paper"]:
        result["notes"].append("paper: TAR values read off the paper's ROC figures (about +-0.01)")
    repeats = over_repeats(result)
    if repeats:
        result["repeats"] = repeats
    oracle = oracle_fractions(result)
    if oracle:
        result["oracle_fraction"] = oracle
    if strata_values:
        result["strata"] = {a: stratum_accuracies(protocol, v, scored) for a, v in strata_values.items()}
    return result, {n: s.roc for n, s in scored.items()}


def split_repeat(name: str) -> tuple[str, int]:
    """``"+Eyeglasses@2"`` -> ``("+Eyeglasses", 2)``; a name without ``@k`` is repeat 0."""
    stem, _, k = name.rpartition("@")
    return (stem, int(k)) if stem and k.isdigit() else (name, 0)


def reference_name(name: str, base: str, names) -> str:
    """What ``name`` is compared with: the baseline trained from the same seed
    (``baseline@k`` for ``X@k``) when there is one, else ``base``. A baseline
    repeat is its own reference (no delta), and so is ``base``."""
    stem, k = split_repeat(name)
    base_stem = split_repeat(base)[0]
    if stem == base_stem:
        return name
    same_seed = f"{base_stem}@{k}" if k else base_stem
    return same_seed if same_seed in names else base


ORACLE = ":oracle"
DELTA_KEYS = ("accuracy", "tar_at_far_0.001", "tar_at_far_0.01", "tar_at_far_0.1", "auc")


def over_repeats(result: dict) -> dict:
    """With models trained from several seeds (``X``, ``X@1``, ...): per model the
    mean and sample std over its seeds of accuracy and TAR@FAR, and of each
    delta to the same-seed baseline with the number of seeds where it is > 0.
    A model with one seed (a pretrained reference) has ``std`` None: a sample std
    of one value is undefined, and 0 would claim a spread was measured.
    Empty when every model has one seed."""
    groups: dict[str, list[str]] = {}
    for name in result["models"]:
        groups.setdefault(split_repeat(name)[0], []).append(name)
    if all(len(v) < 2 for v in groups.values()):
        return {}

    def spread(values: list[float]) -> dict:
        a = np.asarray(values, dtype=float)
        return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else None, "n": len(a)}

    out = {}
    for stem, names in groups.items():
        ms = [result["models"][n] for n in names]
        entry = {"seeds": len(names), "accuracy": spread([m["accuracy_mean"] for m in ms])}
        for far in ("0.001", "0.01", "0.1"):
            entry[f"tar_at_far_{far}"] = spread([m["tar_at_far"][far] for m in ms])
        deltas = [result["deltas"][n] for n in names if n in result["deltas"]]  # none for the baselines
        if deltas:
            entry["deltas"] = {}
            for key in DELTA_KEYS:
                vals = [d[key]["delta"] for d in deltas if key in d]
                if vals:
                    entry["deltas"][key] = spread(vals) | {"higher": int(sum(v > 0 for v in vals))}
        out[stem] = entry
    return out


def stratum_accuracies(protocol: Protocol, values: np.ndarray, scored: dict[str, Scored]) -> dict:
    """Per stratum (see ``protocols.strata``): its pair count and, per model, the
    fraction of its pairs decided right at the protocol's own thresholds (for
    genuine pairs the verification rate, for impostors the rejection rate);
    with several seeds also the mean and std over seeds per model."""
    if not protocol.is_pairs:
        raise DatasetError(f"strata need a pairs protocol, not {protocol.name}")
    out: dict = {}
    for name, mask in strata(protocol, values).items():
        entry: dict = {"pairs": int(mask.sum()), "models": {}}
        if mask.any():
            entry["models"] = {m: float(s.correct[mask].mean()) for m, s in scored.items()}
            groups: dict[str, list[float]] = {}
            for m, acc in entry["models"].items():
                groups.setdefault(split_repeat(m)[0], []).append(acc)
            if any(len(v) > 1 for v in groups.values()):
                entry["repeats"] = {g: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1
                                        else 0.0, "n": len(v)} for g, v in groups.items()}
        out[name] = entry
    return out


def oracle_fractions(result: dict) -> dict:
    """Per augmented model with an ``:oracle`` twin: its gain as a fraction of the
    oracle's, for accuracy and TAR@FAR=1e-2. Per seed (``X@k`` against
    ``X:oracle@k``, both deltas to ``baseline@k``) and, over seeds, the mean and
    std of the per-seed fractions plus the ratio of the mean gains (steadier
    when the oracle's gain is small). A fraction is null where the oracle's
    gain is not positive: there is nothing to be a fraction of."""
    deltas = result["deltas"]
    out: dict = {}
    for name in deltas:
        stem, k = split_repeat(name)
        if stem.endswith(ORACLE):
            continue
        twin = f"{stem}{ORACLE}" + (f"@{k}" if k else "")
        if twin not in deltas:
            continue
        entry = out.setdefault(stem, {"seeds": {}})
        per = {}
        for key in ("accuracy", "tar_at_far_0.01"):
            if key in deltas[name] and key in deltas[twin]:
                g, o = deltas[name][key]["delta"], deltas[twin][key]["delta"]
                per[key] = {"gain": g, "oracle_gain": o, "fraction": g / o if o > 0 else None}
        entry["seeds"][str(k)] = per
    for stem, entry in out.items():
        for key in ("accuracy", "tar_at_far_0.01"):
            seeds = [v[key] for v in entry["seeds"].values() if key in v]
            if not seeds:
                continue
            g = np.array([s["gain"] for s in seeds])
            o = np.array([s["oracle_gain"] for s in seeds])
            fr = np.array([s["fraction"] for s in seeds if s["fraction"] is not None], dtype=float)
            entry[key] = {
                "gain_mean": float(g.mean()), "oracle_gain_mean": float(o.mean()),
                "fraction_of_mean_gains": float(g.mean() / o.mean()) if o.mean() > 0 else None,
                "fraction_mean": float(fr.mean()) if len(fr) else None,
                "fraction_std": float(fr.std(ddof=1)) if len(fr) > 1 else (0.0 if len(fr) else None),
                "n": len(seeds),
            }  # fmt: skip
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"  # no hidden file, no '..'


def _seed(seed: int, *names: object) -> int:
    from augment.runtime import derive_seed

    return derive_seed(seed, "evaluate", *names) % (2**32)

