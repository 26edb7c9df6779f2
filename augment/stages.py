"""The stage registry: what each stage is called, runs, reads and writes.

A stage function has the signature

    run(cfg: PipelineConfig, inputs: dict[str, Manifest | Path], run_dir: Path) -> dict[str, Manifest | Path]

``inputs`` holds the outputs of the upstream stages it names, keyed by output
name: manifests, or paths of other files a stage wrote into its folder (such as
``metrics.json``), which the runner fingerprints the same way. ``run_dir`` is ``<workdir>/<stage>/``, where the stage may keep
partial work so that a rerun after an interrupt resumes. Only the runner
resolves paths and writes the returned manifests and the done marker.

Targets are import strings so that ``augment --help`` does not import torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Stage:
    name: str
    target: str | Callable  # "module:function" (imported on use), or the function itself
    sections: tuple[str, ...]  # config sections whose values the result depends on
    inputs: tuple[str, ...]  # upstream stages whose outputs it reads (when in the pipeline)
    outputs: tuple[str, ...]  # names of the manifests (or files) it may return
    help: str = ""
    distributed: bool = False  # runs on every rank under torchrun (DDP / sharding)

    def load(self) -> Callable:
        if callable(self.target):
            return self.target
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)


STAGES: dict[str, Stage] = {
    s.name: s
    for s in [
        Stage(
            "synth",
            "augment.data.synthfaces:run_stage",
            ("synth",),
            (),
            ("groundtruth",),
            "render SynthFaces (CelebA + LFW formats + counterfactual ground truth) when absent",
        ),
        Stage(
            "read",
            "augment.data.read:run_stage",
            ("data",),
            ("synth",),
            ("source", "eval_source", "pairs"),
            "read the training and evaluation datasets into source manifests",
        ),
        Stage(
            "align",
            "augment.align:run_stage",
            ("align", "data"),
            ("read",),
            ("aligned", "eval_aligned", "rejects"),
            "detect (MTCNN) or read landmarks, warp faces onto the template",
        ),
        Stage(
            "train_classifier",
            "augment.sagan.classifier:run_stage",
            ("train_classifier",),
            ("synth", "align"),
            ("classifiers",),
            "train the independent attribute classifier that judges edits",
        ),
        Stage(
            "train_sagan",
            "augment.sagan.train:run_stage",
            ("train_sagan",),
            ("align",),
            ("generators",),
            "train one SaGAN generator per attribute",
            distributed=True,
        ),
        Stage(
            "eval_sagan",
            "augment.sagan.evaluate:run_stage",
            ("eval_sagan",),
            # train_recognition and evaluate, when they run before it: identity
            # preservation with the baseline recognizer at the LFW threshold
            ("synth", "align", "train_classifier", "train_sagan", "train_recognition", "evaluate"),
            ("sagan_metrics",),
            "edit quality on the test split (success, outside change, mask IoU, PSNR)",
        ),
        Stage(
            "edit",
            "augment.edit:run_stage",
            ("edit",),
            ("align", "train_classifier", "train_sagan"),
            ("edits",),
            "edit every training image to each attribute value; quality scores and filters",
            distributed=True,
        ),
        Stage(
            "oracle",
            "augment.oracle:run_stage",
            (),
            ("synth", "align", "edit"),
            ("oracle_edits",),
            "SynthFaces only: the exact counterfactual of every edit row (the upper bound of editing)",
        ),
        Stage(
            "train_recognition",
            "recognition.train:run_stage",
            ("train_recognition",),
            ("align", "edit", "oracle"),
            ("recognizers",),
            "train the baseline and augmented face recognizers",
            distributed=True,
        ),
        Stage(
            "evaluate",
            "recognition.evaluate:run_stage",
            ("evaluate",),
            ("read", "align", "train_classifier", "train_recognition"),
            ("recognition_metrics",),
            "LFW-protocol accuracy, TAR@FAR and ROC; attr-shift pairs; CelebA identification ROC",
        ),
        Stage(
            "report",
            "augment.report:run_stage",
            ("report",),
            ("read", "align", "train_sagan", "eval_sagan", "edit", "evaluate"),
            ("report",),
            "report.html and report.md with tables, curves and edit grids",
        ),
    ]
}
