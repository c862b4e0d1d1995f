"""The batched image pre-processing gives Qwen2-VL's PIL processor's pixel values (to 1e-5) and grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from lame_tools.image_batch import BatchImageProcessor, pixel_inputs


def _images(scenes):
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in
             [(50, 300), (112, 112), (400, 90), (33, 33), (224, 168)]]
    grey = Image.fromarray(rng.integers(0, 256, (60, 80), dtype=np.uint8))  # mode "L"
    rgba = Image.fromarray(rng.integers(0, 256, (70, 70, 4), dtype=np.uint8))  # mode "RGBA"
    return [*scenes[1], *noise, grey, scenes[1][0], rgba, scenes[1][1]]


@pytest.mark.parametrize("pixels", [112 * 112, (56 * 56, 28 * 28 * 64)])
def test_batched_path_equals_the_pil_processor(scenes, pixels):
    low, high = pixels if isinstance(pixels, tuple) else (pixels, pixels)
    processor = Qwen2VLImageProcessorPil(min_pixels=low, max_pixels=high)
    images = [image.convert("RGB") if image.mode == "RGBA" else image for image in _images(scenes)]
    want = processor(images=images, return_tensors="pt")
    got = BatchImageProcessor.from_processor(processor)(images)
    assert torch.equal(got["image_grid_thw"], want["image_grid_thw"])
    assert got["pixel_values"].shape == want["pixel_values"].shape
    assert got["pixel_values"].dtype == want["pixel_values"].dtype
    assert (got["pixel_values"] - want["pixel_values"]).abs().max().item() < 1e-5


def test_images_with_alpha_go_through_the_processor(scenes):
    processor = Qwen2VLImageProcessorPil(min_pixels=112 * 112, max_pixels=112 * 112)
    images = _images(scenes)  # an RGBA image among them
    want = processor(images=images, return_tensors="pt")
    assert torch.equal(pixel_inputs(processor, images)["pixel_values"], want["pixel_values"])


def test_pixel_inputs_falls_back_to_the_processor_for_settings_it_does_not_reproduce(scenes):
    processor = Qwen2VLImageProcessorPil(min_pixels=112 * 112, max_pixels=112 * 112, do_normalize=False)
    assert BatchImageProcessor.from_processor(processor) is None
    images = scenes[1][:3]
    want = processor(images=images, return_tensors="pt")
    got = pixel_inputs(processor, images)
    assert torch.equal(got["pixel_values"], want["pixel_values"])


def test_the_model_batch_is_unchanged(shipped_model, scenes):
    """`LameProcessor` now uses the batched path: its batch equals one built with the PIL processor."""
    items = shipped_model.make_items(scenes[1][:4], ["a red circle"] * 4)
    batch = shipped_model.processor(items, shipped_model.suffix_ids("latent"))
    want = shipped_model.processor.image_processor(images=[it.image for it in items], return_tensors="pt")
    assert torch.equal(batch["image_grid_thw"], want["image_grid_thw"])
    assert (batch["pixel_values"] - want["pixel_values"]).abs().max().item() < 1e-5
