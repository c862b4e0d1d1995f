"""Scene words (lame_tools.scene_words): a visual token gets its scene head's words, the head's own
loss and read-out see the raw tokens, the setting survives a save, and it needs a scene head."""

from __future__ import annotations

import pytest
import torch

from lame_tools.data.render import render
from lame_tools.data.scene import COLOURS, SHAPES
from lame_tools.data.shapes import VOCABULARY, make_example
from lame_tools.errors import LameError
from lame_tools.model import LameModel
from lame_tools.scene_head import capture_vision, vision_tokens
from lame_tools.scene_words import raw_vision, scene_word_vectors, word_ids
from lame_tools.train.config import build_config


@pytest.fixture(scope="module")
def worded():
    return LameModel.build_tiny("micro", num_reason_tokens=0, embed_dim=16, with_decoder=False,
                                default_mode="discriminative", seed=0, vocabulary=VOCABULARY, scene_head=True,
                                scene_words=True)


def test_word_ids_are_the_vocabulary_words(worded):
    shapes, colours = word_ids(worded.processor.tokenizer)
    assert worded.processor.tokenizer.convert_ids_to_tokens(shapes) == list(SHAPES)
    assert worded.processor.tokenizer.convert_ids_to_tokens(colours) == list(COLOURS)


def test_a_sure_head_adds_the_scaled_word_embeddings(worded):
    head = worded.scene_head
    saved = {k: v.clone() for k, v in head.state_dict().items()}
    try:
        with torch.no_grad():
            for layer in (head.shape, head.colour):
                layer.weight.zero_()
                layer.bias.fill_(-50.0)
            head.shape.bias[SHAPES.index("square")] = 50.0  # sure: a square
            head.colour.bias[len(COLOURS)] = 50.0  # and no colour ("none")
            tokens = torch.randn(3, worded.backbone.config.text_config.hidden_size)
            vectors = scene_word_vectors(worded, tokens)
        table = worded.backbone.get_input_embeddings().weight
        shapes, colours = word_ids(worded.processor.tokenizer)
        square = table[shapes[SHAPES.index("square")]]
        word_norm = torch.cat([table[shapes], table[colours]]).norm(dim=-1).mean()
        for token, row in zip(tokens, vectors):
            torch.testing.assert_close(row, square * token.norm() / word_norm, atol=1e-4, rtol=1e-4)
        # per token: a token's words are the same alone as in a batch
        with torch.no_grad():
            torch.testing.assert_close(scene_word_vectors(worded, tokens[:1]), vectors[:1])
    finally:
        head.load_state_dict(saved)


def test_the_language_model_reads_worded_tokens_and_the_head_reads_raw_ones(worded, tmp_path):
    example = make_example(0, "train", 3)
    image = render(example.scene)
    raw, grids = vision_tokens(worded, [image])
    with torch.no_grad(), capture_vision(worded) as capture:
        out = worded.backbone.model.visual(*_pixels(worded, image))
    captured, _ = capture.take()
    worded_tokens = getattr(out, "pooler_output", out)
    torch.testing.assert_close(captured, raw)
    with torch.no_grad():
        torch.testing.assert_close(worded_tokens, raw + scene_word_vectors(worded, raw))
    with raw_vision(worded), torch.no_grad():
        plain = worded.backbone.model.visual(*_pixels(worded, image))
    torch.testing.assert_close(getattr(plain, "pooler_output", plain), raw)
    # the embedding depends on the words, and a saved model keeps the setting
    inputs = dict(images=[image], texts=[example.query_text], instruction=[example.instruction])
    with_words = worded.encode(**inputs)
    with raw_vision(worded):
        without = worded.encode(**inputs)
    assert not torch.allclose(torch.tensor(with_words), torch.tensor(without))
    worded.save_pretrained(tmp_path / "m")
    loaded = LameModel.from_pretrained(tmp_path / "m")
    assert loaded.config.scene_words
    torch.testing.assert_close(torch.tensor(loaded.encode(**inputs)), torch.tensor(with_words))


def _pixels(model, image):
    from lame_tools.image_batch import pixel_inputs

    vision = model.move_batch(pixel_inputs(model.processor.image_processor, [image]))
    return vision["pixel_values"], vision["image_grid_thw"]


def test_it_needs_a_scene_head():
    with pytest.raises(ValueError, match="scene head"):
        LameModel.build_tiny("micro", num_reason_tokens=0, with_decoder=False, default_mode="discriminative",
                             vocabulary=VOCABULARY, scene_words=True)
    with pytest.raises(LameError, match="scene_head_weight"):
        build_config("micro-discriminative", ["scene_words=true"])
    assert build_config("micro-scene", ["scene_words=true"]).scene_words


def test_words_only_tokens_are_the_words_and_an_empty_cell_reads_the_pad_row(tmp_path):
    only = LameModel.build_tiny("micro", num_reason_tokens=0, embed_dim=16, with_decoder=False,
                                default_mode="discriminative", seed=0, vocabulary=VOCABULARY, scene_head=True,
                                scene_words=True, scene_words_only=True)
    example = make_example(0, "train", 3)
    image = render(example.scene)
    raw, _ = vision_tokens(only, [image])
    with torch.no_grad():
        out = only.backbone.model.visual(*_pixels(only, image))
        seen = getattr(out, "pooler_output", out)
        torch.testing.assert_close(seen, scene_word_vectors(only, raw, with_none=True))
    # a head sure of "no object" gives the <|image_pad|> row, scaled like any word
    head = only.scene_head
    with torch.no_grad():
        for layer in (head.shape, head.colour):
            layer.weight.zero_()
            layer.bias.fill_(-50.0)
        head.shape.bias[len(SHAPES)] = 50.0
        head.colour.bias[len(COLOURS)] = 50.0
        tokens = torch.randn(2, only.backbone.config.text_config.hidden_size)
        vectors = scene_word_vectors(only, tokens, with_none=True)
    table = only.backbone.get_input_embeddings().weight
    shapes, colours = word_ids(only.processor.tokenizer)
    pad = table[only.processor.image_token_id]
    word_norm = torch.cat([table[shapes], table[colours]]).norm(dim=-1).mean()
    for token, row in zip(tokens, vectors):
        torch.testing.assert_close(row, 2 * pad * token.norm() / word_norm, atol=1e-4, rtol=1e-4)
    only.save_pretrained(tmp_path / "m")
    assert LameModel.from_pretrained(tmp_path / "m").config.scene_words_only
    with pytest.raises(ValueError, match="scene_words_only needs"):
        LameModel.build_tiny("micro", num_reason_tokens=0, with_decoder=False, default_mode="discriminative",
                             vocabulary=VOCABULARY, scene_head=True, scene_words_only=True)
    with pytest.raises(LameError, match="scene_words_only needs"):
        build_config("micro-scene", ["scene_words_only=true"])
    assert build_config("micro-scene", ["scene_words=true", "scene_words_only=true"]).scene_words_only
