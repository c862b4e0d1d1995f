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
from lame_tools.inputs import Item
from lame_tools.model import LameModel
from lame_tools.probe.hooks import prepare_batch, run_prepared
from lame_tools.probe.results import FrameMixin


@dataclass
class Readout(FrameMixin):
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

    def rows(self) -> list[dict[str, object]]:
        """One row per generated token: input, step, token, probability (NaN for beams)."""
        return [{"input": i, "step": j, "token": token,
                 "probability": float(probs[j]) if j < len(probs) else float("nan"), "text": text}
                for i, (text, tokens, probs) in enumerate(zip(self.texts, self.tokens, self.token_probs))
                for j, token in enumerate(tokens)]

    def plot(self, title: str = ""):
        """The read-out tokens of each input, shaded by the decoder's probability."""
        from lame_tools import viz

        width = max((len(t) for t in self.tokens), default=0)
        z = np.full((len(self.tokens), width), np.nan, np.float32)
        for i, probs in enumerate(self.token_probs):
            z[i, : len(probs)] = probs
        grid = [t + [""] * (width - len(t)) for t in self.tokens]
        fig = viz.token_strip(grid[0] if grid else [], np.nan_to_num(z), title=title or "decoder read-out",
                              query_labels=[f"input {i}" for i in range(len(grid))])
        fig.data[0].text = np.array(grid)
        return fig


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
    decoded = model.decoder.readout(states, max_new_tokens=max_new_tokens, num_beams=num_beams)
    tokenizer = model.processor.tokenizer
    return Readout(
        texts=[model.processor.decode(t) for t in decoded.token_ids],
        token_ids=decoded.token_ids,
        tokens=[tokenizer.convert_ids_to_tokens(t) for t in decoded.token_ids],
        token_probs=decoded.token_probs,
        kept_reason_tokens=kept,
    )


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
