"""Run-time helpers shared by the stages: device choice, derived seeds, threads.

Randomness is explicit: every consumer derives its own seed from the run seed
and a name (stage, attribute, worker), so adding a stage or a worker does not
shift anyone else's random stream.
"""

from __future__ import annotations

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
