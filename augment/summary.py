"""``augment inspect``: a text summary of any manifest the pipelines write.

Every kind gets the same header (file, kind, root, rows); then what matters
for that kind: identities, splits, edits and score histograms for images;
reasons for rejects; folds and same/different counts for pairs; one line per
model for generators, classifiers and recognizers; the embedding size and
norms for embeddings; attributes for ground truth.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from augment import manifest as mf

SCORES = ("attr_prob", "id_similarity", "mask_area")


def histogram(values: np.ndarray, bins: int = 10, width: int = 40) -> list[str]:
    """Text histogram lines ``[lo, hi)  count  ####``."""
    values = values[np.isfinite(values)].astype(np.float64)  # float32 edges cannot split a range near 1e15
    if len(values) == 0:
        return ["  (no values)"]
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:  # one value: a bin width that is not lost to rounding, however large the value
        hi = lo + max(1e-6, abs(lo) * 1e-6)
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    return [
        f"  [{edges[i]:7.3f}, {edges[i + 1]:7.3f})  {c:7d}  {'#' * int(round(width * c / top))}"
        for i, c in enumerate(counts)
    ]


def _counts(series: pd.Series) -> str:
    vc = series.value_counts(dropna=False).sort_index()
    return ", ".join(f"{k}: {v}" for k, v in vc.items()) or "none"


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:.3f}"
    if isinstance(v, (list, np.ndarray)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _images(m: mf.Manifest) -> list[str]:
    df = m.df
    out = [
        f"identities   {df['identity'].nunique()}",
        "splits       " + _counts(df["split"]),
        "sources      " + _counts(df["source"]),
    ]
    edits = df[df["attribute"].notna()]
    if len(edits):
        out.append("edits per attribute and target value:")
        table = edits.groupby(["attribute", "target_value"]).size()
        for (attr, val), n in table.items():
            out.append(f"  {attr:<22} -> {int(val)}  {n:7d}")
    extra = m.meta.get("extra") or {}
    if extra.get("dropped"):
        out.append("rows dropped by filters: " + ", ".join(f"{k}: {v}" for k, v in extra["dropped"].items()))
    # an edit's scores mean different things per target (attr_prob near 1 is a
    # success when adding the attribute, near 0 when removing it): one histogram each
    groups = [("", df)] if not len(edits) else [
        (f" [{attr} -> {int(val)}]", g) for (attr, val), g in edits.groupby(["attribute", "target_value"])]
    for col in SCORES:
        for label, g in groups:
            vals = pd.to_numeric(g[col], errors="coerce").to_numpy(dtype=float)
            if np.isfinite(vals).any():
                out.append(f"{col}{label} (n={int(np.isfinite(vals).sum())}, mean {np.nanmean(vals):.3f}):")
                out.extend(histogram(vals))
    return out


def _rejects(m: mf.Manifest) -> list[str]:
    out = ["reasons      " + _counts(m.df["reason"])]
    for r in m.df.head(5).itertuples(index=False):
        out.append(f"  {r.path}: {r.reason} ({r.detail})")
    if len(m.df) > 5:
        out.append(f"  ... {len(m.df) - 5} more")
    return out


def _pairs(m: mf.Manifest) -> list[str]:
    df = m.df
    images = set(df["path_a"]) | set(df["path_b"])
    return [
        f"folds        {df['fold'].nunique()}",
        f"same         {int(df['same'].sum())}",
        f"different    {int((~df['same']).sum())}",
        f"images       {len(images)}",
    ]


def _groundtruth(m: mf.Manifest) -> list[str]:
    return ["attributes   " + _counts(m.df["attribute"]), f"images       {m.df['image'].nunique()}"]


def _table(m: mf.Manifest, columns: list[str]) -> list[str]:
    """One line per row: ``column=value`` for ``columns``."""
    return ["  " + "  ".join(f"{c}={_fmt(getattr(r, c))}" for c in columns) for r in m.df.itertuples(index=False)]


def _generators(m: mf.Manifest) -> list[str]:
    out = _table(m, ["attribute", "step", "preset", "image_size", "train_images", "train_positive",
                     "generator_id", "path"])
    align = (m.meta.get("extra") or {}).get("align")
    out.append(f"trained on    {json.dumps(align) if align else 'alignment not recorded'}")
    return out


def _classifiers(m: mf.Manifest) -> list[str]:
    out = []
    for r in m.df.itertuples(index=False):
        out.append(f"  {r.path}  step={r.step}  image_size={r.image_size}  eval={_fmt(r.eval_split)} "
                   f"({_fmt(r.eval_images)} images)")
        accs = r.accuracy if r.accuracy is not None else [None] * len(r.attributes)
        bals = r.balanced_accuracy if r.balanced_accuracy is not None else [None] * len(r.attributes)
        for a, acc, bal in zip(r.attributes, accs, bals):
            out.append(f"    {a:<22} accuracy {_fmt(acc)}  balanced {_fmt(bal)}")
    return out


def _recognizers(m: mf.Manifest) -> list[str]:
    return _table(m, ["name", "backbone", "head", "embedding_size", "image_size", "train_images", "identities",
                      "epochs", "steps", "path"])


def _embeddings(m: mf.Manifest) -> list[str]:
    if m.df.empty:
        return ["embedding    (none)"]
    emb = np.stack([np.asarray(e, dtype=np.float32) for e in m.df["embedding"]])
    norms = np.linalg.norm(emb, axis=1)
    return [f"dimensions   {emb.shape[1]}", f"norm         mean {norms.mean():.3f}, min {norms.min():.3f}, "
            f"max {norms.max():.3f}"]


KINDS = {"images": _images, "rejects": _rejects, "pairs": _pairs, "groundtruth": _groundtruth,
         "generators": _generators, "classifiers": _classifiers, "recognizers": _recognizers,
         "embeddings": _embeddings}


def summarize(m: mf.Manifest) -> str:
    out = [
        f"manifest     {m.file}",
        f"kind         {m.kind} (schema v{mf.SCHEMA_VERSION}, written by augment {m.meta.get('package_version', '?')})",
        f"root         {m.root}",
        f"rows         {len(m.df)}",
    ]
    return "\n".join(out + KINDS[m.kind](m))
