"""What a shipped generator's JSON says beyond its checkpoint metadata: how it was
trained, how well it edits, under which licence. Pure functions of the JSON and
YAML a finished run wrote (standard library only; ``augment.trained.ship``
reads the files and writes the result).
"""

from __future__ import annotations

import json
from pathlib import PurePath

# CelebA's agreement (mmlab.ie.cuhk.edu.hk/projects/CelebA.html) allows
# non-commercial research purposes only; weights learnt from it are shipped
# under the same restriction. Short: it is a column of ``augment generators``.
LICENCE = "non-commercial research only (CelebA's terms)"

# eval_sagan's figures kept per attribute and per direction (augment/sagan/evaluate.py
# and judged.py say what each means); the rest of metrics.json stays in the run.
QUALITY_KEYS = ("images", "edit_success", "id_kept", "id_distance", "id_preserved", "mask_area",
                "outside_change_mask", "outside_change_region", "mask_in_region", "novel_colour")


def quality(metrics: dict) -> dict:
    """The ``quality`` block from one attribute's entry of eval_sagan's metrics.json:
    overall and per direction (``add``: 0 -> 1, ``remove``: 1 -> 0) figures, the
    split they were measured on, the judge's own accuracy and which model judged what."""
    def pick(block: dict) -> dict:
        return {k: block[k] for k in QUALITY_KEYS if block.get(k) is not None}

    out = {k: metrics[k] for k in ("split", "classifier_accuracy", "judges") if metrics.get(k) is not None}
    out.update(pick(metrics))
    for direction in ("add", "remove"):
        out[direction] = pick(metrics.get(direction) or {})
    return out


def seconds_by_step(metrics_jsonl: str) -> list[tuple[int, float | None, float]]:
    """(step, CPU-seconds, wall-seconds) of training up to each line of one
    generator's ``metrics.jsonl`` (``step_cpu_s`` and ``step_time_s`` are per step
    since the line before; augment/sagan/progress.py); CPU-seconds None when the
    log does not record them. CPU time counts every thread of the training process."""
    out: list[tuple[int, float | None, float]] = []
    cpu, wall, last, recorded = 0.0, 0.0, 0, False
    for line in metrics_jsonl.splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        steps = int(rec["step"]) - last
        last = int(rec["step"])
        if "step_cpu_s" in rec:
            cpu += float(rec["step_cpu_s"]) * steps
            recorded = True
        wall += float(rec.get("step_time_s", 0.0)) * steps
        out.append((last, cpu if recorded else None, wall))
    return out


def hours(metrics_jsonl: str) -> dict:
    """CPU-hours and wall-hours of one generator's training (``seconds_by_step``'s
    last line): ``{"cpu_hours", "wall_hours"}``, None when the log does not record them."""
    spent = seconds_by_step(metrics_jsonl)
    if not spent:
        return {"cpu_hours": None, "wall_hours": None}
    _, cpu, wall = spent[-1]
    return {"cpu_hours": round(cpu / 3600, 4) if cpu is not None else None, "wall_hours": round(wall / 3600, 4)}


def training(config: dict, row: dict, meta: dict, people: int | None, spent: dict) -> dict:
    """The ``training`` block: the dataset (format, the root's folder name, split and
    alignment from the run's config.yaml; data.sagan when set, else data.train), the
    people and images of its train split, steps, seed, the hours of ``hours``, the
    thread count and device asked for, and the pipeline's name and config hash."""
    data = config.get("data") or {}
    ds = data.get("sagan") or data.get("train") or {}
    sagan = config.get("train_sagan") or {}
    return {
        "dataset": {"format": ds.get("format"), "name": PurePath(str(ds.get("root") or "")).name,
                    "split": ds.get("split"), "align": ds.get("align"), "max_images": ds.get("max_images")},
        "split": "train", "people": people, "images": row.get("train_images"), "positive": row.get("train_positive"),
        "steps": meta.get("step"), "seed": meta.get("seed"), **spent,
        "threads": sagan.get("threads"), "device": config.get("device"),
        "pipeline": config.get("name"), "config_hash": meta.get("config_hash"),
    }
