"""Resume checkpoints: everything needed to continue a training run exactly where it stopped.

One checkpoint is a folder `step-XXXXXXXX/` holding
    model.safetensors       every tensor of the model (trainable or frozen)
    optimizer.safetensors   the optimizer's per-parameter tensors (Adam moments, step counts)
    rng.safetensors         torch's CPU (and CUDA) generator states
    state.json              step, stage, data position, python / numpy RNG states, optimizer
                            hyper-parameters, the lr scheduler's state (when there is one),
                            anything else the trainer passes
    NAME.safetensors        optional extra tensors the trainer passes by name (e.g. `ema`, the
                            running average of the weights)
    MANIFEST.json           size and sha256 of each file above; written last
Each file is written atomically (`lame_tools.atomic`) into a hidden staging folder that is renamed
into place once complete, so a run killed at any moment leaves only whole checkpoints. Loading
checks the manifest: a checkpoint with a missing, truncated or altered file is named in a warning
and skipped, and the previous good one is used. The newest `keep` checkpoints are kept.

Nothing here is unpickled: tensors go through safetensors, the rest through JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from lame_tools.atomic import atomic_write, atomic_write_json

MANIFEST = "MANIFEST.json"
FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json")


class CorruptCheckpointWarning(UserWarning):
    """A checkpoint failed its manifest check and was skipped."""


@dataclass
class Resumed:
    """What `load_latest` restored: the checkpoint folder and the trainer's state dict."""

    path: Path
    state: dict[str, Any]


# ---- RNG state as plain data ---------------------------------------------------------------------


def rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(JSON-able python/numpy states, tensors of torch's generators)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    plain = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = state
    return plain, tensors


def set_rng_state(plain: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = sorted(k for k in tensors if k.startswith("torch_cuda_"))
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])


# ---- optimizer state as tensors + JSON -------------------------------------------------------------


def optimizer_to_parts(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split `optimizer.state_dict()` into tensors (for safetensors) and plain data (for JSON)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_parts(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, entry in plain.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": state, "param_groups": plain["param_groups"]}


# ---- write / read --------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(
    directory: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int = 2,
    scheduler: Any = None,
    extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write the checkpoint of `step` under `directory` and keep only the newest `keep` of them.

    Args:
        state: JSON-able trainer state (stage, data position, config ...); `step`, the RNG states and
            the state of `scheduler` (a torch lr scheduler, whose state is plain data) are added here.
        extra_tensors: more tensors to keep, by file stem (`{"ema": {...}}` writes `ema.safetensors`);
            read back with `load_extra_tensors`. The manifest covers them like the other files.

    Returns:
        the checkpoint folder.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(step)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=directory))
    try:
        model_tensors = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}  # clone: tied weights
        optim_tensors, optim_plain = optimizer_to_parts(optimizer)
        rng_plain, rng_tensors = rng_state()
        extras = {f"{stem}.safetensors": {k: v.detach().cpu().clone() for k, v in tensors.items()}
                  for stem, tensors in (extra_tensors or {}).items()}
        if set(extras) & set(FILES):
            raise ValueError(f"extra tensors may not be named like a checkpoint's own files: {sorted(extras)}")
        for name, tensors in (
            ("model.safetensors", model_tensors),
            ("optimizer.safetensors", optim_tensors),
            ("rng.safetensors", rng_tensors),
            *extras.items(),
        ):
            atomic_write(staging / name, lambda f, t=tensors: f.write(_safetensors_bytes(t)))
        extra = {"scheduler": scheduler.state_dict()} if scheduler is not None else {}
        atomic_write_json(
            staging / "state.json", {**state, **extra, "step": step, "optimizer": optim_plain, "rng": rng_plain}
        )
        manifest = {name: {"bytes": (staging / name).stat().st_size, "sha256": _sha256(staging / name)}
                    for name in (*FILES, *extras)}
        atomic_write_json(staging / MANIFEST, {"step": step, "files": manifest})
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _safetensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save(tensors) if tensors else save({"_empty": torch.zeros(0)})


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Checkpoint folders under `directory`, oldest first (staging folders excluded)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith("step-"))


def verify_checkpoint(path: str | os.PathLike) -> str | None:
    """None when the checkpoint is whole, else one sentence saying what is wrong with it."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return f"checkpoint {path} has no {MANIFEST} (it was never completed)"
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        return f"checkpoint {path} has an unreadable {MANIFEST}"
    for name in dict.fromkeys((*FILES, *files)):  # the checkpoint's own files, then any extra ones
        file = path / name
        expected = files.get(name)
        if expected is None or not file.is_file():
            return f"checkpoint {path} is missing {name}"
        size = file.stat().st_size
        if size != expected["bytes"]:
            return f"checkpoint {path}: {name} is truncated or altered ({size} bytes, expected {expected['bytes']})"
        if _sha256(file) != expected["sha256"]:
            return f"checkpoint {path}: {name} does not match its checksum (corrupt)"
    return None


def load_checkpoint(
    path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None
) -> dict[str, Any]:
    """Restore model, optimizer, RNG and (when both the checkpoint and the caller have one) scheduler
    states from one verified checkpoint; return its state dict (without "scheduler" when it held none)."""
    path = Path(path)
    model_tensors = load_file(str(path / "model.safetensors"))
    device_of = {k: v.device for k, v in model.state_dict().items()}
    missing, unexpected = model.load_state_dict(
        {k: v.to(device_of.get(k, v.device)) for k, v in model_tensors.items()}, strict=False
    )
    if missing or unexpected:
        raise RuntimeError(f"checkpoint {path} does not match the model ({len(missing)} missing, {len(unexpected)} unexpected)")
    state = json.loads((path / "state.json").read_text())
    optim_tensors = load_file(str(path / "optimizer.safetensors"))
    optim_tensors.pop("_empty", None)
    optimizer.load_state_dict(optimizer_from_parts(optim_tensors, state["optimizer"]))
    set_rng_state(state["rng"], load_file(str(path / "rng.safetensors")))
    if scheduler is not None and "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    return state


def load_extra_tensors(path: str | os.PathLike, stem: str) -> dict[str, torch.Tensor] | None:
    """The extra tensors saved under `stem` in the (verified) checkpoint `path`, or None when it has none."""
    file = Path(path) / f"{stem}.safetensors"
    return load_file(str(file)) if file.is_file() else None


def load_latest(
    directory: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None
) -> Resumed | None:
    """Restore the newest whole checkpoint under `directory`; corrupt ones are named and skipped.

    Returns:
        the checkpoint used and its state, or None when there is no usable checkpoint.
    """
    for path in reversed(list_checkpoints(directory)):
        problem = verify_checkpoint(path)
        if problem is not None:
            warnings.warn(f"{problem}; falling back to the previous checkpoint", CorruptCheckpointWarning, stacklevel=2)
            continue
        return Resumed(path, load_checkpoint(path, model, optimizer, scheduler))
    return None


__all__ = [
    "CorruptCheckpointWarning",
    "Resumed",
    "list_checkpoints",
    "load_checkpoint",
    "load_extra_tensors",
    "load_latest",
    "save_checkpoint",
    "verify_checkpoint",
]
