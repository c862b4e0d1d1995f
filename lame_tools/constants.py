"""Names shared across the toolkit: inference modes, model kinds, special tokens, label and image markers.

Every module takes these from here; none spells a mode list or a special token out by hand.
"""

from __future__ import annotations

# Inference modes of a LaME model (see `lame_tools.model`).
MODES = ("latent", "discriminative", "cot")
# Modes that read the embedding in one forward pass (no generation).
ONE_PASS_MODES = ("latent", "discriminative")
# The sequential-latent baseline (Coconut / PLUME style: K latent steps one after another, then
# [EMBED]); any LaME model can run it, no shipped model is trained for it yet.
SEQUENTIAL_MODE = "sequential"
# Every mode `LameModel.forward_items` / `encode` accepts.
EMBED_MODES = (*MODES, SEQUENTIAL_MODE)
MAX_REASON_TOKENS = 16
# what `[EMBED]` attends to in latent mode (lame_tools.embed_reads): the paper's "all", or our "reasons"
EMBED_READS = ("all", "reasons")
# what the reason tokens attend to in latent mode (lame_tools.embed_reads): the paper's "all", or our
# "reasons" (only the reason tokens before them: blind to the input, a register control)
REASON_READS = ("all", "reasons")
# what the embedding head reads (LameConfig.embed_pool): the paper's `[EMBED]` state, or our mean of
# `[EMBED]`'s and the K latent states
EMBED_POOLS = ("embed", "mean")

# Model families the evaluation and benchmark verbs can load.
MODEL_KINDS = ("lame", "qwen2-vl-base", "ume-r1", "vlm2vec")

# Qwen2-VL's own special tokens (the tiny tokenizer holds them too, so both share one layout).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
# One image in a Qwen2-VL text prompt, before the processor expands `<|image_pad|>` to the image's tokens.
QWEN_IMAGE_MARKUP = "<|vision_start|><|image_pad|><|vision_end|>"
# MMEB-v2's placeholder for the query image inside its instruction text.
MMEB_IMAGE_TOKEN = "<|image_1|>"

UNK_TOKEN = "[UNK]"  # the word-level tiny tokenizer's unknown word
EMBED_TOKEN = "[EMBED]"
THINK_TOKEN = "[THINK]"

# Label value ignored by cross-entropy (transformers' and torch's convention).
IGNORE_INDEX = -100


def reason_token(i: int) -> str:
    """The name of reason token `i` (0-based)."""
    return f"[REASON_{i}]"


def reason_tokens(k: int) -> list[str]:
    """The names of the first `k` reason tokens, in order."""
    return [reason_token(i) for i in range(k)]


def latent_special_tokens() -> list[str]:
    """Every token LaME adds to a tokenizer: all reason tokens, `[EMBED]`, `[THINK]`."""
    return [*reason_tokens(MAX_REASON_TOKENS), EMBED_TOKEN, THINK_TOKEN]
