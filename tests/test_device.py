"""Where a run's processes work: ``distributed.decide`` as a pure function of the
requested device, torchrun's environment and the CUDA device count (no GPU
needed), and the stages' device and process group taken from it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from augment import distributed as dist
from augment.config import ConfigError
from augment.runtime import resolve_device

REPO = Path(__file__).resolve().parents[1]


def _env(rank: int, local: int, world: int) -> dict[str, str]:
    return {"RANK": str(rank), "LOCAL_RANK": str(local), "WORLD_SIZE": str(world)}


@pytest.mark.parametrize("requested", ["auto", "cuda"])
def test_two_cuda_devices_local_rank_1_is_cuda_1_with_nccl(requested):
    p = dist.decide(requested, _env(1, 1, 2), cuda_devices=2)
    assert p == dist.Placement(device="cuda:1", rank=1, local_rank=1, world_size=2, backend="nccl")


def test_every_rank_gets_its_own_cuda_device():
    assert [dist.decide("auto", _env(r, r, 4), 4).device for r in range(4)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]


def test_second_machine_uses_the_local_rank_not_the_global_one():
    p = dist.decide("auto", _env(5, 1, 8), cuda_devices=4)  # rank 5 of 8 = process 1 of the second machine
    assert (p.device, p.rank, p.local_rank, p.world_size, p.backend) == ("cuda:1", 5, 1, 8, "nccl")


def test_one_visible_gpu_per_process_is_cuda_0():
    """Each process bound to its own GPU by the scheduler sees one device."""
    assert dist.decide("auto", _env(3, 3, 4), cuda_devices=1).device == "cuda:0"


@pytest.mark.parametrize("requested,devices", [("auto", 0), ("cpu", 0), ("cpu", 2)])
def test_cpu_runs_use_gloo(requested, devices):
    p = dist.decide(requested, _env(1, 1, 2), cuda_devices=devices)
    assert (p.device, p.backend) == ("cpu", "gloo")


def test_one_process_has_no_backend():
    assert dist.decide("auto", {}, cuda_devices=2) == dist.Placement("cuda:0", 0, 0, 1, None)
    assert dist.decide("auto", {}, cuda_devices=0) == dist.Placement("cpu", 0, 0, 1, None)


def test_impossible_devices_are_config_errors():
    with pytest.raises(ConfigError, match="torch sees no CUDA device"):
        dist.decide("cuda", {}, cuda_devices=0)
    with pytest.raises(ConfigError, match="LOCAL_RANK 2 needs CUDA device 2, but torch sees 2"):
        dist.decide("auto", _env(2, 2, 3), cuda_devices=2)
    with pytest.raises(ConfigError, match="expected one of auto, cpu, cuda"):
        dist.decide("tpu", {}, cuda_devices=0)


def test_stages_take_their_device_from_the_decision(monkeypatch):
    """resolve_device (what every stage calls) follows the same decision, here
    for rank 1 of 2 on a machine without CUDA and on one with 2 devices (count faked)."""
    for k, v in _env(1, 1, 2).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")


def test_init_sets_the_cuda_device_and_creates_an_nccl_group(monkeypatch):
    """init() on a 2-GPU machine, rank 1: set_device(cuda:1), then init_process_group(nccl)."""
    import torch.distributed as tdist

    for k, v in _env(1, 1, 2).items():
        monkeypatch.setenv(k, v)
    calls = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", str(d))))
    monkeypatch.setattr(tdist, "is_initialized", lambda: False)
    monkeypatch.setattr(tdist, "init_process_group", lambda backend: calls.append(("group", backend)))
    dist.init("auto")
    assert calls == [("set_device", "cuda:1"), ("group", "nccl")]
    calls.clear()
    dist.init("cpu")
    assert calls == [("group", "gloo")]


def test_gpu_benchmark_without_cuda_says_so_and_fails():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PY": sys.executable}
    proc = subprocess.run(["bash", "benchmarks/gpu.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode != 0
    assert "no CUDA device" in proc.stderr, proc.stderr
    assert "card:" not in proc.stdout  # stopped before any benchmark


PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, {repo!r}); "
                          "from augment import distributed; distributed.die_with_parent(); "
                          "print('ready', flush=True); time.sleep(120)"],
                         stdout=subprocess.PIPE, text=True, start_new_session=True)  # as torchrun starts workers
assert child.stdout.readline().strip() == "ready"
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_worker_dies_with_its_parent(tmp_path):
    """A torchrun worker is in a session of its own; when its parent is killed
    it is killed too, instead of writing on into a workdir whose lock is gone."""
    import signal

    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(repo=str(REPO))], stdout=subprocess.PIPE,
                              text=True)
    child_pid = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    for _ in range(200):  # the kernel delivers the signal at once; allow a loaded machine 10 s
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child_pid, signal.SIGKILL)
        pytest.fail(f"worker {child_pid} outlived its killed parent")
