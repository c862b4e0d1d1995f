"""The CoT embedding read from generation's own KV cache (UME-R1 style), for `LameAdapter`'s cot lane.

`generate_keeping_cache` runs the same greedy generation as `LameModel.generate_rationales` and keeps
the cache; `read_embed_from_cache` then feeds LaME's `[EMBED]` row as one more cached step. The state
equals the re-read pass of `LameModel.forward_cot` within float error (tests/test_adapters.py).
"""

from __future__ import annotations

from typing import Any

import torch


def generate_keeping_cache(
    model: Any, prepared: Any, max_new_tokens: int, streamer: Any = None, stopping_criteria: Any = None
) -> list[list[int]]:
    """`LameModel.generate_rationales`' greedy generation (same stops, suppressed ids and cut), keeping
    the KV cache and the step count in `prepared.extra` for `read_embed_from_cache`. Written here
    because `generate_rationales` returns ids only."""
    processor = model.processor
    stops = [processor.embed_token_id, processor.eos_token_id]
    out = model.backbone.generate(
        **prepared.batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
        pad_token_id=processor.pad_id, streamer=streamer, suppress_tokens=processor.cot_suppressed_ids(),
        stopping_criteria=stopping_criteria, return_dict_in_generate=True,
    )
    generated = out.sequences[:, prepared.batch["input_ids"].shape[1] :]
    prepared.extra["cache"], prepared.extra["last_ids"] = out["cache"], generated[:, -1:]
    rows = []
    for row in generated.tolist():
        cut = next((i for i, t in enumerate(row) if t in stops or t == processor.pad_id), len(row))
        rows.append(row[:cut])
    return rows


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
