"""Turn (image, text, instruction) items into one left-padded Qwen2-VL batch.

We build input ids ourselves instead of using `Qwen2VLProcessor` (which needs torchvision) and
without a chat template: the layout is explicit, so the position of every reason token and of
`[EMBED]` is known. Rows are left-padded, so a row's suffix (K reason tokens, then `[EMBED]`) always
ends at the last position whatever the lengths of the rows; batches may mix image sizes, images and
text-only rows.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from lame_tools.constants import EMBED_TOKEN, THINK_TOKEN, UNK_TOKEN, VISION_TOKENS, latent_special_tokens, reason_token
from lame_tools.image_batch import pixel_inputs, visual_token_counts
from lame_tools.inputs import Item

__all__ = ["Item", "LameProcessor", "PROMPT_FORMATS"]

PROMPT_FORMATS = ("plain", "plain-text-first", "qwen2-vl-chat")
CHAT_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
CHAT_ASSISTANT = "<|im_end|>\n<|im_start|>assistant\n"


class LameProcessor:
    """Tokenizer + image processor + the prompt layout of a LaME model."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        image_processor: Qwen2VLImageProcessorPil,
        prompt_format: str = "plain",
        max_text_tokens: int = 64,
    ) -> None:
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        self.image_processor = image_processor
        self.prompt_format = prompt_format
        self.max_text_tokens = max_text_tokens
        ids = tokenizer.convert_tokens_to_ids
        self.pad_id = tokenizer.pad_token_id
        self.image_token_id = ids("<|image_pad|>")
        self.vision_start_id = ids("<|vision_start|>")
        self.vision_end_id = ids("<|vision_end|>")
        self.embed_token_id = ids(EMBED_TOKEN)
        self.think_token_id = ids(THINK_TOKEN)
        self.eos_token_id = tokenizer.eos_token_id
        self.merge_size = int(getattr(image_processor, "merge_size", 2))

    # ---- special token ids -------------------------------------------------------------------

    def reason_token_ids(self, k: int) -> list[int]:
        """Ids of `[REASON_0]` .. `[REASON_k-1]`."""
        return [self.tokenizer.convert_tokens_to_ids(reason_token(i)) for i in range(k)]

    # ---- text ---------------------------------------------------------------------------------

    def _truncation_message(self, n_tokens: int) -> str:
        return f"Text of {n_tokens} tokens truncated to the model's limit of {self.max_text_tokens} tokens."

    def _encode_text(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > self.max_text_tokens:
            warnings.warn(self._truncation_message(len(ids)), stacklevel=3)
            ids = ids[: self.max_text_tokens]
        return ids

    def truncation_note(self, text: str | None) -> str | None:
        """The sentence `_encode_text` warns with when `text` is longer than the model reads, else None
        (for callers that show notes themselves rather than catch process-global warnings)."""
        if not text:
            return None
        n_tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._truncation_message(n_tokens) if n_tokens > self.max_text_tokens else None

    def unknown_words(self, text: str) -> list[str]:
        """Words of `text` the tokenizer maps to `[UNK]` (the tiny model knows only the Shapes world)."""
        unk_id = self.tokenizer.unk_token_id
        if unk_id is None or self.tokenizer.unk_token != UNK_TOKEN:
            return []  # a byte-level tokenizer (real checkpoints) knows every word
        words = re.findall(r"\w+|[^\w\s]+", text.lower())  # as the Whitespace pre-tokenizer splits
        return [w for w in dict.fromkeys(words) if self.tokenizer.convert_tokens_to_ids(w) == unk_id]

    def known_words(self) -> list[str]:
        vocab = self.tokenizer.get_vocab()
        return sorted(w for w in vocab if re.fullmatch(r"[a-z]+", w))

    # ---- batches ------------------------------------------------------------------------------

    def _prompt_ids(self, item: Item, n_image_tokens: int) -> list[int]:
        vision = []
        if item.image is not None:
            vision = [self.vision_start_id, *([self.image_token_id] * n_image_tokens), self.vision_end_id]
        instruction = self._encode_text(item.instruction) if item.instruction else []
        text = self._encode_text(item.text) if item.text else []
        if self.prompt_format == "plain":
            return instruction + vision + text
        if self.prompt_format == "plain-text-first":
            # the question before the image: the visual tokens' states can read what is asked
            return instruction + text + vision
        head = self.tokenizer(CHAT_SYSTEM, add_special_tokens=False)["input_ids"]
        tail = self.tokenizer(CHAT_ASSISTANT, add_special_tokens=False)["input_ids"]
        return head + vision + instruction + text + tail

    def __call__(self, items: list[Item], suffixes: list[list[int]] | list[int]) -> dict[str, Any]:
        """Build a left-padded batch: each row is its prompt followed by its suffix ids.

        Args:
            items: the inputs; an item needs an image or a non-empty text.
            suffixes: one list of ids for all rows, or one list per row (e.g. a CoT rationale + [EMBED]).

        Returns:
            dict with input_ids, attention_mask, mm_token_type_ids [batch, seq] and, when any row has
            an image, pixel_values [patches, dim] and image_grid_thw [images, 3].
        """
        if not items:
            raise ValueError("no items to process")
        per_row = suffixes if suffixes and isinstance(suffixes[0], list) else [list(suffixes)] * len(items)
        images = [it.image for it in items if it.image is not None]
        vision: dict[str, torch.Tensor] = {}
        token_counts: list[int] = []
        if images:
            vision = pixel_inputs(self.image_processor, images)  # batched, same values as the processor
            grid = vision["image_grid_thw"]
            token_counts = visual_token_counts(grid, self.merge_size)
        rows, counts = [], iter(token_counts)
        for item, suffix in zip(items, per_row):
            if item.image is None and not item.text:
                raise ValueError("an item needs an image or a non-empty text")
            n = next(counts) if item.image is not None else 0
            rows.append(self._prompt_ids(item, n) + list(suffix))
        padded = self.tokenizer.pad({"input_ids": rows}, padding=True, padding_side="left", return_tensors="pt", return_attention_mask=True)
        input_ids = padded["input_ids"].long()
        attention_mask = padded["attention_mask"].long()
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "mm_token_type_ids": (input_ids == self.image_token_id).long(),
        }
        if images:
            batch["pixel_values"] = vision["pixel_values"]
            batch["image_grid_thw"] = vision["image_grid_thw"]
        return batch

    def cot_suppressed_ids(self) -> list[int]:
        """Tokens a rationale may never contain: vision placeholders, padding, our latent tokens but `[EMBED]`."""
        tok = self.tokenizer
        names = [*VISION_TOKENS, "<|endoftext|>"]
        names += [t for t in latent_special_tokens() if t != EMBED_TOKEN]
        ids = [tok.convert_tokens_to_ids(n) for n in names]
        if tok.unk_token_id is not None:
            ids.append(tok.unk_token_id)
        return sorted({i for i in ids if i is not None})

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    # ---- persistence --------------------------------------------------------------------------

    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.tokenizer.save_pretrained(folder)
        self.image_processor.save_pretrained(folder)
        (folder / "lame_processor.json").write_text(
            json.dumps({"prompt_format": self.prompt_format, "max_text_tokens": self.max_text_tokens}, indent=2)
        )

    @classmethod
    def from_pretrained(cls, folder: str | Path, **overrides: Any) -> LameProcessor:
        folder = Path(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(folder, local_files_only=True)
        settings = {}
        if (folder / "lame_processor.json").is_file():
            settings = json.loads((folder / "lame_processor.json").read_text())
        settings.update(overrides)
        return cls(tokenizer, image_processor, **settings)
