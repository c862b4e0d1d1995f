"""The latent decoder: a small causal LM that sees only the K projected reason states.

During training it must reconstruct the target's text from the reason states alone (the
information bottleneck); at inference it is not run, except to read out "what the model thought".
It is transformers' own `Qwen3ForCausalLM`, fed through `inputs_embeds`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Qwen3Config, Qwen3ForCausalLM

IGNORE_INDEX = -100


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

    def forward(self, reason_states: torch.Tensor, target_ids: torch.Tensor, target_mask: torch.Tensor):
        """Teacher-forced reconstruction of right-padded `target_ids` [batch, T] from the reason states.

        The sequence is [prefix (K)] [bos] target [eos]; labels cover target and eos only.

        Returns:
            the `Qwen3ForCausalLM` output; `.loss` is the mean token cross-entropy over the targets.
        """
        batch, k = reason_states.shape[:2]
        device = target_ids.device
        bos = torch.full((batch, 1), self.config.bos_token_id, dtype=torch.long, device=device)
        lengths = target_mask.sum(1)
        tokens = torch.cat([bos, target_ids, torch.full_like(bos, self.config.pad_token_id)], dim=1)
        tokens[torch.arange(batch, device=device), lengths + 1] = self.config.eos_token_id
        # valid: bos, the target's own tokens, eos (targets are right-padded)
        token_mask = torch.arange(tokens.shape[1], device=device)[None] <= (lengths + 1)[:, None]
        embeds = torch.cat([self.prefix(reason_states), self.lm.get_input_embeddings()(tokens)], dim=1)
        labels = torch.full((batch, k + tokens.shape[1]), IGNORE_INDEX, dtype=torch.long, device=device)
        # the token at position p is predicted from position p - 1; HF shifts labels itself
        label_tokens = tokens.masked_fill(~token_mask, IGNORE_INDEX)
        label_tokens[:, 0] = IGNORE_INDEX  # bos is given, not predicted
        labels[:, k:] = label_tokens
        attention_mask = torch.cat([torch.ones(batch, k, dtype=torch.long, device=device), token_mask.long()], dim=1)
        return self.lm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)

    @torch.no_grad()
    def readout(self, reason_states: torch.Tensor, max_new_tokens: int = 24, num_beams: int = 1) -> torch.Tensor:
        """Decode what the reason states say (greedy, or beam search with `num_beams` > 1).

        Returns:
            [batch, generated] token ids (bos excluded; stops at eos, padded with pad).
        """
        batch = reason_states.shape[0]
        bos = torch.full((batch, 1), self.config.bos_token_id, dtype=torch.long, device=reason_states.device)
        embeds = torch.cat([self.prefix(reason_states), self.lm.get_input_embeddings()(bos)], dim=1)
        return self.lm.generate(
            inputs_embeds=embeds,
            attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device),
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
            eos_token_id=self.config.eos_token_id,
            pad_token_id=self.config.pad_token_id,
        )
