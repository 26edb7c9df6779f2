"""The stage runner: ordered stages, fingerprints, skip/rerun/force, atomic outputs.

Each stage writes into ``<workdir>/<stage>/``. On success the runner writes the
returned manifests (atomically) and then ``.done.json`` holding a fingerprint:
the hash of the stage's config sections, the run seed, the package version and
the sha256 of every input manifest. A rerun skips a stage whose fingerprint
matches; a changed config changes that stage's fingerprint, its outputs change
and so every stage downstream reruns too.

While a stage runs, ``.inprogress`` holds the fingerprint it is working
towards. A killed stage leaves no done marker; the next run with the same
fingerprint lets the stage resume from whatever partial work it kept in its
folder, and a run with another fingerprint clears the folder first. Either
way the hidden temporaries of writes cut short (``.<name>.tmp-<pid>``,
``.step_N.old-<pid>/``, ...) are removed before the stage starts.

A run holds the workdir lock (``augment.lock``) from start to end, so no
second run writes the same stage folders and the temporaries found in a
stage folder can only be leftovers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import resource
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

from augment import __version__
from augment import distributed as dist
from augment import lock as workdir_lock
from augment import manifest as mf
from augment.config import PipelineConfig, config_hash, dump_yaml, section_json
from augment.runtime import names_file
from augment.stages import FILE, STAGES, Stage, StageInputs, StageOutputs, producers

log = logging.getLogger("augment")

DONE = ".done.json"
INPROGRESS = ".inprogress"
# Hidden names of the project's atomic writes before their rename: ".<name>.tmp",
# ".<name>.tmp-<pid>[.<ext>]" (files and checkpoint folders), ".<name>.old-<pid>"
# (a checkpoint moved aside while it is overwritten).
TEMPORARY = re.compile(r"^\..+\.(tmp|old)(-\d+)?(\.\w+)?$")


class PipelineError(Exception):
    """A pipeline cannot run as asked (missing upstream, a stage's own error)."""


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with names_file(path):
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


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
            digests[up] = self.marker(up)["outputs"]
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
        assert m is not None
        out: StageOutputs = {}
        for k, o in m["outputs"].items():
            if only is not None and k not in only:
                continue
            path = self.stage_dir(name) / o["file"]
            out[k] = mf.read(path) if path.suffix == ".parquet" else path
        return out


def _setup_logging(workdir: Path) -> logging.Handler:
    workdir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(workdir / "augment.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    if not any(getattr(h, "_augment_console", False) for h in log.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(message)s"))
        console._augment_console = True  # type: ignore[attr-defined]
        log.addHandler(console)
    return handler


def select_stages(cfg: PipelineConfig, only: Iterable[str] = (), until: str | None = None) -> list[str]:
    names = list(cfg.stages)
    for n in [*only, *([until] if until else [])]:
        if n not in names:
            raise PipelineError(f"stage '{n}' is not in this pipeline's stages ({', '.join(names)})")
    if until:
        names = names[: names.index(until) + 1]
    only = list(only)
    if only:
        names = [n for n in names if n in only]
    return names


def run_pipeline(
    cfg: PipelineConfig,
    only: Iterable[str] = (),
    until: str | None = None,
    force: Iterable[str] = (),
) -> dict[str, str]:
    """Run the selected stages in order; returns ``{stage: "ran" | "skipped"}``."""
    runner = Runner(cfg)
    force = set(force)
    for n in force:
        if n not in cfg.stages:
            raise PipelineError(f"--force {n}: not in this pipeline's stages ({', '.join(cfg.stages)})")
    selected = select_stages(cfg, only, until)
    check_inputs(cfg)
    dist.init(cfg.device)
    lock = _lock_workdir(runner.workdir)
    handler = _setup_logging(runner.workdir) if dist.is_main() else None
    try:
        if lock is not None and lock.previous is not None:
            log.info("taking over the workdir lock of %s, which ended without releasing it",
                     workdir_lock.describe(lock.previous))
        if dist.is_main():
            (runner.workdir / "config.yaml").write_text(dump_yaml(cfg))
        whole_hash = config_hash(cfg)
        result: dict[str, str] = {}
        t_all = time.perf_counter()
        for name in selected:
            stage = STAGES[name]
            decision = _decide(runner, stage, force) if dist.is_main() else None
            decision = dist.broadcast_object(decision)
            if isinstance(decision, PipelineError):
                raise decision
            if decision == "skip":
                log.info("[%s] up to date, skipped", name)
                result[name] = "skipped"
                continue
            _run_stage(runner, stage, whole_hash)
            result[name] = "ran"
        log.info("pipeline '%s': %d stage(s) in %.1f s", cfg.name, len(selected), time.perf_counter() - t_all)
        return result
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
        if lock is not None:
            lock.release()


def check_inputs(cfg: PipelineConfig) -> None:
    """Every stage's declared ``inputs`` are made by a stage that this pipeline runs
    before it; otherwise a PipelineError naming the stage, before anything runs."""
    makers = producers(STAGES[n] for n in cfg.stages)
    for i, name in enumerate(cfg.stages):
        made_before = producers(STAGES[n] for n in cfg.stages[:i])
        for x in STAGES[name].inputs:
            if x in made_before:
                continue
            if x in makers:
                hint = f"which '{makers[x]}' makes: move '{makers[x]}' before '{name}' in 'stages'"
            else:
                maker = producers(STAGES.values()).get(x)
                hint = f"which '{maker}' makes: add '{maker}' to 'stages' before '{name}'" if maker \
                    else "which no stage makes"
            raise PipelineError(f"stage '{name}' needs the input '{x}', {hint}")


def _lock_workdir(workdir: Path) -> workdir_lock.WorkdirLock | None:
    """Rank 0 takes the workdir lock (under ``augment run --nproc`` the launcher,
    this process's parent, already holds it); when the workdir is busy every
    rank raises WorkdirBusy."""
    held, busy = None, None
    if dist.is_main():
        try:
            if dist.world_size() > 1 and workdir_lock.held_by_parent(workdir):
                held = workdir_lock.WorkdirLock(workdir / workdir_lock.LOCK_NAME, None, borrowed=True)
            else:
                held = workdir_lock.acquire(workdir)
        except workdir_lock.WorkdirBusy as e:
            busy = e
    busy = dist.broadcast_object(busy)
    if busy is not None:
        raise busy
    return held


def _decide(runner: Runner, stage: Stage, force: set[str]) -> str | PipelineError:
    """``run`` or ``skip`` for one stage, or the error that stops the pipeline."""
    for up in runner.upstream(stage):
        st = runner.state(up)
        if st != "done":
            return PipelineError(
                f"stage '{stage.name}' needs the outputs of '{up}', which is {st}; "
                f"run '{up}' first (or run without --stages/--until)"
            )
    if stage.name not in force and runner.state(stage.name) == "done":
        return "skip"
    return "run"


def _prepare(runner: Runner, stage: Stage, fp: str) -> Path:
    run_dir = runner.stage_dir(stage.name)
    inprog = run_dir / INPROGRESS
    previous = inprog.read_text().strip() if inprog.is_file() else None
    if run_dir.exists() and previous != fp:
        # Outputs or partial work made under another fingerprint: start clean,
        # so nothing from an older config leaks into this result.
        shutil.rmtree(run_dir)
    elif previous == fp:
        log.info("[%s] resuming interrupted work", stage.name)
    if run_dir.exists():
        _remove_temporaries(run_dir, stage.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DONE).unlink(missing_ok=True)
    inprog.write_text(fp)
    return run_dir


def _remove_temporaries(run_dir: Path, name: str) -> None:
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


def _run_stage(runner: Runner, stage: Stage, whole_hash: str) -> None:
    cfg = runner.cfg
    fp = runner.fingerprint(stage.name)
    assert fp is not None
    run_dir = runner.stage_dir(stage.name)
    if dist.is_main():
        _prepare(runner, stage, fp)
    dist.barrier()
    if not (stage.distributed or dist.is_main()):
        dist.barrier()  # wait while rank 0 runs a single-process stage
        return

    inputs = _inputs(runner, stage)
    log.info("[%s] running", stage.name)
    peak_reset = _reset_peak_rss()
    t0 = time.perf_counter()
    try:
        try:
            outs = stage.load()(cfg, inputs, run_dir)
        finally:
            _close_progress_bars()
    except KeyboardInterrupt:
        log.info("[%s] interrupted; partial work kept in %s, a rerun resumes it", stage.name, run_dir)
        raise
    except OSError as e:
        if e.filename is not None or isinstance(e, mf.ManifestError):
            raise
        # Python's write() errors (a full disk) name no file; the frames that
        # raised still hold it. Failing that, name the stage and its folder.
        file = _file_of(e, run_dir)
        if file is not None:
            raise OSError(e.errno, e.strerror or str(e), str(file)) from e
        raise PipelineError(f"stage '{stage.name}' could not write in {run_dir}: {e}") from e
    if not dist.is_main():
        dist.barrier()
        return
    _finish(runner, stage, fp, whole_hash, outs, time.perf_counter() - t0, peak_reset)
    dist.barrier()


def _inputs(runner: Runner, stage: Stage) -> StageInputs:
    """The declared inputs and uses that the stage's upstream stages made; a
    declared input that its (done) maker did not return is an error naming the stage."""
    wanted = {*stage.inputs, *stage.uses}
    inputs: StageInputs = {}
    for up in runner.upstream(stage):
        inputs.update(runner.outputs(up, only=wanted))
    missing = [x for x in stage.inputs if x not in inputs]
    if missing:
        raise PipelineError(f"stage '{stage.name}' needs the input(s) {missing}, which the stages before it "
                            f"({', '.join(runner.earlier(stage.name)) or 'none'}) did not make")
    return inputs


def _check_outputs(stage: Stage, outs: StageOutputs) -> None:
    """What a stage returned against its declared outputs; an error names the stage."""
    unknown = set(outs) - set(stage.outputs)
    if unknown:
        raise PipelineError(f"stage '{stage.name}' returned undeclared outputs {sorted(unknown)} "
                            f"(it declares {sorted(stage.outputs)})")
    missing = set(stage.outputs) - set(stage.optional_outputs) - set(outs)
    if missing:
        raise PipelineError(f"stage '{stage.name}' did not return its declared outputs {sorted(missing)}")
    for key, out in outs.items():
        kind = stage.outputs[key]
        got = out.kind if isinstance(out, mf.Manifest) else FILE
        if got != kind:
            raise PipelineError(f"stage '{stage.name}' output '{key}' is declared as {kind!r} but is {got!r}")


def _file_of(error: BaseException, run_dir: Path) -> Path | None:
    """The file a failed write was writing: the innermost frame of the error's
    traceback holding a path inside ``run_dir``, preferring a final name to a
    hidden temporary (``tmp.write_bytes`` fails in a frame that holds both)."""
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    root, temporary = run_dir.resolve(), None
    for frame in reversed(frames):  # innermost first
        for value in list(frame.f_locals.values()):
            if not isinstance(value, Path):
                continue
            path = value.resolve()
            if root not in path.parents:
                continue
            if not TEMPORARY.match(path.name):
                return path
            temporary = temporary or path
    return temporary


def _close_progress_bars() -> None:
    """Close the progress bars a stage left open (one that failed part-way), so
    that whatever is printed next, such as the one-line error, starts on a line
    of its own and no bar is redrawn after it."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS, so the peak read
    after a stage is that stage's; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    """This process's peak RSS in MiB: VmHWM from /proc, else getrusage (the
    process's peak since it started)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _finish(runner: Runner, stage: Stage, fp: str, whole_hash: str, outs: dict, seconds: float,
            peak_reset: bool = False) -> None:
    """Rank 0: write the returned manifests, then the done marker."""
    cfg = runner.cfg
    run_dir = runner.stage_dir(stage.name)
    inprog = run_dir / INPROGRESS
    _check_outputs(stage, outs)
    record = {}
    for key, out in outs.items():
        if isinstance(out, mf.Manifest):
            path = mf.write(out, run_dir / f"{key}.parquet", pipeline=cfg.name, config_hash=whole_hash)
            record[key] = {"file": path.name, "sha256": mf.file_digest(path), "rows": len(out)}
        else:  # a file the stage wrote itself (metrics.json, ...), inside its folder
            path = Path(out)
            if path.parent.resolve() != run_dir.resolve() or not path.is_file():
                raise PipelineError(f"stage '{stage.name}' output '{key}' must be a file in {run_dir}: {path}")
            record[key] = {"file": path.name, "sha256": mf.file_digest(path)}
    # The stage's own peak when the peak could be reset before it; otherwise the
    # process's peak so far (which may come from an earlier stage).
    peak_mib = _peak_rss_mib()
    write_json_atomic(
        run_dir / DONE,
        {"stage": stage.name, "fingerprint": fp, "outputs": record, "seconds": round(seconds, 3),
         "peak_rss_mib": round(peak_mib, 1), "peak_rss_scope": "stage" if peak_reset else "process",
         "version": __version__},
    )
    inprog.unlink(missing_ok=True)
    rows = ", ".join(f"{k}: {v['rows']} rows" if "rows" in v else f"{k}: {v['file']}" for k, v in record.items())
    log.info("[%s] done in %.1f s (%s)", stage.name, seconds, rows or "no manifests")


def states(cfg: PipelineConfig) -> list[tuple[str, str, dict | None]]:
    runner = Runner(cfg)
    return [(n, runner.state(n), runner.marker(n)) for n in cfg.stages]


def with_device(cfg: PipelineConfig, device: str | None) -> PipelineConfig:
    return replace(cfg, device=device) if device else cfg
