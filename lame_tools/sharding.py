"""Work split across the processes of a launcher (`accelerate launch`, `torchrun`), gathered back in
input order; resumable shard files.

A launcher starts N copies of the same command and tells each its rank through the environment
(`RANK`, `WORLD_SIZE`, `LOCAL_RANK`). `process_group()` reads it and, when N > 1, joins the
process group the way training does (accelerate's `PartialState`: gloo on CPU, NCCL on GPUs), once
per process. One process (no launcher, or N = 1) needs no process group and nothing changes.

- `split(n, world)`: contiguous, balanced ranges, so concatenating the ranks' results in rank order
  is the input order.
- `gather_rows(local, group)`: every rank's rows, in rank order, on every rank (one padded
  `all_gather`; no pickle).
- `ShardStore`: fixed-size shards of a long job written as `.npy` files under a folder named by the
  job's fingerprint; a rerun (with any number of processes) skips the shards already written.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lame_tools.atomic import atomic_save_npy, atomic_write_json


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the launcher's processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launcher_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) as the launcher set them; (0, 1, 0) without one."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


_GROUP: ProcessGroup | None = None


def process_group() -> ProcessGroup:
    """This process's group, joined on first use when the launcher started several processes."""
    global _GROUP
    if _GROUP is not None:
        return _GROUP
    rank, world, local = launcher_world()
    device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    if world > 1:
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())
        atexit.register(_leave_group)
        rank, world, local, device = (
            state.process_index,
            state.num_processes,
            state.local_process_index,
            str(state.device),
        )
    _GROUP = ProcessGroup(rank, world, local, device)
    return _GROUP


def _leave_group() -> None:
    """At exit: wait for the other processes, then leave the group (a process that exits while a peer
    still talks to it aborts gloo with "terminate called without an active exception")."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        try:
            torch.distributed.barrier()
        finally:
            torch.distributed.destroy_process_group()


def split(n: int, world: int) -> list[range]:
    """`world` contiguous ranges covering 0..n-1, sizes differing by at most one, in rank order."""
    base, extra = divmod(n, world)
    bounds = [0]
    for rank in range(world):
        bounds.append(bounds[-1] + base + (rank < extra))
    return [range(bounds[r], bounds[r + 1]) for r in range(world)]


def barrier(group: ProcessGroup | None = None) -> None:
    """Wait for every process (nothing to wait for in one process)."""
    group = group or process_group()
    if group.distributed:
        torch.distributed.barrier()


def gather_rows(local: np.ndarray, group: ProcessGroup | None = None) -> np.ndarray:
    """Concatenate every rank's `local` rows [n_r, ...] in rank order, on every rank.

    Ranks may hold different numbers of rows (none included); the trailing shape and dtype must
    agree where rows exist. Rows are padded to the largest count for one `all_gather`, then trimmed.
    """
    group = group or process_group()
    local = np.ascontiguousarray(local)
    if not group.distributed:
        return local
    device = torch.device(group.device)
    width = int(np.prod(local.shape[1:])) if local.ndim > 1 else 1
    shape = torch.tensor([local.shape[0], width], dtype=torch.int64, device=device)
    shapes = [torch.zeros_like(shape) for _ in range(group.world)]
    torch.distributed.all_gather(shapes, shape)
    counts = [int(s[0]) for s in shapes]
    width = max(int(s[1]) for s in shapes)
    flat = torch.zeros(max(counts), width, dtype=torch.float64, device=device)
    if local.shape[0]:
        flat[: local.shape[0]] = torch.from_numpy(local.reshape(local.shape[0], -1).astype(np.float64))
    parts = [torch.zeros_like(flat) for _ in range(group.world)]
    torch.distributed.all_gather(parts, flat)
    dtype = local.dtype if local.shape[0] else np.float32
    rows = np.concatenate([p[:c].cpu().numpy() for p, c in zip(parts, counts)])
    trailing = local.shape[1:] if local.shape[0] else ((width,) if local.ndim > 1 else ())
    return rows.reshape(-1, *trailing).astype(dtype)


def fingerprint_key(fingerprint: Any) -> str:
    """A short stable hash of a JSON-able fingerprint (a folder name)."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


class ShardStore:
    """Fixed-size shards of one job (embedding `total` inputs) as `.npy` files, resumable.

    The shard size does not depend on the number of processes, so a job killed under 4 processes
    can be finished by 1. Shard i goes to rank i % world. Files live in `<folder>/<fingerprint
    hash>/`, next to a `job.json` holding the fingerprint, so shards of another model or input list
    are never mixed in.
    """

    def __init__(self, folder: str | os.PathLike, fingerprint: Any, total: int, shard_size: int = 1024) -> None:
        if shard_size < 1:
            raise ValueError("shard_size must be at least 1")
        self.folder = Path(folder) / fingerprint_key(fingerprint)
        self.fingerprint, self.total, self.shard_size = fingerprint, total, shard_size

    @property
    def num_shards(self) -> int:
        return -(-self.total // self.shard_size)

    def bounds(self, shard: int) -> range:
        return range(shard * self.shard_size, min(self.total, (shard + 1) * self.shard_size))

    def path(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:06d}.npy"

    def done(self, shard: int) -> bool:
        return self.path(shard).is_file()

    def mine(self, group: ProcessGroup | None = None) -> list[int]:
        """The shards this rank computes that are not written yet."""
        group = group or process_group()
        return [s for s in range(group.rank, self.num_shards, group.world) if not self.done(s)]

    def write(self, shard: int, rows: np.ndarray) -> None:
        if rows.shape[0] != len(self.bounds(shard)):
            raise ValueError(f"shard {shard} holds {len(self.bounds(shard))} rows, not {rows.shape[0]}")
        atomic_write_json(
            self.folder / "job.json",
            {"fingerprint": self.fingerprint, "total": self.total, "shard_size": self.shard_size},
        )
        atomic_save_npy(self.path(shard), np.ascontiguousarray(rows))

    def read_all(self) -> np.ndarray:
        """Every shard's rows in input order (all shards must be written)."""
        missing = [s for s in range(self.num_shards) if not self.done(s)]
        if missing:
            raise FileNotFoundError(f"{len(missing)} shards of {self.folder} are not written yet")
        if not self.num_shards:
            return np.zeros((0, 0), np.float32)
        return np.concatenate([np.load(self.path(s), allow_pickle=False) for s in range(self.num_shards)])
