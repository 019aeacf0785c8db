"""Multi-process training with ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc_per_node N -m speechattn.cli.main train RECIPE`` starts N processes with
``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` / ``MASTER_PORT`` in their
environment; :func:`init_from_env` joins them into one process group (gloo on the CPU, nccl on
CUDA). Tasks shard each global batch by rank with :func:`rank_slice`, so N processes with a
batch of B each see the same examples as one process with a batch of N x B.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

__all__ = ["env_world_size", "init_from_env", "rank_world", "is_main", "rank_slice", "from_main", "barrier", "shutdown"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when not started by torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def init_from_env(device: torch.device) -> bool:
    """Join the process group torchrun described in the environment; False when single-process.

    The backend is nccl for a CUDA device and gloo otherwise. A group that is already
    initialized (by the caller) is used as it is.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if env_world_size() <= 1:
        return False
    if not dist.is_available():  # pragma: no cover - every official build has it
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    log.info("joined process group: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return True


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without an initialized process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (and in a single-process run): the process that logs, evaluates and saves."""
    return rank_world()[0] == 0


def rank_slice(items: Sequence[T], rank: int | None = None, world: int | None = None) -> list[T]:
    """This rank's contiguous part of a global batch (ranks get equal parts; a remainder is dropped).

    With ``world`` = 1 the batch is returned whole.
    """
    if rank is None or world is None:
        rank, world = rank_world()
    if world == 1:
        return list(items)
    per = len(items) // world
    if per == 0:
        raise ValueError(f"a global batch of {len(items)} cannot be split over {world} processes")
    return list(items[rank * per : (rank + 1) * per])


def from_main(make: Callable[[], T]) -> T:
    """``make()`` computed on rank 0 and sent to every rank (just ``make()`` in a single process).

    For choices that must agree across ranks, such as a new run folder's name.
    """
    rank, world = rank_world()
    if world == 1:
        return make()
    box: list[object] = [make() if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def barrier() -> None:
    """Wait for every rank (no-op in a single-process run)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
