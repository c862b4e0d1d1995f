"""Shared fixtures: a tiny random model built in milliseconds, the shipped default, a few scenes, the
training config of a queued recipe.

No test may touch the network: the hub is switched off for the whole session.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def micro_model():
    """A random 'micro' LaME (K=4, with decoder): for unit tests of shapes and plumbing."""
    from lame_tools.data.shapes import VOCABULARY
    from lame_tools.model import LameModel

    return LameModel.build_tiny("micro", num_reason_tokens=4, embed_dim=32, seed=0, vocabulary=VOCABULARY)


@pytest.fixture(scope="session")
def shipped_model():
    """The shipped default model (assets/models/lame-shapes)."""
    from lame_tools import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def scenes():
    """Eight test-split examples and their rendered images (mixed sizes and aspect ratios)."""
    from lame_tools.data.shapes import make_example, render

    examples = [make_example(0, "test", i) for i in range(8)]
    return examples, [render(e.scene) for e in examples]


@pytest.fixture(scope="session")
def queued_config():
    """queued_config(queue, name): the TrainConfig that `scripts/science_queue.py` builds for the run
    `name` of `scripts/queues/<queue>` (its preset with its `set` overrides)."""
    import json
    from pathlib import Path

    from lame_tools.train import build_config

    queues = Path(__file__).resolve().parent.parent / "scripts" / "queues"

    def config(queue: str, name: str):
        recipe = next(r for r in json.loads((queues / queue).read_text()) if r["name"] == name)
        return build_config(recipe["preset"], recipe["set"])

    return config
