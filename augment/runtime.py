"""Run-time helpers shared by the stages: device choice, derived seeds, threads,
file names in write errors.

Randomness is explicit: every consumer derives its own seed from the run seed
and a name (stage, attribute, worker), so adding a stage or a worker does not
shift anyone else's random stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import os


def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit seed from the run seed and a path of names, e.g. (seed, "edit", rank)."""
    h = hashlib.sha256(repr((int(seed), *map(str, names))).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def resolve_device(device: str = "auto"):
    """This process's torch device, from ``distributed.decide`` (the one place that
    places processes): ``auto`` -> ``cuda:LOCAL_RANK`` when torch sees a CUDA device,
    else cpu; ``cuda`` without a GPU is a ConfigError."""
    import torch

    from augment import distributed

    return torch.device(distributed.placement(device).device)


def cpu_count() -> int:
    """Cores this process may use (respects affinity masks and cgroups quotas via sched_getaffinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def workers(requested: int) -> int:
    """``0`` = all cores; otherwise the number asked for."""
    return cpu_count() if requested <= 0 else requested


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the body with ``n`` torch CPU threads (0 = leave the setting alone); the
    setting before is restored after, even when the body changed it.

    On a CPU shared with other jobs, fewer threads than cores can be much
    faster: the fast preset's SaGAN step took 0.92 s on 1 thread and 2.2 s on 2
    while another process kept one of the 2 cores busy (OpenMP threads wait on
    each other).
    """
    import torch

    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
