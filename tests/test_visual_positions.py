"""Visual positions (lame_tools.visual_positions): each merged token's features are its cell centre's,
in row-major order and per image; a new model embeds as the same model without positions would; a
trained map moves the language model's tokens but not the scene head's raw ones; the setting and the
weights survive a save; the map trains with the language model."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lame_tools.data.render import render
from lame_tools.data.shapes import VOCABULARY, make_example
from lame_tools.errors import LameError
from lame_tools.model import LameModel
from lame_tools.scene_head import vision_tokens
from lame_tools.scene_words import raw_vision
from lame_tools.train.build import build_model, parameter_groups, set_stage
from lame_tools.train.config import build_config
from lame_tools.visual_positions import FREQUENCIES, cell_features


def _micro(**kwargs):
    return LameModel.build_tiny("micro", num_reason_tokens=0, embed_dim=16, with_decoder=False,
                                default_mode="discriminative", seed=0, vocabulary=VOCABULARY, scene_head=True,
                                scene_words=True, scene_words_only=True, **kwargs)


def test_cell_features_are_the_cell_centres_in_row_major_order():
    # merge size 2: a 4 x 6 patch grid is 2 rows x 3 columns of merged cells; then a 2 x 2 one
    grids = torch.tensor([[1, 4, 6], [1, 2, 2]])
    features = cell_features(grids, 2)
    assert features.shape == (6 + 1, 4 * FREQUENCIES)
    k = torch.arange(1, FREQUENCIES + 1) * math.pi
    for index, (x, y) in enumerate([(1 / 6, 1 / 4), (3 / 6, 1 / 4), (5 / 6, 1 / 4),
                                    (1 / 6, 3 / 4), (3 / 6, 3 / 4), (5 / 6, 3 / 4), (0.5, 0.5)]):
        angles = torch.cat([x * k, y * k])
        torch.testing.assert_close(features[index], torch.cat([angles.sin(), angles.cos()]))
    # the same point of an image of another size gets the same features
    wide = cell_features(torch.tensor([[1, 8, 12]]), 4)
    torch.testing.assert_close(wide, features[:6])


def test_a_new_model_embeds_as_without_positions_and_a_trained_map_moves_only_the_lm_tokens(tmp_path):
    plain, placed = _micro(), _micro(visual_positions=True)
    assert plain.visual_positions is None and placed.visual_positions is not None
    example = make_example(0, "train", 3)
    image = render(example.scene)
    inputs = dict(images=[image], texts=[example.query_text], instruction=[example.instruction])
    torch.testing.assert_close(torch.tensor(placed.encode(**inputs)), torch.tensor(plain.encode(**inputs)))
    with torch.no_grad():
        placed.visual_positions.proj.weight.normal_(0.0, 0.5)
    raw, grids = vision_tokens(placed, [image])
    torch.testing.assert_close(raw, vision_tokens(plain, [image])[0])  # the scene head reads raw tokens
    with torch.no_grad():
        seen = placed.backbone.model.visual(*_pixels(placed, image))
        worded = plain.backbone.model.visual(*_pixels(plain, image))
    seen, worded = (getattr(o, "pooler_output", o) for o in (seen, worded))
    merge = placed.processor.merge_size
    torch.testing.assert_close(seen, worded + placed.visual_positions(grids, merge))
    moved = torch.tensor(placed.encode(**inputs))
    assert not torch.allclose(moved, torch.tensor(plain.encode(**inputs)))
    with raw_vision(placed), torch.no_grad():
        bare = placed.backbone.model.visual(*_pixels(placed, image))
    torch.testing.assert_close(getattr(bare, "pooler_output", bare), raw)
    placed.save_pretrained(tmp_path / "m")
    loaded = LameModel.from_pretrained(tmp_path / "m")
    assert loaded.config.visual_positions
    torch.testing.assert_close(loaded.visual_positions.proj.weight, placed.visual_positions.proj.weight)
    torch.testing.assert_close(torch.tensor(loaded.encode(**inputs)), moved)


def test_the_map_trains_with_the_language_model_and_a_continued_run_keeps_it(tmp_path):
    config = build_config("micro-scene", ["scene_words=true", "scene_words_only=true", "visual_positions=true"])
    placed = _micro(visual_positions=True)
    weight = placed.visual_positions.proj.weight
    assert any(p is weight for p in parameter_groups(placed)["backbone"])
    set_stage(placed, config, 2)
    assert weight.requires_grad
    example = make_example(0, "train", 3)
    image = render(example.scene)
    out = placed.forward_items([example.query_item(image)], "discriminative")
    out.embeddings.sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    trained = build_model(config)
    with torch.no_grad():
        trained.visual_positions.proj.weight.normal_(0.0, 0.5)
    trained.save_pretrained(tmp_path / "m")
    for parts in ("all", "model"):
        continued = build_model(build_config("micro-scene", [
            "scene_words=true", "scene_words_only=true", "visual_positions=true", f"init_parts={parts}",
            f"init_from={tmp_path / 'm'}"]))
        torch.testing.assert_close(continued.visual_positions.proj.weight, trained.visual_positions.proj.weight)
    alone = build_config("micro-discriminative", ["visual_positions=true"])
    with pytest.raises(LameError, match="visual_positions is for the tiny backbone only"):
        build_model(dataclasses.replace(alone, base="some/checkpoint"))


def _pixels(model, image):
    from lame_tools.image_batch import pixel_inputs

    vision = model.move_batch(pixel_inputs(model.processor.image_processor, [image]))
    return vision["pixel_values"], vision["image_grid_thw"]
