"""The latent decoder: a small causal LM that sees only the K projected reason states.

During training it must reconstruct the target's text from the reason states alone (the
information bottleneck); at inference it is not run, except to read out "what the model thought".
It is transformers' own `Qwen3ForCausalLM`, fed through `inputs_embeds`.

One layout serves training and read-out:

    [prefix: K projected reason states] [bos] target [eos] [pad ...]

`LatentDecoder.sequence` builds it (the loss in `lame_tools.losses` reads its labels), and
`LatentDecoder.readout` generates after `[prefix] [bos]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import Qwen3Config, Qwen3ForCausalLM

from lame_tools.constants import IGNORE_INDEX


@dataclass
class DecoderReadout:
    """What the decoder generated from each row's reason states.

    Attributes:
        token_ids: per row, the generated ids (bos excluded; cut at the first eos or pad).
        token_probs: per row, the decoder's probability of each greedy token (same length as its
            ids); empty arrays for beam search.
    """

    token_ids: list[list[int]]
    token_probs: list[np.ndarray]


class LatentDecoder(nn.Module):
    """Projection of reason states into a Qwen3 causal LM used as a prefix-conditioned decoder."""

    def __init__(self, config: Qwen3Config, reason_dim: int) -> None:
        super().__init__()
        self.config = config
        self.reason_proj = nn.Sequential(nn.Linear(reason_dim, config.hidden_size), nn.LayerNorm(config.hidden_size))
        self.lm = Qwen3ForCausalLM(config)

    def prefix(self, reason_states: torch.Tensor) -> torch.Tensor:
        """[batch, K, reason_dim] -> [batch, K, decoder_hidden]."""
        return self.reason_proj(reason_states.to(self.reason_proj[0].weight.dtype))

    def sequence(
        self, target_ids: torch.Tensor, target_mask: torch.Tensor, num_prefix: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The teacher-forced layout of right-padded targets after a prefix of `num_prefix` states.

        Args:
            target_ids: [batch, T] right-padded token ids.
            target_mask: [batch, T] 1 on real tokens.

        Returns:
            tokens [batch, T + 2]: bos, the target, eos (what follows the prefix; the columns after
                eos hold padding and are masked);
            attention_mask [batch, K + T + 2]: 1 on the prefix, bos, the target and eos;
            labels [batch, K + T + 2]: the target and eos at their own positions, IGNORE_INDEX on the
            prefix, bos (given, not predicted) and padding (not shifted: HF and
            `losses.sequence_mean_ce` shift them).
        """
        batch = target_ids.shape[0]
        device = target_ids.device
        bos = torch.full((batch, 1), self.config.bos_token_id, dtype=torch.long, device=device)
        lengths = target_mask.sum(1)
        tokens = torch.cat([bos, target_ids, torch.full_like(bos, self.config.pad_token_id)], dim=1)
        tokens[torch.arange(batch, device=device), lengths + 1] = self.config.eos_token_id
        # valid: bos, the target's own tokens, eos
        token_mask = torch.arange(tokens.shape[1], device=device)[None] <= (lengths + 1)[:, None]
        label_tokens = tokens.masked_fill(~token_mask, IGNORE_INDEX)
        label_tokens[:, 0] = IGNORE_INDEX  # bos is given, not predicted
        prefix_ignored = torch.full((batch, num_prefix), IGNORE_INDEX, dtype=torch.long, device=device)
        labels = torch.cat([prefix_ignored, label_tokens], dim=1)
        prefix_mask = torch.ones(batch, num_prefix, dtype=torch.long, device=device)
        attention_mask = torch.cat([prefix_mask, token_mask.long()], dim=1)
        return tokens, attention_mask, labels

    def forward(self, reason_states: torch.Tensor, target_ids: torch.Tensor, target_mask: torch.Tensor):
        """Teacher-forced reconstruction of right-padded `target_ids` [batch, T] from the reason states
        (layout: `sequence`).

        Returns:
            the `Qwen3ForCausalLM` output; `.loss` is the mean token cross-entropy over the targets.
        """
        tokens, attention_mask, labels = self.sequence(target_ids, target_mask, reason_states.shape[1])
        embeds = torch.cat([self.prefix(reason_states), self.lm.get_input_embeddings()(tokens)], dim=1)
        return self.lm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)

    @torch.no_grad()
    def readout(self, reason_states: torch.Tensor, max_new_tokens: int = 24, num_beams: int = 1) -> DecoderReadout:
        """Decode what the reason states say after `[prefix] [bos]`: greedy (with each chosen token's
        probability), or beam search with `num_beams` > 1."""
        batch = reason_states.shape[0]
        bos = torch.full((batch, 1), self.config.bos_token_id, dtype=torch.long, device=reason_states.device)
        embeds = torch.cat([self.prefix(reason_states), self.lm.get_input_embeddings()(bos)], dim=1)
        greedy = num_beams == 1
        out = self.lm.generate(
            inputs_embeds=embeds,
            attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device),
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
            eos_token_id=self.config.eos_token_id,
            pad_token_id=self.config.pad_token_id,
            output_scores=greedy,
            return_dict_in_generate=True,
        )
        rows = out.sequences.tolist()  # with inputs_embeds only the new tokens are returned
        stops = {self.config.eos_token_id, self.config.pad_token_id}
        token_ids = [row[: next((i for i, t in enumerate(row) if t in stops), len(row))] for row in rows]
        if not greedy:
            return DecoderReadout(token_ids, [np.zeros(0, dtype=np.float32) for _ in token_ids])
        step_probs = torch.stack([torch.softmax(s.float(), dim=-1) for s in out.scores], dim=1)  # [batch, steps, vocab]
        chosen = step_probs.gather(-1, out.sequences[:, : step_probs.shape[1], None])[..., 0].cpu().numpy()
        return DecoderReadout(token_ids, [p[: len(ids)] for p, ids in zip(chosen, token_ids)])
