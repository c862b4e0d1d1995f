"""Decoder read-out: what the latent decoder reconstructs from a query's K reason states.

During training the decoder must rebuild the target's text from the reason states alone, so its
greedy (or beam) output is a direct reading of "what the model thought" in one pass. Read-out can
also be restricted to a subset of the reason tokens (the others zeroed) to see what each carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lame_tools.errors import InputError
from lame_tools.model import LameModel
from lame_tools.probe.hooks import prepare_batch, run_prepared
from lame_tools.processor import Item


@dataclass
class Readout:
    """Decoded reason states, one entry per input.

    Attributes:
        texts: the decoded strings.
        token_ids: per input, the generated ids (eos and padding removed).
        tokens: per input, the generated token strings.
        token_probs: per input, the decoder's probability of each greedy token (empty for beams).
        kept_reason_tokens: the reason token indices the decoder saw (others zeroed).
    """

    texts: list[str]
    token_ids: list[list[int]]
    tokens: list[list[str]]
    token_probs: list[np.ndarray]
    kept_reason_tokens: list[int]


def decode_reason_states(
    model: LameModel,
    reason_states: torch.Tensor,
    max_new_tokens: int = 24,
    num_beams: int = 1,
    keep: Sequence[int] | None = None,
) -> Readout:
    """Run the latent decoder on reason states [batch, K, hidden] (see `Readout`)."""
    if model.decoder is None:
        raise InputError("This model has no latent decoder, so there is nothing to read out.")
    if reason_states.shape[1] == 0:
        raise InputError("Read-out needs reason states: use a latent-mode model with K > 0.")
    k = reason_states.shape[1]
    kept = list(range(k)) if keep is None else sorted(set(keep))
    if any(not 0 <= i < k for i in kept):
        raise InputError(f"Reason token indices must be in 0..{k - 1}, got {kept}.")
    states = reason_states.clone()
    dropped = [i for i in range(k) if i not in kept]
    if dropped:
        states[:, dropped] = 0
    decoder = model.decoder
    config = decoder.config
    with torch.no_grad():
        if num_beams > 1:
            ids = decoder.readout(states, max_new_tokens=max_new_tokens, num_beams=num_beams)
            probs = [np.zeros(0, dtype=np.float32)] * len(ids)
            rows = ids.tolist()
        else:
            rows, probs = _greedy(decoder, states, max_new_tokens)
    tokenizer = model.processor.tokenizer
    stops = {config.eos_token_id, config.pad_token_id}
    token_ids = []
    for row in rows:
        cut = next((i for i, t in enumerate(row) if t in stops), len(row))
        token_ids.append(row[:cut])
    probs = [p[: len(t)] for p, t in zip(probs, token_ids)]
    return Readout(
        texts=[model.processor.decode(t) for t in token_ids],
        token_ids=token_ids,
        tokens=[tokenizer.convert_ids_to_tokens(t) for t in token_ids],
        token_probs=probs,
        kept_reason_tokens=kept,
    )


def _greedy(
    decoder: torch.nn.Module, states: torch.Tensor, max_new_tokens: int
) -> tuple[list[list[int]], list[np.ndarray]]:
    """Greedy decoding that also returns each chosen token's probability."""
    out = decoder.lm.generate(
        inputs_embeds=torch.cat(
            [
                decoder.prefix(states),
                decoder.lm.get_input_embeddings()(
                    torch.full(
                        (states.shape[0], 1), decoder.config.bos_token_id, dtype=torch.long, device=states.device
                    )
                ),
            ],
            dim=1,
        ),
        attention_mask=torch.ones(states.shape[0], states.shape[1] + 1, dtype=torch.long, device=states.device),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=decoder.config.eos_token_id,
        pad_token_id=decoder.config.pad_token_id,
        output_scores=True,
        return_dict_in_generate=True,
    )
    ids = out.sequences  # with inputs_embeds only the new tokens are returned
    step_probs = torch.stack([torch.softmax(s.float(), dim=-1) for s in out.scores], dim=1)  # [batch, steps, vocab]
    chosen = step_probs.gather(-1, ids[:, : step_probs.shape[1], None])[..., 0]
    return ids.tolist(), [row.cpu().numpy() for row in chosen]


def readout_items(
    model: LameModel,
    items: list[Item],
    max_new_tokens: int = 24,
    num_beams: int = 1,
    keep: Sequence[int] | None = None,
) -> Readout:
    """Embed items in latent mode and decode their reason states (one batched pass + decoding)."""
    prepared = prepare_batch(model, items, "latent")
    out = run_prepared(model, prepared)
    return decode_reason_states(model, out.reason_states, max_new_tokens, num_beams, keep)


def readout(
    model: LameModel,
    image: object | None = None,
    text: str | None = None,
    instruction: str | None = None,
    max_new_tokens: int = 24,
    num_beams: int = 1,
    keep: Sequence[int] | None = None,
) -> Readout:
    """Read out one query: `readout(model, image="q.png", text="what is left of the red square ?").texts[0]`."""
    items = model.make_items([image] if image is not None else None, [text], instruction)
    return readout_items(model, items, max_new_tokens, num_beams, keep)


def readout_per_token(model: LameModel, items: list[Item], max_new_tokens: int = 24) -> list[Readout]:
    """One read-out per reason token k, the decoder seeing token k alone (the others zeroed)."""
    prepared = prepare_batch(model, items, "latent")
    states = run_prepared(model, prepared).reason_states
    return [decode_reason_states(model, states, max_new_tokens, 1, [k]) for k in range(states.shape[1])]
