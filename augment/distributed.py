"""torch.distributed plumbing for running a pipeline on several processes.

``augment run PIPELINE --nproc N`` relaunches itself under torchrun
(``torch.distributed.run``); every rank then runs the pipeline runner. Stages
marked ``distributed`` in the registry run on every rank (training stages wrap
their models in DistributedDataParallel, the edit stage shards its rows); the
others run on rank 0 while the rest wait. Rank 0 alone writes manifests and
done markers.

The process group is created lazily by ``init()``, never at import. On CPU the
backend is gloo, on CUDA nccl.
"""

from __future__ import annotations

import os
from typing import Any, Sequence, TypeVar

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


def init(device: str = "cpu") -> None:
    """Create the process group when launched by torchrun with WORLD_SIZE > 1."""
    if world_size() <= 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)


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
        return DistributedDataParallel(model, device_ids=[device.index or 0])
    return DistributedDataParallel(model)


def unwrap(model):
    """The bare module inside a DDP wrapper (for checkpoints)."""
    return getattr(model, "module", model)
