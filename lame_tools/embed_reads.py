"""What the latent suffix may attend to: `LameConfig.embed_reads` (the `[EMBED]` position) and
`LameConfig.reason_reads` (the K reason positions).

"all" is the paper's LaME: plain causal attention, so `[EMBED]` reads the whole prompt and the K reason
tokens at every layer. "reasons" is our departure from the paper, kept as an upper bound of how much the
reason tokens can be used: at every layer `[EMBED]` attends only to the reason tokens and to itself, so all
that the embedding learns of the input passes through the K reason positions. Zeroing or swapping them
must then cost Hit@1; how much the restriction costs against "all" is the price of that guarantee.

`reason_reads="reasons"` is another departure, a control for what the reason tokens give: each reason
token attends only to the reason tokens before it and itself, so it never sees the input and its states
are the same for every query (learned constant keys and values for `[EMBED]`, as register tokens are).
A LaME that gains as much with blind reason tokens gains from the positions, not from what the tokens
compute about the query. The two restrictions together would leave `[EMBED]` nothing of the input, so
`LameConfig` refuses that pair.

The restrictions apply to rows that hold reason tokens (the parallel latent mode). Rows without any
(discriminative, cot) keep plain causal attention, so a restricted model still runs every mode.

`hidden` (no config; `LameModel.hiding`, the "mask" ablation of `lame_tools.probe.ablation`) hides
chosen reason tokens from `[EMBED]` at every layer and changes nothing else: the sequence, its
positions and the other rows stay as they are. Unlike dropping a token (which shifts `[EMBED]`'s
position and so its rotary offsets to every key), it removes only what `[EMBED]` reads from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def allowed_keys(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    reason_ids: Sequence[int],
    embed_reads: str = "reasons",
    reason_reads: str = "all",
    hidden: Sequence[int] = (),
) -> torch.Tensor:
    """[batch, seq, seq] bool, True where query position i may attend to key position j.

    Causal attention over real tokens (left padding is 0 in `attention_mask`), except, in a row
    holding reason tokens: with `embed_reads="reasons"` the last position (`[EMBED]`: the suffix ends
    the row) reads only the reason tokens and itself; with `reason_reads="reasons"` each reason token
    reads only the reason tokens up to itself; the last position never reads the ids in `hidden`.
    Padding positions may read themselves, so no softmax row is empty.
    """
    batch, seq = input_ids.shape
    device = input_ids.device
    real = attention_mask.bool()
    allowed = torch.ones(seq, seq, dtype=torch.bool, device=device).tril()[None] & real[:, None, :]
    is_reason = torch.isin(input_ids, torch.tensor(list(reason_ids), dtype=input_ids.dtype, device=device))
    if reason_reads == "reasons":
        blind = allowed & is_reason[:, None, :]  # a reason row keeps its causal reason keys only
        allowed = torch.where(is_reason[:, :, None], blind, allowed)
    if embed_reads == "reasons":
        last = torch.zeros(seq, dtype=torch.bool, device=device)
        last[-1] = True
        embed_row = (is_reason | last[None]) & real
        allowed[:, -1] = torch.where(is_reason.any(dim=1, keepdim=True), embed_row, allowed[:, -1])
    if len(hidden):
        allowed[:, -1] &= ~torch.isin(input_ids, torch.tensor(list(hidden), dtype=input_ids.dtype, device=device))
    return allowed | torch.eye(seq, dtype=torch.bool, device=device)[None]


def attention_bias(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive [batch, 1, seq, seq] mask of `allowed` (0 where allowed, the dtype's minimum elsewhere),
    the form transformers passes unchanged to eager and sdpa attention alike."""
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
