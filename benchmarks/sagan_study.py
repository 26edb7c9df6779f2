"""SaGAN recipes compared at equal CPU-seconds (docs/sagan_ablation.md, "CPU budget").

On a finished run's SynthFaces folders (synth, read, align, train_classifier:
``augment run pipelines/demo.yaml --until train_classifier``), each candidate
recipe trains one Eyeglasses generator per seed on one thread, keeps every
checkpoint with this process's CPU-seconds when it was written, and stops
at the first checkpoint past the budget. Every checkpoint's exported average
(G_ema, else G) is then judged like eval_sagan: the run's attribute judge on
the SynthFaces test faces, against their exact counterfactuals.

BASE may also be a real-face run (read, align, train_classifier of
``pipelines/pretrain.yaml``: celeba-aligned-10k split by identity, the judge
trained on other people): it has no counterfactuals, so its checkpoints are
judged on the held-out people's success per direction and the template-region
figures only (pass ``train_sagan.attributes=[Eyeglasses] train_sagan.parallel=1``
there, its config trains four).

    python -m benchmarks.sagan_study train BASE OUT NAME SEED BUDGET_CPU_S [KEY=VALUE ...]
    python -m benchmarks.sagan_study judge BASE OUT
    python -m benchmarks.sagan_study strength BASE OUT BUDGET_CPU_S STRENGTH [STRENGTH ...]
    python -m benchmarks.sagan_study plot OUT PNG [NAME ...]
    python -m benchmarks.sagan_study grids BASE OUT BUDGET_CPU_S PNG RUN [RUN ...]
    python -m benchmarks.sagan_study table OUT [BUDGET_CPU_S ...]
    python -m benchmarks.sagan_study patches BASE [ATTRIBUTE ...]

``--results NAME`` (judge, plot, table): OUT/NAME instead of OUT/results.jsonl,
to judge the same checkpoints by another base's judge (one trained with other
smudges) and keep both verdicts.

``patches``: how easily the base's judge is fooled where no edit is, on the
held-out faces without glasses: the share it takes for glasses with dark
patches over the eyes, or patches of colour noise (``judge.smudge_accept``).

``KEY=VALUE`` are ``--set`` overrides (``train_sagan.objective=hinge``); pin a
run to a core with ``taskset -c K`` for steady timings.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path


def _inputs(base: Path) -> dict:
    from augment import manifest as mf

    return {"aligned": mf.read(base / "align" / "aligned.parquet"),
            "classifiers": mf.read(base / "train_classifier" / "classifiers.parquet")}


@functools.lru_cache(maxsize=None)
def _judging_inputs(base: Path) -> tuple[dict, object]:
    """The base's manifests and SynthFaces ground truth (None for a real-face base),
    read once per process."""
    from augment import manifest as mf

    gt = base / "synth" / "groundtruth.parquet"
    return _inputs(base), mf.read(gt) if gt.is_file() else None


def _judged(base: Path, checkpoint: str, strengths: tuple[float, ...] = (1.0,)) -> list[tuple[dict, object]]:
    """(metrics, eval grid) of a training checkpoint's exported generator (G_ema,
    else G), judged like eval_sagan on the base's SynthFaces test faces against
    their counterfactuals, once per test-time strength."""
    import tempfile

    import torch

    from augment.align.dataset import alignment_of
    from augment.sagan.evaluate import evaluate_attribute
    from augment.sagan.generators import export_generator

    inputs, gt = _judging_inputs(base)
    template = (alignment_of(inputs["aligned"]) or {}).get("template", "arcface")  # the demo's, when unrecorded
    with tempfile.TemporaryDirectory() as tmp:
        gen = export_generator(Path(checkpoint), Path(tmp) / "generator")
        return [evaluate_attribute("Eyeglasses", gen, inputs["classifiers"], inputs["aligned"], gt, "test", 0, 64,
                                   torch.device("cpu"), template=template, strength=s) for s in strengths]


def train(base: Path, out: Path, name: str, seed: int, budget: float, sets: list[str]) -> None:
    """One run: train_sagan's stage on the base's aligned images, every checkpoint kept."""
    from augment.sagan import train as T
    from augment.sagan import trainstate
    from augment.validate import load_config

    cfg = load_config(base / "config.yaml", [f"seed={seed}", "device=cpu", "train_sagan.threads=1",
                                              "train_sagan.g_ema=0.999", *sets], check_paths=False)
    run_dir = out / f"{name}_s{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "study.json").write_text(json.dumps({"name": name, "seed": seed, "budget_cpu_s": budget,
                                                    "sets": sets}, indent=1))
    log = run_dir / "cpu_at_checkpoint.jsonl"
    trainstate.KEEP_CHECKPOINTS = 10_000  # the study judges every one
    save = trainstate.save_checkpoint

    def timed_save(state, ckpt_dir, meta):
        path = save(state, ckpt_dir, meta)
        cpu = time.process_time()
        with open(log, "a") as fh:
            fh.write(json.dumps({"step": state.step, "cpu_s": round(cpu, 2), "checkpoint": str(path)}) + "\n")
        if cpu >= budget:
            raise SystemExit(0)  # the budget is spent: the checkpoints so far are the run
        return path

    T.save_checkpoint = timed_save  # train() looks it up in its module
    T.run_stage(cfg, _inputs(base), run_dir / "train_sagan")


def judge(base: Path, out: Path, results_name: str = "results.jsonl") -> None:
    """Judge every checkpoint not judged yet by BASE's judge; results appended to
    OUT/``results_name`` (another name keeps another judge's verdicts apart)."""
    results = out / results_name
    done = set()
    if results.is_file():
        done = {json.loads(line)["checkpoint"] for line in results.read_text().splitlines()}
    for log in sorted(out.glob("*/cpu_at_checkpoint.jsonl")):
        study = json.loads((log.parent / "study.json").read_text())
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            if rec["checkpoint"] in done or not Path(rec["checkpoint"]).is_dir():
                continue
            [(metrics, _)] = _judged(base, rec["checkpoint"])
            row = {**study, **rec, "metrics": metrics}
            with open(results, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{study['name']} s{study['seed']} step {rec['step']} cpu {rec['cpu_s']:.0f}s: "
                  f"success {metrics.get('edit_success')} add {metrics.get('add', {}).get('edit_success')} "
                  f"remove {metrics.get('remove', {}).get('edit_success')}", flush=True)


def strength(base: Path, out: Path, budget: float, strengths: list[float]) -> None:
    """Test-time strength (``edit.strength``): each run's last checkpoint within
    ``budget`` judged with the mask scaled by each strength (clipped at 1); rows
    appended to OUT/strength.jsonl, one per run and strength."""
    for log in sorted(out.glob("*/cpu_at_checkpoint.jsonl")):
        study = json.loads((log.parent / "study.json").read_text())
        recs = [r for r in map(json.loads, log.read_text().splitlines()) if r["cpu_s"] <= budget]
        if not recs or not Path(recs[-1]["checkpoint"]).is_dir():
            continue
        rec = recs[-1]
        for s, (metrics, _) in zip(strengths, _judged(base, rec["checkpoint"], tuple(strengths))):
            with open(out / "strength.jsonl", "a") as fh:
                fh.write(json.dumps({**study, **rec, "strength": s, "metrics": metrics}) + "\n")
            print(f"{study['name']} s{study['seed']} strength {s}: add {metrics['add']['edit_success']:.2f} "
                  f"remove {metrics['remove']['edit_success']:.2f} gain {metrics.get('psnr_region_gain')}",
                  flush=True)


def grids(base: Path, out: Path, budget: float, png: Path, runs: list[str]) -> None:
    """Side by side, each run's (``<name>_s<seed>``) eval_sagan grid at its last
    checkpoint within ``budget``: input | edit | truth | mask | true region per
    row, the first rows adding glasses and the last removing them."""
    from augment.io import save_png, tile

    panels = []
    for run in runs:
        recs = [json.loads(line) for line in (out / run / "cpu_at_checkpoint.jsonl").read_text().splitlines()]
        rec = [r for r in recs if r["cpu_s"] <= budget][-1]
        [(_, grid)] = _judged(base, rec["checkpoint"])
        panels.append(grid)
        print(f"{run}: step {rec['step']}, {rec['cpu_s']:.0f} CPU-s", flush=True)
    save_png(tile([panels], pad=8), png)  # one row of panels, 8 white pixels apart


def patches(base: Path, attribute: str = "Eyeglasses") -> dict:
    """The base's judge on its held-out ``test`` faces without ``attribute``, as
    they are and with patches over its place, dark or of colour noise: what
    ``judge.held_out_smudges`` gives train_classifier's metrics.json, with the
    base's seed."""
    from augment.sagan.judge import classifier_from_manifest, held_out_smudges
    from augment.sagan.judged import heldout_rows
    from augment.validate import load_config

    inputs, _ = _judging_inputs(base)
    clf, _ = classifier_from_manifest(inputs["classifiers"], attribute)
    seed = load_config(base / "config.yaml", [], check_paths=False).seed
    df, _ = heldout_rows(inputs["aligned"], "test", attribute, 0)
    rates = held_out_smudges(clf, df, inputs["aligned"], [attribute], clf.cfg.image_size, seed)[attribute]
    print(f"{attribute}: {rates['smudge_images']} held-out faces without it; the judge says present on: "
          f"clean {rates['clean_accept']:.3f}, dark patches {rates['smudge_accept']:.3f}, "
          f"colour-noise patches {rates['noise_accept']:.3f}")
    return rates


def plot(out: Path, png: Path, only: list[str] | None = None, results_name: str = "results.jsonl") -> None:
    """Success per direction, region PSNR gain and the mask's mass inside the true
    region against CPU-seconds, one line per run (of the recipes in ``only``, when given).
    On a real-face base (no truth): success, ``novel_colour`` per direction (the
    colours an edit brought that the face did not have) and the template region's mask mass."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (out / results_name).read_text().splitlines()]
    rows = [r for r in rows if not only or r["name"] in only]
    names = sorted({r["name"] for r in rows})
    keys = [("add", "edit_success", "success adding glasses"), ("remove", "edit_success", "success removing glasses"),
            (None, "psnr_region_gain", "region PSNR gain (dB)"),
            (None, "mask_in_true_region", "mask mass in the true region")]
    if all(r["metrics"].get("mask_in_true_region") is None for r in rows):  # a real-face base: no truth to compare with
        keys = keys[:2] + [("add", "novel_colour", "new colours adding glasses"),
                           ("remove", "novel_colour", "new colours removing glasses"),
                           (None, "mask_in_region", "mask mass in the template region")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.6), dpi=100)
    colours = dict(zip(names, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, (direction, key, title) in zip(axes, keys):
        for (name, seed) in sorted({(r["name"], r["seed"]) for r in rows}):
            mine = sorted((r for r in rows if r["name"] == name and r["seed"] == seed), key=lambda r: r["cpu_s"])
            ys = [(r["metrics"].get(direction) or {}).get(key) if direction else r["metrics"].get(key) for r in mine]
            pts = [(r["cpu_s"], y) for r, y in zip(mine, ys) if y is not None]
            if pts:
                ax.plot(*zip(*pts), "-o", ms=3, color=colours[name], label=name if seed == min(
                    s for n, s in {(r["name"], r["seed"]) for r in rows} if n == name) else None)
        ax.set_title(title)
        ax.set_xlabel("CPU-seconds (one thread)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png)


def table(out: Path, budgets: list[float], results_name: str = "results.jsonl") -> str:
    """Markdown: per recipe and CPU budget, the mean (min-max over seeds) of success
    adding and removing glasses and the region PSNR gain, each run's last checkpoint
    written within the budget; a run without one counts as missing there."""
    import statistics

    rows = [json.loads(line) for line in (out / results_name).read_text().splitlines()]
    lines = ["| recipe | CPU-s | seeds | success add | success remove | region PSNR gain (dB) | steps |",
             "|---|---|---|---|---|---|---|"]
    for name in sorted({r["name"] for r in rows}):
        for budget in budgets:
            last = {}
            for r in rows:
                if r["name"] == name and r["cpu_s"] <= budget and r["cpu_s"] >= last.get(r["seed"], {}).get("cpu_s", -1):
                    last[r["seed"]] = r
            if not last:
                continue

            def cell(get) -> str:
                vals = [v for v in (get(r["metrics"]) for r in last.values()) if v is not None]
                if not vals:
                    return "n/a"
                return f"{statistics.mean(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})"

            steps = "/".join(str(last[s]["step"]) for s in sorted(last))
            lines.append(f"| {name} | {budget:.0f} | {len(last)} | {cell(lambda m: m['add']['edit_success'])} | "
                         f"{cell(lambda m: m['remove']['edit_success'])} | {cell(lambda m: m.get('psnr_region_gain'))} "
                         f"| {steps} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    results_name = "results.jsonl"  # --results NAME: judge, plot and table use OUT/NAME instead
    if "--results" in argv:
        i = argv.index("--results")
        results_name = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    cmd = argv[0]
    if cmd == "train":
        train(Path(argv[1]), Path(argv[2]), argv[3], int(argv[4]), float(argv[5]), argv[6:])
    elif cmd == "judge":
        judge(Path(argv[1]), Path(argv[2]), results_name)
    elif cmd == "strength":
        strength(Path(argv[1]), Path(argv[2]), float(argv[3]), [float(v) for v in argv[4:]])
    elif cmd == "grids":
        grids(Path(argv[1]), Path(argv[2]), float(argv[3]), Path(argv[4]), argv[5:])
    elif cmd == "plot":
        plot(Path(argv[1]), Path(argv[2]), argv[3:], results_name)
    elif cmd == "patches":
        for attribute in argv[2:] or ["Eyeglasses"]:
            patches(Path(argv[1]), attribute)
    elif cmd == "table":
        print(table(Path(argv[1]), [float(b) for b in argv[2:]] or [150.0, 300.0, 450.0], results_name))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
