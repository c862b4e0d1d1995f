"""Look-up supervision: teach `[EMBED]` to attend to the object a question names.

The binding diagnostics (`scripts/binding_errors.py`, `scripts/binding_attention.py`) show where the
one-pass models fail colour_of / shape_of: every wrong answer is another object's attribute, and no
head of `[EMBED]` puts more attention on the named object than on the scene's other objects (chance
level), though the heads do look at objects. The vision tower's tokens carry each object's pair;
the language model never learns the look-up by shape or colour from the contrastive loss alone.

This optional training loss (`TrainConfig.lookup_weight`) names the look-up: at layer
`lookup_layer`, head `lookup_head`, the attention weight of `[EMBED]` (the last position of each
left-padded row; or, `lookup_from=word`, of the question's word that names the object, whose query
at layer 0 is the word alone: the plainest content match) on the visual token whose merged-grid cell holds the named object's centre (the
cell the scene head labels), as -log of that weight, averaged over the rows that name an object
(`Example.answer_object`, for the subtasks in `lookup_subtasks`). The weight is recomputed from the
layer's own q / k projections (`lame_tools.probe.hooks.recompute_attention_rows`) with gradients,
beside the real attention, so the forward pass is unchanged.

The relation look-up (`TrainConfig.relation_lookup_weight`, our departure) names the second step of a
relational question ("what is left of the red square ?"): at `relation_lookup_layer`, head
`relation_lookup_head`, the mean attention of the K reason tokens (or `[EMBED]`'s) on the visual token
of the object that answers (`Example.answer_object` of the queries whose `relation` is set), as -log
of that weight: the step a written rationale spells out ("then look left : a green triangle").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from lame_tools.probe.hooks import language_model, recompute_attention_rows
from lame_tools.scene_head import cell_of, merged_grid

EPS = 1e-6


# the word of a question that names its object (colour_of: "what colour is the square ?")
NAMING_ATTRIBUTE = {"colour_of": "shape", "shape_of": "colour"}


@contextlib.contextmanager
def attention_rows(model, layer: int, attention_mask: torch.Tensor, query_positions: Sequence[int],
                   once: bool = False, span: int = 1) -> Iterator[list[torch.Tensor]]:
    """Within the block, each forward records the attention rows [batch, head, seq] of layer `layer`
    (with gradients) read by each row's query position (`query_positions[row]`; -1 is the last,
    `[EMBED]`) into the yielded list. `attention_mask`: the batch's [batch, seq] padding mask (a
    forward over its first positions reads its first columns). `once`: record the first forward
    only (the prompt pass of a sequential-latent query; its one-position steps that follow are
    not a whole sequence). `span` > 1: the rows of the `span` positions that end at each row's
    query position, [batch, head, span, seq] (-2 with span K: a latent row's K reason tokens)."""
    layers = language_model(model).layers
    if not 0 <= layer < len(layers):
        raise ValueError(f"lookup_layer must be in 0..{len(layers) - 1}, got {layer}")
    rows: list[torch.Tensor] = []

    def hook(module, args, kwargs):
        if once and rows:
            return
        hidden = args[0] if args else kwargs["hidden_states"]
        batch, seq = hidden.shape[:2]
        wanted = torch.tensor([[(p + o) % seq for o in range(1 - span, 1)] for p in query_positions],
                              device=hidden.device)  # [batch, span]
        every = torch.arange(seq, device=hidden.device)
        mask = attention_mask[:, :seq] if attention_mask.dim() == 2 else attention_mask[:, :seq, :seq]
        pattern = recompute_attention_rows(module, hidden, kwargs["position_embeddings"],
                                           mask.to(hidden.device), every)
        picked = pattern[torch.arange(batch, device=hidden.device)[:, None], :, wanted]  # [batch, span, head, seq]
        rows.append(picked[:, 0] if span == 1 else picked.transpose(1, 2))

    handle = layers[layer].self_attn.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield rows
    finally:
        handle.remove()


def head_rows(rows: torch.Tensor, head: int) -> torch.Tensor:
    """One head's rows [batch, seq] of `attention_rows`' [batch, head, seq] ([batch, span, seq] of
    [batch, head, span, seq])."""
    if not 0 <= head < rows.shape[1]:
        raise ValueError(f"lookup_head must be in 0..{rows.shape[1] - 1}, got {head}")
    return rows[:, head]


def naming_word_positions(input_ids: torch.Tensor, tokenizer, examples: Sequence,
                          renamings: Sequence[dict[str, str] | None] | None = None,
                          stop_id: int | None = None) -> list[int]:
    """For each row, the position of the question's word that names its object (the last token of
    that word; colour_of / shape_of), or -1 (`[EMBED]`) when the row's subtask names none.
    `renamings`: each row's relabelling of the words (`lame_tools.renaming`), so the word is found
    under the name the row's text uses. `stop_id`: look only before that token's first occurrence in
    the row (a CoT row's `[THINK]`: its rationale names the object again)."""
    out = []
    for row, example in enumerate(examples):
        attribute = NAMING_ATTRIBUTE.get(example.subtask)
        if attribute is None or example.answer_object is None:
            out.append(-1)
            continue
        name = getattr(example.answer_object, attribute)
        name = ((renamings[row] if renamings else None) or {}).get(name, name)
        word = tokenizer(name, add_special_tokens=False)["input_ids"][-1]
        ids = input_ids[row]
        if stop_id is not None and len(stops := torch.nonzero(ids == stop_id).flatten()):
            ids = ids[: int(stops[0])]
        found = torch.nonzero(ids == word).flatten()
        out.append(int(found[-1]) if len(found) else -1)
    return out


def named_token_positions(input_ids: torch.Tensor, image_token_id: int, image_grid_thw: torch.Tensor | None,
                          merge_size: int, named: Sequence[object | None]) -> list[int | None]:
    """For each row, the sequence index of the visual token whose cell holds the named object's
    centre (None: the row names no object or has no image). Images are in row order, one a row at
    most; a row's visual tokens are its merged grid in row-major order."""
    out: list[int | None] = []
    image = 0
    for row, obj in enumerate(named):
        positions = torch.nonzero(input_ids[row] == image_token_id).flatten()
        if not len(positions):
            out.append(None)
            continue
        rows, cols = merged_grid(image_grid_thw[image].tolist(), merge_size)
        image += 1
        if obj is None:
            out.append(None)
            continue
        out.append(int(positions[cell_of(obj.x, obj.y, rows, cols)]))
    return out


def lookup_loss(attention: torch.Tensor, positions: Sequence[int | None]) -> torch.Tensor | None:
    """-log attention on the named token, the mean over rows that have one (None: no row does)."""
    picked = [attention[row, p] for row, p in enumerate(positions) if p is not None]
    if not picked:
        return None
    return -torch.log(torch.stack(picked) + EPS).mean()
