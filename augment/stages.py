"""The stage contract and the registry: what each stage is called, runs, reads and writes.

A stage is one function of type ``StageFn``::

    def run_stage(cfg: PipelineConfig, inputs: StageInputs, run_dir: Path) -> StageOutputs

plus one ``Stage`` entry in ``STAGES`` below, declared with keywords:

- ``name``: its name in a pipeline's ``stages`` list and its folder ``<workdir>/<name>/``.
- ``target``: ``"module:function"``, imported only when the stage runs, so that
  ``augment --help`` does not import torch.
- ``sections``: the config sections its result depends on; the runner
  fingerprints those sections only, so editing another one does not rerun it.
- ``inputs``: outputs of earlier stages it cannot run without. The runner
  refuses, naming the stage, a pipeline in which no earlier stage makes one of
  them, and a run in which that stage is not done.
- ``uses``: outputs of earlier stages it reads when this pipeline makes them
  (eval_sagan measures identity with the recognizers when train_recognition
  runs before it).
- ``outputs``: ``{output name: kind}``, the manifest kind of each output
  (``augment.manifest.SCHEMAS``) or ``"file"`` for a file the stage wrote into
  ``run_dir`` itself (``metrics.json``). Output names are unique across all
  stages (checked at import), so an input name says which stage makes it.
- ``optional_outputs``: the outputs it returns only under some config (the
  evaluation set's manifests without ``data.eval``); every other declared
  output must be returned, and nothing undeclared may be.
- ``distributed``: every rank runs it under torchrun (DDP or sharded rows).
- ``continues``: ``(old config, new config) -> bool``, given the config sections
  its finished run recorded and those asked for now: True when the new result
  is the old run carried on (more training steps), so the runner keeps its
  folder, checkpoints included, instead of starting over.

``inputs`` (of ``StageInputs``) holds exactly the declared inputs and uses that
this pipeline made: manifests, or the paths of files. ``run_dir`` is
``<workdir>/<stage>/``, where the stage may keep partial work so that a rerun
after an interrupt resumes. Only the runner (``augment.pipeline``) resolves
paths, writes the returned manifests and the done marker.

A new stage's config goes in ONE place: a frozen dataclass section in
``augment/config/sections.py``, added as a field of ``PipelineConfig`` under the
stage's name and listed in its ``sections``; its range checks go in
``augment/validate.py`` (docs/ARCHITECTURE.md, "Adding a stage").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Union

from augment.manifest import SCHEMAS

if TYPE_CHECKING:
    from augment.config import PipelineConfig
    from augment.manifest import Manifest

FILE = "file"  # the kind of an output that is a file the stage wrote, not a manifest

StageInputs = dict[str, Union["Manifest", Path]]
StageOutputs = dict[str, Union["Manifest", Path]]
StageFn = Callable[["PipelineConfig", StageInputs, Path], StageOutputs]


class StageContractError(Exception):
    """A stage declared or used against the contract (a programming error, not the user's)."""


@dataclass(frozen=True, kw_only=True)
class Stage:
    name: str
    target: str | StageFn  # "module:function" (imported on use), or the function itself
    sections: tuple[str, ...]  # config sections whose values the result depends on
    outputs: Mapping[str, str]  # output name -> manifest kind, or FILE
    inputs: tuple[str, ...] = ()  # outputs of earlier stages it needs
    uses: tuple[str, ...] = ()  # outputs of earlier stages it reads when the pipeline makes them
    optional_outputs: tuple[str, ...] = ()  # declared outputs returned only under some config
    help: str = ""
    distributed: bool = False  # runs on every rank under torchrun (DDP / sharding)
    continues: Callable[[dict, dict], bool] | None = None  # keeps a finished run's work when True

    def __post_init__(self) -> None:
        for out, kind in self.outputs.items():
            if kind != FILE and kind not in SCHEMAS:
                raise StageContractError(f"stage '{self.name}': output '{out}' has an unknown kind '{kind}' "
                                         f"(manifest kinds: {', '.join(SCHEMAS)}, or '{FILE}')")
        stray = set(self.optional_outputs) - set(self.outputs)
        if stray:
            raise StageContractError(f"stage '{self.name}': optional outputs {sorted(stray)} are not in its outputs")

    def load(self) -> StageFn:
        if callable(self.target):
            return self.target
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)


def producers(stages: Iterable[Stage]) -> dict[str, str]:
    """``{output name: the stage that makes it}``; an output name made by two stages is an error."""
    made: dict[str, str] = {}
    for s in stages:
        for out in s.outputs:
            if out in made:
                raise StageContractError(f"output '{out}' is declared by both '{made[out]}' and '{s.name}'")
            made[out] = s.name
    return made


def _steps_apart(section: dict) -> tuple[dict, dict[str, int]]:
    """A train_sagan section (as JSON) without its step counts, and each
    attribute's step count (``per_attribute``'s where it sets one)."""
    per = {a: dict(r) for a, r in (section.get("per_attribute") or {}).items()}
    steps = {a: (per.get(a, {}).get("steps") or section.get("steps", 0)) for a in section.get("attributes", [])}
    others = {a: {k: v for k, v in r.items() if k != "steps" and v is not None} for a, r in per.items()}
    rest = {**section, "steps": None, "per_attribute": {a: r for a, r in others.items() if r}}
    return rest, steps


def more_sagan_steps(old: dict, new: dict) -> bool:
    """train_sagan asks for more steps (of every attribute, or of some through
    ``per_attribute``) and nothing else changed, under a constant learning rate:
    then the longer run is the shorter one continued from its last checkpoint
    (resume is exact), so a generator can be trained longer across sessions. A
    decaying lr depends on the step count, so it starts over."""
    (o_rest, o_steps), (n_rest, n_steps) = _steps_apart(old.get("train_sagan", {})), \
        _steps_apart(new.get("train_sagan", {}))
    return (o_rest == n_rest and n_steps != o_steps and all(n_steps[a] >= o_steps.get(a, 0) for a in n_steps)
            and new.get("train_sagan", {}).get("lr_decay_from", 1.0) >= 1.0)


STAGES: dict[str, Stage] = {
    s.name: s
    for s in [
        Stage(
            name="synth",
            target="augment.data.synthfaces.stage:run_stage",
            sections=("synth",),
            outputs={"groundtruth": "groundtruth"},
            help="render SynthFaces (CelebA + LFW formats + counterfactual ground truth) when absent",
        ),
        Stage(
            name="read",
            target="augment.data.stage:run_stage",
            sections=("data",),
            uses=("groundtruth",),  # a SynthFaces dataset rendered by this pipeline
            outputs={"source": "images", "eval_source": "images", "pairs": "pairs", "sagan_source": "images"},
            # with data.eval (pairs: when it has a pairs file); sagan_source with data.sagan
            optional_outputs=("eval_source", "pairs", "sagan_source"),
            help="read the training and evaluation datasets into source manifests",
        ),
        Stage(
            name="align",
            target="augment.align.stage:run_stage",
            sections=("align", "data"),
            inputs=("source",),
            uses=("eval_source", "sagan_source"),
            outputs={"aligned": "images", "eval_aligned": "images", "rejects": "rejects", "sagan_aligned": "images"},
            optional_outputs=("eval_aligned", "sagan_aligned"),
            help="detect (MTCNN) or read landmarks, warp faces onto the template",
        ),
        Stage(
            name="train_classifier",
            target="augment.sagan.classifier:run_stage",
            sections=("train_classifier",),
            inputs=("aligned",),
            # counterfactuals (train_classifier.counterfactuals); data.sagan's images in place of aligned
            uses=("groundtruth", "sagan_aligned"),
            outputs={"classifiers": "classifiers"},
            help="train the independent attribute classifier that judges edits",
        ),
        Stage(
            name="train_sagan",
            target="augment.sagan.train:run_stage",
            sections=("train_sagan",),
            inputs=("aligned",),
            uses=("sagan_aligned",),  # data.sagan's images in place of aligned
            outputs={"generators": "generators"},
            help="train one SaGAN generator per attribute",
            distributed=True,
            continues=more_sagan_steps,
        ),
        Stage(
            name="eval_sagan",
            target="augment.sagan.evaluate:run_stage",
            # report: report.grid_images, the rows of the edit grids it draws for the report
            sections=("eval_sagan", "report"),
            inputs=("aligned", "classifiers", "generators"),
            # the recognizers and their metrics when train_recognition and evaluate run
            # before it: identity preservation with the baseline at the LFW threshold;
            # data.sagan's images in place of aligned
            uses=("groundtruth", "recognizers", "recognition_metrics", "sagan_aligned"),
            outputs={"sagan_metrics": FILE, "sagan_grids": FILE},
            help="edit quality on the test split (success, outside change, mask IoU, PSNR); the report's edit grids",
        ),
        Stage(
            name="edit",
            target="augment.edit:run_stage",
            sections=("edit",),
            inputs=("aligned",),
            # or models trained earlier, from edit.generators / edit.classifier
            # (augment/validate.py makes sure generators come from one of the two)
            uses=("classifiers", "generators"),
            outputs={"edits": "images"},
            help="edit every training image to each attribute value; quality scores and filters",
            distributed=True,
        ),
        Stage(
            name="oracle",
            target="augment.oracle:run_stage",
            sections=(),
            inputs=("aligned", "edits", "groundtruth"),
            outputs={"oracle_edits": "images"},
            help="SynthFaces only: the exact counterfactual of every edit row (the upper bound of editing)",
        ),
        Stage(
            name="train_recognition",
            target="recognition.train:run_stage",
            sections=("train_recognition",),
            inputs=("aligned",),
            uses=("edits", "oracle_edits"),
            outputs={"recognizers": "recognizers"},
            help="train the baseline and augmented face recognizers",
            distributed=True,
        ),
        Stage(
            name="evaluate",
            target="recognition.evaluate:run_stage",
            sections=("evaluate",),
            inputs=("recognizers",),
            # per protocol (recognition/evaluate.py): eval_aligned + pairs (lfw),
            # eval_aligned (attr-shift; classifiers for predicted values), aligned (celeba-ident)
            uses=("aligned", "eval_aligned", "rejects", "eval_source", "pairs", "classifiers"),
            outputs={"recognition_metrics": FILE},
            help="LFW-protocol accuracy, TAR@FAR and ROC; attr-shift pairs; CelebA identification ROC",
        ),
        Stage(
            name="report",
            target="augment.report.stage:run_stage",
            sections=("report",),
            # the edit grids are eval_sagan's (sagan_grids): the report runs no model
            uses=("source", "eval_source", "pairs", "aligned", "eval_aligned", "rejects", "generators",
                  "sagan_metrics", "sagan_grids", "edits", "recognition_metrics"),
            outputs={"report": FILE},
            help="report.html and report.md with tables, curves and edit grids",
        ),
    ]
}

producers(STAGES.values())  # output names are unique: fails at import otherwise
