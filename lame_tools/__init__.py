"""lame_tools: load, train, run, time and probe LaME latent-reasoning multimodal embedding models."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
MODELS_DIR = ASSETS_DIR / "models"
DEFAULT_MODEL_DIR = MODELS_DIR / "lame-shapes"
SHIPPED_MODELS = {
    "latent": MODELS_DIR / "lame-shapes",
    "discriminative": MODELS_DIR / "discriminative-shapes",
    "cot": MODELS_DIR / "cot-shapes",
    # the sequential-latent baseline (the race's and the frontier's sequential lane; not one of the
    # app's three modes)
    "sequential": MODELS_DIR / "sequential-shapes",
}


def load_model(path: str | Path | None = None, device: str | None = None):
    """Load a LaME folder (default: the shipped `assets/models/lame-shapes`)."""
    from lame_tools.model import LameModel

    return LameModel.from_pretrained(path or DEFAULT_MODEL_DIR, device=device)
