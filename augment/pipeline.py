"""The stage runner: ordered stages, skip/rerun/force, resume, atomic outputs.

Each stage writes into ``<workdir>/<stage>/``. On success the runner writes the
returned manifests (atomically) and then ``.done.json`` holding a fingerprint
(``augment/workdir.py``): the hash of the stage's config sections, the run
seed, the package version and the sha256 of every manifest or file the stage
declares as an input or a use. A rerun skips a stage whose fingerprint
matches; a changed config changes that stage's fingerprint, its outputs change
and so every stage that reads them reruns too.

While a stage runs, ``.inprogress`` holds the fingerprint it is working
towards. A killed stage leaves no done marker; the next run with the same
fingerprint lets the stage resume from whatever partial work it kept in its
folder, and a run with another fingerprint clears the folder first, unless
the stage says its run carries on under the new config (``Stage.continues``:
train_sagan asked for more steps), finished or killed (the in-progress marker
records the basis it was started under). Either
way the hidden temporaries of writes cut short (``.<name>.tmp-<pid>``,
``.step_N.old-<pid>/``, ...) are removed before the stage starts.

A run holds the workdir lock (``augment.lock``) from start to end, so no
second run writes the same stage folders and the temporaries found in a
stage folder can only be leftovers.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from augment import __version__
from augment import distributed as dist
from augment import lock as workdir_lock
from augment import manifest as mf
from augment.config import PipelineConfig, config_hash, dump_yaml
from augment.diagnostics import close_progress_bars, file_of, peak_rss_mib, reset_peak_rss
from augment.fs import write_json
from augment.stages import FILE, STAGES, Stage, StageInputs, StageOutputs, producers
from augment.workdir import DONE, INPROGRESS, Runner, remove_temporaries

log = logging.getLogger("augment")

class PipelineError(Exception):
    """A pipeline cannot run as asked (missing upstream, a stage's own error)."""


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
        ran = sum(v == "ran" for v in result.values())
        # the run's one summary line (the console and augment.log)
        log.info("pipeline '%s': %d stage(s) ran, %d up to date, in %.1f s; outputs in %s", cfg.name, ran,
                 len(result) - ran, time.perf_counter() - t_all, runner.workdir)
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
    killed = runner.inprogress(stage.name)
    previous = None if killed is None else killed.get("fingerprint")
    if run_dir.exists() and previous != fp and runner.continues(stage.name):
        log.info("[%s] continuing its %s run from its checkpoints (%s)", stage.name,
                 "interrupted" if killed is not None else "finished", runner.why_stale(stage.name))
    elif run_dir.exists() and previous != fp:
        # Outputs or partial work made under another fingerprint: start clean,
        # so nothing from an older config leaks into this result. Partial work
        # (a killed run's checkpoints) is said out loud.
        if previous is not None:
            log.warning("[%s] discarding the interrupted run's partial work in %s: it was started under "
                        "another config (rerun with that config to resume it)", stage.name, run_dir)
        shutil.rmtree(run_dir)
    elif previous == fp:
        log.info("[%s] resuming interrupted work", stage.name)
    if run_dir.exists():
        remove_temporaries(run_dir, stage.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DONE).unlink(missing_ok=True)
    # the basis too, so that a killed run can be carried on under a config its
    # stage accepts (Runner.continues), not only resumed under the same one
    inprog.write_text(json.dumps({"fingerprint": fp, "basis": runner.basis(stage.name)}))
    return run_dir


def _run_stage(runner: Runner, stage: Stage, whole_hash: str) -> None:
    cfg = runner.cfg
    fp = runner.fingerprint(stage.name)
    if fp is None:  # _decide checked the upstream stages; one changed since
        raise PipelineError(f"stage '{stage.name}': an upstream stage is no longer done")
    run_dir = runner.stage_dir(stage.name)
    if dist.is_main():
        _prepare(runner, stage, fp)
    dist.barrier()
    if not (stage.distributed or dist.is_main()):
        dist.barrier()  # wait while rank 0 runs a single-process stage
        return

    inputs = _inputs(runner, stage)
    log.info("[%s] running", stage.name)
    peak_reset = reset_peak_rss()
    t0 = time.perf_counter()
    try:
        try:
            outs = stage.load()(cfg, inputs, run_dir)
        finally:
            close_progress_bars()
    except KeyboardInterrupt:
        log.info("[%s] interrupted; partial work kept in %s, a rerun resumes it", stage.name, run_dir)
        raise
    except OSError as e:
        if e.filename is not None or isinstance(e, mf.ManifestError):
            raise
        # Python's write() errors (a full disk) name no file; the frames that
        # raised still hold it. Failing that, name the stage and its folder.
        file = file_of(e, run_dir)
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
            path = mf.write(out, run_dir / f"{key}.parquet", pipeline=cfg.name, config_hash=whole_hash,
                            tree=runner.workdir)
            record[key] = {"file": path.name, "sha256": mf.file_digest(path), "rows": len(out)}
        else:  # a file the stage wrote itself (metrics.json, ...), inside its folder
            path = Path(out)
            if path.parent.resolve() != run_dir.resolve() or not path.is_file():
                raise PipelineError(f"stage '{stage.name}' output '{key}' must be a file in {run_dir}: {path}")
            record[key] = {"file": path.name, "sha256": mf.file_digest(path)}
    # The stage's own peak when the peak could be reset before it; otherwise the
    # process's peak so far (which may come from an earlier stage).
    peak_mib = peak_rss_mib()
    write_json(
        run_dir / DONE,
        {"stage": stage.name, "fingerprint": fp, "basis": runner.basis(stage.name), "outputs": record,
         "seconds": round(seconds, 3),
         "peak_rss_mib": round(peak_mib, 1), "peak_rss_scope": "stage" if peak_reset else "process",
         "version": __version__},
    )
    inprog.unlink(missing_ok=True)
    rows = ", ".join(f"{k}: {v['rows']} rows" if "rows" in v else f"{k}: {v['file']}" for k, v in record.items())
    log.info("[%s] done in %.1f s (%s)", stage.name, seconds, rows or "no manifests")


def with_device(cfg: PipelineConfig, device: str | None) -> PipelineConfig:
    return replace(cfg, device=device) if device else cfg
