"""Evaluation output: the plain-text table, roc.png and metrics.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import augment.fs
from recognition import metrics as M


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
        # With several seeds per model, the first seed's curves (the others only crowd the plot).
        seed0 = {n: r for n, r in rocs.items() if "@" not in n} or rocs
        for name, roc in seed0.items():
            # FPR 0 cannot sit on a log axis: move those points just left of the
            # visible range so the curve still enters at the left edge.
            # (a '$' in a model name must not start matplotlib's math mode)
            ax.plot(np.maximum(roc.fpr, 1e-4), roc.tpr, label=name.replace("$", r"\$"), lw=1.5)
        ax.set_xscale("log")
        ax.set_xlim(1e-3, 1.0)
        ax.set_ylim(0.0, 1.01)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"ROC, {protocol}" + (" (first seed)" if len(seed0) < len(rocs) else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        augment.fs.write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110), suffix=".png")
    finally:
        plt.close(fig)
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
    """``data`` as ``path`` (NaN and infinities as null), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return augment.fs.write_json(path, _jsonable(data), sort_keys=False)


def bundle(results: list[dict]) -> dict:
    """metrics.json: the first protocol's result at the top level (models, deltas, ...)
    and every protocol's result under ``protocols``."""
    top = dict(results[0])
    top["protocols"] = {r["protocol"]: r for r in results}
    return top

