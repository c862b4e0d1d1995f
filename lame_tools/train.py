"""Two-stage information-bottleneck training of LaME (and its baselines) on accelerate, resumable.

Stages (one run goes through the stages its preset lists; the global step counts across them):
    stage 0  the shared backbone, run once; every other preset starts from it (`init_from`). Our
             stand-in for Qwen2-VL-Instruct. The default (`--preset stage0`) is a locked-text
             warm-up: a stage-1 run on captions in which only the vision tower trains, against the
             fixed (random) language model and head, so the tiny model learns to see without the
             text side collapsing. `--preset stage0-lm` is next-token pretraining on captions,
             answers and rationales given the image (the `kind="stage0"` loop); on this budget it
             learned the format but not to see (see README).
    stage 1  bottleneck warm-up: backbone frozen; the reason / [EMBED] input embeddings, the
             projection head, the temperature and the latent decoder train.
    stage 2  joint: everything trains; InfoNCE + lambda * decoder reconstruction (LaME),
             InfoNCE only (discriminative), or InfoNCE + the LM loss on "[THINK] rationale [EMBED]" (CoT).

Data are drawn on the fly: the global batch of step s is a pure function of (run seed, s), so the
data position of a run is its step, and a run resumed from a checkpoint sees exactly the batches it
would have seen. Each process takes an equal slice of the global batch; the losses gather
embeddings across processes with gradients intact and gradients are averaged by hand, so one
process and N processes follow the same loss curve for the same global batch.

Entry points: `train(config)` and `python -m lame_tools train --preset NAME --out DIR [--resume]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lame_tools.atomic import atomic_write_json, atomic_write_text
from lame_tools.checkpoint import load_latest, save_checkpoint
from lame_tools.data.shapes import (
    INSTRUCTIONS,
    SPLIT_SIZES,
    TARGET_INSTRUCTION,
    TASK_KINDS,
    VOCABULARY,
    Example,
    make_example,
    render,
)
from lame_tools.errors import LameError
from lame_tools.losses import decoder_loss, info_nce, suffix_lm_loss, text_keys
from lame_tools.processor import Item

DEFAULT_STAGE0_DIR = Path("runs/stage0/model")


# ---- configuration -------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """One training run. Presets (`PRESETS`) fill these; the CLI can override any field.

    Attributes:
        kind: "stage0" (next-token pretraining of the backbone), "contrastive" (LaME / discriminative) or
            "cot" (explicit rationale then [EMBED]).
        size: tiny backbone preset ("tiny", "micro"); ignored with `base`.
        num_reason_tokens: K (0 = discriminative).
        with_decoder: build and train the latent decoder.
        lambda_decoder: weight of the decoder loss in stage 2 (stage 1 trains the decoder at weight 1
            on a frozen backbone).
        cot_lm_weight: weight of the rationale LM loss (cot kind).
        decoder_target: what the decoder reconstructs: "target" (the target's text; the caption for
            text->image) or "rationale" (the chain of thought; an ablation that uses CoT annotation).
        stage1_steps / stage2_steps / stage0_steps: steps per stage.
        batch_size: global batch (split across processes).
        lr_backbone / lr_latent / lr_decoder: peak learning rates per parameter group.
        warmup_steps: linear warm-up at the start of each stage, then cosine to `min_lr_ratio`.
        clip_encoder / clip_decoder: separate gradient-norm clips for the encoder side (backbone,
            latent embeddings, head, temperature) and the decoder.
        learnable_temperature: train `logit_scale`; else it stays at its initial value.
        hard_negatives: add one hard negative (a wrong candidate of the example) per text target.
        homogeneous_batches: draw each step's batch from one task kind (see `batch_indices`).
        task_kinds: comma list of task kinds to train on ("" = all four).
        stage1_trainable: parameter groups trained in stage 1 (see `parameter_groups`): the paper's
            bottleneck warm-up is "latent,decoder" on a frozen backbone; "vision" alone is a locked-text
            warm-up (the language model, head and latent rows stay fixed, the vision tower learns to
            meet the text embeddings), for a backbone that has not learned to see yet.
        init_from: a model folder whose backbone initialises this run (the stage-0 output).
        base: a Qwen2-VL-family folder to wrap instead of the tiny backbone (`LameModel.from_backbone`).
        world_seed: the Shapes world seed (splits); seed: this run's seed (init and data order).
        save_every: steps between resume checkpoints; eval_every: steps between quick validations.
        render_cache: a folder of pre-rendered train scenes (`prerender`); the images are the same
            as `render`'s (PNG is lossless), only cheaper to get. Missing files are rendered and added.
    """

    kind: str = "contrastive"
    size: str = "tiny"
    num_reason_tokens: int = 8
    embed_dim: int = 128
    with_decoder: bool = True
    lambda_decoder: float = 0.5
    cot_lm_weight: float = 1.0
    decoder_target: str = "target"
    stage0_steps: int = 0
    stage1_steps: int = 100
    stage2_steps: int = 500
    batch_size: int = 32
    lr_backbone: float = 3e-4
    lr_latent: float = 1e-3
    lr_decoder: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    clip_encoder: float = 1.0
    clip_decoder: float = 1.0
    learnable_temperature: bool = True
    temperature: float = 0.05
    hard_negatives: bool = False
    homogeneous_batches: bool = True
    task_kinds: str = ""
    stage1_trainable: str = "latent,decoder"
    init_from: str | None = str(DEFAULT_STAGE0_DIR)
    base: str | None = None
    bf16: bool = False
    gradient_checkpointing: bool = False
    world_seed: int = 0
    seed: int = 0
    save_every: int = 100
    keep_checkpoints: int = 2
    eval_every: int = 0
    eval_examples: int = 96
    log_every: int = 10
    threads: int = 0
    render_cache: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def default_mode(self) -> str:
        if self.kind == "cot":
            return "cot"
        return "latent" if self.num_reason_tokens > 0 else "discriminative"

    @property
    def total_steps(self) -> int:
        return self.stage0_steps + self.stage1_steps + self.stage2_steps

    def stage_of(self, step: int) -> int:
        """The stage (0, 1 or 2) that global step `step` (0-based) belongs to."""
        if step < self.stage0_steps:
            return 0
        if step < self.stage0_steps + self.stage1_steps:
            return 1
        return 2

    def stage_bounds(self, stage: int) -> tuple[int, int]:
        start = {0: 0, 1: self.stage0_steps, 2: self.stage0_steps + self.stage1_steps}[stage]
        length = {0: self.stage0_steps, 1: self.stage1_steps, 2: self.stage2_steps}[stage]
        return start, length

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _preset(**overrides: Any) -> TrainConfig:
    return dataclasses.replace(TrainConfig(), **overrides)


def _micro(**overrides: Any) -> TrainConfig:
    base = dict(
        size="micro", embed_dim=32, batch_size=8, stage1_steps=3, stage2_steps=5, warmup_steps=2,
        save_every=2, init_from=None, log_every=1, eval_examples=16,
    )
    base.update(overrides)
    return _preset(**base)


PRESETS: dict[str, TrainConfig] = {
    # the shared backbone: a locked-text warm-up of the vision tower on captions (see module docstring)
    "stage0": _preset(num_reason_tokens=0, with_decoder=False, stage1_trainable="vision", task_kinds="retrieval",
                      stage1_steps=600, stage2_steps=0, lr_backbone=1e-3, init_from=None),
    # next-token pretraining of the backbone on captions / answers / rationales (tried; see README)
    "stage0-lm": _preset(kind="stage0", num_reason_tokens=0, with_decoder=False, stage0_steps=600, batch_size=64,
                         homogeneous_batches=False, stage1_steps=0, stage2_steps=0, lr_backbone=2e-3, init_from=None,
                         save_every=200),
    "lame": _preset(num_reason_tokens=8),
    "discriminative": _preset(num_reason_tokens=0, with_decoder=False),
    "cot": _preset(kind="cot", num_reason_tokens=0, with_decoder=False),
    "lame-nodecoder": _preset(num_reason_tokens=8, with_decoder=False),
    "lame-rationale": _preset(num_reason_tokens=8, decoder_target="rationale"),
    **{f"lame-k{k}": _preset(num_reason_tokens=k, with_decoder=k > 0) for k in (0, 1, 2, 4, 8, 16)},
    # for tests: builds in milliseconds, a few steps
    "micro-stage0": _micro(kind="stage0", num_reason_tokens=0, with_decoder=False, stage0_steps=4,
                           stage1_steps=0, stage2_steps=0),
    "micro-lame": _micro(num_reason_tokens=4),
    "micro-discriminative": _micro(num_reason_tokens=0, with_decoder=False),
    "micro-cot": _micro(kind="cot", num_reason_tokens=0, with_decoder=False),
}


def list_presets() -> list[str]:
    return sorted(PRESETS)


def get_train_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise LameError(f"Unknown training preset {name!r}; known: {', '.join(list_presets())}.")
    return dataclasses.replace(PRESETS[name])


# ---- data ----------------------------------------------------------------------------------------


@dataclass
class TrainBatch:
    """One process's slice of a global batch, ready for the model."""

    examples: list[Example]
    queries: list[Item]
    targets: list[Item]
    target_keys: torch.Tensor  # [n] int64: equal keys = same target (false negatives masked)
    decoder_texts: list[str]
    hard_negatives: list[Item]
    hard_negative_keys: torch.Tensor
    hard_negative_valid: torch.Tensor


def batch_indices(
    seed: int,
    step: int,
    batch_size: int,
    pool: int = SPLIT_SIZES["train"],
    homogeneous: bool = False,
    kinds: list[str] | None = None,
) -> list[int]:
    """The train-split indices of the global batch of `step`: a pure function of (seed, step).

    With `homogeneous`, the whole batch comes from one task kind (drawn per step): example `i` of the
    world has kind TASK_KINDS[i % 4], so the in-batch negatives are answers of the same kind (other
    colours, other counts, other captions), as the candidates at evaluation are. Mixed batches let
    the loss fall by telling task kinds apart without looking at the image. `kinds` restricts the
    draw to some task kinds (e.g. ["retrieval"]: captions only).
    """
    rng = random.Random(f"train/{seed}/{step}")
    allowed = [TASK_KINDS.index(k) for k in kinds] if kinds else list(range(len(TASK_KINDS)))
    if homogeneous or len(allowed) == 1:
        kind = allowed[rng.randrange(len(allowed))]
        return rng.sample(range(kind, pool, len(TASK_KINDS)), batch_size)
    if len(allowed) < len(TASK_KINDS):
        return rng.sample([i for i in range(pool) if i % len(TASK_KINDS) in allowed], batch_size)
    return rng.sample(range(pool), batch_size)


def _kinds(config: TrainConfig) -> list[str] | None:
    return [k for k in config.task_kinds.split(",") if k] or None


def _cache_path(cache: str | os.PathLike, world_seed: int, index: int) -> Path:
    return Path(cache) / f"seed{world_seed}" / f"{index:06d}.png"


def scene_image(config: TrainConfig, example: Example, index: int):
    """The rendered train scene `index` (from `render_cache` when it holds it)."""
    if not config.render_cache:
        return render(example.scene)
    path = _cache_path(config.render_cache, config.world_seed, index)
    if path.is_file():
        from PIL import Image

        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except OSError:
            pass  # a damaged cache file: draw the scene again
    image = render(example.scene)
    from lame_tools.atomic import atomic_write

    atomic_write(path, lambda f: image.save(f, format="PNG", compress_level=1))
    return image


def _prerender_one(args: tuple[str, int, int]) -> None:
    from lame_tools.atomic import atomic_write

    cache, world_seed, index = args
    path = _cache_path(cache, world_seed, index)
    if path.is_file():
        return
    image = render(make_example(world_seed, "train", index).scene)
    atomic_write(path, lambda f: image.save(f, format="PNG", compress_level=1))


def prerender(cache: str | os.PathLike, world_seed: int = 0, limit: int | None = None, workers: int = 1) -> Path:
    """Render the train split once into `cache` (PNG), so many runs share the drawing cost."""
    n = SPLIT_SIZES["train"] if limit is None else min(limit, SPLIT_SIZES["train"])
    jobs = [(str(cache), world_seed, i) for i in range(n)]
    if workers > 1:
        from multiprocessing import Pool

        with Pool(workers) as pool:
            for _ in pool.imap_unordered(_prerender_one, jobs, chunksize=64):
                pass
    else:
        for job in jobs:
            _prerender_one(job)
    return Path(cache)


def _target_key(example: Example, index: int) -> str:
    return f"text:{example.target_text}" if not example.target_has_image else f"image:{index}"


def make_batch(config: TrainConfig, step: int, rank: int = 0, world: int = 1) -> TrainBatch:
    """This process's slice of the global batch of `step` (queries, targets, keys, decoder texts)."""
    indices = batch_indices(config.seed, step, config.batch_size, homogeneous=config.homogeneous_batches,
                            kinds=_kinds(config))[rank::world]
    rng = random.Random(f"hard/{config.seed}/{step}/{rank}")
    examples, queries, targets, keys, dec, hard, hard_keys, hard_valid = [], [], [], [], [], [], [], []
    for index in indices:
        ex = make_example(config.world_seed, "train", index)
        image = scene_image(config, ex, index) if (ex.query_has_image or ex.target_has_image) else None
        examples.append(ex)
        queries.append(Item(image if ex.query_has_image else None, ex.query_text or None, ex.instruction))
        targets.append(Item(image if ex.target_has_image else None, ex.target_text or None, TARGET_INSTRUCTION))
        keys.append(_target_key(ex, index))
        if config.decoder_target == "rationale":
            dec.append(ex.rationale)
        else:
            dec.append(ex.target_text or ex.scene.caption())
        negatives = [c for c in ex.candidates[1:] if c != ex.target_text]
        if negatives and not ex.target_has_image:
            choice = rng.choice(negatives)
            hard.append(Item(None, choice, TARGET_INSTRUCTION))
            hard_keys.append(f"text:{choice}")
            hard_valid.append(True)
        else:
            hard.append(Item(None, "a", TARGET_INSTRUCTION))
            hard_keys.append("none")
            hard_valid.append(False)
    return TrainBatch(
        examples, queries, targets, text_keys(keys), dec, hard, text_keys(hard_keys),
        torch.tensor(hard_valid, dtype=torch.bool),
    )


def stage0_rows(config: TrainConfig, step: int, rank: int = 0, world: int = 1) -> tuple[list[Item], list[str]]:
    """Stage-0 LM rows: (prompt item, text to generate). Half the rows answer through the rationale,
    half answer directly; text->image examples become image->caption rows."""
    indices = batch_indices(config.seed, step, config.batch_size, homogeneous=config.homogeneous_batches,
                            kinds=_kinds(config))[rank::world]
    items, continuations = [], []
    for index in indices:
        ex = make_example(config.world_seed, "train", index)
        image = scene_image(config, ex, index)
        if ex.target_has_image:  # t2i: the LM learns the reverse direction (describe the image)
            item = Item(image, None, INSTRUCTIONS["i2t"])
            answer = ex.scene.caption()
        else:
            item = Item(image if ex.query_has_image else None, ex.query_text or None, ex.instruction)
            answer = ex.target_text
        items.append(item)
        continuations.append(ex.rationale if index % 2 == 0 else answer)
    return items, continuations


# ---- model ----------------------------------------------------------------------------------------


def build_model(config: TrainConfig):
    """The model this run trains: a tiny LaME (its backbone from `init_from` when given) or a wrapped
    Qwen2-VL-family `base`."""
    from lame_tools.model import LameModel

    if config.base:
        from lame_tools.backbone import build_decoder_config
        from lame_tools.config import get_preset

        dtype = torch.bfloat16 if config.bf16 else None
        model = LameModel.from_backbone(config.base, num_reason_tokens=config.num_reason_tokens, dtype=dtype)
        if config.with_decoder:
            from lame_tools.decoder import LatentDecoder

            decoder_config = build_decoder_config(model.processor.tokenizer, get_preset("tiny"))
            model.decoder = LatentDecoder(decoder_config, model.backbone.config.text_config.hidden_size).to(model.device)
            model.config.decoder = decoder_config.to_dict()
        model.config.default_mode = config.default_mode
        return model
    model = LameModel.build_tiny(
        config.size,
        num_reason_tokens=config.num_reason_tokens,
        embed_dim=config.embed_dim,
        with_decoder=config.with_decoder,
        default_mode=config.default_mode,
        seed=config.seed,
        vocabulary=VOCABULARY,
    )
    if config.kind != "stage0" and config.init_from:
        source = Path(config.init_from)
        if not source.is_dir():
            raise LameError(
                f"The stage-0 backbone {str(source)!r} does not exist; run stage 0 first "
                f"(python -m lame_tools train --preset stage0 --out runs/stage0) or pass --init-from."
            )
        pretrained = LameModel.from_pretrained(source, device="cpu")
        model.backbone.load_state_dict(pretrained.backbone.state_dict())
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(config.seed)
            table = model.backbone.get_input_embeddings().weight
            init = table.mean(0, keepdim=True) + 0.02 * torch.randn(model.latent_embeddings.shape)
            model.latent_embeddings.copy_(init)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1.0 / config.temperature))
    return model


def parameter_groups(model) -> dict[str, list[torch.nn.Parameter]]:
    """Named groups: "backbone" (the language model and LM head), "vision" (the vision tower), "latent"
    (reason/[EMBED] embeddings, head, temperature) and "decoder"."""
    latent = [model.latent_embeddings, *model.embed_head.parameters(), model.logit_scale]
    decoder = list(model.decoder.parameters()) if model.decoder is not None else []
    vision_ids = {id(p) for p in model.backbone.model.visual.parameters()}
    backbone = [p for p in model.backbone.parameters() if id(p) not in vision_ids]
    return {"backbone": backbone, "vision": list(model.backbone.model.visual.parameters()), "latent": latent,
            "decoder": decoder}


def trainable_in_stage(config: TrainConfig, stage: int) -> set[str]:
    """Which parameter groups train in `stage`: stage 0 the whole backbone; stage 1 the groups named
    in `stage1_trainable` (the decoder only when the model has reason tokens); stage 2 everything."""
    if stage == 0:
        return {"backbone", "vision"}
    if stage == 2:
        groups = {"backbone", "vision", "latent", "decoder"}
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
    groups = parameter_groups(model)
    lrs = {"backbone": config.lr_backbone, "vision": config.lr_backbone, "latent": config.lr_latent,
           "decoder": config.lr_decoder}
    decay = {"backbone": config.weight_decay, "vision": config.weight_decay, "latent": 0.0,
             "decoder": config.weight_decay}
    return torch.optim.AdamW(
        [{"params": groups[n], "lr": lrs[n], "weight_decay": decay[n], "name": n, "peak_lr": lrs[n]} for n in groups if groups[n]],
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


# ---- one step ------------------------------------------------------------------------------------


def _tokenize_right_padded(tokenizer, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    length = max(1, max(len(i) for i in ids))
    out = torch.full((len(ids), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(ids), length), dtype=torch.long)
    for row, seq in enumerate(ids):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return out.to(device), mask.to(device)


def lm_rows_loss(model, items: list[Item], continuations: list[list[int]]) -> torch.Tensor:
    """The backbone's LM loss on each row's continuation ids, given its prompt item."""
    batch = model.processor(items, continuations)
    hidden = model.hidden_states(batch)
    logits = model.backbone.lm_head(hidden)
    lengths = torch.tensor([len(c) for c in continuations])
    return suffix_lm_loss(logits, batch["input_ids"].to(logits.device), lengths)


def stage0_loss(model, config: TrainConfig, step: int, rank: int, world: int) -> dict[str, torch.Tensor]:
    items, texts = stage0_rows(config, step, rank, world)
    tok = model.processor.tokenizer
    eos = model.processor.eos_token_id
    continuations = [tok(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts]
    loss = lm_rows_loss(model, items, continuations)
    return {"loss": loss, "lm": loss.detach()}


def embedding_loss(model, config: TrainConfig, step: int, rank: int, world: int) -> dict[str, torch.Tensor]:
    """Stage 1 / 2 losses of a contrastive or CoT run on this process's slice of the step's batch."""
    stage = config.stage_of(step)
    batch = make_batch(config, step, rank, world)
    n = len(batch.queries)
    out: dict[str, torch.Tensor] = {}
    if config.kind == "cot":
        proc = model.processor
        tok = proc.tokenizer
        rationales = [tok(ex.rationale, add_special_tokens=False)["input_ids"] for ex in batch.examples]
        q_suffix = [[proc.think_token_id, *r, proc.embed_token_id] for r in rationales]
        t_suffix = [[proc.think_token_id, proc.embed_token_id]] * n
        q_batch = proc(batch.queries, q_suffix)
        t_batch = proc(batch.targets, t_suffix)
        q_hidden, t_hidden = model.hidden_states(q_batch), model.hidden_states(t_batch)
        q_emb = model.pool(q_hidden, 0)[0]
        t_emb = model.pool(t_hidden, 0)[0]
        if stage == 2 and config.cot_lm_weight > 0:
            # predict "rationale [EMBED]" after [THINK] (queries) and "[EMBED]" right after [THINK] (targets)
            q_len = torch.tensor([len(s) - 1 for s in q_suffix])
            t_len = torch.full((n,), 1)
            lm = 0.5 * (
                suffix_lm_loss(model.backbone.lm_head(q_hidden), q_batch["input_ids"].to(q_hidden.device), q_len)
                + suffix_lm_loss(model.backbone.lm_head(t_hidden), t_batch["input_ids"].to(t_hidden.device), t_len)
            )
            out["cot_lm"] = lm
        hard_emb = None
        if config.hard_negatives:
            hard_emb = model.pool(model.hidden_states(proc(batch.hard_negatives, t_suffix)), 0)[0]
    else:
        mode = config.default_mode
        q = model.forward_items(batch.queries, mode)
        q_emb = q.embeddings
        if config.hard_negatives:
            both = model.forward_items(batch.targets + batch.hard_negatives, mode).embeddings
            t_emb, hard_emb = both[:n], both[n:]
        else:
            t_emb, hard_emb = model.forward_items(batch.targets, mode).embeddings, None
        if model.decoder is not None and "decoder" in trainable_in_stage(config, stage):
            ids, mask = _tokenize_right_padded(model.processor.tokenizer, batch.decoder_texts, q_emb.device)
            out["decoder"] = decoder_loss(model.decoder, q.reason_states, ids, mask)
    scale = model.logit_scale
    out["contrastive"] = info_nce(
        q_emb, t_emb, scale, batch.target_keys.to(q_emb.device),
        hard_negatives=hard_emb,
        hard_negative_keys=batch.hard_negative_keys.to(q_emb.device) if hard_emb is not None else None,
        hard_negative_valid=batch.hard_negative_valid.to(q_emb.device) if hard_emb is not None else None,
    )
    loss = out["contrastive"]
    if "decoder" in out:
        loss = loss + (1.0 if stage == 1 else config.lambda_decoder) * out["decoder"]
    if "cot_lm" in out:
        loss = loss + config.cot_lm_weight * out["cot_lm"]
    out = {k: v.detach() for k, v in out.items()}
    out["loss"] = loss
    return out


def _average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """Fill missing gradients with zeros (so every process reduces the same tensors) and average
    them over processes in one flat all-reduce."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if world == 1 or not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        count = p.numel()
        p.grad.copy_(flat[offset : offset + count].view_as(p.grad))
        offset += count


# ---- validation (quick, in-training) ---------------------------------------------------------------


@torch.no_grad()
def quick_validation(model, config: TrainConfig, n: int | None = None) -> dict[str, float]:
    """Hit@1 over each example's own candidates on the first `n` validation examples (t2i: the
    positive image among the other t2i images of the subset). A cheap signal while training; the
    reported scores come from `lame_tools.evaluate`."""
    from lame_tools.model import LameModel  # noqa: F401  (type only)

    n = n or config.eval_examples
    mode = config.default_mode
    examples = [make_example(config.world_seed, "validation", i) for i in range(n)]
    images = [render(e.scene) for e in examples]
    was_training = model.training
    model.eval()
    hits: dict[str, list[float]] = {}
    q_items = [Item(im if e.query_has_image else None, e.query_text or None, e.instruction) for e, im in zip(examples, images)]
    q = torch.cat([model.forward_items(q_items[i : i + 32], mode).embeddings for i in range(0, n, 32)])
    texts = sorted({c for e in examples for c in e.candidates})
    text_mode = mode
    t_items = [Item(None, t, TARGET_INSTRUCTION) for t in texts]
    t = torch.cat([model.forward_items(t_items[i : i + 64], text_mode).embeddings for i in range(0, len(t_items), 64)])
    row_of = {text: i for i, text in enumerate(texts)}
    t2i = [i for i, e in enumerate(examples) if e.target_has_image]
    if t2i:
        img_items = [Item(images[i], None, TARGET_INSTRUCTION) for i in t2i]
        img = torch.cat([model.forward_items(img_items[i : i + 32], mode).embeddings for i in range(0, len(img_items), 32)])
    for i, ex in enumerate(examples):
        if ex.target_has_image:
            scores = img @ q[i]
            hit = float(int(scores.argmax()) == t2i.index(i))
        else:
            cand = t[[row_of[c] for c in ex.candidates]]
            hit = float(int((cand @ q[i]).argmax()) == 0)
        hits.setdefault(ex.subtask, []).append(hit)
    model.train(was_training)
    result = {f"val_{k}": float(np.mean(v)) for k, v in sorted(hits.items())}
    result["val_overall"] = float(np.mean([np.mean(v) for v in hits.values()]))
    return result


# ---- the loop -------------------------------------------------------------------------------------


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            break  # a line cut by a kill: drop it and everything after
    return rows


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    resume: bool = False,
    show_progress: bool = True,
    command: str | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Run (or continue) the training described by `config`; write checkpoints, the JSONL log and the
    final model folder under `out_dir`.

    Args:
        out_dir: run folder: `ckpt/` (resume checkpoints), `log.jsonl`, `model/` (the final
            `save_pretrained` folder), `summary.json`.
        resume: continue from the newest whole checkpoint in `out_dir/ckpt` (a fresh start if none).
        stop_after: stop (as if killed, after saving a checkpoint) once this global step is done;
            for tests and for splitting a run across sessions.

    Returns:
        the summary dict (config, steps, wall time, throughput, last metrics).
    """
    from accelerate import Accelerator

    if config.threads:
        torch.set_num_threads(config.threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="bf16" if config.bf16 else "no")
    rank, world = accelerator.process_index, accelerator.num_processes
    if config.batch_size % world:
        raise LameError(f"batch_size {config.batch_size} must be divisible by the {world} processes.")
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "ckpt"
    log_path = out_dir / "log.jsonl"
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    model = build_model(config).to(accelerator.device)
    if config.gradient_checkpointing:
        model.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = make_optimizer(model, config)
    step = 0
    if resume:
        resumed = load_latest(ckpt_dir, model, optimizer)
        if resumed is not None:
            step = int(resumed.state["step"])
            if accelerator.is_main_process:
                print(f"resumed from {resumed.path} at step {step}", file=sys.stderr)
    log_rows = [r for r in _read_log(log_path) if r.get("step", 0) <= step] if step else []
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in log_rows))
        atomic_write_json(out_dir / "config.json", {"config": config.to_dict(), "command": command})
    previous_wall = float(log_rows[-1].get("wall_s", 0.0)) if log_rows else 0.0
    checkpoint_s = float(log_rows[-1].get("checkpoint_s", 0.0)) if log_rows else 0.0

    stage = None
    last_metrics: dict[str, float] = {}
    end = config.total_steps if stop_after is None else min(config.total_steps, stop_after)
    start_time = time.perf_counter()
    bar = tqdm(total=config.total_steps, initial=step, disable=not (show_progress and accelerator.is_main_process),
               desc=f"train {config.kind}", dynamic_ncols=True)
    log_file = log_path.open("a") if accelerator.is_main_process else None
    step_times: list[float] = []
    while step < end:
        t0 = time.perf_counter()
        if config.stage_of(step) != stage:
            stage = config.stage_of(step)
            set_stage(model, config, stage)
        factor = lr_factor(config, step)
        for group in optimizer.param_groups:
            group["lr"] = group["peak_lr"] * factor
        with accelerator.autocast():
            if stage == 0:
                losses = stage0_loss(model, config, step, rank, world)
            else:
                losses = embedding_loss(model, config, step, rank, world)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        groups = parameter_groups(model)
        trainable = [p for name in ("backbone", "vision", "latent", "decoder") for p in groups[name] if p.requires_grad]
        _average_gradients(trainable, world)
        encoder_params = [p for name in ("backbone", "vision", "latent") for p in groups[name] if p.requires_grad]
        decoder_params = [p for p in groups["decoder"] if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(encoder_params, config.clip_encoder) if encoder_params else torch.zeros(())
        if decoder_params:
            torch.nn.utils.clip_grad_norm_(decoder_params, config.clip_decoder)
        optimizer.step()
        step += 1
        step_times.append(time.perf_counter() - t0)
        metrics = {k: float(v.detach()) for k, v in losses.items()}
        if world > 1:
            values = torch.tensor([metrics[k] for k in sorted(metrics)], device=accelerator.device)
            torch.distributed.all_reduce(values)
            metrics = {k: float(v) / world for k, v in zip(sorted(metrics), values.tolist())}
        last_metrics = metrics
        if config.eval_every and (step % config.eval_every == 0 or step == config.total_steps) and stage > 0:
            if accelerator.is_main_process:
                metrics.update(quick_validation(model.module if hasattr(model, "module") else model, config))
        saved = False
        if step % config.save_every == 0 or step == end or step == config.total_steps or config.stage_of(step) != stage:
            c0 = time.perf_counter()
            if accelerator.is_main_process:
                save_checkpoint(ckpt_dir, step, model, optimizer, {"stage": config.stage_of(step), "data_position": step,
                                                                   "config": config.to_dict()}, keep=config.keep_checkpoints)
            accelerator.wait_for_everyone()
            checkpoint_s += time.perf_counter() - c0
            saved = True
        if log_file is not None and (step % config.log_every == 0 or saved or "val_overall" in metrics):
            row = {
                "step": step, "stage": stage, "lr_factor": round(factor, 6),
                "logit_scale": float(model.logit_scale.detach().exp()), "grad_norm": float(grad_norm),
                "step_s": round(step_times[-1], 4), "wall_s": round(previous_wall + time.perf_counter() - start_time, 2),
                "checkpoint_s": round(checkpoint_s, 3), **{k: round(v, 6) for k, v in metrics.items()},
            }
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()
        bar.set_postfix(stage=stage, loss=f"{metrics['loss']:.3f}")
        bar.update(1)
    bar.close()
    if log_file is not None:
        log_file.close()
    wall = previous_wall + time.perf_counter() - start_time
    summary = {
        "config": config.to_dict(),
        "command": command,
        "steps": step,
        "total_steps": config.total_steps,
        "complete": step >= config.total_steps,
        "wall_s": round(wall, 1),
        "checkpoint_s": round(checkpoint_s, 2),
        "median_step_s": float(np.median(step_times)) if step_times else None,
        "samples_per_s": (config.batch_size / float(np.median(step_times))) if step_times else None,
        "processes": world,
        "device": str(accelerator.device),
        "last_metrics": last_metrics,
    }
    if accelerator.is_main_process and summary["complete"]:
        summary["model_dir"] = str(out_dir / "model")
        model.eval()
        model.save_pretrained(out_dir / "model", training_info=training_info(summary))
        atomic_write_json(out_dir / "summary.json", summary)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    summary["model"] = model
    return summary


def training_info(summary: dict[str, Any]) -> dict[str, Any]:
    """The `training.json` written into a model folder: how it was trained (scores are added later)."""
    return {
        "trained": True,
        "command": summary.get("command"),
        "config": summary["config"],
        "steps": summary["steps"],
        "wall_s": summary["wall_s"],
        "samples_per_s": summary.get("samples_per_s"),
        "processes": summary.get("processes"),
        "device": summary.get("device"),
        "torch": torch.__version__,
    }


# ---- command line ---------------------------------------------------------------------------------


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise LameError(f"--set wants KEY=VALUE, got {text!r}.")
    key, value = text.split("=", 1)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    if key not in fields:
        raise LameError(f"Unknown training setting {key!r}; known: {', '.join(sorted(fields))}.")
    default = getattr(TrainConfig(), key)
    if isinstance(default, bool):
        return key, value.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return key, int(value)
    if isinstance(default, float):
        return key, float(value)
    if value.lower() in ("none", "null", ""):
        return key, None
    return key, value


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    config = get_train_preset(args.preset)
    overrides: dict[str, Any] = dict(_parse_override(s) for s in (args.set or []))
    for name in ("seed", "batch_size", "init_from", "base", "threads"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = str(value) if name in ("init_from", "base") else value
    if args.steps_scale != 1.0:
        for name in ("stage0_steps", "stage1_steps", "stage2_steps"):
            overrides.setdefault(name, int(round(getattr(config, name) * args.steps_scale)))
    if args.bf16:
        overrides["bf16"] = True
    if args.gradient_checkpointing:
        overrides["gradient_checkpointing"] = True
    return dataclasses.replace(config, **overrides)


def _train_cli(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    command = "python -m lame_tools " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("__main__.py") else None
    summary = train(config, args.out, resume=args.resume, show_progress=not args.quiet, command=command,
                    stop_after=args.stop_after)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if summary.get("model_dir"):
        print(f"trained {args.preset}: {summary['steps']} steps in {summary['wall_s']} s -> {summary['model_dir']}")
    else:
        print(f"stopped at step {summary['steps']} of {summary['total_steps']} (resume with --resume)")
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a LaME / discriminative / CoT model (resumable)")
    parser.add_argument("--preset", default="lame", help=f"one of: {', '.join(list_presets())}")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, log.jsonl, model/)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest whole checkpoint in --out")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="global batch (split across processes)")
    parser.add_argument("--init-from", type=Path, default=None, help="model folder whose backbone starts this run")
    parser.add_argument("--base", type=Path, default=None, help="a Qwen2-VL-family folder to train instead of the tiny model")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every stage's step count")
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this global step (resumable)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any TrainConfig field")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_train_cli)
