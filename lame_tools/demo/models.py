"""Which model runs which mode in the app.

By default each mode is run by the shipped checkpoint trained for it (`SHIPPED_MODELS`: LaME for
`latent`, the K=0 model for `discriminative`, the explicit-CoT model for `cot`, and the
sequential-latent model for the race's sequential lane), so the race compares what each method
really is. With `--model X` one model runs all three modes. X is a LaME folder
(written by `save_pretrained`), a Qwen2-VL-family folder (wrapped as an untrained LaME, for timing),
or, only with `allow_hub`, a hub id downloaded first (safetensors and JSON only; custom code only with
`trust_remote_code`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lame_tools import DEFAULT_MODEL_DIR, SHIPPED_MODELS
from lame_tools.constants import MODES, SEQUENTIAL_MODE
from lame_tools.errors import ModelLoadError
from lame_tools.model import CONFIG_FILE, LameModel

# Files fetched from the hub for a model id: configs, tokenizer and safetensors weights; never pickles.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.py"]


@dataclass
class ModeModels:
    """The model that runs each mode, and where each came from.

    Attributes:
        models: mode -> the LameModel that runs it (one object may serve several modes).
        sources: mode -> a short description of the checkpoint (shown on the About tab).
        single: True when one model was given (`--model`) and runs every mode.
    """

    models: dict[str, LameModel]
    sources: dict[str, str]
    single: bool = False
    notes: list[str] = field(default_factory=list)

    def model_for(self, mode: str) -> LameModel:
        if mode not in self.models:
            raise ModelLoadError(f"No model is loaded for the {mode} mode.")
        return self.models[mode]

    @property
    def default(self) -> LameModel:
        """The model of the latent mode (the app's main model)."""
        return self.models["latent"]

    def unique(self) -> list[LameModel]:
        """Each loaded model once."""
        seen: dict[int, LameModel] = {}
        for model in self.models.values():
            seen.setdefault(id(model), model)
        return list(seen.values())

    def to(self, device: str) -> None:
        for model in self.unique():
            model.to(device)


def _describe(path: Path, model: LameModel) -> str:
    trained = model.training_info.get("trained", True) if model.training_info else True
    label = path.name
    return label if trained else f"{label} (untrained placeholder)"


def resolve_model_folder(name_or_path: str, allow_hub: bool = False) -> Path:
    """A local folder, or a hub id downloaded to the local cache when `allow_hub` (else one clear error)."""
    from lame_tools.backbone import resolve_pretrained_source

    source = resolve_pretrained_source(name_or_path, allow_hub)
    if Path(source).expanduser().is_dir():
        return Path(source).expanduser()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=source, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # noqa: BLE001 - network, auth, missing repo: one sentence for the user
        raise ModelLoadError(f"Could not download {source!r} from the Hugging Face hub ({type(exc).__name__}).") from None


def load_one(
    name_or_path: str | Path, *, allow_hub: bool = False, trust_remote_code: bool = False, device: str | None = None
) -> LameModel:
    """Load a LaME folder, or wrap a Qwen2-VL-family checkpoint (folder or allowed hub id) as a LaME."""
    folder = resolve_model_folder(str(name_or_path), allow_hub)
    if (folder / CONFIG_FILE).is_file():
        return LameModel.from_pretrained(folder, device=device)
    model = LameModel.from_backbone(folder, trust_remote_code=trust_remote_code, device=device)
    model.training_info = {"trained": False, "note": f"untrained LaME wrapper around {folder.name}"}
    return model


def load_demo_models(
    model: str | Path | None = None,
    *,
    allow_hub: bool = False,
    trust_remote_code: bool = False,
    device: str | None = None,
) -> ModeModels:
    """Load the models the app runs.

    Args:
        model: None for the shipped checkpoints (one per mode; a missing one falls back to the
            default model run in that mode), or one folder / hub id that then runs every mode.
        allow_hub: allow `model` to be a hub id (downloaded once; needs network).
        trust_remote_code: allow the checkpoint's own Python code (only for a Qwen2-VL-family base).
        device: "cpu", "cuda", ...; default: CUDA when present.

    Raises:
        ModelLoadError: the folder or id cannot be loaded (one sentence).
    """
    if model is not None and Path(str(model)).expanduser().resolve() != DEFAULT_MODEL_DIR.resolve():
        loaded = load_one(model, allow_hub=allow_hub, trust_remote_code=trust_remote_code, device=device)
        label = _describe(Path(str(model)), loaded)
        return ModeModels({m: loaded for m in MODES}, {m: f"{label} in {m} mode" for m in MODES}, single=True)
    default = LameModel.from_pretrained(DEFAULT_MODEL_DIR, device=device)
    models, sources, notes = {}, {}, []
    for mode in MODES:
        path = SHIPPED_MODELS[mode]
        if path.resolve() == DEFAULT_MODEL_DIR.resolve():
            models[mode] = default
        elif (loaded := _shipped(path, device, notes, f"{DEFAULT_MODEL_DIR.name} runs the {mode} mode")) is not None:
            models[mode] = loaded
        else:
            models[mode], path = default, DEFAULT_MODEL_DIR
        sources[mode] = f"{_describe(path, models[mode])} in {mode} mode"
    # the race's sequential lane: without its own model it runs the latent one sequentially (a model
    # not trained for it, as the board says)
    path = SHIPPED_MODELS[SEQUENTIAL_MODE]
    if (sequential := _shipped(path, device, notes, "the latent model runs the sequential lane")) is not None:
        models[SEQUENTIAL_MODE] = sequential
        sources[SEQUENTIAL_MODE] = f"{_describe(path, sequential)} in {SEQUENTIAL_MODE} mode"
    return ModeModels(models, sources, single=False, notes=notes)


def _shipped(path: Path, device: str | None, notes: list[str], instead: str) -> LameModel | None:
    """The shipped model in `path`, or None when the folder is not there or does not load (then a note
    saying so and what runs `instead`)."""
    if not (path / CONFIG_FILE).is_file():
        return None
    try:
        return LameModel.from_pretrained(path, device=device)
    except ModelLoadError as exc:
        notes.append(f"{path.name} could not be loaded ({exc}); {instead}.")
        return None
