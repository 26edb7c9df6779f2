"""The report's figures drawn here: the SaGAN training curves, one per generator
(its ``metrics.jsonl``), critic / discriminator losses beside the generator's."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from augment import manifest as mf
from augment.fs import write_bytes
from augment.report.doc import Doc
from augment.names import component


def curves_section(doc: Doc, run_dir: Path, generators: mf.Manifest | None) -> None:
    if generators is None:
        return
    files = sorted(Path(generators.root).rglob("metrics.jsonl"))
    if not files:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc.h2("SaGAN training curves")
    for f in files:
        recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        if not recs:
            continue
        keys = [k for k in recs[-1] if k != "step" and isinstance(recs[-1][k], (int, float)) and not k.endswith("time")]
        steps = [r.get("step", i) for i, r in enumerate(recs)]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
        for k in keys:
            vals = [r.get(k, np.nan) for r in recs]
            ax = axes[0] if k.startswith(("loss_d", "d_", "critic", "gp")) else axes[1]
            ax.plot(steps, vals, label=k, lw=1)
        for ax, title in zip(axes, ("critic / discriminator", "generator")):
            ax.set_xlabel("generator step")
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=6)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        name = component(f"curves_{f.parent.name}.png", "a training-curve figure")
        write_bytes(run_dir / name, buf.getvalue())
        doc.p(f.parent.name)
        doc.image(buf.getvalue(), f"training curves {f.parent.name}", name)
