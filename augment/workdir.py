"""A run's workdir on disk: stage folders, done markers, fingerprints and states.

Each stage writes into ``<workdir>/<stage>/``. On success the runner
(``augment/pipeline.py``) writes the returned manifests and then ``.done.json``
holding a fingerprint: the hash of the stage's config sections, the run seed,
the package version and the sha256 of every manifest or file the stage
declares as an input or a use. A stage is ``done`` when its marker's
fingerprint matches the one it would have now and its outputs are on disk.

A key added to augment after a stage ran does not make it stale while the key
holds its default: every key beyond the paper defaults to the behaviour from
before it existed (a rule for new keys, docs/ARCHITECTURE.md), so a finished
run survives an upgrade that only adds options.
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


def fingerprint_of(basis: dict) -> str:
    """sha256 of a stage's basis (``Runner.basis``), canonical JSON."""
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def _changed(old, new, prefix: str = ""):
    """(dotted key, old value, new value) of every leaf that differs between two config trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            yield from _changed(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else k)
    elif old != new:
        yield prefix, old, new


def _without_new_defaults(old, now, default):
    """``now`` without the leaves that ``old`` lacks and that hold their ``default``:
    config keys added since ``old`` was recorded, left as they were before they existed."""
    if not (isinstance(old, dict) and isinstance(now, dict)):
        return now
    default = default if isinstance(default, dict) else {}
    return {k: _without_new_defaults(old[k], v, default.get(k)) if k in old else v
            for k, v in now.items() if k in old or k not in default or v != default[k]}


def _differences(old: dict, now: dict) -> str:
    """In words, what differs between two bases of one stage (``Runner.basis``)."""
    reasons = []
    if old.get("seed") != now["seed"]:
        reasons.append(f"seed {old.get('seed')} -> {now['seed']}")
    if old.get("version") != now["version"]:
        reasons.append(f"augment {old.get('version')} -> {now['version']}")
    reasons += [f"{k} {a!r} -> {b!r}" for k, a, b in _changed(old.get("config", {}), now["config"])][:3]
    for up, outs in now["inputs"].items():
        for key, rec in outs.items():
            if (old.get("inputs", {}).get(up, {}).get(key) or {}).get("sha256") != rec.get("sha256"):
                reasons.append(f"its input '{key}' (from {up}) changed")
    return "; ".join(reasons) or "its fingerprint changed"


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

    def basis(self, name: str) -> dict | None:
        """What ``name``'s fingerprint hashes: its stage name, config sections, the seed,
        the package version and the sha256 of the inputs and uses it reads (by upstream
        stage); None when an upstream stage is not done."""
        stage = STAGES[name]
        digests = {}
        for up in self.upstream(stage):
            if self.state(up) != "done":
                return None
            made = self.marker(up)["outputs"]
            digests[up] = {k: made[k] for k in (*stage.inputs, *stage.uses) if k in made}
        return {
            "stage": name,
            "config": json.loads(section_json(self.cfg, stage.sections)),
            "seed": self.cfg.seed,
            "version": __version__,
            "inputs": digests,
        }

    def fingerprint(self, name: str) -> str | None:
        """The fingerprint ``name`` would have now; None when an upstream stage is not done."""
        payload = self.basis(name)
        return None if payload is None else fingerprint_of(payload)

    def _as_recorded(self, name: str, marker: dict) -> tuple[dict, dict] | None:
        """(the basis ``marker`` recorded, the basis ``name`` would have now with keys
        added since it ran left out while they hold their defaults); None when
        either is missing (an upstream stage not done, a marker without a basis)."""
        now, old = self.basis(name), marker.get("basis")
        if now is None or not isinstance(old, dict) or not isinstance(old.get("config"), dict):
            return None
        defaults = json.loads(section_json(PipelineConfig(), STAGES[name].sections))
        return old, {**now, "config": _without_new_defaults(old["config"], now["config"], defaults)}

    def matches_marker(self, name: str, marker: dict) -> bool:
        """Whether ``marker`` (a done marker of ``name``) holds the fingerprint the
        stage would have now, counting keys added since it ran at their defaults as
        absent (the module docstring)."""
        now = self.basis(name)
        if now is None:
            return False
        if marker.get("fingerprint") == fingerprint_of(now):
            return True
        recorded = self._as_recorded(name, marker)
        return recorded is not None and marker.get("fingerprint") == fingerprint_of(recorded[1])

    def inprogress(self, name: str) -> dict | None:
        """The in-progress marker of a stage that started and has not finished:
        ``{"fingerprint": ..., "basis": ...}`` (a marker from an older augment
        holds the fingerprint only); None when there is none."""
        p = self.stage_dir(name) / INPROGRESS
        if not p.is_file():
            return None
        text = p.read_text().strip()
        try:
            marker = json.loads(text)
        except json.JSONDecodeError:
            marker = None
        return marker if isinstance(marker, dict) else {"fingerprint": text}

    def killed_under(self, name: str) -> dict | None:
        """The basis a killed run of ``name`` was started under, when it is not the
        one the stage would have now (the config or inputs changed since); None
        otherwise, or when its in-progress marker does not record one."""
        killed, now = self.inprogress(name), self.basis(name)
        if killed is None or not isinstance(killed.get("basis"), dict) or now is None \
                or killed.get("fingerprint") == fingerprint_of(now):
            return None
        return killed["basis"]

    def continues(self, name: str) -> bool:
        """Whether ``name``'s run carries on under the config asked for now: same
        seed, version and inputs, and a config change that the stage's
        ``continues`` accepts (train_sagan: more steps), keys added since it ran
        counted as in ``matches_marker``. The run is the finished one (its done
        marker) or, when it was killed before its end, the one its in-progress
        marker records: a training killed on its way to 5,000 steps carries on
        when asked for 7,500."""
        marker, accepts = self.marker(name) or self.inprogress(name), STAGES[name].continues
        recorded = None if accepts is None or marker is None else self._as_recorded(name, marker)
        if recorded is None:
            return False
        old, then = recorded
        same = all(old.get(k) == then[k] for k in ("stage", "seed", "version", "inputs"))
        return same and accepts(old["config"], then["config"])

    def why_stale(self, name: str) -> str:
        """In words, why ``name`` is not done as it stands: what differs between the
        basis its done marker recorded and the one it would have now."""
        m = self.marker(name)
        if m is None:
            old = self.killed_under(name)
            if old is None:
                return "it has not finished"
            return f"it has not finished; it started under another config: {_differences(old, self.basis(name))}"
        for up in self.upstream(STAGES[name]):
            st = self.state(up)
            if st != "done":
                return f"the stage it reads, '{up}', is {st}"
        missing = [o["file"] for o in m.get("outputs", {}).values() if not (self.stage_dir(name) / o["file"]).is_file()]
        if missing:
            return f"its output {missing[0]} is missing"
        old, now = m.get("basis"), self.basis(name)
        if old is None:
            return "its config, seed or inputs changed (its marker, from an older augment, does not say which)"
        return _differences(old, now)

    def state(self, name: str) -> str:
        """``done``, ``stale`` (ran, but config or inputs changed since), ``interrupted`` or ``not run``."""
        m = self.marker(name)
        if m is None:  # a folder with the in-progress marker: started, killed before its end
            return "interrupted" if (self.stage_dir(name) / INPROGRESS).is_file() else "not run"
        if not self.matches_marker(name, m):
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
