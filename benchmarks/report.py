"""benchmarks/RESULTS.md from benchmarks/results.json (and results_gpu.json when present)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import HERE, RESULTS_JSON, RESULTS_MD, SECTIONS

GPU_JSON = HERE / "results_gpu.json"

# (section, path to the comparison, what, target ratio)
COMPARISONS = [
    ("edit", (), "edit: decode, both values, PNG (img/s)", 2.0),
    ("align", (), "align: photos aligned (img/s)", 2.0),
    ("align_command", (), "augment align vs a plain script, whole commands (s)", 2.0),
    ("sagan_step", ("fast",), "SaGAN step, fast preset (s/step)", 1.3),
    ("sagan_step", ("paper",), "SaGAN step, paper preset 128 px (s/step)", 1.3),
]


def fmt(s: dict | None, digits: int = 2) -> str:
    """'median (min-max) unit' of a summary."""
    if not s:
        return "-"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f}) {s['unit']}"


def _get(data: dict, section: str, path: tuple) -> dict | None:
    d = data.get(section)
    for k in path:
        d = None if d is None else d.get(k)
    return d if isinstance(d, dict) and "ratio" in d else None


def _machine(data: dict) -> dict:
    for s in SECTIONS:
        if isinstance(data.get(s), dict) and "machine" in data[s]:
            return data[s]["machine"]
    return {}


def tables(data: dict) -> list[str]:
    out = ["| comparison | ours | reference | ratio | target | met |", "|---|---|---|---|---|---|"]
    for section, path, what, target in COMPARISONS:
        c = _get(data, section, path)
        if c is None:
            skipped = (data.get(section) or {}).get("skipped")
            out.append(f"| {what} | - | - | - | >= {target}x | {'skipped: ' + skipped if skipped else 'not measured'} |")
            continue
        met = "yes" if c["ratio"] >= target else "no"
        out.append(f"| {what} | {fmt(c['ours'])} | {fmt(c['reference'])} | {c['ratio']:.2f}x | >= {target}x | {met} |")
    e = data.get("edit")
    if e and "flop_efficiency" in e:
        met = "yes" if e["flop_efficiency"] >= 0.6 else "no"
        out.append(f"| generator forward / fp32 matmul GFLOP/s | {fmt(e['generator_gflops'], 1)} | "
                   f"{fmt(e['matmul_gflops'], 1)} | {e['flop_efficiency']:.2f} | >= 0.6 | {met} |")
    out.append("")
    if e and e.get("flop_efficiency", 0) > 1:
        out += [f"Note: an efficiency above 1 ({e['flop_efficiency']:.2f}) is not physical; the matmul runs met "
                "more load from other jobs than the generator runs. Read it as noise around the true value.", ""]
    if e and "max_abs_diff" in e:
        out.append(f"Edit outputs: max |ours - reference| = {e['max_abs_diff']:.2e} over the edits and masks of "
                   f"{e['images']} images (bound 1e-4: {'met' if e['max_abs_diff'] <= 1e-4 else 'NOT met'}); "
                   f"the PNGs differ by at most {e.get('png_max_abs_diff', '-')} 8-bit level(s). "
                   f"Generator: {e['generator_gflop_per_image']:.2f} GFLOP per image (2 x conv MACs).")
        out.append("")

    s = data.get("sagan_step")
    if s and "fast" in s:
        out += ["### SaGAN training step (3 critic + 1 generator update)", "",
                "| preset | image | batch | GFLOP/step | ours | plain | ours GFLOP/s | plain GFLOP/s | first-step loss diff |",
                "|---|---|---|---|---|---|---|---|---|"]
        for preset in ("fast", "paper"):
            r = s.get(preset)
            if r:
                out.append(f"| {preset} | {r['image_size']} px | {r['batch']} | {r['gflop_per_step']:.1f} | "
                           f"{fmt(r['ours'])} | {fmt(r['reference'])} | {fmt(r['ours_gflops'], 1)} | "
                           f"{fmt(r['reference_gflops'], 1)} | {r['first_step_loss_diff']:.1e} |")
        out.append("")

    r = data.get("recognition")
    if r:
        out += ["### Recognition", "", "| setting | train (wall) | train (per CPU-s) | embed (wall) | embed (per CPU-s) |",
                "|---|---|---|---|---|"]
        for key, v in r.items():
            if isinstance(v, dict) and "train_per_s" in v:
                out.append(f"| {key} | {fmt(v['train_per_s']['wall'], 0)} | {fmt(v['train_per_s']['cpu'], 0)} | "
                           f"{fmt(v['embed_per_s']['wall'], 0)} | {fmt(v['embed_per_s']['cpu'], 0)} |")
        out += [f"Batch {r.get('train_batch', 64)} (train), {r.get('embed_batch', 128)} (embed), "
                f"{r.get('threads')} torch threads.", ""]

    d = data.get("demo")
    if d and "stages" in d:
        out += [f"### End to end: `{d['pipeline']}`, {fmt(d['wall'], 1)} per run (process start included)", "",
                "| stage | wall | peak RSS |", "|---|---|---|"]
        for name, v in d["stages"].items():
            scope = "" if v.get("peak_rss_scope") == "stage" else " (process peak so far)"
            out.append(f"| {name} | {fmt(v['seconds'])} | {fmt(v['peak_rss_mib'], 0)}{scope} |")
        out += ["Peak RSS is the main process's (reset before each stage); worker processes are not included.", ""]

    m = data.get("memory")
    if m:
        out += ["### Memory scaling (fresh process per point; RSS of the process and its workers, sampled every 20 ms)",
                "", "| stage | 1x inputs | peak 1x | 4x inputs | peak 4x | 4x / 1x |", "|---|---|---|---|---|---|"]
        for stage in ("align", "edit"):
            v = m.get(stage)
            if not v:
                continue
            if "skipped" in v:
                out.append(f"| {stage} | skipped: {v['skipped']} | | | | |")
                continue
            out.append(f"| {stage} | {v['1x']['inputs']} | {fmt(v['1x']['tree_peak_mib'], 0)} | {v['4x']['inputs']} | "
                       f"{fmt(v['4x']['tree_peak_mib'], 0)} | {v['growth_4x_over_1x']:.2f} |")
        out.append("")
    return out


def write_report(results: Path = RESULTS_JSON) -> Path:
    data = json.loads(Path(results).read_text()) if Path(results).is_file() else {}
    if Path(results).resolve() != RESULTS_JSON.resolve():  # a GPU run: its figures go in the same report
        data = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
    mach = _machine(data)
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (`python -m benchmarks`) from `benchmarks/results.json`; do not edit by hand.",
        "",
        f"- CPU: {mach.get('cpu', '?')}, {mach.get('cores', '?')} cores available; torch {mach.get('torch', '?')}, "
        f"Python {mach.get('python', '?')}.",
        "- Load average at the start of each section (the benchmark alone keeps the cores busy; above the core "
        "count means other work shared the machine): " + ", ".join(
            f"{s} {data[s]['load_average']}" for s in SECTIONS
            if isinstance(data.get(s), dict) and "load_average" in data[s]) + ". "
        "Ratios (both sides measured interleaved in one process run) are the figures to trust.",
        "- Every figure: median (min-max) of at least 3 runs. OMP_WAIT_POLICY=PASSIVE for both sides.",
        "",
    ]
    e, s, a = data.get("edit", {}), data.get("sagan_step", {}), data.get("align", {})
    sizes = []
    if "images" in e:
        sizes.append(f"edit: {e['images']} images at 128 px, paper preset, random init (the issue's 512 images take "
                     f"`--edit-images 512`; the reference alone runs at ~{e['reference']['median']:.1f} img/s here)")
    if "images" in a:
        sizes.append(f"align: the first {a['images']} CelebA in-the-wild photos")
    if "paper" in s:
        pb = s["paper"]["batch"]
        sizes.append(f"sagan_step: fast preset at batch {s['fast']['batch']}, paper preset at batch {pb}"
                     + ("" if pb == 16 else " (`--paper-batch 16` for the paper's batch)"))
    if sizes:
        lines += ["Sizes (chosen so that `make bench` stays under 20 minutes on 2 cores): " + "; ".join(sizes) + ".", ""]
    lines += ["## CPU", ""] + tables(data)
    lines += ["## GPU", ""]
    if GPU_JSON.is_file():
        gpu = json.loads(GPU_JSON.read_text())
        card = _machine(gpu).get("cuda", "?")
        lines += [f"Measured by `benchmarks/gpu.sh` on {card} (bf16 autocast, channels_last, torch.compile, "
                  "larger batches for ours; references plain).", ""] + tables(gpu)
    else:
        lines += ["Not measured yet: no GPU was available. `benchmarks/gpu.sh` measures the same figures on a CUDA "
                  "machine (bf16 autocast, channels_last, torch.compile, larger batches) and records the card.", ""]
    RESULTS_MD.write_text("\n".join(lines) + "\n")
    return RESULTS_MD


if __name__ == "__main__":
    print(write_report())
