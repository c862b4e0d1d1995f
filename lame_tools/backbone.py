"""Build the tiny Qwen2-VL backbone and its processor parts offline, or load a Qwen2-VL-family checkpoint.

The embedded default uses transformers' own `Qwen2VLForConditionalGeneration` with a small config, a
word-level tokenizer trained with `tokenizers` on the Shapes world's vocabulary, and the PIL Qwen2-VL
image processor sized so a scene becomes a handful of visual tokens. Real checkpoints (Qwen2-VL,
Qwen2.5-VL, UME-R1, ...) load from a local folder, or from a hub id only when the caller allows it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen3Config
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from lame_tools.config import TinyBackbonePreset
from lame_tools.constants import QWEN_SPECIAL_TOKENS, UNK_TOKEN, latent_special_tokens
from lame_tools.errors import ModelLoadError


def build_tokenizer(vocabulary: list[str]) -> PreTrainedTokenizerFast:
    """Train a word-level tokenizer on `vocabulary` holding Qwen2-VL's and our special tokens.

    Lower-cases, splits on whitespace and punctuation; unknown words map to `[UNK]`. Padding is on
    the left, so the last position of every row is the pooled `[EMBED]` token.
    """
    specials = [UNK_TOKEN, *QWEN_SPECIAL_TOKENS, *latent_special_tokens()]
    tok = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=specials, min_frequency=1)
    tok.train_from_iterator([" ".join(vocabulary)], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=UNK_TOKEN,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        additional_special_tokens=[t for t in specials if t not in (UNK_TOKEN, "<|endoftext|>", "<|im_end|>", "<|im_start|>")],
        padding_side="left",
        truncation_side="right",
    )
    return fast


def build_image_processor(
    min_pixels: int, max_pixels: int, patch_size: int = 14, merge_size: int = 2
) -> Qwen2VLImageProcessorPil:
    """The PIL Qwen2-VL image processor (no torchvision needed). 112x112 gives an 8x8 grid of 14 px
    patches, merged 2x2 into 16 visual tokens (or 16x16 patches of 7 px merged 4x4: 16 tokens too)."""
    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels, patch_size=patch_size,
                                    merge_size=merge_size)


def build_tiny_backbone_config(tokenizer: PreTrainedTokenizerFast, preset: TinyBackbonePreset) -> Qwen2VLConfig:
    ids = tokenizer.convert_tokens_to_ids
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=preset.hidden_size,
        intermediate_size=preset.intermediate_size,
        num_hidden_layers=preset.num_layers,
        num_attention_heads=preset.num_heads,
        num_key_value_heads=preset.num_kv_heads,
        max_position_embeddings=1024,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": list(preset.mrope_section)},
        bos_token_id=ids("<|im_start|>"),
        eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
    )
    vision = dict(
        depth=preset.vision_depth,
        embed_dim=preset.vision_width,
        hidden_size=preset.hidden_size,  # the merger's output must match the LM width
        num_heads=preset.vision_heads,
        mlp_ratio=2,
        patch_size=preset.patch_size,
        spatial_merge_size=preset.spatial_merge_size,
        temporal_patch_size=2,
    )
    return Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )


def build_decoder_config(tokenizer: PreTrainedTokenizerFast, preset: TinyBackbonePreset) -> Qwen3Config:
    """A small Qwen3 causal LM config sharing the backbone's tokenizer (the latent decoder)."""
    ids = tokenizer.convert_tokens_to_ids
    return Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=preset.decoder_hidden_size,
        intermediate_size=preset.decoder_intermediate_size,
        num_hidden_layers=preset.decoder_layers,
        num_attention_heads=preset.decoder_heads,
        num_key_value_heads=preset.decoder_kv_heads,
        head_dim=preset.decoder_hidden_size // preset.decoder_heads,
        max_position_embeddings=256,
        bos_token_id=ids("<|im_start|>"),
        eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
        tie_word_embeddings=True,
    )


def build_backbone(config: Qwen2VLConfig, seed: int = 0) -> Qwen2VLForConditionalGeneration:
    """Instantiate a Qwen2-VL from a config with random weights (deterministic for a seed)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Qwen2VLForConditionalGeneration(config)
    model.eval()
    return model


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def resolve_pretrained_source(name_or_path: str | os.PathLike, allow_hub: bool) -> str:
    """A local folder as is; a hub id only when `allow_hub` (the user asked for it explicitly)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{str(path)!r} is a file; a model is a folder.")
        return str(path)
    text = str(name_or_path)
    looks_like_hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if looks_like_hub_id and allow_hub:
        return text
    if looks_like_hub_id:
        raise ModelLoadError(f"{text!r} is not a local folder; pass allow_hub=True (or --allow-hub) to download it.")
    raise ModelLoadError(f"The model folder {text!r} does not exist.")


def load_backbone(
    name_or_path: str | os.PathLike,
    *,
    allow_hub: bool = False,
    trust_remote_code: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str = "sdpa",
):
    """Load a Qwen2-VL-family checkpoint and its tokenizer and image processor.

    Returns:
        (model, tokenizer, image_processor). The image processor is the PIL one when torchvision is
        absent (it reads the same preprocessor_config.json).

    Raises:
        ModelLoadError: the folder is missing or incomplete, or a hub id was given without allow_hub.
    """
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer

    source = resolve_pretrained_source(name_or_path, allow_hub)
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    local_only = not allow_hub
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, local_files_only=local_only)
        model = AutoModelForImageTextToText.from_pretrained(
            source,
            config=config,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            local_files_only=local_only,
            attn_implementation=attn_implementation,
            use_safetensors=True,
        )
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, local_files_only=local_only)
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"Could not load a Qwen2-VL-family model from {source!r}: {str(exc).splitlines()[0]}") from exc
    model.to(device).eval()
    return model, tokenizer, image_processor
