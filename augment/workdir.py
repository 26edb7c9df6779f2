"""A run's workdir on disk: stage folders, done markers, fingerprints and states.

Each stage writes into ``<workdir>/<stage>/``. On success the runner
(``augment/pipeline.py``) writes the returned manifests and then ``.done.json``
holding a fingerprint: the hash of the stage's config sections, the run seed,
the package version and the sha256 of every manifest or file the stage
declares as an input or a use. A stage is ``done`` when its marker's
fingerprint matches the one it would have now and its outputs are on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from augment import __version__
from augment import manifest as mf
from augment.config import PipelineConfig, section_json
from augment.stages import STAGES, Stage, StageOutputs, producers

log = logging.getLogger("augment")

DONE = ".done.json"
INPROGRESS = ".inprogress"
# Hidden names of the project's atomic writes before their rename: ".<name>.tmp",
# ".<name>.tmp-<pid>[.<ext>]" (files and checkpoint folders), ".<name>.old-<pid>"
# (a checkpoint moved aside while it is overwritten).
TEMPORARY = re.compile(r"^\..+\.(tmp|old)(-\d+)?(\.\w+)?$")


class StageStateError(Exception):
    """A stage's recorded state cannot be used as asked (its outputs read before it is done)."""


@dataclass
class Runner:
    """Resolves stage folders and states for one config."""

    cfg: PipelineConfig

    @property
    def workdir(self) -> Path:
        return Path(self.cfg.workdir)

    def stage_dir(self, name: str) -> Path:
        return self.workdir / name

    def marker(self, name: str) -> dict | None:
        p = self.stage_dir(name) / DONE
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a damaged marker counts as not done

    def earlier(self, name: str) -> list[str]:
        """The stages this pipeline runs before ``name`` (all of them for a stage not in it)."""
        names = list(self.cfg.stages)
        return names[: names.index(name)] if name in names else names

    def upstream(self, stage: Stage) -> list[str]:
        """The earlier stages of this pipeline that make the stage's ``inputs`` or
        ``uses``, in pipeline order. Only earlier stages count: eval_sagan uses
        the recognizers when train_recognition runs first, and is earlier in other
        pipelines."""
        before = self.earlier(stage.name)
        made = producers(STAGES[n] for n in before)
        wanted = {made[x] for x in (*stage.inputs, *stage.uses) if x in made}
        return [s for s in before if s in wanted]

    def fingerprint(self, name: str) -> str | None:
        """The fingerprint ``name`` would have now; None when an upstream stage is not done."""
        stage = STAGES[name]
        digests = {}
        for up in self.upstream(stage):
            if self.state(up) != "done":
                return None
            made = self.marker(up)["outputs"]
            digests[up] = {k: made[k] for k in (*stage.inputs, *stage.uses) if k in made}
        payload = {
            "stage": name,
            "config": json.loads(section_json(self.cfg, stage.sections)),
            "seed": self.cfg.seed,
            "version": __version__,
            "inputs": digests,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def state(self, name: str) -> str:
        """``done``, ``stale`` (ran, but config or inputs changed since), ``interrupted`` or ``not run``."""
        m = self.marker(name)
        fp = self.fingerprint(name)
        if m is None:  # a folder with the in-progress marker: started, killed before its end
            return "interrupted" if (self.stage_dir(name) / INPROGRESS).is_file() else "not run"
        if fp is None or m.get("fingerprint") != fp:
            return "stale"
        outs = m.get("outputs", {})
        if not all((self.stage_dir(name) / o["file"]).is_file() for o in outs.values()):
            return "stale"
        return "done"

    def outputs(self, name: str, only: Iterable[str] | None = None) -> StageOutputs:
        """A done stage's outputs (those named in ``only``, when given): manifests read
        back, other files as paths."""
        m = self.marker(name)
        if m is None:
            raise StageStateError(f"stage '{name}' is not done: no {self.stage_dir(name) / DONE}")
        out: StageOutputs = {}
        for k, o in m["outputs"].items():
            if only is not None and k not in only:
                continue
            path = self.stage_dir(name) / o["file"]
            out[k] = mf.read(path) if path.suffix == ".parquet" else path
        return out


def remove_temporaries(run_dir: Path, name: str) -> None:
    """Delete the hidden temporaries that killed writes left in ``run_dir``. Safe
    because this run holds the workdir lock: no other process is writing them."""
    found = [p for p in run_dir.rglob(".*") if TEMPORARY.match(p.name)]
    for p in sorted(found, key=lambda p: len(p.parts)):  # a folder before anything inside it
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if found:
        log.info("[%s] removed %d temporary file(s) left by an interrupted write", name, len(found))


def states(cfg: PipelineConfig) -> list[tuple[str, str, dict | None]]:
    runner = Runner(cfg)
    return [(n, runner.state(n), runner.marker(n)) for n in cfg.stages]
