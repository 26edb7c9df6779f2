"""Learning curves of the shipped generators (docs/pretrained.md).

train_sagan keeps only its last two checkpoints; copy each one as it is
written into ``CKPTS/<Attribute>/step_XXXXXXX/`` while ``pipelines/pretrain.yaml``
runs. Each copy's exported average (G_ema) is then judged like eval_sagan on
the held-out test people of the run's aligned crops, by the run's attribute
classifier (learnt from other people), with the CPU-seconds spent up to that
step (from train_sagan's ``metrics.jsonl``).

    python -m benchmarks.pretrain_curves judge RUN CKPTS OUT.jsonl [EVERY_STEPS] [--half A|B]
    python -m benchmarks.pretrain_curves plot OUT.jsonl PNG [BEFORE.jsonl]

``judge --half A`` (or ``B``) judges the held-out people of one half only
(split by a hash of the identity): a checkpoint chosen by half A's curve is
then measured on half B, people its choice never saw.

``plot`` with ``BEFORE.jsonl`` (the curves of generators trained by an earlier
recipe, judged the same way) draws those dashed in each attribute's colour, so
two recipes are compared at equal steps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PANELS = [("add", "edit_success", "success adding"), ("remove", "edit_success", "success removing"),
          (None, "mask_in_region", "mask mass in the attribute's region")]


def half_of(identities, half: str):
    """Boolean mask: the rows whose identity falls in ``half`` ("A" or "B"), by
    the first byte of the identity's SHA-256 (stable across runs and machines)."""
    import hashlib

    import numpy as np

    in_a = np.array([hashlib.sha256(str(i).encode()).digest()[0] % 2 == 0 for i in identities])
    return in_a if half == "A" else ~in_a


def judge(run: Path, ckpts: Path, out: Path, every: int, half: str | None = None) -> None:
    """Append one line per checkpoint not judged yet: attribute, step, CPU-seconds,
    metrics (on ``half`` of the test people only, when given)."""
    import tempfile

    import torch

    from augment import manifest as mf
    from augment.pretrained.record import seconds_by_step
    from augment.sagan.evaluate import evaluate_attribute
    from augment.sagan.generators import export_generator

    aligned = mf.read(run / "align" / "aligned.parquet")
    if half is not None:
        keep = (aligned.df["split"] != "test") | half_of(aligned.df["identity"], half)
        aligned = mf.Manifest(aligned.kind, aligned.df[keep].reset_index(drop=True), aligned.root, aligned.meta,
                              aligned.file)
    classifiers = mf.read(run / "train_classifier" / "classifiers.parquet")
    done = set()
    if out.is_file():
        done = {(r["attribute"], r["step"]) for r in map(json.loads, out.read_text().splitlines())}
    for folder in sorted(ckpts.glob("*/step_*")):
        attribute, step = folder.parent.name, int(folder.name.split("_")[1])
        if step % every or (attribute, step) in done:
            continue
        log = (run / "train_sagan" / attribute / "metrics.jsonl").read_text()
        cpu = {step: c for step, c, _ in seconds_by_step(log)}
        with tempfile.TemporaryDirectory() as tmp:
            gen = export_generator(folder, Path(tmp) / "generator")
            metrics, _ = evaluate_attribute(attribute, gen, classifiers, aligned, None, "test", 0, 64,
                                            torch.device("cpu"), template="sagan")
        row = {"attribute": attribute, "step": step, "half": half, "cpu_s": round(cpu.get(step) or float("nan"), 1),
               "metrics": metrics}
        with open(out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{attribute} step {step}: add {metrics['add']['edit_success']:.2f} "
              f"remove {metrics['remove']['edit_success']:.2f}", flush=True)


def plot(out: Path, png: Path, before: Path | None = None) -> None:
    """One panel per quantity, one line per attribute, against training steps;
    ``before``'s curves dashed in the same colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def rows_of(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    rows, old = rows_of(out), rows_of(before) if before else []
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4), dpi=100)
    for ax, (direction, key, title) in zip(axes, PANELS):
        for i, attribute in enumerate(sorted({r["attribute"] for r in rows})):
            for series, style, label in ((rows, "-o", attribute), (old, "--", f"{attribute}, before")):
                mine = sorted((r for r in series if r["attribute"] == attribute), key=lambda r: r["step"])
                pts = [(r["step"], ((r["metrics"].get(direction) or {}) if direction else r["metrics"]).get(key))
                       for r in mine]
                pts = [(s, y) for s, y in pts if y is not None]
                if pts:
                    ax.plot(*zip(*pts), style, ms=3, color=f"C{i}", label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step (batch 16)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png)


def main(argv: list[str]) -> None:
    half = None
    if "--half" in argv:
        i = argv.index("--half")
        half, argv = argv[i + 1], argv[:i] + argv[i + 2:]
        if half not in ("A", "B"):
            raise SystemExit("--half takes A or B")
    if argv[:1] == ["judge"] and len(argv) in (4, 5):
        judge(Path(argv[1]), Path(argv[2]), Path(argv[3]), int(argv[4]) if len(argv) == 5 else 250, half)
    elif argv[:1] == ["plot"] and len(argv) in (3, 4):
        plot(Path(argv[1]), Path(argv[2]), Path(argv[3]) if len(argv) == 4 else None)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
