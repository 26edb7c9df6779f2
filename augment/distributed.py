"""torch.distributed plumbing for running a pipeline on several processes.

``augment run PIPELINE --nproc N`` relaunches itself under torchrun
(``torch.distributed.run``); every rank then runs the pipeline runner. Stages
marked ``distributed`` in the registry run on every rank (training stages wrap
their models in DistributedDataParallel, the edit stage shards its rows); the
others run on rank 0 while the rest wait. Rank 0 alone writes manifests and
done markers.

Where each process runs is decided in one place, :func:`decide`: a pure
function of the requested device, the environment torchrun sets (RANK,
LOCAL_RANK, WORLD_SIZE) and the number of CUDA devices. On CUDA every rank
gets ``cuda:LOCAL_RANK`` (made current with ``torch.cuda.set_device``) and the
backend is nccl; on CPU it is gloo. ``init()`` creates the process group from
that decision, lazily, never at import, and ``runtime.resolve_device`` gives
the stages their device from the same decision.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, TypeVar

T = TypeVar("T")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def enabled() -> bool:
    """True inside a multi-process run whose process group is initialised."""
    if world_size() <= 1:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Placement:
    """Where one process of a run works."""

    device: str  # "cpu" or "cuda:<local rank>"
    rank: int  # 0 .. world_size - 1 over all machines
    local_rank: int  # index among this machine's processes: the CUDA device it uses
    world_size: int
    backend: str | None  # "nccl" (CUDA) or "gloo" (CPU) when world_size > 1; None on one process


def decide(requested: str, env: Mapping[str, str], cuda_devices: int) -> Placement:
    """The placement of this process: a pure function of the requested device
    (``auto`` | ``cpu`` | ``cuda``), the environment torchrun sets and the number
    of CUDA devices this process sees. Raises ConfigError for a device that
    cannot be had (``cuda`` without one, more ranks per machine than devices)."""
    from augment.config import ConfigError

    if requested not in DEVICES:
        raise ConfigError(f"device {requested!r}: expected one of {', '.join(DEVICES)}")
    world = int(env.get("WORLD_SIZE", "1"))
    rank_, local = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
    cuda = requested == "cuda" or (requested == "auto" and cuda_devices > 0)
    if cuda and cuda_devices == 0:
        raise ConfigError("device 'cuda' was asked for, but torch sees no CUDA device (use --device cpu)")
    # A scheduler that binds each process to its own GPU (CUDA_VISIBLE_DEVICES per
    # rank) leaves it one visible device, cuda:0, whatever its LOCAL_RANK.
    index = 0 if cuda_devices == 1 else local
    if cuda and index >= cuda_devices:
        raise ConfigError(f"process with LOCAL_RANK {local} needs CUDA device {local}, but torch sees "
                          f"{cuda_devices}; start at most {cuda_devices} process(es) per machine (--nproc)")
    backend = None if world <= 1 else ("nccl" if cuda else "gloo")
    return Placement(f"cuda:{index}" if cuda else "cpu", rank_, local, world, backend)


def placement(requested: str = "auto") -> Placement:
    """:func:`decide` for this process: its environment and the CUDA devices torch sees."""
    if requested == "cpu":
        return decide(requested, os.environ, 0)  # no need to ask the CUDA driver
    import torch

    return decide(requested, os.environ, torch.cuda.device_count())


def init(device: str = "auto") -> None:
    """Under torchrun (WORLD_SIZE > 1) make this process's :func:`placement`
    current: on CUDA its device becomes the current one (``torch.cuda.set_device``),
    and the process group is created with the placement's backend. One process
    needs nothing set up (its CUDA device is cuda:0, the default); a second call
    changes nothing."""
    if world_size() <= 1:
        return
    import torch
    import torch.distributed as dist

    p = placement(device)
    die_with_parent()
    if p.device.startswith("cuda"):
        torch.cuda.set_device(p.device)
    if not dist.is_initialized():
        dist.init_process_group(backend=p.backend)


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux).

    torchrun starts every worker in a session of its own, so ``kill -9`` of the
    run (its process group, or the torchrun process alone) would leave the
    workers running on, writing into the workdir after its lock is gone.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):  # no prctl: nothing to arrange
        return
    if os.getppid() == 1:  # the parent died before the request: nobody is left to wait for
        os.kill(os.getpid(), signal.SIGKILL)


def shutdown() -> None:
    if enabled():
        import torch.distributed as dist

        dist.destroy_process_group()


def barrier() -> None:
    if enabled():
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s value of ``obj`` on every rank."""
    if not enabled():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order."""
    if not enabled():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def shard(items: Sequence[T]) -> Sequence[T]:
    """This rank's share of ``items``: every world_size-th item, starting at rank.

    Interleaving keeps shards equal in size to within one item and makes the
    merged result independent of the number of ranks once sorted by index.
    """
    if not enabled():
        return items
    return items[rank() :: world_size()]


def wrap_ddp(model, device):
    """DistributedDataParallel around ``model`` when running distributed, else ``model``."""
    if not enabled():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        import torch

        index = device.index if device.index is not None else torch.cuda.current_device()
        return DistributedDataParallel(model, device_ids=[index])
    return DistributedDataParallel(model)


def unwrap(model):
    """The bare module inside a torch.compile and/or DDP wrapper (for checkpoints)."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)
