"""Adapters: one embedding model in one inference mode, split into the stages the latency harness times.

Every lane of a benchmark or a race is an `EmbeddingAdapter`. A one-pass adapter does
`prepare` (decode inputs, build the batch, move it to the device), `forward` (the single prefill,
last-layer states) and `pool` (read the embedding). A generative adapter does `prepare`, then
`generate` (prefill + decode steps, streamed through a transformers streamer) and `read`
(the embedding from what was generated: a re-read pass, or states kept during generation).

Adapters here:
    LameAdapter          a `LameModel` (shipped tiny models, or a real one from `LameModel.from_backbone`)
                         in latent, discriminative, cot or sequential mode; cot reads `[EMBED]` from
                         generation's own KV cache (`cot_read="cache"`, default) or with a re-read pass.
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
from transformers import BatchFeature

from lame_tools.constants import EMBED_MODES, MODEL_KINDS, QWEN_IMAGE_MARKUP, SEQUENTIAL_MODE
from lame_tools.cot_read import generate_keeping_cache, read_embed_from_cache
from lame_tools.errors import ModelLoadError
from lame_tools.image_batch import visual_token_counts


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


COT_READS = ("cache", "reread")


class LameAdapter(EmbeddingAdapter):
    """A `LameModel` in one of its modes (default: the mode it was trained for).

    latent / discriminative: one pass. sequential: one "forward" stage that is prefill + K one-position
    latent steps + the `[EMBED]` step (`LameModel.forward_sequential`; it takes items, so its forward
    stage also re-processes them, about a millisecond on the tiny models). cot: generate the rationale,
    then read `[EMBED]`: `cot_read="cache"` feeds LaME's own `[EMBED]` row as one more step on
    generation's KV cache (`read_embed_from_cache`), `"reread"` runs one pass over prompt + rationale +
    `[EMBED]` (`LameModel.forward_cot`, what evaluation uses); both give the same state within float error.
    """

    def __init__(self, model: Any, mode: str | None = None, name: str | None = None, cot_read: str = "cache") -> None:
        self.model = model
        self.mode = mode or model.config.default_mode
        if self.mode not in EMBED_MODES:
            raise ValueError(f"mode must be one of {', '.join(EMBED_MODES)}, got {self.mode!r}")
        if cot_read not in COT_READS:
            raise ValueError(f"cot_read must be one of {', '.join(COT_READS)}, got {cot_read!r}")
        self.cot_read = cot_read
        self.generative = self.mode == "cot"
        self.num_reason_tokens = model.num_reason_tokens if self.mode in ("latent", SEQUENTIAL_MODE) else 0
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
        layout = "latent" if self.mode == SEQUENTIAL_MODE else self.mode  # the sequential rows' layout
        batch = self.model.prepare(items, layout)
        suffix = len(self.model.suffix_ids(layout))
        return Prepared(batch, items, [n - suffix for n in batch["attention_mask"].sum(dim=1).tolist()])

    def forward(self, prepared: Prepared) -> torch.Tensor:
        if self.mode == SEQUENTIAL_MODE:  # the embeddings themselves; `pool` passes them on
            return self.model.forward_sequential(prepared.items, self.num_reason_tokens).embeddings
        return self.model.hidden_states(prepared.batch)

    def pool(self, prepared: Prepared, hidden: torch.Tensor) -> torch.Tensor:
        if self.mode == SEQUENTIAL_MODE:
            return hidden
        return self.model.pool(hidden, self.num_reason_tokens)[0]

    def generate(
        self, prepared: Prepared, max_new_tokens: int | None = None, streamer: Any = None, stopping_criteria: Any = None
    ) -> list[list[int]]:
        if self.cot_read == "cache":
            return generate_keeping_cache(self.model, prepared, max_new_tokens or self.max_new_tokens,
                                          streamer, stopping_criteria)
        return self.model.generate_rationales(
            prepared.items,
            max_new_tokens or self.max_new_tokens,
            streamer=streamer,
            batch=prepared.batch,
            stopping_criteria=stopping_criteria,
        )

    def read(self, prepared: Prepared, generated: list[list[int]]) -> torch.Tensor:
        if self.cot_read == "cache":
            return read_embed_from_cache(self.model, prepared, generated)
        # One re-read pass over prompt + [THINK] + rationale + [EMBED]: [EMBED]'s input embedding is
        # LaME's own latent row, which generation never fed, so its state needs this pass.
        return self.model.forward_cot(prepared.items, generated).embeddings

    def decode(self, ids: list[int]) -> str:
        return self.model.processor.decode(ids)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["parameters"] = sum(p.numel() for n, p in self.model.named_parameters() if not n.startswith("decoder."))
        trained = self.model.training_info or {}
        info["training"] = {k: trained[k] for k in ("trained", "note", "command", "steps", "wall_s") if k in trained}
        if self.mode == "cot":
            info["cot_read"] = self.cot_read
        if self.mode == SEQUENTIAL_MODE:
            info["trained_for_mode"] = self.model.config.default_mode == SEQUENTIAL_MODE
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



# ---- raw Qwen2-VL-family checkpoints (baselines) ------------------------------------------------

QWEN_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
IMAGE_PAD = "<|image_pad|>"


class Qwen2VLPromptAdapter(EmbeddingAdapter):
    """Shared plumbing for adapters over a plain Qwen2-VL-family model: build each row's prompt as a
    string, expand each image's `<|image_pad|>` to its visual token count (as Qwen2-VL's own processor
    does), tokenize the prompts whole with the tokenizer's own left padding (so a real BPE tokenizer
    merges exactly as the model's processor would), and run the backbone without its LM head for
    one-pass embeddings."""

    def __init__(self, backbone: Any, tokenizer: Any, image_processor: Any, name: str) -> None:
        self._backbone = backbone
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = "<|endoftext|>"
        self.image_processor = image_processor
        self.name = name
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        self.pad_id = tokenizer.pad_token_id
        self.merge_size = int(getattr(image_processor, "merge_size", 2))

    @property
    def backbone(self) -> Any:
        return self._backbone

    def prompt(self, has_image: bool, instruction: str | None, text: str | None) -> str:
        raise NotImplementedError

    def prompt_suffix_tokens(self) -> int:
        """Tokens at the end of every prompt that belong to the mode, not the input (for L)."""
        return 0

    def prepare(self, images: list[Any] | None, texts: list[str | None] | None, instruction: Any) -> Prepared:
        from lame_tools.inputs import clean_text, load_image

        n = len(images if images is not None else texts)
        images = images if images is not None else [None] * n
        texts = texts if texts is not None else [None] * n
        instructions = instruction if isinstance(instruction, list) else [instruction] * n
        decoded = [load_image(im, name=f"image {i + 1}") if im is not None else None for i, im in enumerate(images)]
        present = [im for im in decoded if im is not None]
        vision: dict[str, torch.Tensor] = {}
        counts: list[int] = []
        if present:
            vision = dict(self.image_processor(images=present, return_tensors="pt"))
            counts = visual_token_counts(vision["image_grid_thw"], self.merge_size)
        prompts, count_iter = [], iter(counts)
        for image, text, inst in zip(decoded, texts, instructions):
            inst = clean_text(inst, allow_empty=True) or None
            text = clean_text(text, allow_empty=image is not None) or None
            prompt = self.prompt(image is not None, inst, text)
            if image is not None:
                prompt = prompt.replace(IMAGE_PAD, IMAGE_PAD * next(count_iter), 1)
            prompts.append(prompt)
        encoded = self.tokenizer(prompts, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
        batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                 "mm_token_type_ids": (encoded["input_ids"] == self.image_token_id).long()}
        if present:  # float pixels: the vision tower casts them to its own dtype
            batch["pixel_values"], batch["image_grid_thw"] = vision["pixel_values"], vision["image_grid_thw"]
        batch = dict(BatchFeature(batch).to(self.device))
        suffix = self.prompt_suffix_tokens()
        lengths = [n - suffix for n in encoded["attention_mask"].sum(dim=1).tolist()]
        return Prepared(batch, list(zip(decoded, texts, instructions)), lengths)

    def forward(self, prepared: Prepared) -> torch.Tensor:
        batch = prepared.batch
        position_ids, _ = self.backbone.model.get_rope_index(
            batch["input_ids"], mm_token_type_ids=batch["mm_token_type_ids"],
            image_grid_thw=batch.get("image_grid_thw"), attention_mask=batch["attention_mask"],
        )
        return self.backbone.model(**batch, position_ids=position_ids, use_cache=False).last_hidden_state

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False).strip()


class UmeR1Adapter(Qwen2VLPromptAdapter):
    """UME-R1 (a Qwen2-VL fine-tune) in its two modes.

    Layout (Qwen2-VL chat template, default system prompt):
        <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n
        [<|vision_start|><|image_pad|>...<|vision_end|>]{instruction} {text}\n<disc_emb>\n[GEN_PROMPT]
        <|im_end|>\n<|im_start|>assistant\n
    disc: one pass; the embedding is the last-layer state at `<disc_emb>` (normalised).
    gen:  the prompt also holds GEN_PROMPT; greedy generation writes `<think>...</think>`, an answer
          and `<gen_emb>` and stops at `<|im_end|>`; the embedding is the last-layer state of the
          step that fed `<gen_emb>`, kept by `generate(output_hidden_states=True)`: no extra pass.
    The one-pass mode runs the backbone without its LM head (logits are not needed for an embedding).
    """

    DISC_TOKEN = "<disc_emb>"
    GEN_TOKEN = "<gen_emb>"
    GEN_PROMPT = (
        "Represent the above input text, images, videos, or any combination of the three as embeddings. \n"
        "First output the thinking process in <think> </think> tags and then summarize the entire input in a "
        "word or sentence. \nFinally, use the <gen_emb> tag to represent the entire input."
    )

    def __init__(self, backbone: Any, tokenizer: Any, image_processor: Any, mode: str = "gen",
                 max_new_tokens: int = 1024, name: str | None = None) -> None:
        if mode not in ("disc", "gen"):
            raise ValueError(f"UME-R1 modes are 'disc' and 'gen', got {mode!r}")
        super().__init__(backbone, tokenizer, image_processor, name or f"ume-r1-{mode}")
        self.mode = mode
        self.generative = mode == "gen"
        self.max_new_tokens = max_new_tokens
        ids = tokenizer.convert_tokens_to_ids
        self.disc_id, self.gen_id = ids(self.DISC_TOKEN), ids(self.GEN_TOKEN)
        unk = tokenizer.unk_token_id
        if self.disc_id is None or self.gen_id is None or unk is not None and unk in (self.disc_id, self.gen_id):
            raise ModelLoadError("This tokenizer has no <disc_emb> / <gen_emb> tokens: not a UME-R1 checkpoint.")
        self.eos_id = ids("<|im_end|>")
        self.stop_token_ids = [self.eos_id, self.pad_id]
        self.generate_kwargs: dict[str, Any] = {}  # extra generate() arguments (tests script the output)

    def prompt(self, has_image: bool, instruction: str | None, text: str | None) -> str:
        query = " ".join(part for part in (instruction, text) if part)
        body = f"{QWEN_IMAGE_MARKUP if has_image else ''}{query}\n{self.DISC_TOKEN}\n"
        if self.generative:
            body += self.GEN_PROMPT
        return f"{QWEN_SYSTEM}<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\n"

    def pool(self, prepared: Prepared, hidden: torch.Tensor) -> torch.Tensor:
        ids = prepared.batch["input_ids"]
        positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        last_disc = torch.where(ids == self.disc_id, positions, -1).amax(dim=1)
        return l2_normalize(hidden[torch.arange(ids.shape[0], device=ids.device), last_disc])

    def generate(self, prepared: Prepared, max_new_tokens: int | None = None, streamer: Any = None,
                 stopping_criteria: Any = None) -> list[list[int]]:
        out = self.backbone.generate(
            **prepared.batch, max_new_tokens=max_new_tokens or self.max_new_tokens, do_sample=False,
            eos_token_id=[self.eos_id], pad_token_id=self.pad_id, streamer=streamer,
            stopping_criteria=stopping_criteria, output_hidden_states=True, return_dict_in_generate=True,
            **self.generate_kwargs,
        )
        generated = out.sequences[:, prepared.batch["input_ids"].shape[1] :].tolist()
        rows = []
        for row in generated:
            cut = next((i for i, t in enumerate(row) if t in self.stop_token_ids), len(row))
            rows.append(row[:cut])
        # last-layer state of each step: step 0 is the prompt, step t fed generated token t-1
        prepared.extra["step_states"] = [step[-1][:, -1] for step in out.hidden_states]
        return rows

    def read(self, prepared: Prepared, generated: list[list[int]]) -> torch.Tensor:
        steps = prepared.extra.pop("step_states")
        states = []
        for i, row in enumerate(generated):
            at = max((j for j, t in enumerate(row) if t == self.gen_id), default=None)
            # `<gen_emb>` at generated index j is fed at step j + 1; if it is missing or was the very
            # last token, fall back to the last state computed (what UME-R1's own index -1 does)
            step = at + 1 if at is not None and at + 1 < len(steps) else len(steps) - 1
            states.append(steps[step][i])
        return l2_normalize(torch.stack(states))


class LastTokenAdapter(Qwen2VLPromptAdapter):
    """VLM2Vec-V2 style one-pass embedding: no chat template, the image placeholder first, then a
    newline, the instruction and the text; the last token's last-layer state, L2-normalised."""

    mode = "last-token"

    def __init__(self, backbone: Any, tokenizer: Any, image_processor: Any, name: str = "vlm2vec-v2") -> None:
        super().__init__(backbone, tokenizer, image_processor, name)

    def prompt(self, has_image: bool, instruction: str | None, text: str | None) -> str:
        query = " ".join(part for part in (instruction, text) if part)
        return f"{IMAGE_PAD}\n{query}" if has_image else query

    def pool(self, prepared: Prepared, hidden: torch.Tensor) -> torch.Tensor:
        return l2_normalize(hidden[:, -1])  # left padding: every row ends at the last position


def load_lane(
    lane: str,
    source: str | os.PathLike,
    kind: str = "lame",
    *,
    device: str | None = None,
    allow_hub: bool = False,
    trust_remote_code: bool = False,
    cot_read: str = "cache",
) -> EmbeddingAdapter:
    """The adapter for one race lane: `kind` (one of `MODEL_KINDS`) says how to read `source` (a
    folder, or a hub id when `allow_hub`); LaME models run in the lane's mode (`cot_read`: how the
    CoT lane reads `[EMBED]`, see `LameAdapter`). Baselines come from
    `lame_tools.lora.load_baseline`: loaded once, a LoRA folder's adapter merged into its base once."""
    from lame_tools.backbone import resolve_pretrained_source
    from lame_tools.lora import load_baseline

    if kind == "lame":
        resolve_pretrained_source(source, allow_hub=False)  # LaME folders are local
        return LameAdapter(load_lame(source, device=device), lane, lane, cot_read)
    if kind == "qwen2-vl-base":  # an untrained LaME wrapped around a Qwen2-VL-family checkpoint
        from lame_tools.model import LameModel

        model = LameModel.from_backbone(source, allow_hub=allow_hub, trust_remote_code=trust_remote_code, device=device)
        return LameAdapter(model, lane, lane, cot_read)
    if kind not in MODEL_KINDS:
        raise ModelLoadError(f"Unknown adapter kind {kind!r}; known: {', '.join(MODEL_KINDS)}.")
    backbone, tokenizer, image_processor = load_baseline(
        source, device=device, allow_hub=allow_hub, trust_remote_code=trust_remote_code
    )
    if kind == "ume-r1":
        return UmeR1Adapter(backbone, tokenizer, image_processor, "gen" if lane == "cot" else "disc", name=lane)
    return LastTokenAdapter(backbone, tokenizer, image_processor, name=lane)
