"""The report's figures drawn here: the SaGAN training curves, one figure per
generator (its ``metrics.jsonl``), one small plot per quantity, each on its
own scale (critic / discriminator quantities first, then the generator's).
Quantities that share a unit and a meaning share a plot: the critic's scores
of real and fake images, the two classification accuracies. Timing figures
(seconds per step, images per second) are left out: they are the machine's,
not the training's."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from augment import manifest as mf
from augment.fs import write_bytes
from augment.names import component
from augment.report.doc import Doc

COLUMNS = 5
# quantities drawn together: (title, keys)
SHARED = [("critic score (real, fake)", ("d_real", "d_fake")), ("accuracy (D on real, G on fake)",
                                                                 ("d_acc_real", "g_acc_fake"))]
TIMING = ("step_time_s", "step_cpu_s", "images_per_s")


def panels(keys: list[str]) -> list[tuple[str, list[str]]]:
    """The plots of a curve file: (title, keys), critic quantities first; a key in one plot only."""
    out, used = [], set()
    for title, group in SHARED:
        present = [k for k in group if k in keys]
        if len(present) > 1:
            out.append((title, present))
            used.update(present)
    out += [(k, [k]) for k in keys if k not in used]
    return sorted(out, key=lambda p: not p[1][0].startswith(("d_", "critic", "gp", "wasserstein")))


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
    doc.p("One plot per quantity, each on its own scale, against the generator step.", muted=True)
    for f in files:
        recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        if not recs:
            continue
        keys = [k for k in recs[-1] if k != "step" and isinstance(recs[-1][k], (int, float))
                and not k.endswith("time") and k not in TIMING]
        steps = [r.get("step", i) for i, r in enumerate(recs)]
        plots = panels(keys)
        rows = max(1, math.ceil(len(plots) / COLUMNS))
        fig, axes = plt.subplots(rows, COLUMNS, figsize=(12, 1.9 * rows), squeeze=False)
        for ax, (title, group) in zip(axes.flat, plots):
            for k in group:
                ax.plot(steps, [r.get(k, np.nan) for r in recs], lw=1, label=k)
            ax.set_title(title, fontsize=8)
            ax.tick_params(labelsize=6)
            if len(group) > 1:
                ax.legend(fontsize=6, frameon=False)
        for ax in list(axes.flat)[len(plots):]:
            ax.axis("off")
        fig.tight_layout(pad=0.6)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        name = component(f"curves_{f.parent.name}.png", "a training-curve figure")
        write_bytes(run_dir / name, buf.getvalue())
        doc.h3(f.parent.name)
        doc.image(buf.getvalue(), f"training curves {f.parent.name}", name)
