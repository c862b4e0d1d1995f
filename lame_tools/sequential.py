"""The sequential-latent baseline (Coconut / PLUME style) over a `LameModel`.

After the prompt, K latent steps run one after another, each a one-position forward step whose
input embedding is the previous position's last-layer state; then `[EMBED]` (the model's own latent
row) is read in one more step. LaME runs the same K positions in parallel, in one pass.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache

from lame_tools.inputs import Item


def forward_sequential(model: Any, items: list[Item], num_steps: int | None = None,
                       batch: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, int]:
    """The sequential-latent baseline (Coconut / PLUME style): after the prompt, K latent steps run
    one after another, each a one-position forward step whose input embedding is the previous
    position's last-layer state, then `[EMBED]` (our latent row) is read in one more step.

    Steps share a KV cache, so the cost is one prefill plus K + 1 single-position steps. Positions
    are those of the latent layout (prompt, K reason slots, `[EMBED]`), so a row's rotary positions do
    not depend on its padding. Gradients flow through every step (use `torch.no_grad()` to infer).
    Returns the last-layer states of the K steps and of `[EMBED]` ([batch, K + 1, hidden]) and K,
    ready for `model.pool`. Steps named in `model.hidden_from_embed` (`LameModel.hiding`) are left out
    of what `[EMBED]`'s step attends to, positions unchanged. `batch`: the items already processed with the latent suffix of K
    (`model.prepare(items, "latent")` when K is the model's), built from `items` when None.
    """

    k = model.num_reason_tokens if num_steps is None else num_steps
    suffix = [*model.processor.reason_token_ids(k), model.processor.embed_token_id]
    batch = model.move_batch(model.processor(items, suffix) if batch is None else batch)
    input_ids, mask = batch["input_ids"], batch["attention_mask"]
    positions = model.position_ids(batch)
    prompt = input_ids.shape[1] - k - 1
    lm = model.backbone.model
    cache = DynamicCache(config=model.backbone.config.get_text_config())
    out = lm(
        input_ids=input_ids[:, :prompt],
        inputs_embeds=model.input_embeddings(input_ids[:, :prompt]),
        attention_mask=mask[:, :prompt],
        position_ids=positions[..., :prompt],
        pixel_values=batch.get("pixel_values"),
        image_grid_thw=batch.get("image_grid_thw"),
        mm_token_type_ids=batch["mm_token_type_ids"][:, :prompt],
        cache=cache,
        use_cache=True,
    )
    state = out.last_hidden_state[:, -1:]
    reason_states = []
    embed_row = model.latent_embeddings[-1].to(state.dtype).expand(state.shape[0], 1, -1)
    for step in range(k + 1):
        at = prompt + step
        step_input = state if step < k else embed_row
        step_mask = mask[:, : at + 1]
        if step == k and model.hidden_from_embed:
            step_mask = step_mask.clone()
            step_mask[:, [prompt + i for i in model.hidden_from_embed]] = 0
        out = lm.language_model(
            inputs_embeds=step_input,
            attention_mask=step_mask,
            position_ids=positions[..., at : at + 1],
            cache=cache,
            use_cache=True,
        )
        state = out.last_hidden_state[:, -1:]
        if step < k:
            reason_states.append(state)
    hidden = torch.cat([*reason_states, state], dim=1)
    return hidden, k
