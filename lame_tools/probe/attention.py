"""Where the reason tokens and [EMBED] look: attention per layer and head over image patches and text.

One pass with `attn.hook_pattern` hooks on every layer keeps only the query rows of the suffix
(K reason tokens + [EMBED]); each row is then split into image keys, laid back on the merged image
grid (Qwen2-VL merges 2x2 patches; the image tokens are the merged grid in row-major order), and
the other keys (instruction, text, vision markers, the suffix itself), with their token strings.
`lame_tools.viz.upsample_to_image` lays a grid over the image's pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lame_tools.inputs import Item
from lame_tools.model import LameModel
from lame_tools.probe.hooks import ActivationCache, num_layers, prepare_batch, run_with_cache
from lame_tools.probe.results import FrameMixin


@dataclass
class ReasonAttention(FrameMixin):
    """Attention of the probed tokens of ONE input, every layer and head.

    Attributes:
        query_tokens: the Q probed tokens, e.g. ["[REASON_0]", ..., "[EMBED]"].
        image_attention: [layer, head, Q, grid_h, grid_w] attention on each merged image patch, or
            None for a text-only input. grid = (patch rows / 2, patch columns / 2).
        text_attention: [layer, head, Q, T] attention on every other real (non-pad) key, in order.
        text_tokens: the T key token strings (instruction, text, vision markers, the suffix).
        image_mass: [layer, head, Q] total attention on the image (0 when there is none).
        image: the input image as decoded for the model (RGB uint8 [height, width, 3], before the
            processor resizes it; the grid spans it), or None.
        mode: the mode probed.
    """

    query_tokens: list[str]
    image_attention: np.ndarray | None
    text_attention: np.ndarray
    text_tokens: list[str]
    image_mass: np.ndarray
    image: np.ndarray | None
    mode: str

    @property
    def grid(self) -> tuple[int, int] | None:
        return None if self.image_attention is None else tuple(self.image_attention.shape[-2:])  # type: ignore[return-value]

    def rows(self) -> list[dict[str, object]]:
        """Long format over layers, heads and probed tokens: attention on the image and on each text key."""
        rows = []
        n_layers, n_heads = self.text_attention.shape[:2]
        for layer in range(n_layers):
            for head in range(n_heads):
                for q, name in enumerate(self.query_tokens):
                    rows.append({"layer": layer, "head": head, "query": name, "key": "<image>",
                                 "attention": float(self.image_mass[layer, head, q])})
                    rows += [{"layer": layer, "head": head, "query": name, "key": key,
                              "attention": float(self.text_attention[layer, head, q, t])}
                             for t, key in enumerate(self.text_tokens)]
        return rows

    def plot(self, token: str | None = None, title: str = ""):
        """One probed token's attention, mean of layers and heads: on the image (with one), else on the text."""
        from lame_tools import viz

        q = self.query_tokens.index(token) if token is not None else len(self.query_tokens) - 1
        name = self.query_tokens[q]
        if self.image_attention is not None and self.image is not None:
            return viz.attention_overlay(self.image, self.image_attention[:, :, q].mean((0, 1)),
                                         title=title or f"{name} on the image (mean of layers and heads)")
        return viz.token_strip(self.text_tokens, self.text_attention.mean((0, 1)), title=title or "attention on the text",
                               query_labels=self.query_tokens)

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        """Arrays for `np.savez` (token strings as unicode arrays)."""
        data = {
            "query_tokens": np.array(self.query_tokens),
            "text_attention": self.text_attention,
            "text_tokens": np.array(self.text_tokens),
            "image_mass": self.image_mass,
        }
        if self.image_attention is not None:
            data["image_attention"] = self.image_attention
        return data


def split_attention(
    cache: ActivationCache, row: int, tokens: list[str], image_token_id: int, merge_size: int, image_index: int | None
) -> tuple[np.ndarray | None, np.ndarray, list[str], np.ndarray]:
    """Split one batch row of the cached patterns into (image grid, text keys, text strings, image mass)."""
    pattern = cache.stack("attn.hook_pattern")[:, row].numpy()  # [layer, head, Q, seq]
    ids = cache.input_ids[row]
    real = cache.attention_mask[row].astype(bool)
    is_image = ids == image_token_id
    text_keys = np.flatnonzero(real & ~is_image)
    text_attention = pattern[..., text_keys]
    image_mass = pattern[..., is_image].sum(-1)
    image_attention = None
    if image_index is not None and cache.image_grid_thw is not None:
        t, h, w = (int(v) for v in cache.image_grid_thw[image_index])
        grid_h, grid_w = h // merge_size, w // merge_size
        image_attention = pattern[..., is_image].reshape(*pattern.shape[:3], t, grid_h, grid_w).sum(3)
    return image_attention, text_attention, [tokens[i] for i in text_keys], image_mass


def reason_attention_items(
    model: LameModel, items: list[Item], mode: str | None = None, layers: Sequence[int] | None = None
) -> list[ReasonAttention]:
    """Reason-token attention for each item (one batched pass; see `ReasonAttention`).

    Args:
        items: from `model.make_items(...)`; images of any size may be mixed.
        mode: "latent" (K reason tokens + [EMBED]), "discriminative" ([EMBED]) or "cot" ([EMBED]
            after the generated rationale). Default: the model's.
        layers: keep these layers (default all).
    """
    mode = mode or model.config.default_mode
    prepared = prepare_batch(model, items, mode)

    chosen = list(range(num_layers(model))) if layers is None else list(layers)
    _, cache = run_with_cache(model, prepared, [f"blocks.{i}.attn.hook_pattern" for i in chosen])
    tokenizer = model.processor.tokenizer
    results, image_index = [], 0
    for row, item in enumerate(items):
        tokens = tokenizer.convert_ids_to_tokens(cache.input_ids[row].tolist())
        index = None
        if item.image is not None:
            index, image_index = image_index, image_index + 1
        image_attention, text_attention, text_tokens, image_mass = split_attention(
            cache, row, tokens, model.processor.image_token_id, model.processor.merge_size, index
        )
        image = np.asarray(item.image.convert("RGB")) if item.image is not None else None
        results.append(
            ReasonAttention(
                list(prepared.query_tokens), image_attention, text_attention, text_tokens, image_mass, image, mode
            )
        )
    return results


def reason_attention(
    model: LameModel,
    image: object | None = None,
    text: str | None = None,
    instruction: str | None = None,
    mode: str | None = None,
    layers: Sequence[int] | None = None,
) -> ReasonAttention:
    """Reason-token attention of one query (image and/or text; decoded and checked like `encode`).

    Example:
        >>> att = reason_attention(model, image="q.png", text="what colour is the circle ?")
        >>> att.image_attention.shape   # [layer, head, K + 1, grid_h, grid_w]
    """
    items = model.make_items([image] if image is not None else None, [text], instruction)
    return reason_attention_items(model, items, mode, layers)[0]


def region_mass(
    image_attention: np.ndarray, boxes: Sequence[tuple[float, float, float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Attention on image regions: the mass on the merged-grid cells each box overlaps.

    Args:
        image_attention: [..., grid_h, grid_w] (e.g. `ReasonAttention.image_attention`).
        boxes: (x0, y0, x1, y1) as fractions of the image width and height (e.g. objects of a scene).

    Returns:
        (mass [..., n_boxes], cell_fraction [n_boxes]): attention on each box's cells, and the share
        of the grid those cells make up (the mass a uniform map would give them).
    """
    grid_h, grid_w = image_attention.shape[-2:]
    masses, fractions = [], []
    for x0, y0, x1, y1 in boxes:
        rows = slice(max(0, int(np.floor(y0 * grid_h))), min(grid_h, int(np.ceil(y1 * grid_h))))
        cols = slice(max(0, int(np.floor(x0 * grid_w))), min(grid_w, int(np.ceil(x1 * grid_w))))
        masses.append(image_attention[..., rows, cols].sum((-1, -2)))
        fractions.append((rows.stop - rows.start) * (cols.stop - cols.start) / (grid_h * grid_w))
    return np.stack(masses, -1), np.array(fractions)
