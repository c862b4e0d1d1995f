"""Configuration of a LaME model, and the named presets for the embedded tiny backbone.

A `LameConfig` is everything `LameModel.from_pretrained` needs besides weights and processor files:
the nested backbone config (a Qwen2-VL config dict), the latent decoder config (a Qwen3 config
dict, or None), K, the projection size, the special tokens and the prompt layout.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lame_tools.constants import EMBED_MODES, EMBED_POOLS, EMBED_READS, MAX_REASON_TOKENS, REASON_READS


def check_reads(embed_reads: str, reason_reads: str) -> None:
    """Refuse an unknown `embed_reads` / `reason_reads`, or both "reasons" (which would leave `[EMBED]`
    nothing of the input): `LameConfig`'s check, and `LameModel.reading`'s when it switches one."""
    if embed_reads not in EMBED_READS:
        raise ValueError(f"embed_reads must be one of {EMBED_READS}, got {embed_reads!r}")
    if reason_reads not in REASON_READS:
        raise ValueError(f"reason_reads must be one of {REASON_READS}, got {reason_reads!r}")
    if embed_reads == "reasons" and reason_reads == "reasons":
        raise ValueError("embed_reads=reasons with reason_reads=reasons leaves [EMBED] nothing of the input")


@dataclass
class LameConfig:
    """What a LaME checkpoint is, apart from its weights.

    Attributes:
        num_reason_tokens: K, the reason tokens appended before `[EMBED]` in latent mode.
        embed_dim: size of the projected, L2-normalised embedding.
        backbone: the Qwen2-VL config as a dict (`Qwen2VLConfig.to_dict()`).
        decoder: the latent decoder's Qwen3 config as a dict, or None for a model without one.
        default_mode: the mode `encode` uses when none is given (the mode the model was trained for).
        prompt_format: "plain" (the tiny model: instruction, image, text, no chat markup),
            "plain-text-first" (instruction, text, image: the visual tokens come after the question,
            so their states can depend on it) or "qwen2-vl-chat" (Qwen2-VL's chat layout, for real
            checkpoints).
        image_min_pixels / image_max_pixels: resize bounds of the image processor.
        max_text_tokens: text longer than this (in tokens) is truncated, with a warning.
        cot_max_new_tokens: the rationale length cap in cot mode.
        logit_scale_init: initial inverse temperature of InfoNCE (1 / 0.05).
        scene_head: the model carries a `lame_tools.scene_head.SceneHead` (a per-visual-token read-out
            of shape and colour, trained from the Shapes scene graphs).
        scene_head_context: the scene head's neighbourhood (`SceneHead(context=...)`): 1 = each merged
            token alone; 3 = a 3 x 3 convolution over the merged grid first (our departure, for objects
            that straddle two cells).
        scene_words: each merged visual token also carries the input embeddings of the shape and
            colour words its scene head predicts (`lame_tools.scene_words`; needs `scene_head`).
        scene_words_only: with `scene_words`, the language model reads the words alone instead of the
            raw visual token plus the words (`lame_tools.scene_words`).
        visual_positions: each merged visual token also carries a learned map of its cell's position
            in the image (`lame_tools.visual_positions`; our departure, for reading spatial relations).
        reason_layer: the language-model layer whose reason-token states are the model's
            `reason_states` (what the latent decoder reads, in training and in the read-out probes):
            0 = the last layer's (normed) output, n = the output of layer n (1-based; n = the layer
            count is the last layer's, as 0 is). In a causal model `[EMBED]` never reads the last
            layer's reason states (its last attention reads the layer before), so a decoder on them
            can fill states that the embedding does not see. Latent (parallel) mode only: the
            sequential mode's reason states are its steps' outputs.
        embed_reads: what `[EMBED]` attends to in latent mode (`lame_tools.embed_reads`): "all" (the
            paper: the prompt and the reason tokens) or "reasons" (our departure, an upper bound of
            use: only the reason tokens and itself, so the embedding sees the input only through them).
        reason_reads: what the reason tokens attend to in latent mode (`lame_tools.embed_reads`): "all"
            (the paper: the prompt and the reason tokens before them) or "reasons" (our departure, a
            control: only the reason tokens before them, so they never see the input and hold the same
            states for every query). Not with `embed_reads="reasons"`.
        embed_pool: what the embedding head reads: "embed" (the paper: `[EMBED]`'s last state) or "mean"
            (our departure: the mean of `[EMBED]`'s and the K latent positions' last states, so what
            the reason tokens hold enters the embedding directly; latent and sequential modes, the same
            as "embed" without reason tokens).
    """

    num_reason_tokens: int = 8
    embed_dim: int = 128
    backbone: dict[str, Any] = field(default_factory=dict)
    decoder: dict[str, Any] | None = None
    default_mode: str = "latent"
    prompt_format: str = "plain"
    image_min_pixels: int = 112 * 112
    image_max_pixels: int = 112 * 112
    max_text_tokens: int = 64
    cot_max_new_tokens: int = 48
    logit_scale_init: float = 20.0
    scene_head: bool = False
    scene_head_context: int = 1
    scene_words: bool = False
    scene_words_only: bool = False
    visual_positions: bool = False
    reason_layer: int = 0
    embed_reads: str = "all"
    reason_reads: str = "all"
    embed_pool: str = "embed"

    def __post_init__(self) -> None:
        if self.scene_words and not self.scene_head:
            raise ValueError("scene_words needs a scene head (scene_head=True)")
        if self.scene_words_only and not self.scene_words:
            raise ValueError("scene_words_only needs scene_words=True")
        check_reads(self.embed_reads, self.reason_reads)
        if self.embed_pool not in EMBED_POOLS:
            raise ValueError(f"embed_pool must be one of {EMBED_POOLS}, got {self.embed_pool!r}")
        if not 0 <= self.num_reason_tokens <= MAX_REASON_TOKENS:
            raise ValueError(f"num_reason_tokens must be in 0..{MAX_REASON_TOKENS}, got {self.num_reason_tokens}")
        if self.default_mode not in EMBED_MODES:
            raise ValueError(f"default_mode must be one of {EMBED_MODES}, got {self.default_mode!r}")
        layers = (self.backbone.get("text_config") or self.backbone).get("num_hidden_layers")
        if self.reason_layer < 0 or (layers is not None and self.reason_layer > layers):
            raise ValueError(f"reason_layer must be in 0..{layers if layers is not None else 'the layer count'}, "
                             f"got {self.reason_layer}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LameConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> LameConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class TinyBackbonePreset:
    """Sizes of a tiny Qwen2-VL built offline.

    Constraints between the numbers: `mrope_section` sums to head_dim / 2 (hidden_size / num_heads / 2);
    the vision tower's output is merged into the language model's width; the vision head size
    (vision_width / vision_heads) is divisible by 4; the image side is a multiple of
    patch_size x spatial_merge_size (a merged visual token covers that many pixels square).
    """

    hidden_size: int = 128
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    vision_depth: int = 2
    vision_width: int = 64
    vision_heads: int = 4
    mrope_section: tuple[int, int, int] = (4, 6, 6)  # sums to head_dim / 2 = 16
    patch_size: int = 14
    spatial_merge_size: int = 2
    decoder_hidden_size: int = 96
    decoder_layers: int = 2
    decoder_heads: int = 4
    decoder_kv_heads: int = 2
    decoder_intermediate_size: int = 256


TINY_PRESETS: dict[str, TinyBackbonePreset] = {
    "tiny": TinyBackbonePreset(),
    # the tiny language model with a deeper, wider vision tower (4 blocks of width 128)
    "tiny-vision": TinyBackbonePreset(vision_depth=4, vision_width=128, vision_heads=4),
    # a few million parameters: a wider, deeper language model and the wider vision tower
    "small": TinyBackbonePreset(
        hidden_size=192, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=576,
        vision_depth=4, vision_width=128, vision_heads=4, mrope_section=(8, 8, 8),
    ),
    # the tiny model reading the same 16 visual tokens at 112 px, each merged from 4 x 4 patches of
    # 7 px instead of 2 x 2 of 14 px: a 14 px patch is about half an object, and a tower that embeds
    # it linearly learns colour fast but shape barely (see README, "A backbone that sees")
    "fine": TinyBackbonePreset(patch_size=7, spatial_merge_size=4),
    # `fine` with 64 visual tokens, each merged from 2 x 2 patches of 7 px: a token's cell (14 px) is
    # smaller than an object, so two objects rarely share one (the binding errors of `fine`; README)
    "fine-64": TinyBackbonePreset(patch_size=7, spatial_merge_size=2),
    # `fine` with a 6-layer language model: the same vision tower (it can start from a `fine` stage 0
    # with `init_parts=vision`), twice the serial depth (see README, "Depth")
    "fine-deep": TinyBackbonePreset(patch_size=7, spatial_merge_size=4, num_layers=6),
    # `fine` with a 12-layer language model: four times the serial depth, for asking whether the
    # latent model's share of CoT's gain grows with depth (3 layers 7%, 6 layers 23%; README)
    "fine-deeper": TinyBackbonePreset(patch_size=7, spatial_merge_size=4, num_layers=12),
    # for unit tests: builds in milliseconds
    "micro": TinyBackbonePreset(
        hidden_size=64, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=128,
        vision_depth=1, vision_width=32, vision_heads=2, mrope_section=(4, 6, 6),
        decoder_hidden_size=32, decoder_layers=1, decoder_heads=2, decoder_kv_heads=1,
        decoder_intermediate_size=64,
    ),
}


def get_preset(name: str) -> TinyBackbonePreset:
    if name not in TINY_PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {sorted(TINY_PRESETS)}")
    return TINY_PRESETS[name]
