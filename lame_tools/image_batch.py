"""Batched Qwen2-VL image pre-processing: the PIL processor's `pixel_values` and `image_grid_thw`,
computed for a whole batch at once.

`Qwen2VLImageProcessorPil` handles one image at a time and converts each between PIL and numpy
several times (PIL -> array -> PIL for the resize -> array, then a float64 rescale and normalise);
on the tiny embedded model that costs about as much as the vision tower. This module does what it
does with the same numbers (to float rounding) but in one pass: each RGB image is resized once by
Pillow with the processor's resampling filter and `smart_resize` target size (uint8 in, uint8 out,
the very same call the processor makes), then images of one size are stacked and rescaled,
normalised and cut into patches with one array operation per size. transformers has no batched
path for the PIL backend (its fast processor needs torchvision, which does not install here), so
this one is ours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize


class BatchImageProcessor:
    """The settings of a `Qwen2VLImageProcessorPil`, applied to a batch of PIL images at once.

    Example:
        >>> fast = BatchImageProcessor.from_processor(processor.image_processor)
        >>> out = fast([image_a, image_b])   # {"pixel_values": [patches, dim], "image_grid_thw": [2, 3]}
    """

    def __init__(
        self,
        min_pixels: int,
        max_pixels: int,
        image_mean: Sequence[float],
        image_std: Sequence[float],
        rescale_factor: float = 1 / 255,
        patch_size: int = 14,
        temporal_patch_size: int = 2,
        merge_size: int = 2,
        resample: int = Image.Resampling.BICUBIC,
    ) -> None:
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.patch_size, self.temporal_patch_size, self.merge_size = patch_size, temporal_patch_size, merge_size
        self.resample = int(resample)
        # (x * rescale - mean) / std = x * scale + offset per channel, in float32
        mean, std = np.asarray(image_mean, np.float64), np.asarray(image_std, np.float64)
        self._scale = (rescale_factor / std).astype(np.float32)[:, None]
        self._offset = (-mean / std).astype(np.float32)[:, None]

    @classmethod
    def from_processor(cls, processor: object) -> BatchImageProcessor | None:
        """The batched equivalent of `processor`, or None when it uses a step this module does not
        reproduce (no resize, rescale, normalise or RGB conversion), so the caller keeps the original."""
        flags = ("do_resize", "do_rescale", "do_normalize", "do_convert_rgb")
        if not all(getattr(processor, flag, False) for flag in flags):
            return None
        size = getattr(processor, "size", None) or {}
        low = size.get("shortest_edge") if hasattr(size, "get") else getattr(size, "shortest_edge", None)
        high = size.get("longest_edge") if hasattr(size, "get") else getattr(size, "longest_edge", None)
        if not low or not high:
            return None
        return cls(
            low,
            high,
            processor.image_mean,
            processor.image_std,
            processor.rescale_factor,
            processor.patch_size,
            processor.temporal_patch_size,
            processor.merge_size,
            int(processor.resample if processor.resample is not None else Image.Resampling.BICUBIC),
        )

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) Qwen2-VL resizes an image of this size to."""
        factor = self.patch_size * self.merge_size
        return smart_resize(height, width, factor=factor, min_pixels=self.min_pixels, max_pixels=self.max_pixels)

    def _resized(self, image: Image.Image) -> np.ndarray:
        if image.mode != "RGB":
            image = image.convert("RGB")
        height, width = self.target_size(image.height, image.width)
        if (width, height) != image.size:
            image = image.resize((width, height), resample=self.resample)
        return np.asarray(image)  # [H, W, 3] uint8

    def _fill_patches(self, stack: np.ndarray, out: np.ndarray) -> None:
        """[n, H, W, 3] uint8 images of one size -> their patches written into `out`,
        [n * gh * gw, C, T, p * p] float32 (the processor's patch order, channel-first in a patch)."""
        n, height, width, channels = stack.shape
        p, m = self.patch_size, self.merge_size
        gh, gw = height // p, width // p
        blocks = stack.reshape(n, gh // m, m, p, gw // m, m, p, channels)
        # -> (n, gh/m, gw/m, m, m, C, p, p); the uint8 values are moved first (1 byte each)
        blocks = np.ascontiguousarray(blocks.transpose(0, 1, 4, 2, 5, 7, 3, 6)).reshape(-1, channels, p * p)
        pixels = blocks.astype(np.float32)
        pixels *= self._scale
        pixels += self._offset
        out[:] = pixels[:, :, None, :]  # the temporal axis repeats a still image T times (the processor's broadcast)

    def __call__(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """{"pixel_values": [sum of patches, dim] float32, "image_grid_thw": [n, 3] int64}, images in order."""
        arrays = [self._resized(image) for image in images]
        p, t = self.patch_size, self.temporal_patch_size
        counts = [(a.shape[0] // p) * (a.shape[1] // p) for a in arrays]
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        out = np.empty((int(starts[-1]), 3, t, p * p), np.float32)
        by_size: dict[tuple[int, int], list[int]] = {}
        for position, array in enumerate(arrays):
            by_size.setdefault(array.shape[:2], []).append(position)
        for positions in by_size.values():
            if len(positions) == positions[-1] - positions[0] + 1:  # consecutive: one slice of the output
                self._fill_patches(np.stack([arrays[i] for i in positions]), out[starts[positions[0]] : starts[positions[-1] + 1]])
                continue
            for i in positions:
                self._fill_patches(arrays[i][None], out[starts[i] : starts[i + 1]])
        grids = [[1, a.shape[0] // p, a.shape[1] // p] for a in arrays]
        return {
            "pixel_values": torch.from_numpy(out.reshape(out.shape[0], -1)),
            "image_grid_thw": torch.tensor(grids, dtype=torch.int64),
        }


def _settings_key(processor: object) -> tuple:
    size = getattr(processor, "size", None)
    size_items = tuple(sorted(dict(size).items())) if size is not None else ()
    names = (
        "do_resize",
        "do_rescale",
        "do_normalize",
        "do_convert_rgb",
        "rescale_factor",
        "patch_size",
        "temporal_patch_size",
        "merge_size",
        "resample",
    )
    values = tuple(getattr(processor, name, None) for name in names)
    stats = (tuple(getattr(processor, "image_mean", ()) or ()), tuple(getattr(processor, "image_std", ()) or ()))
    return (type(processor).__name__, size_items, values, stats)


EXACT_MODES = ("RGB", "L")
_BATCHED: dict[tuple, BatchImageProcessor | None] = {}


def pixel_inputs(processor: object, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
    """`processor(images=images, return_tensors="pt")`'s pixel_values and image_grid_thw, through the
    batched path when it reproduces the processor's settings (else through the processor itself)."""
    key = _settings_key(processor)
    if key not in _BATCHED:
        _BATCHED[key] = BatchImageProcessor.from_processor(processor)
    batched = _BATCHED[key]
    # RGB and greyscale images only: the processor flattens alpha (RGBA, LA, P) its own way
    if batched is None or not all(isinstance(image, Image.Image) and image.mode in EXACT_MODES for image in images):
        out = processor(images=list(images), return_tensors="pt")
        return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}
    return batched(images)


def visual_token_counts(grid_thw: torch.Tensor, merge_size: int) -> list[int]:
    """How many merged visual tokens each image of `grid_thw` ([images, 3]: t, h, w patches) gives
    the language model: t * h * w patches, `merge_size` x `merge_size` of them merged into one."""
    return [int(t * h * w) // merge_size**2 for t, h, w in grid_thw.tolist()]
