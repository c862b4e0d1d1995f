"""LoRA adapters and the baseline loader: a Qwen2-VL-family checkpoint loaded once, with a LoRA adapter
merged into it once, shared by every lane that asks for the same weights.

- `merge_lora(model, folder)`: merge a peft adapter folder (`adapter_config.json` +
  `adapter_model.safetensors`) into a model in place. With `peft` installed (`pip install '.[lora]'`)
  peft's own merge does it (every peft method and option); without it a plain merge handles LoRA
  with its scale alpha / r, rsLoRA's alpha / sqrt(r), per-module `rank_pattern` / `alpha_pattern`
  and `fan_in_fan_out`, and refuses, in one sentence, what it cannot apply (DoRA, other methods,
  `modules_to_save`, extra tensors).
- `load_baseline(source, ...)`: (backbone, tokenizer, image_processor) of a checkpoint folder or a
  LoRA folder (its base model, the adapter merged), cached per source, LoRA folder and device.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import torch

from lame_tools.errors import ModelLoadError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
_LORA_KEY = re.compile(r"(?P<module>.+)\.lora_(?P<side>[AB])\.weight")

# (source, allow_hub, trust_remote_code, device, LoRA folder) -> (backbone with the LoRA merged, tokenizer, image processor)
_LOADED: dict[tuple[str, bool, bool, str, str], tuple[Any, Any, Any]] = {}


def peft_available() -> bool:
    return importlib.util.find_spec("peft") is not None


def is_lora_folder(path: str | os.PathLike) -> bool:
    return (Path(path).expanduser() / CONFIG_FILE).is_file()


def read_lora_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The adapter's `adapter_config.json`.

    Raises:
        ModelLoadError: the folder lacks the config or the weights.
    """
    folder = Path(folder).expanduser()
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ModelLoadError(f"{str(folder)!r} holds no LoRA adapter ({CONFIG_FILE} + {WEIGHTS_FILE}).")
    return json.loads((folder / CONFIG_FILE).read_text())


def lora_scale(config: dict[str, Any], module: str) -> tuple[int, float]:
    """(rank, scale) of one target module: its rank and alpha from `rank_pattern` / `alpha_pattern` when
    a pattern matches the end of its name (the first that matches, in the file's order), else `r` and
    `lora_alpha`; scale alpha / r, or alpha / sqrt(r) with `use_rslora`."""
    r = int(_pattern_value(config.get("rank_pattern") or {}, module, config["r"]))
    alpha = float(_pattern_value(config.get("alpha_pattern") or {}, module, config.get("lora_alpha", r)))
    return r, alpha / (math.sqrt(r) if config.get("use_rslora") else r)


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    for pattern, value in patterns.items():
        if re.fullmatch(rf"(?:.*\.)?(?:{pattern})", module):
            return value
    return default


def merge_lora(model: torch.nn.Module, folder: str | os.PathLike, use_peft: bool | None = None) -> int:
    """Merge the LoRA adapter in `folder` into `model`'s weights, in place.

    Args:
        use_peft: True: peft's merge (peft must be installed); False: the plain merge;
            None: peft when it is installed.

    Returns:
        the number of layers changed.

    Raises:
        ModelLoadError: files missing, or (plain merge) an adapter it cannot apply, or a target
            that is not a layer of `model`.
    """
    config = read_lora_config(folder)
    if use_peft is None:
        use_peft = peft_available()
    if use_peft:
        return _merge_with_peft(model, Path(folder).expanduser())
    from safetensors.torch import load_file

    return _merge_plain(model, config, load_file(str(Path(folder).expanduser() / WEIGHTS_FILE)))


def _merge_with_peft(model: torch.nn.Module, folder: Path) -> int:
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    wrapped = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    changed = sum(isinstance(m, BaseTunerLayer) for m in wrapped.modules())
    wrapped.merge_and_unload()  # puts the merged layers back into `model` itself
    return changed


def _check_plain(config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Refuse, in one sentence, an adapter the plain merge would apply wrongly."""
    hint = "install peft (pip install '.[lora]') to merge it"
    if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora"):
        raise ModelLoadError(f"Only plain LoRA adapters can be merged without peft (this one is DoRA or another method); {hint}.")
    if config.get("modules_to_save"):
        raise ModelLoadError(f"This LoRA adapter also replaces whole modules (modules_to_save); {hint}.")
    extra = sorted(key for key in tensors if not _LORA_KEY.fullmatch(key))
    if extra:
        raise ModelLoadError(f"This LoRA adapter holds tensors a plain merge cannot apply ({extra[0]!r}); {hint}.")


def _merge_plain(model: torch.nn.Module, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> int:
    """W += scale * B @ A for every (A, B) pair (transposed with `fan_in_fan_out`); every pair is
    checked before any weight changes."""
    _check_plain(config, tensors)
    modules = dict(model.named_modules())
    updates = []
    for key, a in tensors.items():
        match = _LORA_KEY.fullmatch(key)
        if match["side"] != "A":
            continue
        name = match["module"].removeprefix(PEFT_PREFIX)
        target = modules.get(name)
        b = tensors.get(f"{match['module']}.lora_B.weight")
        if target is None or not isinstance(getattr(target, "weight", None), torch.Tensor) or b is None:
            raise ModelLoadError(f"LoRA target {name!r} is not a layer of this model (or its lora_B is missing).")
        r, scale = lora_scale(config, name)
        delta = (b.float() @ a.float()) * scale
        if config.get("fan_in_fan_out"):
            delta = delta.T
        if a.shape[0] != r or delta.shape != target.weight.shape:
            raise ModelLoadError(f"The LoRA weights of {name!r} do not fit its layer (rank {a.shape[0]}, config rank {r}).")
        updates.append((target.weight, delta))
    with torch.no_grad():
        for weight, delta in updates:
            weight += delta.to(weight.device, weight.dtype)
    return len(updates)


def load_baseline(
    source: str | os.PathLike,
    *,
    device: str | None = None,
    allow_hub: bool = False,
    trust_remote_code: bool = False,
) -> tuple[Any, Any, Any]:
    """(backbone, tokenizer, image_processor) of a Qwen2-VL-family checkpoint, or of a LoRA folder: its
    `base_model_name_or_path` loaded and the adapter merged into it.

    Loaded once per (source, LoRA folder, device, hub options): later calls get the same objects, so
    UME-R1's two lanes share one copy of the weights and a LoRA adapter is merged exactly once.
    """
    from lame_tools.backbone import load_backbone

    lora = Path(str(source)).expanduser()
    if is_lora_folder(lora):
        source = read_lora_config(lora).get("base_model_name_or_path") or source
    else:
        lora = None
    key = (str(source), allow_hub, trust_remote_code, str(device), str(lora))
    if key not in _LOADED:
        backbone, tokenizer, image_processor = load_backbone(
            source, allow_hub=allow_hub, trust_remote_code=trust_remote_code, device=device
        )
        if lora is not None:
            merge_lora(backbone, lora)
        _LOADED[key] = (backbone, tokenizer, image_processor)
    return _LOADED[key]
