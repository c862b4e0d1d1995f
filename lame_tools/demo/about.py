"""The About tab: what LaME is, the loaded checkpoints and how each was trained, how to load another.

`AboutActions` is the part of `DemoService` that describes the loaded models; it needs the
service's `models` and `gallery`.
"""

from __future__ import annotations

from typing import Any

from lame_tools.constants import MODES
from lame_tools.demo.gallery import Gallery
from lame_tools.demo.models import ModeModels
from lame_tools.model import LameModel

ABOUT = """
## What LaME is

LaME (Latent Reasoning Multimodal Embedding, arXiv 2606.13061) turns a vision-language model into an
embedding model that reasons without writing: after the input it appends K learnable `[REASON]` tokens
and one `[EMBED]` token, runs **one forward pass**, and takes the normalised state at `[EMBED]` as the
embedding. Training is a weakly supervised information bottleneck: a contrastive loss at `[EMBED]`,
and a small latent decoder that must rebuild the target text from the K reason states alone. No
chain-of-thought annotation is needed. Explicit-CoT embedders (UME-R1 style) first generate a
rationale (hundreds of tokens at real scale) and then embed; the Race tab times both on this machine.

## The three modes

| mode | what runs |
|---|---|
| latent | input + K `[REASON]` + `[EMBED]`, one pass (LaME) |
| discriminative | input + `[EMBED]`, one pass (K = 0; VLM2Vec / GME style) |
| cot | input + `[THINK]`, generate a rationale, then one pass ending in `[EMBED]` (UME-R1 style) |

## Loading another model

```bash
python app.py --model path/to/lame-folder            # a folder written by LameModel.save_pretrained
python app.py --model path/to/Qwen2-VL-2B-Instruct   # a Qwen2-VL-family folder, wrapped as an untrained LaME (for timing)
python app.py --model owner/name --allow-hub         # a hub id: downloaded once (needs network)
python app.py --model owner/name --allow-hub --trust-remote-code   # only if that checkpoint needs its own code
```

With no `--model`, each mode is run by the shipped checkpoint trained for it (`assets/models/`).
Nothing is downloaded unless you pass `--allow-hub`; remote code never runs without `--trust-remote-code`.
Every number this page shows is measured live on the machine serving it, unless it is labelled as recorded.
"""

MODEL_COLUMNS = ("mode", "checkpoint", "K", "layers", "embedding", "parameters", "trained")


def training_summary(info: dict[str, Any]) -> str:
    """A one-line summary of a training.json: note, steps (of each run, for a model trained in several
    runs each continuing the last: `phases`), time, held-out score, the last run's command."""
    if not info:
        return "no training record"
    phases = [p for p in info.get("phases") or [] if isinstance(p, dict)]
    parts = []
    for key in ("note", "preset", "stage", *(() if phases else ("steps",)), "seed"):
        if key in info and not isinstance(info[key], (dict, list)):
            parts.append(f"{key}: {info[key]}")
    if phases:
        steps = " + ".join(str(p.get("steps", "?")) for p in phases)
        parts.append(f"{len(phases)} runs, each continuing the last: {steps} steps")
    wall = info.get("pipeline_wall_s") if phases else info.get("wall_s")
    if isinstance(wall, (int, float)):
        parts.append(f"trained for {wall / 60:.1f} min")
    for key in ("test_scores", "scores", "eval"):
        scores = info.get(key)
        if isinstance(scores, dict) and isinstance(scores.get("overall"), (int, float)):
            parts.append(f"held-out overall {scores['overall']:.3f} ({scores.get('split', 'test')})")
            break
    if isinstance(info.get("command"), str):
        parts.append(f"`{info['command']}`")
    return "; ".join(parts) or "see training.json"


def facts_table(facts: list[dict[str, Any]]) -> str:
    """`model_facts` as a Markdown table (one row per mode)."""
    lines = ["| " + " | ".join(MODEL_COLUMNS) + " |", "|" + "---|" * len(MODEL_COLUMNS)]
    for fact in facts:
        lines.append(
            f"| {fact['mode']} | {fact['checkpoint']} | {fact['reason tokens (K)']} | {fact['language-model layers']} | "
            f"{fact['embedding size']} | {fact['parameters'] / 1e6:.2f} M | {'yes' if fact['trained'] else 'no'} |"
        )
    return "\n".join(lines)


class AboutActions:
    """The loaded models' facts and the About tab's text (part of `DemoService`)."""

    models: ModeModels
    gallery: Gallery

    def model_facts(self) -> list[dict[str, Any]]:
        """Per mode (and the race's sequential lane when it has its own model): the checkpoint, K, the
        language model's depth (lanes of unequal depth are not a like-for-like race), embedding size,
        parameters and how it was trained."""
        facts = []
        for mode in [*MODES, *[m for m in self.models.models if m not in MODES]]:
            model: LameModel = self.models.model_for(mode)
            info = model.training_info or {}
            facts.append(
                {
                    "mode": mode,
                    "checkpoint": self.models.sources[mode],
                    "reason tokens (K)": model.num_reason_tokens,
                    "language-model layers": model.backbone.config.text_config.num_hidden_layers,
                    "embedding size": model.config.embed_dim,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "device": str(model.device),
                    "trained": info.get("trained", bool(info)),
                    "training": training_summary(info),
                }
            )
        return facts

    def corpus_summary(self) -> str:
        """One line: how many images (Shapes scenes, or a folder's images) and texts the corpus holds."""
        kind = "Shapes scenes" if getattr(self.gallery, "shapes", None) is not None else "images"
        return f"The corpus: {self.gallery.count('image')} {kind} and {self.gallery.count('text')} texts."

    def about_markdown(self) -> str:
        """The About tab: what LaME is, the loaded checkpoints, how to load another."""
        facts = self.model_facts()
        corpus = (
            f"The corpus: {self.gallery.count('image')} scenes and {self.gallery.count('text')} texts of the Shapes "
            "world's held-out test split (colour-shape pairs never seen in training)."
        )
        training = "\n".join(f"- {fact['mode']}: {fact['training']}" for fact in facts)
        notes = "".join(f"\n- {n}" for n in self.models.notes)
        return (
            ABOUT + "\n## Loaded now\n\n" + facts_table(facts) + "\n\nHow each was trained:\n\n" + training
            + "\n\n" + corpus + notes + "\n"
        )
