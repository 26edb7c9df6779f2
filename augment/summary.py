"""``augment inspect``: a text summary of an images manifest."""

from __future__ import annotations

import numpy as np
import pandas as pd

from augment import manifest as mf

SCORES = ("attr_prob", "id_similarity", "mask_area")


def histogram(values: np.ndarray, bins: int = 10, width: int = 40) -> list[str]:
    """Text histogram lines ``[lo, hi)  count  ####``."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return ["  (no values)"]
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        hi = lo + 1e-6
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    return [
        f"  [{edges[i]:7.3f}, {edges[i + 1]:7.3f})  {c:7d}  {'#' * int(round(width * c / top))}"
        for i, c in enumerate(counts)
    ]


def summarize(m: mf.Manifest) -> str:
    df = m.df
    out = [
        f"manifest     {m.file}",
        f"kind         {m.kind} (schema v{mf.SCHEMA_VERSION}, written by augment {m.meta.get('package_version', '?')})",
        f"root         {m.root}",
        f"rows         {len(df)}",
        f"identities   {df['identity'].nunique()}",
        "splits       " + ", ".join(f"{k}: {v}" for k, v in df["split"].value_counts().sort_index().items()),
        "sources      " + ", ".join(f"{k}: {v}" for k, v in df["source"].value_counts().sort_index().items()),
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
    for col in SCORES:
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(vals).any():
            out.append(f"{col} (n={int(np.isfinite(vals).sum())}, mean {np.nanmean(vals):.3f}):")
            out.extend(histogram(vals))
    return "\n".join(out)
