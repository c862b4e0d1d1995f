"""One training step: the losses of a step's batch, then backward, gradient averaging over processes,
the separate encoder / decoder clipping, the optimizer and the schedule (`train_step`)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lame_tools import scene_words
from lame_tools.constants import SEQUENTIAL_MODE
from lame_tools.data.scene import RELATIONS
from lame_tools.errors import LameError
from lame_tools.inputs import Item
from lame_tools.lookup_loss import (
    attention_rows,
    head_rows,
    lookup_loss,
    named_token_positions,
    naming_word_positions,
)
from lame_tools.losses import decoder_loss, info_nce, state_distill_loss, suffix_lm_loss
from lame_tools.renaming import rename_text
from lame_tools.scene_head import capture_vision, scene_head_loss, vision_tokens
from lame_tools.train.build import GROUPS, parameter_groups, trainable_in_stage
from lame_tools.train.config import TrainConfig
from lame_tools.train.data import TrainBatch, make_batch, shape_only_images, stage0_rows


def decoder_targets(tokenizer, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) of the texts the latent decoder reconstructs, right-padded by the tokenizer."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    # `pad` (not `tokenizer(..., padding=True)`, which leaves the padding set on the fast tokenizer's
    # backend, and so in every tokenizer.json saved after it)
    padded = tokenizer.pad({"input_ids": ids}, padding=True, padding_side="right", return_tensors="pt",
                           return_attention_mask=True)
    return padded["input_ids"].to(device), padded["attention_mask"].to(device)


def relation_word_ids(tokenizer) -> torch.Tensor:
    """The token ids that spell a relation word ("left", "right", "above", "below") by itself, with or
    without a leading space: the look step's relation in a rationale ("then look left :")."""
    ids = set()
    for word in RELATIONS:
        for text in (word, " " + word):
            got = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(got) == 1:
                ids.add(got[0])
    if not ids:
        raise LameError("decoder_relation_weight: no relation word is a single token of this tokenizer.")
    return torch.tensor(sorted(ids))


def lm_rows_loss(model, items: list[Item], continuations: list[list[int]]) -> torch.Tensor:
    """The backbone's LM loss on each row's continuation ids, given its prompt item."""
    batch = model.processor(items, continuations)
    hidden = model.hidden_states(batch)
    logits = model.backbone.lm_head(hidden)
    lengths = torch.tensor([len(c) for c in continuations])
    return suffix_lm_loss(logits, batch["input_ids"].to(logits.device), lengths)


def stage0_loss(model, config: TrainConfig, step: int, rank: int, world: int) -> dict[str, torch.Tensor]:
    """Stage-0 next-token loss on this process's rows of the step (see `stage0_rows`)."""
    items, texts = stage0_rows(config, step, rank, world)
    tok = model.processor.tokenizer
    eos = model.processor.eos_token_id
    continuations = [tok(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts]
    loss = lm_rows_loss(model, items, continuations)
    return {"loss": loss, "lm": loss.detach()}


def _share_of_rows(share: float, allowed: list[str], subtasks: list[str], seed: int) -> list[int]:
    """`share` of the rows whose subtask is in `allowed` (every row when empty), rounded, drawn with
    `seed`: sorted row indices."""
    allowed_set = set(allowed or subtasks)
    eligible = [i for i, subtask in enumerate(subtasks) if subtask in allowed_set]
    count = round(share * len(eligible))
    return sorted(random.Random(seed).sample(eligible, count)) if count > 0 else []


def own_rationale_rows(config: TrainConfig, step: int, rank: int, subtasks: list[str]) -> list[int]:
    """The rows of this process's slice of step `step` (whose examples have `subtasks`) whose query
    embedding is read after the model's own rationale: `cot_own_rationales` of the rows whose subtask is
    in `cot_own_subtasks` (every row when that is empty), rounded. A pure function of (seed, step, rank),
    so a resumed run picks the same rows."""
    return _share_of_rows(config.cot_own_rationales, config.cot_own_subtask_list, subtasks,
                          config.seed * 1_000_003 + step * 97 + rank)


def swapped_rationale_rows(config: TrainConfig, step: int, rank: int, subtasks: list[str]) -> list[int]:
    """The rows of this process's slice of step `step` whose query embedding is read after another
    row's gold rationale (`cot_swap_rationales` of the rows of `cot_swap_subtasks`), rows read after
    their own generated rationale left out. A pure function of (seed, step, rank)."""
    own = set(own_rationale_rows(config, step, rank, subtasks))
    rows = _share_of_rows(config.cot_swap_rationales, config.cot_swap_subtask_list, subtasks,
                          config.seed * 1_000_037 + step * 89 + rank + 1)
    return [r for r in rows if r not in own]


def cuts_direct_route(config: TrainConfig, step: int) -> bool:
    """Whether step `step` cuts `[EMBED]`'s direct route to the prompt (`direct_route_dropout`): a pure
    function of (seed, step), the same on every process, so a resumed run cuts the same steps."""
    share = config.direct_route_cut_share()
    return share > 0 and random.Random(config.seed * 1_000_033 + step * 131 + 7).random() < share


def own_rationale_embeddings(model, batch: TrainBatch, rows: list[int], q_emb: torch.Tensor) -> torch.Tensor:
    """`q_emb` with the rows of `rows` replaced by their queries' embeddings read after the model's own
    greedy rationale (no gradient flows through the generation; it does through the embedding pass)."""
    items = [batch.queries[i] for i in rows]
    with scene_words.renamed(model, batch.image_renamings("query", rows)):  # it writes in the names it reads
        own = model.forward_cot(items, model.generate_rationales(items)).embeddings
    return _replace_rows(q_emb, rows, own)


def swapped_rationale_embeddings(model, batch: TrainBatch, rows: list[int], q_emb: torch.Tensor) -> torch.Tensor:
    """`q_emb` with each row of `rows` replaced by its query's embedding read after the gold rationale
    of the next row of the batch (cyclically; another scene's), written in the row's own renaming."""
    n = len(batch.examples)
    others = rationale_ids(model.processor.tokenizer, [batch.examples[(i + 1) % n] for i in rows],
                           [batch.renaming(i) for i in rows])
    with scene_words.renamed(model, batch.image_renamings("query", rows)):
        swapped = model.forward_cot([batch.queries[i] for i in rows], others).embeddings
    return _replace_rows(q_emb, rows, swapped)


def _replace_rows(q_emb: torch.Tensor, rows: list[int], new: torch.Tensor) -> torch.Tensor:
    return q_emb.index_copy(0, torch.tensor(rows, device=q_emb.device), new.to(q_emb.dtype))


def rationale_ids(tokenizer, examples, renamings=None) -> list[list[int]]:
    """The token ids of each example's gold rationale (no special tokens), relabelled by the renaming
    beside it in `renamings` when given (`lame_tools.renaming`)."""
    renamings = renamings or [None] * len(examples)
    return [tokenizer(rename_text(ex.rationale, r), add_special_tokens=False)["input_ids"]
            for ex, r in zip(examples, renamings, strict=True)]


def _cot_embeddings(model, config: TrainConfig, batch: TrainBatch, stage: int, out: dict[str, torch.Tensor]):
    """CoT: queries read [EMBED] after `[THINK] rationale`, targets right after [THINK]; in stage 2
    the rationale LM loss goes into `out["cot_lm"]`. Returns (query, target, hard-negative)
    embeddings and None (`_one_pass_embeddings`' layer states)."""
    n = len(batch.queries)
    rationales = rationale_ids(model.processor.tokenizer, batch.examples, batch.renamings)
    q_batch = model.prepare(batch.queries, "cot", rationales)
    t_batch = model.prepare(batch.targets, "cot", [[]] * n)
    with scene_words.renamed(model, batch.image_renamings("query")):
        if config.lookup_weight > 0:
            q_hidden = _looked_up(model, config, batch, q_batch, lambda: model.hidden_states(q_batch), out)
        else:
            q_hidden = model.hidden_states(q_batch)
    with scene_words.renamed(model, batch.image_renamings("target")):  # hard negatives are texts
        t_hidden = model.hidden_states(t_batch)
    if stage == 2 and config.cot_lm_weight > 0:
        # predict "rationale [EMBED]" after [THINK] (queries) and "[EMBED]" right after [THINK] (targets)
        q_len = torch.tensor([len(r) + 1 for r in rationales])
        t_len = torch.full((n,), 1)
        out["cot_lm"] = 0.5 * (
            suffix_lm_loss(model.backbone.lm_head(q_hidden), q_batch["input_ids"].to(q_hidden.device), q_len)
            + suffix_lm_loss(model.backbone.lm_head(t_hidden), t_batch["input_ids"].to(t_hidden.device), t_len)
        )
    hard = None
    if config.hard_negatives:
        hard = model.pool(model.hidden_states(model.prepare(batch.hard_negatives, "cot", [[]] * n)), 0)[0]
    return model.pool(q_hidden, 0)[0], model.pool(t_hidden, 0)[0], hard, None


def _looked_up(model, config: TrainConfig, batch: TrainBatch, prepared: dict[str, torch.Tensor],
               forward: Callable[[], Any], out: dict[str, torch.Tensor], once: bool = False) -> Any:
    """`forward()` (a pass over the queries of `prepared`) with the look-up losses
    (`lame_tools.lookup_loss`) read from it: the word look-up into `out["lookup"]` when a row names
    an object, the relation look-up into `out["relation_lookup"]` when a row asks a relation; returns
    what `forward` returns. The naming word is looked for in the prompt (before a CoT row's
    `[THINK]`, so not in its rationale); `once`: a sequential pass, read on its prompt pass."""
    mask, n = prepared["attention_mask"], len(batch.examples)
    with contextlib.ExitStack() as stack:
        word = relation = None
        if config.lookup_weight > 0:
            readers = ([-1] * n if config.lookup_from == "embed"
                       else naming_word_positions(prepared["input_ids"], model.processor.tokenizer, batch.examples,
                                                  batch.renamings, stop_id=model.processor.think_token_id))
            word = stack.enter_context(attention_rows(model, config.lookup_layer, mask, readers, once=once))
        if config.relation_lookup_weight > 0:
            # the K reason tokens end one before [EMBED]; [EMBED] is the last position
            last, span = (-2, model.num_reason_tokens) if config.relation_lookup_from == "reasons" else (-1, 1)
            relation = stack.enter_context(attention_rows(model, config.relation_lookup_layer, mask, [last] * n, span=span))
        result = forward()

    def cells(named: list) -> list[int | None]:
        return named_token_positions(prepared["input_ids"], model.processor.image_token_id,
                                     prepared.get("image_grid_thw"), model.processor.merge_size, named)

    if word is not None:
        wanted = config.lookup_subtask_list
        named = [ex.answer_object if ex.subtask in wanted and ex.query_has_image else None for ex in batch.examples]
        if (loss := lookup_loss(head_rows(word[0], config.lookup_head), cells(named))) is not None:
            out["lookup"] = loss
    if relation is not None:
        rows = head_rows(relation[0], config.relation_lookup_head)
        rows = rows.mean(1) if rows.dim() == 3 else rows  # the K reason tokens' mean attention
        named = [ex.answer_object if ex.relation and ex.query_has_image else None for ex in batch.examples]
        if (loss := lookup_loss(rows, cells(named))) is not None:
            out["relation_lookup"] = loss
    return result


def _query_pass(model, config: TrainConfig, batch: TrainBatch, out: dict[str, torch.Tensor]):
    """The queries' pass (as `forward_items`), with the look-up loss (`_looked_up`) when it trains, and
    `[EMBED]`'s state after every layer when the self-distillation does (`embed_layers`)."""
    mode = config.default_mode
    lookup = config.lookup_weight > 0 or config.relation_lookup_weight > 0
    layers = config.self_distill_weights()[0] > 0  # checked here for every mode (refused where not one pass)
    if mode == SEQUENTIAL_MODE:  # its prompt pass has the latent layout's first positions
        if not lookup:
            return model.forward_sequential(batch.queries)
        prepared = model.prepare(batch.queries, "latent")
        return _looked_up(model, config, batch, prepared,
                          lambda: model.forward_sequential(batch.queries, batch=prepared), out, once=True)
    prepared = model.prepare(batch.queries, mode)
    k = model.num_reason_tokens if mode == "latent" else 0
    if not lookup:
        return model.embed_pass(prepared, k, layers=layers)
    return _looked_up(model, config, batch, prepared, lambda: model.embed_pass(prepared, k, layers=layers), out)


def _distill_teacher(model, batch: TrainBatch, student_layers: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
    """The self-distillation's teacher (`TrainConfig.self_distill`): the queries read after their gold
    rationales in the CoT layout, the same weights; the distance of the student's `[EMBED]` states
    (`student_layers`, [batch, layers, hidden]) from its goes into `out["distill"]`. Returns the
    teacher's query embeddings (they train too)."""
    rationales = rationale_ids(model.processor.tokenizer, batch.examples, batch.renamings)
    with scene_words.renamed(model, batch.image_renamings("query")):
        teacher = model.embed_pass(model.prepare(batch.queries, "cot", rationales), 0, layers=True)
    out["distill"] = state_distill_loss(student_layers, teacher.embed_layers)
    return teacher.embeddings


def _one_pass_embeddings(model, config: TrainConfig, batch: TrainBatch, stage: int, out: dict[str, torch.Tensor]):
    """Latent / discriminative / sequential: one pass per side; the decoder loss (when it trains) goes
    into `out["decoder"]`. Returns (query, target, hard-negative) embeddings and the queries'
    `[EMBED]` states after every layer (None unless the self-distillation trains)."""
    mode = config.default_mode
    n = len(batch.queries)
    with scene_words.renamed(model, batch.image_renamings("query")):
        q = _query_pass(model, config, batch, out)
    with scene_words.renamed(model, batch.image_renamings("target")):  # hard negatives are texts
        if config.hard_negatives:
            both = model.forward_items(batch.targets + batch.hard_negatives, mode).embeddings
            t_emb, hard = both[:n], both[n:]
        else:
            t_emb, hard = model.forward_items(batch.targets, mode).embeddings, None
    if model.decoder is not None and "decoder" in trainable_in_stage(config, stage):
        ids, mask = decoder_targets(model.processor.tokenizer, batch.decoder_texts, q.embeddings.device)
        weighted = relation_word_ids(model.processor.tokenizer) if config.decoder_relation_weight != 1.0 else None
        out["decoder"] = decoder_loss(model.decoder, q.reason_states, ids, mask, weighted, config.decoder_relation_weight)
    return q.embeddings, t_emb, hard, q.embed_layers


def embedding_loss(model, config: TrainConfig, step: int, rank: int, world: int) -> dict[str, torch.Tensor]:
    """Stage 1 / 2 losses of a contrastive or CoT run on this process's slice of the step's batch:
    "loss" (with gradients) and its detached parts ("contrastive", "decoder", "cot_lm", "scene",
    "scene_shape_only", "lookup", "relation_lookup", "distill", "teacher")."""
    stage = config.stage_of(step)
    batch = make_batch(config, step, rank, world)
    out: dict[str, torch.Tensor] = {}
    embed = _cot_embeddings if config.kind == "cot" else _one_pass_embeddings
    dense = (config.scene_head_weight > 0 and model.scene_head is not None
             and "vision" in trainable_in_stage(config, stage))
    reading = model.reading("reasons") if cuts_direct_route(config, step) else contextlib.nullcontext()
    with capture_vision(model) if dense else contextlib.nullcontext() as capture, reading:
        q_emb, t_emb, hard_emb, student_layers = embed(model, config, batch, stage, out)
    if dense and (seen := capture.take()) is not None:
        # the images in forward order: the queries', then the targets' (hard negatives are texts)
        scenes = ([ex.scene for ex in batch.examples if ex.query_has_image]
                  + [ex.scene for ex in batch.examples if ex.target_has_image])
        out["scene"] = scene_head_loss(model.scene_head, *seen, scenes, model.processor.merge_size,
                                       border_margin=config.scene_border_margin)
    if dense and config.shape_only_images > 0:
        scenes, images = shape_only_images(config, step, rank, world)
        if scenes:
            out["scene_shape_only"] = scene_head_loss(model.scene_head, *vision_tokens(model, images), scenes,
                                                      model.processor.merge_size, colour=False,
                                                      border_margin=config.scene_border_margin)
    # after the scene loss's capture: the passes below see the query images again
    teacher_emb = _distill_teacher(model, batch, student_layers, out) if student_layers is not None else None
    if config.kind == "cot" and stage == 2:
        subtasks = [ex.subtask for ex in batch.examples]
        if own_rows := own_rationale_rows(config, step, rank, subtasks):
            q_emb = own_rationale_embeddings(model, batch, own_rows, q_emb)
        if swapped_rows := swapped_rationale_rows(config, step, rank, subtasks):
            q_emb = swapped_rationale_embeddings(model, batch, swapped_rows, q_emb)
    device = q_emb.device

    def contrastive(queries: torch.Tensor) -> torch.Tensor:
        return info_nce(
            queries, t_emb, model.logit_scale, batch.target_keys.to(device),
            hard_negatives=hard_emb,
            hard_negative_keys=batch.hard_negative_keys.to(device) if hard_emb is not None else None,
            hard_negative_valid=batch.hard_negative_valid.to(device) if hard_emb is not None else None,
        )

    out["contrastive"] = contrastive(q_emb)
    loss = out["contrastive"]
    if teacher_emb is not None:
        distill_weight, teacher_weight = config.self_distill_weights()
        out["teacher"] = contrastive(teacher_emb)
        loss = loss + teacher_weight * out["teacher"] + distill_weight * out["distill"]
    if "decoder" in out:
        loss = loss + (1.0 if stage == 1 else config.lambda_decoder) * out["decoder"]
    if "cot_lm" in out:
        loss = loss + config.cot_lm_weight * out["cot_lm"]
    for name in ("scene", "scene_shape_only"):
        if name in out:
            loss = loss + config.scene_head_weight * out[name]
    if "lookup" in out:
        loss = loss + config.lookup_weight * out["lookup"]
    if "relation_lookup" in out:
        loss = loss + config.relation_lookup_weight * out["relation_lookup"]
    out = {k: v.detach() for k, v in out.items()}
    out["loss"] = loss
    return out


def average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
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


@dataclass
class StepOutput:
    """What one `train_step` measured: the detached losses ("loss" and its parts) and the encoder's
    gradient norm before clipping."""

    losses: dict[str, torch.Tensor]
    grad_norm: torch.Tensor


def train_step(
    model,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    config: TrainConfig,
    step: int,
    rank: int = 0,
    world: int = 1,
    autocast: Callable[[], Any] | None = None,
) -> StepOutput:
    """One optimisation step on this process's slice of global step `step` (the stage's parameters
    must already be set, `set_stage`): forward under `autocast`, backward, gradients averaged over
    the `world` processes, the encoder and decoder clipped apart, the optimizer and the schedule."""
    with (autocast or contextlib.nullcontext)():
        if config.stage_of(step) == 0:
            losses = stage0_loss(model, config, step, rank, world)
        else:
            losses = embedding_loss(model, config, step, rank, world)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    groups = parameter_groups(model)
    average_gradients([p for name in GROUPS for p in groups[name] if p.requires_grad], world)
    encoder = [p for name in ("backbone", "vision", "latent") for p in groups[name] if p.requires_grad]
    decoder = [p for p in groups["decoder"] if p.requires_grad]
    grad_norm = torch.nn.utils.clip_grad_norm_(encoder, config.clip_encoder) if encoder else torch.zeros(())
    if decoder:
        torch.nn.utils.clip_grad_norm_(decoder, config.clip_decoder)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    losses["loss"] = losses["loss"].detach()
    return StepOutput(losses, grad_norm)
