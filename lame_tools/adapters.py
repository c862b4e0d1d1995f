"""Adapters: one embedding model in one inference mode, split into the stages the latency harness times.

Every lane of a benchmark or a race is an `EmbeddingAdapter`. A one-pass adapter does
`prepare` (decode inputs, build the batch, move it to the device), `forward` (the single prefill,
last-layer states) and `pool` (read the embedding). A generative adapter does `prepare`, then
`generate` (prefill + decode steps, streamed through a transformers streamer) and `read`
(the embedding from what was generated: a re-read pass, or states kept during generation).

Adapters here:
    LameAdapter          a `LameModel` (shipped tiny models, or a real one from `LameModel.from_backbone`)
                         in latent, discriminative or cot mode.
    UmeR1Adapter         UME-R1 (Qwen2-VL): `disc` = one pass, state at `<disc_emb>`; `gen` = generate
                         `<think>...</think><answer>...</answer><gen_emb>`, state at `<gen_emb>` taken
                         from generation's own hidden states (no extra pass).
    LastTokenAdapter     VLM2Vec-V2 style: image tokens, newline, instruction and text, no chat template;
                         the last token's last-layer state, L2-normalised.

The prompt layouts follow the public descriptions of UME-R1 (its README's inference examples) and
VLM2Vec (its Qwen2-VL processing and `last` pooling); the code is ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from lame_tools.errors import ModelLoadError


@dataclass
class Prepared:
    """A batch ready for the model. `batch` is on the device; `prompt_lengths` are real (unpadded)
    tokens per row before any mode suffix; `extra` carries what a later stage needs."""

    batch: dict[str, torch.Tensor]
    items: list[Any]
    prompt_lengths: list[int]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.batch["input_ids"].shape[0])

    @property
    def row_lengths(self) -> list[int]:
        """Real tokens per row including the mode's suffix (what the forward pass actually reads)."""
        return self.batch["attention_mask"].sum(dim=1).tolist()


class EmbeddingAdapter:
    """Base class: one model in one mode. Subclasses set `generative` and implement the stages."""

    name: str = "adapter"
    mode: str = ""
    generative: bool = False
    num_reason_tokens: int = 0
    max_new_tokens: int = 0

    @property
    def backbone(self) -> Any:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def prepare(self, images: list[Any] | None, texts: list[str | None] | None, instruction: Any) -> Prepared:
        raise NotImplementedError

    def forward(self, prepared: Prepared) -> torch.Tensor:
        """One-pass adapters: last-layer states [batch, seq, hidden]."""
        raise NotImplementedError

    def pool(self, prepared: Prepared, hidden: torch.Tensor) -> torch.Tensor:
        """One-pass adapters: embeddings [batch, dim] from `forward`'s states."""
        raise NotImplementedError

    def generate(
        self, prepared: Prepared, max_new_tokens: int | None = None, streamer: Any = None, stopping_criteria: Any = None
    ) -> list[list[int]]:
        """Generative adapters: generated ids per row (without the stop token and padding)."""
        raise NotImplementedError

    def read(self, prepared: Prepared, generated: list[list[int]]) -> torch.Tensor:
        """Generative adapters: embeddings [batch, dim] once generation is done."""
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What a benchmark must report about this lane: model, mode, dtype, attention, K."""
        config = self.backbone.config
        return {
            "adapter": type(self).__name__,
            "name": self.name,
            "mode": self.mode,
            "generative": self.generative,
            "dtype": str(next(self.backbone.parameters()).dtype).replace("torch.", ""),
            "attn_implementation": getattr(config, "_attn_implementation", None),
            "num_reason_tokens": self.num_reason_tokens,
            "max_new_tokens": self.max_new_tokens if self.generative else 0,
            "parameters": sum(p.numel() for p in self.backbone.parameters()),
            "device": str(self.device),
        }

    @torch.no_grad()
    def embed(self, images: list[Any] | None = None, texts: list[str | None] | None = None, instruction: Any = None) -> torch.Tensor:
        """All stages in a row (no timing): [batch, dim] unit-norm float32 on the CPU."""
        prepared = self.prepare(images, texts, instruction)
        if self.generative:
            return self.read(prepared, self.generate(prepared)).float().cpu()
        return self.pool(prepared, self.forward(prepared)).float().cpu()


# ---- our own models ----------------------------------------------------------------------------


class LameAdapter(EmbeddingAdapter):
    """A `LameModel` in one of its three modes (default: the mode it was trained for)."""

    def __init__(self, model: Any, mode: str | None = None, name: str | None = None) -> None:
        self.model = model
        self.mode = mode or model.config.default_mode
        if self.mode not in ("latent", "discriminative", "cot"):
            raise ValueError(f"mode must be latent, discriminative or cot, got {self.mode!r}")
        self.generative = self.mode == "cot"
        self.num_reason_tokens = model.num_reason_tokens if self.mode == "latent" else 0
        self.max_new_tokens = model.config.cot_max_new_tokens
        self.name = name or f"lame-{self.mode}"

    @property
    def backbone(self) -> Any:
        return self.model.backbone

    @property
    def device(self) -> torch.device:
        return self.model.device

    def prepare(self, images: list[Any] | None, texts: list[str | None] | None, instruction: Any) -> Prepared:
        items = self.model.make_items(images, texts, instruction)
        suffix = self.model.suffix_ids(self.mode)
        batch = self.model.processor(items, suffix)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(self.model.backbone.dtype)
        lengths = [n - len(suffix) for n in batch["attention_mask"].sum(dim=1).tolist()]
        return Prepared(batch, items, lengths)

    def forward(self, prepared: Prepared) -> torch.Tensor:
        return self.model.hidden_states(prepared.batch)

    def pool(self, prepared: Prepared, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.pool(hidden, self.num_reason_tokens)[0]

    def generate(
        self, prepared: Prepared, max_new_tokens: int | None = None, streamer: Any = None, stopping_criteria: Any = None
    ) -> list[list[int]]:
        return self.model.generate_rationales(
            prepared.items,
            max_new_tokens or self.max_new_tokens,
            streamer=streamer,
            batch=prepared.batch,
            stopping_criteria=stopping_criteria,
        )

    def read(self, prepared: Prepared, generated: list[list[int]]) -> torch.Tensor:
        # One re-read pass over prompt + [THINK] + rationale + [EMBED]: [EMBED]'s input embedding is
        # LaME's own latent row, which generation never fed, so its state needs this pass.
        return self.model._forward_cot(prepared.items, generated).embeddings

    def decode(self, ids: list[int]) -> str:
        return self.model.processor.decode(ids)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["parameters"] = sum(p.numel() for n, p in self.model.named_parameters() if not n.startswith("decoder."))
        return info


def load_lame(path: str | os.PathLike, device: str | None = None) -> Any:
    """A LaME folder (`save_pretrained` format) as a `LameModel`."""
    from lame_tools.model import LameModel

    return LameModel.from_pretrained(path, device=device)


def as_adapter(obj: Any, mode: str | None = None, name: str | None = None) -> EmbeddingAdapter:
    """An adapter from an adapter (returned as is), a `LameModel`, or a LaME folder path."""
    if isinstance(obj, EmbeddingAdapter):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        obj = load_lame(obj)
    if hasattr(obj, "suffix_ids") and hasattr(obj, "processor"):
        return LameAdapter(obj, mode, name)
    raise ModelLoadError(f"Cannot time a {type(obj).__name__}: give a LaME model, its folder, or an adapter.")


def l2_normalize(states: torch.Tensor) -> torch.Tensor:
    return F.normalize(states.float(), dim=-1)


ADAPTER_KINDS = ("lame",)


def load_lane(
    lane: str,
    source: str | os.PathLike,
    kind: str = "lame",
    *,
    device: str | None = None,
    allow_hub: bool = False,
    trust_remote_code: bool = False,
) -> EmbeddingAdapter:
    """The adapter for one race lane: `kind` says how to read `source` (a folder, or a hub id when
    `allow_hub`); LaME models run in the lane's mode."""
    if kind == "lame":
        from lame_tools.backbone import resolve_pretrained_source

        resolve_pretrained_source(source, allow_hub=False)  # LaME folders are local
        return LameAdapter(load_lame(source, device=device), lane, lane)
    raise ModelLoadError(f"Unknown adapter kind {kind!r}; known: {', '.join(ADAPTER_KINDS)}.")
