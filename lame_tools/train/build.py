"""The model a run trains, its parameter groups, which of them train in each stage, the optimizer and
the learning-rate schedule."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
from torch.optim.lr_scheduler import LambdaLR

from lame_tools.data.shapes import VOCABULARY
from lame_tools.errors import LameError
from lame_tools.train.config import TrainConfig

GROUPS = ("backbone", "vision", "latent", "decoder")


def decoder_sizes_for(hidden_size: int):
    """Latent-decoder sizes for a backbone `hidden_size` wide: a quarter of its width (a multiple of
    32, at least 32), two layers, heads of 64 dims (32 on narrow decoders), half as many KV heads."""
    from lame_tools.config import get_preset

    width = max(32, hidden_size // 4 // 32 * 32)
    head_dim = 64 if width >= 128 and width % 64 == 0 else 32
    heads = width // head_dim
    return dataclasses.replace(
        get_preset("tiny"), decoder_hidden_size=width, decoder_layers=2, decoder_heads=heads,
        decoder_kv_heads=heads // 2 if heads % 2 == 0 else heads, decoder_intermediate_size=4 * width,
    )


# Settings of the tiny backbone alone (its scene head, word tokenizer and plain prompt): a `base` run
# refuses them rather than train without them.
_TINY_ONLY = ("scene_head_weight", "scene_words", "scene_words_only", "prompt_format", "scene_head_context",
              "visual_positions")


def _build_from_base(config: TrainConfig):
    """A Qwen2-VL-family `base` wrapped as a LaME, with a decoder sized from its hidden size. What
    the reason tokens and `[EMBED]` read is taken from `config`, as for the tiny backbone."""
    from lame_tools.backbone import build_decoder_config
    from lame_tools.model import LameModel

    defaults = TrainConfig()
    changed = [name for name in _TINY_ONLY if getattr(config, name) != getattr(defaults, name)]
    if changed:
        raise LameError(f"{', '.join(changed)} {'is' if len(changed) == 1 else 'are'} for the tiny backbone "
                        f"only; a run with base={config.base!r} cannot use {'it' if len(changed) == 1 else 'them'}.")
    dtype = torch.bfloat16 if config.bf16 else None
    model = LameModel.from_backbone(
        config.base, num_reason_tokens=config.num_reason_tokens, dtype=dtype, reason_layer=config.reason_layer,
        embed_reads=config.embed_reads, reason_reads=config.reason_reads, embed_pool=config.embed_pool,
    )
    if config.with_decoder:
        from lame_tools.decoder import LatentDecoder

        hidden = model.backbone.config.text_config.hidden_size
        decoder_config = build_decoder_config(model.processor.tokenizer, decoder_sizes_for(hidden))
        model.decoder = LatentDecoder(decoder_config, hidden).to(model.device)
        model.config.decoder = decoder_config.to_dict()
    model.config.default_mode = config.default_mode
    return model


def _load_stage0_backbone(model, config: TrainConfig) -> None:
    """Start from the backbone of `init_from` (or its vision tower alone, or the whole model:
    `init_parts`); except with `init_parts=model`, the latent rows start near the mean token embedding."""
    from lame_tools.model import LameModel

    source = Path(config.init_from)
    if not source.is_dir():
        raise LameError(
            f"The stage-0 backbone {str(source)!r} does not exist; run stage 0 first "
            f"(python -m lame_tools train --preset stage0 --out runs/stage0) or pass --init-from."
        )
    if config.init_parts not in ("all", "vision", "model"):
        raise LameError(f"init_parts must be 'all', 'vision' or 'model', not {config.init_parts!r}.")
    pretrained = LameModel.from_pretrained(source, device="cpu")
    if config.init_parts == "model":
        _continue_from(model, pretrained, source)
        return
    if config.init_parts == "vision":
        target, loaded, what = model.backbone.model.visual, pretrained.backbone.model.visual, "vision tower"
    else:
        target, loaded, what = model.backbone, pretrained.backbone, "backbone"
    try:
        target.load_state_dict(loaded.state_dict())
    except RuntimeError:
        hint = "" if config.init_parts == "vision" else " (or --set init_parts=vision to take its vision tower only)"
        raise LameError(
            f"The {what} in {str(source)!r} is not the size this run builds ({config.size!r}); pass the "
            f"--set size=... it was trained with{hint}."
        ) from None
    if model.scene_head is not None and pretrained.scene_head is not None:
        _load_scene_head(model.scene_head, pretrained.scene_head, source)
    if config.init_parts == "all" and model.visual_positions is not None and pretrained.visual_positions is not None:
        model.visual_positions.load_state_dict(pretrained.visual_positions.state_dict())  # the LM reads them
    if not config.image_pixels:  # the backbone learned to see at its own image size: keep it
        model.config.image_min_pixels = pretrained.config.image_min_pixels
        model.config.image_max_pixels = pretrained.config.image_max_pixels
        model.processor.image_processor = pretrained.processor.image_processor
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(config.seed)
        table = model.backbone.get_input_embeddings().weight
        init = table.mean(0, keepdim=True) + 0.02 * torch.randn(model.latent_embeddings.shape)
        model.latent_embeddings.copy_(init)


def _load_weights(module, state: dict, new_context: str) -> bool:
    """Load `state` into `module`, where only a scene head's context convolution (the keys under
    `new_context`, zero-initialised) may be missing: a head with context continues a per-token one and
    starts as it. False when anything else differs (missing, unexpected or of another shape)."""
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError:  # a tensor of another shape
        return False
    return not unexpected and all(key.startswith(new_context) for key in missing)


def _load_scene_head(head, pretrained_head, source: Path) -> None:
    """`pretrained_head`'s weights into `head` (`_load_weights`)."""
    if not _load_weights(head, pretrained_head.state_dict(), "context."):
        raise LameError(f"The scene head in {str(source)!r} is not the kind this run builds "
                        "(its size differs, or its scene_head_context convolution is one this run does not build).")


def _continue_from(model, pretrained, source: Path) -> None:
    """`init_parts=model`: every weight of `pretrained` (backbone, scene head, reason and `[EMBED]`
    rows, head, temperature, decoder) and its image size, so a run continues a trained model (a scene
    head with context taken from a per-token one keeps its convolution at zero, `_load_weights`)."""
    if not _load_weights(model, pretrained.state_dict(), "scene_head.context."):
        raise LameError(
            f"The model in {str(source)!r} is not the one this run builds (size, K, decoder or scene head "
            f"differ); init_parts=model needs the same settings it was trained with."
        )
    model.config.image_min_pixels = pretrained.config.image_min_pixels
    model.config.image_max_pixels = pretrained.config.image_max_pixels
    model.processor.image_processor = pretrained.processor.image_processor


def build_model(config: TrainConfig):
    """The model this run trains: a tiny LaME (its backbone from `init_from` when given) or a wrapped
    Qwen2-VL-family `base`."""
    from lame_tools.model import LameModel

    config.direct_route_cut_share()  # refuses a bad direct_route_dropout before anything is built
    if config.reason_reads != "all" and (config.default_mode != "latent" or config.embed_reads != "all"):
        raise LameError("reason_reads=reasons needs parallel reason tokens (num_reason_tokens > 0, "
                        "latent_steps=parallel, not cot) and embed_reads=all.")
    if config.base:
        return _build_from_base(config)
    model = LameModel.build_tiny(
        config.size,
        num_reason_tokens=config.num_reason_tokens,
        embed_dim=config.embed_dim,
        with_decoder=config.with_decoder,
        default_mode=config.default_mode,
        seed=config.seed,
        vocabulary=VOCABULARY,
        image_pixels=config.image_pixels or None,
        scene_head=config.scene_head_weight > 0,
        reason_layer=config.reason_layer,
        embed_reads=config.embed_reads,
        reason_reads=config.reason_reads,
        embed_pool=config.embed_pool,
        prompt_format=config.prompt_format,
        scene_words=config.scene_words,
        scene_words_only=config.scene_words_only,
        scene_head_context=config.scene_head_context,
        visual_positions=config.visual_positions,
    )
    if config.kind != "stage0" and config.init_from:
        _load_stage0_backbone(model, config)
    if not (config.init_from and config.init_parts == "model"):  # a continued model keeps its temperature
        with torch.no_grad():
            model.logit_scale.fill_(math.log(1.0 / config.temperature))
    return model


def parameter_groups(model) -> dict[str, list[torch.nn.Parameter]]:
    """Named groups: "backbone" (the language model, LM head and visual positions), "vision" (the
    vision tower and the scene head), "latent" (reason/[EMBED] embeddings, head, temperature) and
    "decoder"."""
    latent = [model.latent_embeddings, *model.embed_head.parameters(), model.logit_scale]
    decoder = list(model.decoder.parameters()) if model.decoder is not None else []
    vision_ids = {id(p) for p in model.backbone.model.visual.parameters()}
    backbone = [p for p in model.backbone.parameters() if id(p) not in vision_ids]
    if model.visual_positions is not None:
        backbone += list(model.visual_positions.parameters())
    vision = list(model.backbone.model.visual.parameters())
    if model.scene_head is not None:
        vision += list(model.scene_head.parameters())
    return {"backbone": backbone, "vision": vision, "latent": latent, "decoder": decoder}


def trainable_in_stage(config: TrainConfig, stage: int) -> set[str]:
    """Which parameter groups train in `stage`: stage 0 the whole backbone; stage 1 the groups named
    in `stage1_trainable` (the decoder only when the model has reason tokens); stage 2 everything."""
    if stage == 0:
        return {"backbone", "vision"}
    if stage == 2:
        groups = set(GROUPS)
    else:
        groups = {g for g in config.stage1_trainable.split(",") if g}
    if not (config.with_decoder and config.num_reason_tokens > 0):
        groups.discard("decoder")
    return groups


def set_stage(model, config: TrainConfig, stage: int) -> None:
    """Freeze / unfreeze parameter groups for `stage` (see `trainable_in_stage`)."""
    active = trainable_in_stage(config, stage)
    for name, params in parameter_groups(model).items():
        for p in params:
            p.requires_grad_(name in active)
    if not config.learnable_temperature:
        model.logit_scale.requires_grad_(False)


def make_optimizer(model, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with one param group per parameter group (named; `lr` is the group's peak rate)."""
    groups = parameter_groups(model)
    lrs = {"backbone": config.lr_backbone, "vision": config.lr_vision or config.lr_backbone, "latent": config.lr_latent,
           "decoder": config.lr_decoder}
    decay = {"backbone": config.weight_decay, "vision": config.weight_decay, "latent": 0.0,
             "decoder": config.weight_decay}
    return torch.optim.AdamW(
        [{"params": groups[n], "lr": lrs[n], "weight_decay": decay[n], "name": n} for n in groups if groups[n]],
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def lr_factor(config: TrainConfig, step: int) -> float:
    """Linear warm-up over the first `warmup_steps` of the step's stage, then cosine to min_lr_ratio."""
    start, length = config.stage_bounds(config.stage_of(step))
    local = step - start
    warmup = min(config.warmup_steps, max(1, length // 4))
    if local < warmup:
        return (local + 1) / warmup
    progress = (local - warmup) / max(1, length - warmup)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, first_step: int = 0) -> LambdaLR:
    """The schedule as a `LambdaLR` whose epoch is the global step: the lr of step s is the group's
    peak rate times `lr_factor(config, s)`; the optimizer is set for `first_step`.

    From `first_step > 0` (a run that starts mid-way, or a checkpoint written before the scheduler
    state was saved, whose groups kept the peak rate as "peak_lr"), each group's peak rate is its
    "initial_lr", else its "peak_lr", else its current `lr`.
    """
    if first_step > 0:
        for group in optimizer.param_groups:
            peak = group.pop("peak_lr", group["lr"])
            group.setdefault("initial_lr", peak)
    return LambdaLR(optimizer, lambda step: lr_factor(config, step), last_epoch=first_step - 1)
