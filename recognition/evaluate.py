"""Recognition evaluation: protocols, model comparison, metrics.json and roc.png.

Two protocols, both scored with cosine similarity of flip-fused, L2-normalised
embeddings (see ``recognition.embed``):

- ``lfw``: the pairs of an LFW pairs file (View 2: 10 folds; View 1: one fold),
  accuracy by the LFW protocol, plus the ROC of all pairs pooled (the paper's
  figures): TAR at FAR 1e-3/1e-2/1e-1, AUC, EER.
- ``celeba-ident``: the paper's CelebA test protocol. For each test identity one
  seeded random image is the target and the others are queries; the ROC is that
  of all query x target scores (genuine when same identity). Its "accuracy" is
  rank-1 identification accuracy (mean and std over 10 identity-disjoint folds
  of the queries).

Each augmented model is compared with the baseline on the same pairs: McNemar's
exact test on the per-pair (LFW) or per-query (rank-1) decisions, and a paired
bootstrap (pairs, or queries with all their scores, resampled) for TAR@FAR, AUC
and EER.

The metric functions themselves live in ``recognition.metrics`` and take only
arrays; this module maps pairs to images, asks each model for embeddings, and
writes the results. Missing images, paths without an embedding and NaN
embeddings are errors, never skipped.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from augment import manifest as mf
from augment.data.errors import DatasetError
from recognition import metrics as M
from recognition.paper import paper_key, paper_values

log = logging.getLogger("augment.evaluate")

PROTOCOLS = ("lfw", "celeba-ident")


class ImageIndex:
    """Finds the row of an image from the path a pairs file (or a user) gives.

    ``frame`` columns: ``path`` (relative to the images root), ``file``
    (absolute), ``identity``; optional ``sample_id`` and ``source``. A key
    matches, in order: a ``path`` exactly; an aligned row whose ``sample_id`` is
    that of (its source, key), i.e. the original image of an aligned crop; a
    ``path`` differing only in the file extension.
    """

    def __init__(self, frame: pd.DataFrame, where: str, root: Path | None = None):
        self.frame = frame.reset_index(drop=True)
        self.where = where
        self.root = root  # the folder ``path`` is relative to (None for embedding tables)
        self._by_path = {p: i for i, p in enumerate(self.frame["path"])}
        self._by_sid: dict[str, int] = {}
        if "sample_id" in self.frame and "source" in self.frame:
            self._by_sid = {s: i for i, s in enumerate(self.frame["sample_id"]) if isinstance(s, str)}
            self._sources = sorted({s for s in self.frame["source"] if isinstance(s, str)})
        else:
            self._sources = []
        self._by_stem: dict[str, int] = {}
        for i, p in enumerate(self.frame["path"]):
            self._by_stem.setdefault(os.path.splitext(p)[0], i)

    def lookup(self, key: str) -> int | None:
        if key in self._by_path:
            return self._by_path[key]
        for src in self._sources:
            i = self._by_sid.get(mf.sample_id(src, key))
            if i is not None:
                return i
        return self._by_stem.get(os.path.splitext(key)[0])

    def rows(self, keys: Sequence[str], problem: str = "image(s) named by the protocol are not in") -> np.ndarray:
        """Row index of every key; an error naming the missing ones (count + first few)."""
        idx = [self.lookup(k) for k in keys]
        missing = [k for k, i in zip(keys, idx) if i is None]
        if missing:
            raise DatasetError(
                f"{len(missing)} {problem} {self.where}: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )
        return np.asarray(idx, dtype=np.int64)


def index_from_manifest(m: mf.Manifest, split: str | None = None) -> ImageIndex:
    df = m.df if split is None else m.df[m.df["split"] == split]
    frame = pd.DataFrame(
        {
            "path": df["path"].astype(str).to_numpy(),
            "file": [str(Path(m.root) / p) for p in df["path"]],
            "identity": df["identity"].to_numpy(),
            "sample_id": df["sample_id"].to_numpy(),
            "source": df["source"].to_numpy(),
            "split": df["split"].to_numpy(),
        }
    )
    return ImageIndex(frame, str(m.file or m.root), Path(m.root))


def index_from_tree(root: Path) -> ImageIndex:
    """An ``<identity>/<image>`` folder of aligned faces."""
    from augment.data import lfw

    tree = lfw.load_tree(root).frame
    frame = pd.DataFrame(
        {"path": tree["path"], "file": [str(Path(root) / p) for p in tree["path"]], "identity": tree["identity"]}
    )
    return ImageIndex(frame, str(root), Path(root))


# --------------------------------------------------------------------------- #
# Models as sources of embeddings
# --------------------------------------------------------------------------- #


@dataclass
class Model:
    """One model to evaluate: a checkpoint (embedded here) or a table of embeddings.

    ``attributes``: the attributes its training set was augmented with (for the
    paper's columns); ``baseline``: whether it is the baseline.
    """

    name: str
    checkpoint: Path | None = None
    table: Path | None = None
    attributes: tuple[str, ...] = ()
    backbone: str | None = None  # expected backbone of the checkpoint
    baseline: bool = False
    _table_index: ImageIndex | None = field(default=None, repr=False)
    _table_emb: np.ndarray | None = field(default=None, repr=False)

    def embed(self, keys: Sequence[str], images: ImageIndex | None, *, device="cpu", batch_size: int = 128,
              workers: int = 0, cache: Path | None = None) -> np.ndarray:
        """Unit embeddings ``(len(keys), E)`` of the images the keys name."""
        if self.table is not None:
            return self._embed_table(keys)
        if images is None:
            raise DatasetError(f"model '{self.name}' is a checkpoint: give --images (the aligned images to embed)")
        rows = images.frame.iloc[images.rows(keys)]
        return self._embed_checkpoint(rows, images.root, device, batch_size, workers, cache)

    def _embed_table(self, keys: Sequence[str]) -> np.ndarray:
        if self._table_index is None:
            frame, emb = read_embedding_table(self.table)
            self._table_index, self._table_emb = ImageIndex(frame, str(self.table)), emb
        rows = self._table_index.rows(keys, problem="image path(s) named by the protocol have no embedding in")
        return l2_normalize(self._table_emb[rows])

    def _embed_checkpoint(
        self, rows: pd.DataFrame, root: Path | None, device, batch_size, workers, cache: Path | None
    ) -> np.ndarray:
        from recognition.embed import embed_files, load_recognizer

        files = rows["file"].tolist()
        if cache is not None and cache.is_file():
            got = mf.read(cache, kind="embeddings").df
            have = dict(zip(got["path"], got["embedding"]))
            if all(p in have for p in rows["path"]):
                log.info("%s: %d embeddings reused from %s", self.name, len(rows), cache)
                return np.stack([np.asarray(have[p], dtype=np.float32) for p in rows["path"]])
        model, meta = load_recognizer(self.checkpoint, device, backbone=self.backbone)
        emb = embed_files(model, files, int(meta["image_size"]), batch_size, device, workers, desc=self.name)
        if cache is not None and root is not None:
            df = pd.DataFrame({"path": rows["path"].tolist(), "embedding": list(emb)})
            mf.write(mf.Manifest("embeddings", df, root), cache)
        return emb


def l2_normalize(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def read_embedding_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A Parquet file with columns ``path`` and ``embedding`` (list of floats):
    (frame with path and identity, embeddings ``(N, E)`` float32). An optional
    ``identity`` column is kept; otherwise identities are the paths' folders."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise DatasetError(f"{path}: not a readable Parquet file: {e}") from e
    missing = [c for c in ("path", "embedding") if c not in table.column_names]
    if missing:
        raise DatasetError(f"{path}: an embeddings file needs columns 'path' and 'embedding'; missing {missing}")
    df = table.to_pandas()
    if df["path"].isna().any():
        raise DatasetError(f"{path}: column 'path' has {int(df['path'].isna().sum())} empty value(s)")
    dup = df["path"][df["path"].duplicated()]
    if len(dup):
        raise DatasetError(f"{path}: {len(dup)} path(s) appear twice, e.g. {dup.iloc[0]}")
    lens = df["embedding"].map(lambda v: -1 if v is None else len(v))
    if (lens <= 0).any() or lens.nunique() != 1:
        bad = df["path"][lens != lens.max()].head(3).tolist()
        raise DatasetError(f"{path}: embeddings must all have the same non-zero length; check {bad}")
    emb = np.stack([np.asarray(v, dtype=np.float32) for v in df["embedding"]])
    from recognition.embed import check_finite

    check_finite(emb, df["path"].tolist(), source=str(path))
    if "identity" in df:
        ident = df["identity"].to_numpy()
    else:
        ident = df["path"].map(lambda p: str(Path(p).parent)).to_numpy()
    frame = pd.DataFrame({"path": df["path"].astype(str), "file": df["path"].astype(str), "identity": ident})
    return frame, emb


# --------------------------------------------------------------------------- #
# Protocols
# --------------------------------------------------------------------------- #


@dataclass
class Protocol:
    """What to score: image keys, and either pairs (lfw) or identities (celeba-ident)."""

    name: str
    keys: list[str]
    idx_a: np.ndarray | None = None
    idx_b: np.ndarray | None = None
    same: np.ndarray | None = None
    folds: np.ndarray | None = None
    identities: np.ndarray | None = None
    seed: int = 0


def lfw_protocol(pairs: pd.DataFrame) -> Protocol:
    """From a pairs frame (fold, path_a, path_b, same)."""
    if len(pairs) == 0:
        raise DatasetError("the pairs file has no pairs")
    keys = sorted(set(pairs["path_a"]) | set(pairs["path_b"]))
    pos = {k: i for i, k in enumerate(keys)}
    return Protocol(
        "lfw", keys,
        idx_a=pairs["path_a"].map(pos).to_numpy(np.int64), idx_b=pairs["path_b"].map(pos).to_numpy(np.int64),
        same=pairs["same"].to_numpy(bool), folds=pairs["fold"].to_numpy(np.int64),
    )  # fmt: skip


def ident_protocol(keys: Sequence[str], identities: Sequence, seed: int) -> Protocol:
    if len(keys) == 0:
        raise DatasetError("no images for the identification protocol")
    return Protocol("celeba-ident", list(keys), identities=np.asarray(identities), seed=seed)


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
    if protocol.name == "lfw":
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
) -> tuple[dict, dict[str, M.Roc]]:
    """Score every model on ``protocol``; the first baseline (or the first model) is the reference.

    Returns (result dict: protocol, baseline, models, deltas, paper, notes; ROC per model).
    """
    if not models:
        raise DatasetError("no models to evaluate")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise DatasetError(f"two models share a name: {names}; name them NAME=PATH")
    base = next((m for m in models if m.baseline), models[0])
    scored: dict[str, Scored] = {}
    for m in models:
        cache = cache_dir / f"{_safe(m.name)}.parquet" if cache_dir is not None else None
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
    for m in models:
        ref = reference_name(m.name, base.name, scored)
        if ref != m.name:
            result["deltas"][m.name] = compare(scored[ref], scored[m.name], bootstrap, _seed(seed, m.name))
            if ref != base.name:
                result["deltas"][m.name]["reference"] = ref
        key = paper_key(m.name, m.attributes, is_baseline=m.name == base.name)
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


DELTA_KEYS = ("accuracy", "tar_at_far_0.001", "tar_at_far_0.01", "tar_at_far_0.1", "auc")


def over_repeats(result: dict) -> dict:
    """With models trained from several seeds (``X``, ``X@1``, ...): per model the
    mean and sample std over its seeds of accuracy and TAR@FAR, and of each
    delta to the same-seed baseline with the number of seeds where it is > 0.
    Empty when every model has one seed."""
    groups: dict[str, list[str]] = {}
    for name in result["models"]:
        groups.setdefault(split_repeat(name)[0], []).append(name)
    if all(len(v) < 2 for v in groups.values()):
        return {}

    def spread(values: list[float]) -> dict:
        a = np.asarray(values, dtype=float)
        return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)}

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


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def _seed(seed: int, *names: object) -> int:
    from augment.runtime import derive_seed

    return derive_seed(seed, "evaluate", *names) % (2**32)


# --------------------------------------------------------------------------- #
# Output: table, metrics.json, roc.png
# --------------------------------------------------------------------------- #


def format_table(result: dict) -> str:
    """A plain-text table: each model, its delta to the baseline, the paper's values."""
    base = result["baseline"]
    head = ["model", "accuracy", "TAR@1e-3", "TAR@1e-2", "TAR@1e-1", "AUC", "EER",
            "d acc (p)", "d TAR@1e-2 [95% CI]", "paper TAR 1e-3/1e-2/1e-1"]  # fmt: skip
    rows = []
    for name, m in result["models"].items():
        tar = m["tar_at_far"]
        d = result["deltas"].get(name)
        dacc = dtar = "-" if name == base else ""
        if d:
            dacc = f"{d['accuracy']['delta']:+.4f} ({d['accuracy']['p_value']:.2g})"
            t = d["tar_at_far_0.01"]
            ci = f" [{t['ci95'][0]:+.3f},{t['ci95'][1]:+.3f}]" if "ci95" in t else ""
            dtar = f"{t['delta']:+.4f}{ci}"
        p = result["paper"].get(name)
        paper = "/".join(f"{p[f'tar_at_far_{k}']:.3g}" for k in ("0.001", "0.01", "0.1")) if p else ""
        rows.append([name, f"{m['accuracy_mean']:.4f}±{m['accuracy_std']:.4f}", f"{tar['0.001']:.4f}",
                     f"{tar['0.01']:.4f}", f"{tar['0.1']:.4f}", f"{m['auc']:.4f}", f"{m['eer']:.4f}",
                     dacc, dtar, paper])  # fmt: skip
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    n_pairs = next(iter(result["models"].values())).get("pairs", 0)
    out = [f"protocol {result['protocol']} ({n_pairs} pairs); baseline: {base}", line(head),
           line(["-" * w for w in widths]), *map(line, rows)]  # fmt: skip
    out += [f"note: {n}" for n in result["notes"]]
    return "\n".join(out)


def plot_roc(curves: dict[str, dict[str, M.Roc]], path: Path) -> Path:
    """roc.png: TPR vs FPR on a log axis from 1e-3 to 1, one curve per model, one panel per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4.5), squeeze=False)
    for ax, (protocol, rocs) in zip(axes[0], curves.items()):
        for name, roc in rocs.items():
            # FPR 0 cannot sit on a log axis: move those points just left of the
            # visible range so the curve still enters at the left edge.
            ax.plot(np.maximum(roc.fpr, 1e-4), roc.tpr, label=name, lw=1.5)
        ax.set_xscale("log")
        ax.set_xlim(1e-3, 1.0)
        ax.set_ylim(0.0, 1.01)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"ROC, {protocol}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_json(data: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=False))
    os.replace(tmp, path)
    return path


def bundle(results: list[dict]) -> dict:
    """metrics.json: the first protocol's result at the top level (models, deltas, ...)
    and every protocol's result under ``protocols``."""
    top = dict(results[0])
    top["protocols"] = {r["protocol"]: r for r in results}
    return top


# --------------------------------------------------------------------------- #
# The pipeline stage
# --------------------------------------------------------------------------- #


def run_stage(cfg, inputs: dict, run_dir: Path) -> dict:
    """``evaluate``: every trained recognizer on each configured protocol.

    Inputs: ``recognizers`` (train_recognition), and per protocol ``eval_aligned``
    + ``pairs`` (lfw) or ``aligned`` (celeba-ident: its ``evaluate.ident_split``
    rows). Writes metrics.json, roc.png and the embeddings it computed
    (``embeddings/<protocol>/<model>.parquet``, reused on a rerun).
    """
    from augment.runtime import derive_seed, resolve_device

    ecfg = cfg.evaluate
    recognizers = inputs.get("recognizers")
    if recognizers is None:
        raise DatasetError("evaluate needs the train_recognition stage's recognizers")
    models = models_from_recognizers(recognizers)
    device = resolve_device(cfg.device)
    results, curves = [], {}
    for name in ecfg.protocols:
        protocol, images = stage_protocol(name, inputs, ecfg, derive_seed(cfg.seed, "evaluate", name) % 2**32)
        result, rocs = evaluate_models(
            protocol, models, images, bootstrap=ecfg.bootstrap, seed=cfg.seed, device=device,
            batch_size=ecfg.batch_size, cache_dir=run_dir / "embeddings" / name,
        )  # fmt: skip
        log.info("\n%s", format_table(result))
        results.append(result)
        curves[name] = rocs
    plot_roc(curves, run_dir / "roc.png")
    return {"recognition_metrics": write_json(bundle(results), run_dir / "metrics.json")}


def stage_protocol(name: str, inputs: dict, ecfg, seed: int) -> tuple[Protocol, ImageIndex]:
    if name == "lfw":
        if "eval_aligned" not in inputs or "pairs" not in inputs:
            raise DatasetError(
                "evaluate: protocol 'lfw' needs the aligned evaluation images and their pairs; "
                "configure data.eval with a pairs file and run read + align"
            )
        images = index_from_manifest(inputs["eval_aligned"])
        _explain_rejects(inputs["pairs"].df, images, inputs.get("rejects"))
        return lfw_protocol(inputs["pairs"].df), images
    if name == "celeba-ident":
        if "aligned" not in inputs:
            raise DatasetError("evaluate: protocol 'celeba-ident' needs the align stage's 'aligned' images")
        images = index_from_manifest(inputs["aligned"], split=ecfg.ident_split)
        if len(images.frame) == 0:
            raise DatasetError(f"evaluate: no aligned images in split '{ecfg.ident_split}' for 'celeba-ident'")
        return ident_protocol(images.frame["path"].tolist(), images.frame["identity"].to_numpy(), seed), images
    raise DatasetError(f"evaluate: unknown protocol '{name}' (known: {', '.join(PROTOCOLS)})")


def _explain_rejects(pairs: pd.DataFrame, images: ImageIndex, rejects: mf.Manifest | None) -> None:
    """Name the pairs' images that the align stage rejected, with its reasons (never skip them)."""
    keys = sorted(set(pairs["path_a"]) | set(pairs["path_b"]))
    missing = [k for k in keys if images.lookup(k) is None]
    if not missing:
        return
    by_sid = {}
    if rejects is not None and len(rejects):
        by_sid = dict(zip(rejects.df["sample_id"], rejects.df["reason"]))
    sources = images._sources or ["lfw"]

    def reason(key: str) -> str:
        found = [by_sid[sid] for sid in (mf.sample_id(src, key) for src in sources) if sid in by_sid]
        return found[0] if found else "not aligned"

    shown = ", ".join(f"{k} ({reason(k)})" for k in missing[:5])
    raise DatasetError(
        f"{len(missing)} image(s) named by the pairs have no aligned face: {shown}"
        f"{' ...' if len(missing) > 5 else ''}. Every pair must be scored: lower align.min_prob / "
        "align.min_face, or check those images"
    )


def models_from_recognizers(recognizers: mf.Manifest) -> list[Model]:
    df = recognizers.df
    return [
        Model(
            name=r.name, checkpoint=Path(recognizers.root) / r.path, backbone=r.backbone,
            attributes=tuple(r.attributes if r.attributes is not None else ()), baseline=r.name == "baseline",
        )  # fmt: skip
        for r in df.itertuples()
    ]


# --------------------------------------------------------------------------- #
# The command line's entry: models given as paths
# --------------------------------------------------------------------------- #


def resolve_models(spec: str, role: str) -> list[Model]:
    """``[NAME=]PATH`` -> models. PATH: a Parquet of embeddings, a recognizer
    checkpoint folder, a ``recognizers`` manifest, or a workdir / train_recognition
    folder holding one (baseline: its model named 'baseline'; augmented: the others).
    """
    name = None
    if "=" in spec and not Path(spec).exists():
        name, spec = spec.split("=", 1)
    path = Path(spec)
    if not path.exists():
        raise DatasetError(f"--{role} {spec}: no such file or folder")
    is_base = role == "baseline"
    if path.is_file():
        if _is_recognizers(path):
            return _pick(models_from_recognizers(mf.read(path, kind="recognizers")), role, name, path)
        return [Model(name or path.stem, table=path, baseline=is_base)]
    if (path / "meta.json").is_file():
        meta = json.loads((path / "meta.json").read_text())
        attrs = tuple(meta.get("attributes") or ())
        return [Model(name or meta.get("name") or path.name, checkpoint=path, attributes=attrs, baseline=is_base)]
    for cand in (path / "recognizers.parquet", path / "train_recognition" / "recognizers.parquet"):
        if cand.is_file():
            return _pick(models_from_recognizers(mf.read(cand, kind="recognizers")), role, name, cand)
    raise DatasetError(
        f"--{role} {spec}: not an embeddings Parquet file, a recognizer checkpoint folder (meta.json) "
        "or a run folder with train_recognition/recognizers.parquet"
    )


def _is_recognizers(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # noqa: BLE001 - not Parquet: read_embedding_table reports it
        return False
    return meta.get(b"augment.kind") == b"recognizers"


def _pick(models: list[Model], role: str, name: str | None, where: Path) -> list[Model]:
    if role == "baseline":
        picked = [m for m in models if m.name == "baseline"]
        if not picked:
            raise DatasetError(f"--baseline: {where} has no model named 'baseline' ({[m.name for m in models]})")
    else:
        picked = [m for m in models if m.name != "baseline"]
        if not picked:
            raise DatasetError(f"--augmented: {where} has no augmented models, only {[m.name for m in models]}")
    if name:
        if len(picked) > 1:
            raise DatasetError(f"NAME={where}: it holds {len(picked)} models; name a single checkpoint instead")
        picked[0].name = name
    for m in picked:
        m.baseline = role == "baseline"
    return picked


def load_images(images: Path | None) -> ImageIndex | None:
    if images is None:
        return None
    if images.is_file():
        return index_from_manifest(mf.read(images, kind="images"))
    return index_from_tree(images)


def load_pairs(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return mf.read(path, kind="pairs").df
    from augment.data import lfw

    return lfw.read_pairs(path)


def cli_protocol(
    protocol: str, pairs: Path | None, images: ImageIndex | None, models: Sequence[Model], split: str, seed: int
) -> tuple[Protocol, ImageIndex | None]:
    """The protocol of ``augment evaluate``: lfw from --pairs; celeba-ident from
    --images (its ``split`` rows when it is a manifest) or the first embeddings file."""
    if protocol == "lfw":
        if pairs is None:
            raise DatasetError("--protocol lfw needs --pairs (an LFW pairs file or a pairs manifest)")
        return lfw_protocol(load_pairs(pairs)), images
    if images is not None:
        frame = images.frame
        if "split" in frame and (frame["split"] == split).any():
            frame = frame[frame["split"] == split]
        return ident_protocol(frame["path"].tolist(), frame["identity"].to_numpy(), seed), images
    table = next((m.table for m in models if m.table is not None), None)
    if table is None:
        raise DatasetError("--protocol celeba-ident needs --images (aligned test images) or an embeddings file")
    frame, _ = read_embedding_table(table)
    return ident_protocol(frame["path"].tolist(), frame["identity"].to_numpy(), seed), images


def evaluate_command(
    baseline: str,
    augmented: Iterable[str],
    pairs: Path | None,
    images: Path | None,
    protocol: str = "lfw",
    out: Path = Path("runs/evaluate"),
    bootstrap: int = 1000,
    seed: int = 0,
    split: str = "test",
    device: str = "auto",
    batch_size: int = 128,
) -> dict:
    """What ``augment evaluate`` does; returns the metrics it wrote to ``out``."""
    from augment.runtime import resolve_device

    models = resolve_models(baseline, "baseline")
    for spec in augmented:
        models += resolve_models(spec, "augmented")
    proto, index = cli_protocol(protocol, pairs, load_images(images), models, split, _seed(seed, protocol))
    result, rocs = evaluate_models(proto, models, index, bootstrap=bootstrap, seed=seed,
                                   device=resolve_device(device), batch_size=batch_size)  # fmt: skip
    out = Path(out)
    result["roc_png"] = str(plot_roc({protocol: rocs}, out / "roc.png"))
    write_json(result, out / "metrics.json")
    return result

