"""A LaME model folder on disk: config JSON, safetensors weights, processor files and training JSON.

Written atomically (staged beside the target, then renamed into place) and read with safetensors
only: nothing in a folder is unpickled. `LameModel.save_pretrained` / `from_pretrained` call these.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_model

from lame_tools.atomic import atomic_write_json
from lame_tools.backbone import default_device
from lame_tools.config import LameConfig
from lame_tools.errors import ModelLoadError
from lame_tools.processor import LameProcessor

CONFIG_FILE = "lame_config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINING_FILE = "training.json"


def save_folder(model: Any, folder: str | os.PathLike, training_info: dict[str, Any] | None = None) -> Path:
    """Write config, safetensors weights, processor files and training JSON, atomically: the
    folder is built beside the target and renamed into place, so a crash never leaves half a model."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        atomic_write_json(staging / CONFIG_FILE, model.config.to_dict())
        save_model(model, str(staging / WEIGHTS_FILE))
        model.processor.save_pretrained(staging)
        info = training_info if training_info is not None else model.training_info
        if info:
            atomic_write_json(staging / TRAINING_FILE, info)
        if folder.exists():
            retired = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(retired, ignore_errors=True)
            folder.rename(retired)
            staging.rename(folder)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _shape_mismatch(model: torch.nn.Module, weights: Path) -> str | None:
    """The first tensor whose shape in the file differs from the model's, said as such (None: none differs,
    or the file cannot be read, which loading then reports)."""
    expected = {name: list(t.shape) for name, t in model.state_dict().items()}
    try:
        with safe_open(str(weights), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                shape = list(f.get_slice(name).get_shape())
                if name in expected and shape != expected[name]:
                    return f"{name} has shape {shape} in the file but {expected[name]} in this model's config"
    except Exception:  # noqa: BLE001 - a corrupt file is named by the loading step
        return None
    return None


def load_folder(cls: Any, folder: str | os.PathLike, device: str | torch.device | None = None) -> Any:
    """Load a folder written by `save_pretrained` (safetensors only; nothing is unpickled).

    Raises:
        ModelLoadError: one sentence naming what is missing or broken.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(f"The model folder {str(folder)!r} does not exist.")
    for required in (CONFIG_FILE, WEIGHTS_FILE, "tokenizer.json", "preprocessor_config.json"):
        if not (folder / required).is_file():
            raise ModelLoadError(f"The model folder {str(folder)!r} is incomplete: {required} is missing.")
    try:
        lame_config = LameConfig.load(folder / CONFIG_FILE)
    except (ValueError, TypeError) as exc:
        raise ModelLoadError(f"{CONFIG_FILE} in {str(folder)!r} is not a valid LaME config ({exc}).") from None
    try:
        processor = LameProcessor.from_pretrained(folder)
    except Exception as exc:  # noqa: BLE001 - any tokenizer/processor parse failure
        raise ModelLoadError(f"The processor files in {str(folder)!r} could not be read ({type(exc).__name__}).") from None
    try:
        model = cls.assemble(lame_config, processor)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"The config in {str(folder)!r} does not describe a buildable model ({exc}).") from None
    mismatch = _shape_mismatch(model, folder / WEIGHTS_FILE)
    if mismatch:
        raise ModelLoadError(f"{WEIGHTS_FILE} in {str(folder)!r} holds another model's weights: {mismatch}.")
    try:
        missing, unexpected = load_model(model, str(folder / WEIGHTS_FILE), strict=False)
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt safetensors
        raise ModelLoadError(f"{WEIGHTS_FILE} in {str(folder)!r} is corrupt or truncated ({type(exc).__name__}).") from None
    if missing or unexpected:
        raise ModelLoadError(
            f"{WEIGHTS_FILE} in {str(folder)!r} does not match its config "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors)."
        )
    if (folder / TRAINING_FILE).is_file():
        try:
            model.training_info = json.loads((folder / TRAINING_FILE).read_text())
        except ValueError:
            model.training_info = {}
    return model.to(torch.device(device) if device is not None else default_device()).eval()
