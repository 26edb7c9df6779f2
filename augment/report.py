"""The ``report`` stage: one self-contained ``report.html`` (images embedded) and ``report.md``.

Sections: config summary, dataset counts, stage timings, per attribute an edit
grid (input | +attribute | -attribute | mask), SaGAN training curves, the
edit-quality table, the recognition table beside the paper's values read off
its figures, and the ROC overlay. Every string that comes from data (names,
paths, config values) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image

from augment import manifest as mf
from augment.config import PipelineConfig, to_dict
from augment.io import write_atomic, write_bytes, write_text
from augment.names import component
from augment.stages import StageInputs, StageOutputs

log = logging.getLogger("augment.report")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.scroll{overflow-x:auto;margin:.6em 0} table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
img{max-width:100%} .muted{color:#777;font-size:.9em} pre{background:#f7f7f7;padding:.6em;overflow:auto}
"""


# --------------------------------------------------------------------------- #
# Small builders (HTML and Markdown side by side)
# --------------------------------------------------------------------------- #


class Doc:
    """Accumulates the same content as HTML and Markdown."""

    def __init__(self, title: str):
        self.title = title
        self.html: list[str] = []
        self.md: list[str] = [f"# {title}", ""]

    def h2(self, text: str) -> None:
        self.html.append(f"<h2>{html.escape(text)}</h2>")
        self.md += [f"## {text}", ""]

    def p(self, text: str, muted: bool = False) -> None:
        cls = ' class="muted"' if muted else ""
        self.html.append(f"<p{cls}>{html.escape(text)}</p>")
        self.md += [text, ""]

    def table(self, header: list[str], rows: Iterable[list[Any]]) -> None:
        rows = [[_fmt(c) for c in r] for r in rows]
        h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        # wide tables (the edit-quality one has 17 columns) scroll inside the page
        self.html.append(f'<div class="scroll"><table><tr>{h}</tr>{body}</table></div>')
        esc = [lambda s: s.replace("|", "\\|")][0]
        self.md += ["| " + " | ".join(esc(c) for c in header) + " |", "|" + "---|" * len(header)]
        self.md += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
        self.md.append("")

    def image(self, png: bytes, alt: str, md_path: str) -> None:
        b64 = base64.b64encode(png).decode()
        self.html.append(f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{b64}">')
        self.md += [f"![{alt}]({md_path})", ""]

    def render_html(self) -> str:
        body = "\n".join(self.html)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n")

    def render_md(self) -> str:
        return "\n".join(self.md) + "\n"


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if np.isnan(v):
            return "—"
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def _file_part(text: str) -> str:
    """``text`` as one safe file-name part: attribute names come from manifests,
    and a ``/`` or ``..`` in one must not place a file outside the report folder."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def grid(rows: list[list[np.ndarray]], pad: int = 2) -> Image.Image:
    """Tile rows of equally sized HxWx3 uint8 images into one picture."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            if im.ndim == 2:
                im = np.repeat(im[..., None], 3, axis=2)
            canvas[pad + i * (h + pad): pad + i * (h + pad) + h, pad + j * (w + pad): pad + j * (w + pad) + w] = im
    return Image.fromarray(canvas)


# --------------------------------------------------------------------------- #
# Sections
# --------------------------------------------------------------------------- #


def _config_section(doc: Doc, cfg: PipelineConfig) -> None:
    doc.h2("Configuration")
    d = to_dict(cfg)
    rows = [["name", cfg.name], ["seed", cfg.seed], ["device", cfg.device], ["stages", ", ".join(cfg.stages)]]
    # every key of the sections this pipeline's stages read (the read stage's section is data)
    for section in ("synth", "data", "align", "train_classifier", "train_sagan", "edit", "train_recognition",
                    "evaluate"):
        if ("read" if section == "data" else section) in cfg.stages:
            rows += [[key, value] for key, value in _flat(d[section], section)]
    doc.table(["key", "value"], rows)


def _flat(value: Any, key: str) -> list[tuple[str, Any]]:
    """A config section as (dotted key, value) rows; lists joined by commas."""
    if isinstance(value, dict):
        if not value:
            return [(key, "{}")]
        return [row for k, v in value.items() for row in _flat(v, f"{key}.{k}")]
    if isinstance(value, list):
        return [(key, ", ".join(str(v) for v in value))]
    return [(key, value)]


def _counts_section(doc: Doc, inputs: dict) -> None:
    doc.h2("Datasets")
    rows = []
    for key, label in (("source", "training images (read)"), ("eval_source", "evaluation images (read)"),
                       ("aligned", "aligned training images"), ("eval_aligned", "aligned evaluation images"),
                       ("rejects", "alignment rejects"), ("edits", "SaGAN edits")):
        m = inputs.get(key)
        if isinstance(m, mf.Manifest):
            ident = int(m.df["identity"].nunique()) if "identity" in m.df else None
            rows.append([label, len(m), ident])
    pairs = inputs.get("pairs")
    if isinstance(pairs, mf.Manifest):
        rows.append(["evaluation pairs", len(pairs), f"{int(pairs.df['fold'].nunique())} fold(s)"])
    doc.table(["set", "rows", "identities"], rows)
    rej = inputs.get("rejects")
    if isinstance(rej, mf.Manifest) and len(rej):
        doc.table(["reject reason", "count"], [[k, int(v)] for k, v in rej.df["reason"].value_counts().items()])


def _timings_section(doc: Doc, cfg: PipelineConfig) -> None:
    from augment.pipeline import states

    doc.h2("Stage timings")
    rows = []
    total = 0.0
    for name, state, marker in states(cfg):
        secs = marker.get("seconds") if marker else None
        if secs is not None and name != "report":
            total += secs
        if name == "report" and state == "interrupted":
            state = "running"  # this report is being written: its stage is not finished yet
        # seconds as text, so that every row has one decimal (numbers under 100 get four)
        rows.append([name, state, None if secs is None else f"{secs:.1f}",
                     marker.get("peak_rss_mib") if marker else None])
    rows.append(["total", "", f"{total:.1f}", None])
    doc.table(["stage", "state", "seconds", "peak RSS (MiB)"], rows)


def _edit_quality_section(doc: Doc, metrics_path: Path | None) -> None:
    if metrics_path is None or not Path(metrics_path).is_file():
        return
    metrics = json.loads(Path(metrics_path).read_text())
    doc.h2("Edit quality (test split)")
    cols = ["edit_success", "outside_change", "mask_area", "mask_iou", "mask_iou_relative", "psnr_vs_truth",
            "psnr_input_vs_truth", "psnr_region_gain", "smudge_accept", "id_preserved", "id_preserved_oracle",
            "id_similarity", "id_similarity_oracle", "classifier_accuracy"]
    present = [c for c in cols if any(isinstance(v, dict) and c in v for v in metrics.values())]
    rows = []
    for attr, v in metrics.items():
        if not isinstance(v, dict):
            continue
        by_direction = [(v.get(d) or {}).get("edit_success") for d in ("add", "remove")]
        rows.append([attr, *[v.get(c) for c in present], *by_direction])
    doc.table(["attribute", *present, "success add", "success remove"], rows)
    doc.p("edit_success: the independent attribute classifier agrees with the target value (add: images without "
          "the attribute edited to have it; remove: the reverse); outside_change: mean absolute change outside the "
          "true region (images on a [0,1] scale); mask_iou: IoU of mask > 0.5 with the true region, "
          "mask_iou_relative: of mask > half its maximum (where the mask looks, whatever its strength); "
          "psnr_vs_truth: the edit against the exact counterfactual (psnr_input_vs_truth: the unedited input "
          "against it); psnr_region_gain: PSNR inside the true region, edit vs truth minus input vs truth; smudge_accept: how "
          "often the judge takes a blurred dark patch on the true region for the attribute; id_preserved: the fraction "
          "of edits the baseline recognizer verifies as the same person at its LFW threshold (id_similarity: mean "
          "cosine), _oracle: the same for the exact counterfactuals, the ceiling. Mask and PSNR columns need "
          "SynthFaces' ground truth.", muted=True)


def _recognition_section(doc: Doc, metrics_path: Path | None, out_dir: Path | None = None) -> None:
    if metrics_path is None or not Path(metrics_path).is_file():
        return
    metrics = json.loads(Path(metrics_path).read_text())
    for name, protocol in (metrics.get("protocols") or {metrics.get("protocol", ""): metrics}).items():
        _protocol_section(doc, name, protocol)
    roc = Path(metrics_path).parent / "roc.png"
    if roc.is_file():
        png = roc.read_bytes()
        doc.image(png, "ROC overlay", "roc.png")
        if out_dir is not None:
            write_bytes(out_dir / "roc.png", png)


def _protocol_section(doc: Doc, protocol: str, metrics: dict) -> None:
    models = metrics.get("models", {})
    if not models:
        return
    doc.h2(f"Face recognition: baseline vs augmented ({protocol})")
    kind = next(iter(models.values())).get("accuracy_kind")
    if kind:
        doc.p(f"accuracy: {kind}", muted=True)
    deltas = metrics.get("deltas", {})
    rows = []
    for name, m in models.items():
        tar = m.get("tar_at_far", {})
        d = deltas.get(name, {})
        rows.append([
            name,
            f"{m.get('accuracy_mean', float('nan')):.4f} ± {m.get('accuracy_std', float('nan')):.4f}",
            tar.get("0.001"), tar.get("0.01"), tar.get("0.1"), m.get("auc"), m.get("eer"),
            _delta_text(d),
        ])
    doc.table(["model", "accuracy (mean ± std over folds)", "TAR@FAR=1e-3", "TAR@FAR=1e-2", "TAR@FAR=1e-1",
               "AUC", "EER", "delta vs baseline"], rows)
    paper = metrics.get("paper")
    if paper:
        doc.p("The paper's values, read off its ROC figures (about ±0.01), for comparison:")
        header = ["model", *sorted(next(iter(paper.values())).keys())]
        doc.table(header, [[k, *[v.get(h) for h in header[1:]]] for k, v in paper.items()])
    for note in metrics.get("notes", []):
        doc.p(note, muted=True)
    repeats = metrics.get("repeats")
    if repeats:
        n = max(r["seeds"] for r in repeats.values())
        doc.p(f"Over the {n} recognizer seeds (mean ± sample std; each augmented model is compared with the "
              "baseline trained from the same seed; 'higher' counts the seeds where it is above it):")
        rows = []
        for stem, r in repeats.items():
            d = r.get("deltas", {})
            rows.append([stem, r["seeds"], _spread(r["accuracy"]), _spread(r["tar_at_far_0.01"]),
                         _spread(d.get("accuracy"), signed=True), _spread(d.get("tar_at_far_0.01"), signed=True)])
        doc.table(["model", "seeds", "accuracy", "TAR@FAR=1e-2", "delta accuracy", "delta TAR@FAR=1e-2"], rows)
    _oracle_table(doc, metrics)
    _strata_table(doc, metrics)


def _oracle_table(doc: Doc, metrics: dict) -> None:
    """baseline / +SaGAN / +oracle side by side, and the SaGAN gain as a fraction of the oracle's."""
    fractions = metrics.get("oracle_fraction") or {}
    repeats = metrics.get("repeats") or {}
    if not fractions:
        return
    base = repeats.get(metrics.get("baseline", "baseline"), {})
    doc.p("Baseline, SaGAN edits and perfect edits (SynthFaces' exact counterfactuals of the same rows, the most "
          "that editing can buy), same steps and seeds; the SaGAN gain as a fraction of the oracle's (mean ± std of "
          "the per-seed fractions, and the ratio of the mean gains):")
    rows = []
    for stem, fr in fractions.items():
        sagan, oracle = repeats.get(stem, {}), repeats.get(f"{stem}:oracle", {})
        for key, label in (("accuracy", "accuracy"), ("tar_at_far_0.01", "TAR@FAR=1e-2")):
            f = fr.get(key) or {}
            frac = "" if f.get("fraction_mean") is None else f"{f['fraction_mean']:.2f} ± {f['fraction_std']:.2f}"
            ratio = "" if f.get("fraction_of_mean_gains") is None else f"{f['fraction_of_mean_gains']:.2f}"
            rows.append([stem, label, _spread(base.get(key)), _spread(sagan.get(key)), _spread(oracle.get(key)),
                         _spread((sagan.get("deltas") or {}).get(key), signed=True),
                         _spread((oracle.get("deltas") or {}).get(key), signed=True), frac, ratio])
    doc.table(["attribute", "metric", "baseline", "+SaGAN", "+oracle", "SaGAN gain", "oracle gain",
               "SaGAN / oracle (per seed)", "SaGAN / oracle (mean gains)"], rows)


def _strata_table(doc: Doc, metrics: dict) -> None:
    """The protocol's pairs split by whether the two photos share an attribute's value."""
    for attr, strata in (metrics.get("strata") or {}).items():
        names = [n for n in next(iter(strata.values()), {}).get("repeats", {})] or \
            [n for n in next(iter(strata.values()), {}).get("models", {})]
        if not names:
            continue
        doc.p(f"Pairs by {attr} (fraction decided right at the protocol's thresholds; mean ± std over seeds; "
              f"attributes: {metrics.get('strata_attributes', 'dataset')}):")
        rows = []
        for stratum, entry in strata.items():
            if entry.get("repeats"):
                cells = [_spread(entry["repeats"].get(n)) for n in names]
            else:
                cells = [entry.get("models", {}).get(n) for n in names]
            rows.append([stratum.replace("_", " "), entry.get("pairs"), *cells])
        doc.table(["pairs", "count", *names], rows)


def _spread(s: dict | None, signed: bool = False) -> str:
    if not s:
        return ""
    fmt = "+.4f" if signed else ".4f"
    text = f"{s['mean']:{fmt}} ± {s['std']:.4f}"
    if "higher" in s:
        text += f" (higher in {s['higher']} of {s['n']})"
    return text


def _delta_text(d: dict) -> str:
    if not d:
        return ""
    parts = []
    for key in ("accuracy", "tar_at_far_0.01"):
        if key in d:
            v = d[key]
            if isinstance(v, dict):
                txt = f"{key} {v.get('delta', float('nan')):+.4f}"
                if "p_value" in v:
                    txt += f" (p={v['p_value']:.3g})"
                parts.append(txt)
            else:
                parts.append(f"{key} {v:+.4f}")
    return "; ".join(parts) if parts else json.dumps(d, sort_keys=True)


def _curves_section(doc: Doc, run_dir: Path, generators: mf.Manifest | None) -> None:
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


# --------------------------------------------------------------------------- #
# Stage
# --------------------------------------------------------------------------- #


def build(cfg: PipelineConfig, inputs: dict, run_dir: Path, grids: dict[str, Image.Image] | None = None) -> Doc:
    doc = Doc(f"augment report: {cfg.name}")
    _counts_section(doc, inputs)
    _timings_section(doc, cfg)
    if grids:
        doc.h2("Edits (input | +attribute | -attribute | mask)")
        for attr, img in grids.items():
            name = component(f"grid_{_file_part(attr)}.png", "an edit-grid figure")
            write_atomic(run_dir / name, lambda tmp: img.save(tmp, format="PNG"))
            doc.p(attr)
            doc.image(_png(img), f"edit grid {attr}", name)
    gens = inputs.get("generators")
    _curves_section(doc, run_dir, gens if isinstance(gens, mf.Manifest) else None)
    _edit_quality_section(doc, inputs.get("sagan_metrics"))
    _recognition_section(doc, inputs.get("recognition_metrics"), run_dir)
    _config_section(doc, cfg)  # last: every key, one row each
    return doc


def grid_rows(df: pd.DataFrame, attribute: str, n: int) -> pd.DataFrame:
    """n held-out rows (the test split, else all) for an edit grid: the first half
    with ``attribute``, the second without, when both kinds are labelled (so the
    grid shows the attribute drawn and taken away); else n rows evenly spaced."""
    import pandas as pd

    from augment.sagan.data import attribute_labels

    pick = df[df["split"] == "test"]
    if pick.empty:
        pick = df

    def spaced(rows: pd.DataFrame, k: int) -> pd.DataFrame:
        return rows.iloc[:: max(1, len(rows) // max(k, 1))].iloc[:k]

    labels = attribute_labels(pick, attribute)
    with_, without = pick[labels == 1], pick[labels == 0]
    if n >= 2 and len(with_) and len(without):
        k = min(n // 2, len(with_))
        return pd.concat([spaced(with_, k), spaced(without, n - k)])
    return spaced(pick, n)


def edit_grids(cfg: PipelineConfig, aligned: mf.Manifest, generators: mf.Manifest, n: int) -> dict[str, Image.Image]:
    """Per attribute: rows of (input | +attribute | -attribute | mask) on held-out
    images, wearers first (``grid_rows``).

    Uses the same code path as the edit stage (one attention pass per image).
    """
    import torch

    from augment.edit import EditModels, edit_batch
    from augment.io import read_rgb, to_tensor, to_uint8
    from augment.runtime import resolve_device
    from augment.sagan.generators import load_generator

    device = resolve_device(cfg.device)
    grids = {}
    for _, g in generators.df.iterrows():
        pick = grid_rows(aligned.df, g["attribute"], n)
        if pick.empty:
            continue
        x = torch.stack([to_tensor(read_rgb(aligned.root / p)) for p in pick["path"]])
        G, _ = load_generator(generators.root / g["path"], g["attribute"], device)
        with torch.inference_mode():
            mask, edits = edit_batch(EditModels(g["attribute"], g["generator_id"], G, int(g["image_size"])),
                                     x.to(device), [1, 0])
        imgs = to_uint8(x)
        plus, minus = to_uint8(edits[1].cpu()), to_uint8(edits[0].cpu())
        m = (mask[:, 0].cpu().numpy() * 255).round().astype(np.uint8)
        grids[g["attribute"]] = grid([[imgs[i], plus[i], minus[i], m[i]] for i in range(len(imgs))])
    return grids


def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs:
    grids = {}
    faces = inputs.get("sagan_aligned", inputs.get("aligned"))  # the images eval_sagan judged
    if isinstance(faces, mf.Manifest) and isinstance(inputs.get("generators"), mf.Manifest):
        grids = edit_grids(cfg, faces, inputs["generators"], cfg.report.grid_images)
    doc = build(cfg, inputs, run_dir, grids)
    write_text(run_dir / "report.md", doc.render_md())
    out = run_dir / "report.html"
    write_text(out, doc.render_html())
    # A copy at the top of the workdir, where a user looks first.
    write_text(Path(cfg.workdir) / "report.html", doc.render_html())
    log.info("report: %s", out)
    return {"report": out}
