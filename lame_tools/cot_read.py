"""The CoT embedding read from generation's own KV cache (UME-R1 style), for `LameAdapter`'s cot lane.

`generate_keeping_cache` runs `LameModel.generate_with_cache` (the greedy generation of
`generate_rationales`) and keeps the cache; `read_embed_from_cache` then feeds LaME's `[EMBED]` row as one more cached step. The state
equals the re-read pass of `LameModel.forward_cot` within float error (tests/test_adapters.py).
"""

from __future__ import annotations

from typing import Any

import torch


def generate_keeping_cache(
    model: Any, prepared: Any, max_new_tokens: int, streamer: Any = None, stopping_criteria: Any = None
) -> list[list[int]]:
    """`LameModel.generate_rationales` on a prepared batch, keeping the KV cache and the last generated
    ids in `prepared.extra` for `read_embed_from_cache`."""
    rationales, cache, generated = model.generate_with_cache(
        prepared.items, max_new_tokens, streamer, prepared.batch, stopping_criteria
    )
    prepared.extra["cache"], prepared.extra["last_ids"] = cache, generated[:, -1:]
    return rationales


def read_embed_from_cache(model: Any, prepared: Any, generated: list[list[int]]) -> torch.Tensor:
    """The CoT embedding from generation's own KV cache: one more cached step that feeds LaME's
    `[EMBED]` row (its `latent_embeddings[-1]`, as `LameModel.input_embeddings` writes it; not the
    backbone's table row for the token) at the position it has in the re-read layout, with every
    generated position after the row's rationale masked out (a stop token and the padding of rows that
    finished early). A row whose rationale ran to the cap also feeds its last token, which generation
    sampled but never fed. Equals `forward_cot`'s re-read state at `[EMBED]` up to float error."""
    cache, last_ids = prepared.extra.pop("cache"), prepared.extra.pop("last_ids")
    batch = prepared.batch
    device = batch["input_ids"].device
    steps = last_ids.shape[1] + cache.get_seq_length() - batch["input_ids"].shape[1]  # tokens generated
    lengths = torch.tensor([len(g) for g in generated], device=device)
    think = model.position_ids(batch)[..., -1:]  # [3, batch, 1]: the [THINK] cue ends every prompt
    fed = torch.arange(steps - 1, device=device)[None, :] < lengths[:, None]  # generated positions kept
    embed_row = model.latent_embeddings[-1].to(model.backbone.dtype).expand(len(generated), 1, -1)
    inputs, mask, positions = embed_row, [batch["attention_mask"], fed.long()], think + (lengths + 1)[None, :, None]
    if bool((lengths == steps).any()):  # a rationale ran to the cap: feed its last token first
        inputs = torch.cat([model.input_embeddings(last_ids), embed_row], dim=1)
        mask.append((lengths == steps).long()[:, None])
        positions = torch.cat([think + steps, positions], dim=-1)
    mask.append(torch.ones_like(lengths)[:, None])
    out = model.backbone.model.language_model(
        inputs_embeds=inputs, attention_mask=torch.cat(mask, dim=1), position_ids=positions, cache=cache, use_cache=True
    )
    return model.pool(out.last_hidden_state, 0)[0]
