"""LameModel: a Qwen2-VL backbone that embeds in one forward pass after K latent reason tokens.

Layout of one row (left-padded batch):  [prompt: instruction, image tokens, text] [REASON_0..K-1] [EMBED]
The embedding is the L2-normalised projection of the last layer's state at `[EMBED]` (the last
position); the reason states are the K positions before it. The reason and `[EMBED]` input embeddings
are our own parameters (`latent_embeddings`), written over the backbone's token embeddings at those
positions, so they train separately from a frozen backbone.

Modes:
    latent          prompt + K reason tokens + [EMBED], one pass (LaME)
    discriminative  prompt + [EMBED], one pass (K = 0; VLM2Vec / GME style)
    cot             prompt + [THINK], the backbone's `generate()` writes a rationale until it emits
                    [EMBED] (or the cap), then one pass over prompt + rationale + [EMBED] reads the
                    state at [EMBED] (UME-R1 style)

The batch API every caller uses (training, adapters, timing, probes, scripts):
    prepare(items, mode, rationales=None)  the processed batch with the mode's suffix, on the device
    move_batch(batch)                       a processed batch moved to the device, pixels in the backbone's dtype
    backbone_forward(batch, **kwargs)       the backbone's language-model output of one pass
    hidden_states(batch)                    its last-layer states
    pool(hidden, k)                         embeddings, [EMBED] states and reason states
    forward_cot(items, rationales=None)     the CoT embedding (generating the rationales when not given)
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen3Config

from lame_tools import scene_words, visual_positions
from lame_tools.backbone import (
    build_backbone,
    build_decoder_config,
    build_image_processor,
    build_tiny_backbone_config,
    build_tokenizer,
    load_backbone,
)
from lame_tools.config import LameConfig, check_reads, get_preset
from lame_tools.constants import MODES, SEQUENTIAL_MODE, latent_special_tokens
from lame_tools.decoder import LatentDecoder
from lame_tools.embed_reads import allowed_keys, attention_bias
from lame_tools.errors import InputError
from lame_tools.inputs import Item, make_items
from lame_tools.model_files import CONFIG_FILE, TRAINING_FILE, WEIGHTS_FILE, load_folder, save_folder
from lame_tools.processor import LameProcessor
from lame_tools.scene_head import SceneHead
from lame_tools.visual_positions import VisualPositions

__all__ = ["CONFIG_FILE", "TRAINING_FILE", "WEIGHTS_FILE", "EmbedOutput", "LameModel"]



@dataclass
class EmbedOutput:
    """What one batched pass returns. Shapes: embeddings [batch, embed_dim];
    embed_states [batch, hidden]; reason_states [batch, K, hidden] (K may be 0);
    rationale_ids: per row, the generated rationale (cot mode only); embed_layers: `[EMBED]`'s state
    after each language-model layer (only when `embed_pass` is asked for it)."""

    embeddings: torch.Tensor
    embed_states: torch.Tensor
    reason_states: torch.Tensor
    rationale_ids: list[list[int]] | None = None
    embed_layers: torch.Tensor | None = None  # [batch, layers, hidden]: [EMBED] after each layer


class LameModel(nn.Module):
    """A LaME embedding model over a Qwen2-VL-family backbone (see module docstring)."""

    def __init__(
        self,
        config: LameConfig,
        backbone: Qwen2VLForConditionalGeneration,
        processor: LameProcessor,
        decoder: LatentDecoder | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.processor = processor
        self.decoder = decoder
        hidden = backbone.config.text_config.hidden_size
        k = config.num_reason_tokens
        with torch.no_grad():
            table = backbone.get_input_embeddings().weight
            init = table.float().mean(0, keepdim=True) + 0.02 * torch.randn(k + 1, hidden)
        # rows 0..K-1: [REASON_i]; row K: [EMBED]
        self.latent_embeddings = nn.Parameter(init.to(table.dtype))
        self.embed_head = nn.Linear(hidden, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale_init)))
        # ids whose input rows are ours, in row order: [REASON_0..K-1], then [EMBED] (a Python list: no device sync)
        self._latent_ids = [*processor.reason_token_ids(k), processor.embed_token_id]
        # per thread: the reason token indices [EMBED] may not read (`hiding`), so an app thread that
        # probes never changes what another thread's encode computes
        self._hidden_by_thread: dict[int, list[int]] = {}
        # built last, so a model without it initialises exactly as before
        self.scene_head = SceneHead(hidden, config.scene_head_context) if config.scene_head else None
        if config.scene_words:
            scene_words.attach(self)
        # after the scene head, so a model without positions initialises exactly as before
        self.visual_positions = VisualPositions(hidden) if config.visual_positions else None
        if config.visual_positions:
            visual_positions.attach(self)  # after the scene words' hook: the positions add to the words
        self.training_info: dict[str, Any] = {}

    # ---- construction ---------------------------------------------------------------------------

    @classmethod
    def build_tiny(
        cls,
        preset: str = "tiny",
        num_reason_tokens: int = 8,
        embed_dim: int = 128,
        with_decoder: bool = True,
        default_mode: str = "latent",
        seed: int = 0,
        *,
        vocabulary: Sequence[str],
        image_pixels: int | None = None,
        scene_head: bool = False,
        reason_layer: int = 0,
        embed_reads: str = "all",
        reason_reads: str = "all",
        embed_pool: str = "embed",
        prompt_format: str = "plain",
        scene_words: bool = False,
        scene_words_only: bool = False,
        scene_head_context: int = 1,
        visual_positions: bool = False,
    ) -> LameModel:
        """A randomly initialised tiny LaME whose word-level tokenizer knows `vocabulary`, built offline
        (the shipped models use `lame_tools.data.shapes.VOCABULARY`). `image_pixels`: every image is
        resized to about this many pixels (default 112 x 112; 224 x 224 gives 4x the visual tokens).
        `scene_head`: add the per-visual-token scene-graph read-out (`lame_tools.scene_head`).
        `reason_layer`: the layer whose reason states the decoder reads (`LameConfig.reason_layer`).
        `embed_reads`: what `[EMBED]` attends to in latent mode (`LameConfig.embed_reads`);
        `reason_reads`: what the reason tokens attend to (`LameConfig.reason_reads`).
        `embed_pool`: what the embedding head reads (`LameConfig.embed_pool`).
        `prompt_format`: "plain" or "plain-text-first" (`LameConfig.prompt_format`).
        `scene_words`: visual tokens also carry their scene head's words (`lame_tools.scene_words`);
        `scene_words_only`: they carry the words alone; `scene_head_context`: the scene head's
        neighbourhood (`LameConfig.scene_head_context`); `visual_positions`: they also carry their
        cell's position (`lame_tools.visual_positions`)."""
        sizes = get_preset(preset)
        tokenizer = build_tokenizer(list(vocabulary))
        backbone_config = build_tiny_backbone_config(tokenizer, sizes)
        lame_config = LameConfig(num_reason_tokens=num_reason_tokens, embed_dim=embed_dim, default_mode=default_mode,
                                 scene_head=scene_head, reason_layer=reason_layer, embed_reads=embed_reads,
                                 reason_reads=reason_reads, embed_pool=embed_pool,
                                 prompt_format=prompt_format, scene_words=scene_words,
                                 scene_words_only=scene_words_only, scene_head_context=scene_head_context,
                                 visual_positions=visual_positions, backbone=backbone_config.to_dict())
        if image_pixels:
            lame_config.image_min_pixels = lame_config.image_max_pixels = int(image_pixels)
        decoder_config = build_decoder_config(tokenizer, sizes) if with_decoder else None
        lame_config.decoder = decoder_config.to_dict() if decoder_config is not None else None
        processor = LameProcessor(
            tokenizer,
            build_image_processor(lame_config.image_min_pixels, lame_config.image_max_pixels,
                                  sizes.patch_size, sizes.spatial_merge_size),
            prompt_format=lame_config.prompt_format,
            max_text_tokens=lame_config.max_text_tokens,
        )
        return cls.assemble(lame_config, processor, seed)

    @classmethod
    def assemble(cls, lame_config: LameConfig, processor: LameProcessor, seed: int = 0) -> LameModel:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            backbone = build_backbone(Qwen2VLConfig.from_dict(lame_config.backbone), seed=seed)
            decoder = None
            if lame_config.decoder is not None:
                decoder = LatentDecoder(Qwen3Config.from_dict(lame_config.decoder), backbone.config.text_config.hidden_size)
            model = cls(lame_config, backbone, processor, decoder)
        return model.eval()

    @classmethod
    def from_backbone(
        cls,
        name_or_path: str | os.PathLike,
        *,
        num_reason_tokens: int = 8,
        embed_dim: int | None = None,
        decoder_config: Qwen3Config | None = None,
        allow_hub: bool = False,
        trust_remote_code: bool = False,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        image_max_pixels: int = 1280 * 28 * 28,
        reason_layer: int = 0,
        embed_reads: str = "all",
        reason_reads: str = "all",
        embed_pool: str = "embed",
    ) -> LameModel:
        """Wrap a real Qwen2-VL-family checkpoint (e.g. Qwen2-VL-2B-Instruct) as an untrained LaME.

        Our reason / `[EMBED]` / `[THINK]` tokens are added to its tokenizer and the embedding table
        resized; prompts use Qwen2-VL's chat layout. `reason_layer`, `embed_reads`, `reason_reads` and
        `embed_pool` are `LameConfig`'s (what the decoder and `[EMBED]` read, what the reason tokens
        attend to), as in `build_tiny`.
        """
        backbone, tokenizer, image_processor = load_backbone(
            name_or_path, allow_hub=allow_hub, trust_remote_code=trust_remote_code, device=device, dtype=dtype
        )
        tokenizer.add_special_tokens({"additional_special_tokens": latent_special_tokens()})
        backbone.resize_token_embeddings(len(tokenizer))
        hidden = backbone.config.text_config.hidden_size
        lame_config = LameConfig(
            num_reason_tokens=num_reason_tokens,
            embed_dim=embed_dim or hidden,
            backbone=backbone.config.to_dict(),
            decoder=decoder_config.to_dict() if decoder_config is not None else None,
            prompt_format="qwen2-vl-chat",
            image_min_pixels=4 * 28 * 28,
            image_max_pixels=image_max_pixels,
            max_text_tokens=512,
            cot_max_new_tokens=512,
            reason_layer=reason_layer,
            embed_reads=embed_reads,
            reason_reads=reason_reads,
            embed_pool=embed_pool,
        )
        image_processor.size = {"shortest_edge": lame_config.image_min_pixels, "longest_edge": image_max_pixels}
        processor = LameProcessor(tokenizer, image_processor, "qwen2-vl-chat", lame_config.max_text_tokens)
        decoder = LatentDecoder(decoder_config, hidden) if decoder_config is not None else None
        model = cls(lame_config, backbone, processor, decoder)
        return model.to(device=backbone.device, dtype=backbone.dtype).eval()

    # ---- persistence ----------------------------------------------------------------------------

    def save_pretrained(self, folder: str | os.PathLike, training_info: dict[str, Any] | None = None) -> Path:
        """Write config, safetensors weights, processor files and training JSON, atomically: the
        folder is built beside the target and renamed into place, so a crash never leaves half a model."""
        return save_folder(self, folder, training_info)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device | None = None) -> LameModel:
        """Load a folder written by `save_pretrained` (safetensors only; nothing is unpickled).

        Raises:
            ModelLoadError: one sentence naming what is missing or broken.
        """
        return load_folder(cls, folder, device)

    # ---- forward --------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.embed_head.weight.device

    @property
    def num_reason_tokens(self) -> int:
        return self.config.num_reason_tokens

    def suffix_ids(self, mode: str) -> list[int]:
        """Token ids appended after the prompt for a one-pass mode, or the CoT cue."""
        if mode == "latent":
            return [*self.processor.reason_token_ids(self.num_reason_tokens), self.processor.embed_token_id]
        if mode == "discriminative":
            return [self.processor.embed_token_id]
        if mode == "cot":
            return [self.processor.think_token_id]
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")

    def cot_suffix(self, rationale: Sequence[int]) -> list[int]:
        """`[THINK] rationale [EMBED]`: what follows the prompt when the CoT embedding is read."""
        return [self.processor.think_token_id, *rationale, self.processor.embed_token_id]

    def move_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A processed batch on the model's device, pixel values in the backbone's dtype."""
        moved = {k: v.to(self.device) for k, v in batch.items()}
        if "pixel_values" in moved:
            moved["pixel_values"] = moved["pixel_values"].to(self.backbone.dtype)
        return moved

    def prepare(
        self, items: list[Item], mode: str | None = None, rationales: Sequence[Sequence[int]] | None = None
    ) -> dict[str, torch.Tensor]:
        """Process `items` with the suffix of `mode` and move the batch to the device.

        In cot mode the suffix is the `[THINK]` cue (the prompt of `generate_rationales`), or, when
        `rationales` are given, `[THINK] rationale [EMBED]` per row (the pass that reads the embedding).
        """
        mode = mode or self.config.default_mode
        if rationales is not None:
            if mode != "cot":
                raise ValueError("rationales are only read in cot mode")
            return self.move_batch(self.processor(items, [self.cot_suffix(r) for r in rationales]))
        return self.move_batch(self.processor(items, self.suffix_ids(mode)))

    def input_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Backbone token embeddings with our latent rows written at reason / [EMBED] positions."""
        embeds = self.backbone.get_input_embeddings()(input_ids)
        latent = self.latent_embeddings.to(embeds.dtype)
        # latent row of each position: i for [REASON_i], K for [EMBED], -1 elsewhere
        latent_row = torch.full_like(input_ids, -1)
        for row, token_id in enumerate(self._latent_ids):
            latent_row.masked_fill_(input_ids == token_id, row)
        is_latent = (latent_row >= 0)[..., None]
        return torch.where(is_latent, latent[latent_row.clamp(min=0)], embeds)

    def position_ids(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Qwen2-VL's 3-D rotary positions for a left-padded batch. Computed for text-only rows too,
        so padding never shifts positions (the model's own fallback ignores the mask)."""
        position_ids, _ = self.backbone.model.get_rope_index(
            batch["input_ids"],
            mm_token_type_ids=batch["mm_token_type_ids"],
            image_grid_thw=batch.get("image_grid_thw"),
            attention_mask=batch["attention_mask"],
        )
        return position_ids

    @property
    def restricts_attention(self) -> bool:
        """Whether the latent suffix attends other than causally (`embed_reads` or `reason_reads` is
        "reasons", or reason tokens are hidden from `[EMBED]`: `hiding`), so the language model gets
        our [batch, 1, seq, seq] mask."""
        return self.config.embed_reads != "all" or self.config.reason_reads != "all" or bool(self.hidden_from_embed)

    def attention_mask(self, batch: dict[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
        """The mask the language model gets: the batch's [batch, seq] padding mask, or, when
        `restricts_attention`, the [batch, 1, seq, seq] additive mask in which `[EMBED]` or the reason
        tokens read only the reason tokens (`lame_tools.embed_reads`)."""
        if not self.restricts_attention:
            return batch["attention_mask"]
        allowed = allowed_keys(batch["input_ids"], batch["attention_mask"], self._latent_ids[:-1],
                               embed_reads=self.config.embed_reads, reason_reads=self.config.reason_reads,
                               hidden=[self._latent_ids[i] for i in self.hidden_from_embed])
        return attention_bias(allowed, dtype)

    @property
    def hidden_from_embed(self) -> list[int]:
        """The reason token (or sequential step) indices `[EMBED]` may not read in this thread (`hiding`)."""
        return self._hidden_by_thread.get(threading.get_ident(), [])

    @contextlib.contextmanager
    def hiding(self, reason_indices: Sequence[int]) -> Iterator[None]:
        """Within the block and in this thread only, `[EMBED]` does not attend to the reason tokens
        `reason_indices` (0..K-1) at any layer; positions and every other row are unchanged
        (`lame_tools.embed_reads`, `hidden`). In the sequential mode the same indices name latent
        steps, which `[EMBED]`'s step does not read. Other threads (an app's background corpus
        embedding, another request) keep reading every token."""
        thread = threading.get_ident()
        saved = self._hidden_by_thread.get(thread)
        self._hidden_by_thread[thread] = [int(i) for i in reason_indices]
        try:
            yield
        finally:
            if saved is None:
                self._hidden_by_thread.pop(thread, None)
            else:
                self._hidden_by_thread[thread] = saved

    @contextlib.contextmanager
    def reading(self, embed_reads: str) -> Iterator[None]:
        """Within the block, `[EMBED]` attends as `embed_reads` says (`lame_tools.embed_reads`); the
        model's own setting is back afterwards, also on an error (training's `direct_route_dropout`)."""
        check_reads(embed_reads, self.config.reason_reads)
        saved, self.config.embed_reads = self.config.embed_reads, embed_reads
        try:
            yield
        finally:
            self.config.embed_reads = saved

    def backbone_forward(self, batch: dict[str, torch.Tensor], **kwargs: Any) -> Any:
        """One pass of the backbone's language model over a processed batch (with our latent rows and
        3-D positions); `kwargs` go to the backbone (e.g. `output_hidden_states=True`)."""
        batch = self.move_batch(batch)
        input_ids = batch["input_ids"]
        inputs_embeds = self.input_embeddings(input_ids)
        return self.backbone.model(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=self.attention_mask(batch, inputs_embeds.dtype),
            position_ids=self.position_ids(batch),
            pixel_values=batch.get("pixel_values"),
            image_grid_thw=batch.get("image_grid_thw"),
            mm_token_type_ids=batch["mm_token_type_ids"],
            use_cache=False,
            **kwargs,
        )

    def hidden_states(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last-layer states [batch, seq, hidden] of one pass over a processed batch."""
        return self.backbone_forward(batch).last_hidden_state

    def pool(self, hidden: torch.Tensor, num_reason_tokens: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(embeddings, embed_states, reason_states) from last-layer states whose rows end in the suffix;
        the embedding head reads `[EMBED]`'s state, or with `config.embed_pool` "mean" the mean of it
        and the K latent states."""
        latent = hidden[:, hidden.shape[1] - 1 - num_reason_tokens :]  # [REASON_0..K-1], [EMBED]
        embed_states, reason_states = latent[:, -1], latent[:, :-1]
        read = latent.mean(dim=1) if self.config.embed_pool == "mean" else embed_states
        embeddings = F.normalize(self.embed_head(read).float(), dim=-1)
        return embeddings, embed_states, reason_states

    def embed_pass(self, batch: dict[str, torch.Tensor], num_reason_tokens: int, layers: bool = False) -> EmbedOutput:
        """One pass over a processed batch whose rows end in the suffix: the embeddings, the `[EMBED]`
        states and the reason states (the last layer's, or layer `config.reason_layer`'s when set);
        `layers`: also `[EMBED]`'s state after every language-model layer (`embed_layers`)."""
        layer = self.config.reason_layer if num_reason_tokens else 0
        if not (layer or layers):
            return EmbedOutput(*self.pool(self.hidden_states(batch), num_reason_tokens))
        out = self.backbone_forward(batch, output_hidden_states=True)
        embeddings, embed_states, reason_states = self.pool(out.last_hidden_state, num_reason_tokens)
        if layer:
            states = out.hidden_states[layer]  # [0] is the input embeddings, [n] layer n's output
            reason_states = states[:, states.shape[1] - 1 - num_reason_tokens : -1]
        embed_layers = torch.stack([h[:, -1] for h in out.hidden_states[1:]], dim=1) if layers else None
        return EmbedOutput(embeddings, embed_states, reason_states, embed_layers=embed_layers)

    def forward_items(self, items: list[Item], mode: str | None = None) -> EmbedOutput:
        """Embed prepared items in one batch (gradients flow; use under `torch.no_grad()` to infer)."""
        mode = mode or self.config.default_mode
        if mode == "cot":
            return self.forward_cot(items)
        if mode == SEQUENTIAL_MODE:
            return self.forward_sequential(items)
        k = self.num_reason_tokens if mode == "latent" else 0
        return self.embed_pass(self.prepare(items, mode), k)

    # ---- sequential latent ------------------------------------------------------------------------

    def forward_sequential(self, items: list[Item], num_steps: int | None = None,
                           batch: dict[str, torch.Tensor] | None = None) -> EmbedOutput:
        """The sequential-latent baseline (`lame_tools.sequential`): K one-position steps, each fed
        the previous state, then `[EMBED]`; `reason_states` are the K steps' outputs. `batch`: the
        items already processed with the latent suffix (`prepare(items, "latent")`)."""
        from lame_tools.sequential import forward_sequential

        hidden, k = forward_sequential(self, items, num_steps, batch)
        return EmbedOutput(*self.pool(hidden, k))

    # ---- cot ------------------------------------------------------------------------------------

    @torch.no_grad()
    def generate_rationales(
        self,
        items: list[Item],
        max_new_tokens: int | None = None,
        streamer: Any = None,
        batch: dict[str, torch.Tensor] | None = None,
        stopping_criteria: Any = None,
    ) -> list[list[int]]:
        """Greedy rationale for each item with the backbone's own `generate()`; stops at [EMBED] or eos.

        Args:
            batch: the items already processed with the cot suffix (the latency harness times
                pre-processing apart); built from `items` when None.
            stopping_criteria: extra transformers stopping criteria (e.g. to abandon a race).

        Returns:
            per row, the generated ids without the stop token and padding.
        """
        return self.generate_with_cache(items, max_new_tokens, streamer, batch, stopping_criteria)[0]

    @torch.no_grad()
    def generate_with_cache(
        self,
        items: list[Item],
        max_new_tokens: int | None = None,
        streamer: Any = None,
        batch: dict[str, torch.Tensor] | None = None,
        stopping_criteria: Any = None,
    ) -> tuple[list[list[int]], Any, torch.Tensor]:
        """`generate_rationales`, also returning what generation leaves behind for a cached read of
        `[EMBED]` (`lame_tools.cot_read`): (rationales, its KV cache, the generated ids [batch, steps])."""
        batch = self.prepare(items, "cot") if batch is None else self.move_batch(batch)
        stops = [self.processor.embed_token_id, self.processor.eos_token_id]
        out = self.backbone.generate(
            **batch,
            max_new_tokens=max_new_tokens or self.config.cot_max_new_tokens,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=self.processor.pad_id,
            streamer=streamer,
            suppress_tokens=self.processor.cot_suppressed_ids(),
            stopping_criteria=stopping_criteria,
            return_dict_in_generate=True,
        )
        generated = out.sequences[:, batch["input_ids"].shape[1] :]
        rationales = []
        for row in generated.tolist():
            cut = next((i for i, t in enumerate(row) if t in stops or t == self.processor.pad_id), len(row))
            rationales.append(row[:cut])
        return rationales, out["cache"], generated

    def forward_cot(self, items: list[Item], rationales: Sequence[Sequence[int]] | None = None) -> EmbedOutput:
        """The CoT embedding: generate each item's rationale (unless given), then read `[EMBED]` in one
        pass over prompt + `[THINK] rationale [EMBED]`."""
        if rationales is None:
            rationales = self.generate_rationales(items)
        rationales = [list(r) for r in rationales]
        embeddings, embed_states, _ = self.pool(self.hidden_states(self.prepare(items, "cot", rationales)), 0)
        empty = embed_states.new_zeros(embed_states.shape[0], 0, embed_states.shape[-1])
        return EmbedOutput(embeddings, embed_states, empty, rationales)

    # ---- user-facing ----------------------------------------------------------------------------

    def make_items(
        self,
        images: Iterable[Any] | None = None,
        texts: Iterable[str | None] | None = None,
        instruction: str | list[str | None] | None = None,
    ) -> list[Item]:
        """Validate and align user inputs into items (`lame_tools.inputs.make_items`)."""
        return make_items(images, texts, instruction)

    @torch.no_grad()
    def encode(
        self,
        images: Iterable[Any] | None = None,
        texts: Iterable[str | None] | None = None,
        instruction: str | list[str | None] | None = None,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        mode: str | None = None,
        convert_to_numpy: bool = True,
        return_rationales: bool = False,
    ) -> np.ndarray | torch.Tensor | tuple[np.ndarray | torch.Tensor, list[list[int]]]:
        """Embed images, texts, or image+text pairs (aligned lists; None entries allowed).

        Args:
            images: paths, bytes, PIL images or arrays; decoded and checked safely.
            texts: strings; empty text is refused unless the item has an image.
            instruction: one task instruction for all inputs, or one per input.
            batch_size: inputs per forward pass; rows may differ in image size.
            show_progress_bar: a tqdm bar over batches.
            mode: "latent", "discriminative" or "cot"; default: the mode the model was trained for.
            convert_to_numpy: return a float32 array, else a tensor.
            return_rationales: cot mode: also return each input's generated rationale ids (from the
                same generation that made its embedding).

        Returns:
            [n, embed_dim] unit-norm float32 embeddings (and, with `return_rationales`, the ids).

        Example:
            >>> model.encode(texts=["a red circle"], instruction="represent the text .").shape
            (1, 128)
        """
        items = self.make_items(images, texts, instruction)
        if batch_size < 1:
            raise InputError("batch_size must be at least 1.")
        # Batch inputs of similar length together (little padding), as sentence-transformers does:
        # a stable sort by (image area, text length); the original order is restored at the end.
        areas = [it.image.width * it.image.height if it.image is not None else 0 for it in items]
        lengths = [len(it.text or "") + len(it.instruction or "") for it in items]
        order = sorted(range(len(items)), key=lambda i: (areas[i], lengths[i]))
        if return_rationales and (mode or self.config.default_mode) != "cot":
            raise InputError("Rationales are generated in cot mode only.")
        chunks, rationales = [], [[] for _ in items]
        for start in tqdm(range(0, len(items), batch_size), disable=not show_progress_bar, desc="encode"):
            picked = order[start : start + batch_size]
            out = self.forward_items([items[i] for i in picked], mode)
            chunks.append(out.embeddings.float().cpu())
            for i, ids in zip(picked, out.rationale_ids or []):
                rationales[i] = list(ids)
        embeddings = torch.zeros(0, self.config.embed_dim)
        if chunks:
            stacked = torch.cat(chunks)
            embeddings = torch.empty_like(stacked)
            embeddings[torch.tensor(order)] = stacked
        result = embeddings.numpy() if convert_to_numpy else embeddings
        return (result, rationales) if return_rationales else result
