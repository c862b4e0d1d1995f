"""Short stable hashes for cache keys: of values and arrays, of a loaded model's weights, of a model folder.

Two model fingerprints, for two different questions:

- `model_fingerprint(model)`: which weights does this loaded model hold? (the app's embedding and
  map caches: the same weights give the same key wherever they were loaded from).
- `folder_fingerprint(folder)`: have the files of this folder changed? (a resumed evaluation run:
  cheap, from the path, sizes and modification times, without reading or loading the weights).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np


def array_key(*parts: Any) -> str:
    """A short stable hash of arrays / strings / JSON-able values (for cache keys)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(str((part.dtype.str, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:24]


def model_fingerprint(model: Any) -> str:
    """A cheap hash of a torch model's weights: every tensor's name, shape and a strided sample of values.

    Two different checkpoints give different fingerprints in practice; hashing every byte of a 2B
    model would take seconds, so only up to 4,096 values a tensor are read.
    """
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // 4096)
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(flat[::step].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:24]


def folder_fingerprint(folder: Path) -> str:
    """Cheap identity of a model folder: its resolved path and each top-level file's size and
    modification time (the files are not read)."""
    parts = [str(folder.resolve())]
    for path in sorted(folder.glob("*")):
        if path.is_file():
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
