"""The batch layout of `LameProcessor`: left padding, the suffix last, image tokens, truncation, files."""

from __future__ import annotations

import warnings

import pytest
import torch
from PIL import Image

from lame_tools.inputs import Item
from lame_tools.processor import LameProcessor


@pytest.fixture()
def processor(micro_model) -> LameProcessor:
    return micro_model.processor


def test_rows_are_left_padded_and_end_in_their_suffix(processor):
    items = [Item(None, "a red circle"), Item(None, "a blue square and a green diamond")]
    suffixes = [[processor.embed_token_id], [processor.think_token_id, processor.embed_token_id]]
    batch = processor(items, suffixes)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and ids.dtype == torch.long
    for row, suffix in zip(ids.tolist(), suffixes):
        assert row[-len(suffix):] == suffix
    short = mask[0].tolist()
    n_pad = short.count(0)
    assert n_pad > 0 and short == [0] * n_pad + [1] * (len(short) - n_pad)  # padding on the left only
    assert ids[0, :n_pad].tolist() == [processor.pad_id] * n_pad
    assert mask[1].all()


def test_text_tokens_follow_the_instruction_in_plain_format(processor):
    batch = processor([Item(None, "a red circle", "represent the text .")], [processor.embed_token_id])
    words = processor.tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    assert words == ["represent", "the", "text", ".", "a", "red", "circle", "[EMBED]"]


def test_image_rows_get_one_token_per_merged_patch(processor):
    images = [Image.new("RGB", (112, 112), "white"), Image.new("RGB", (224, 168), "red")]
    batch = processor([Item(images[0], "a"), Item(None, "b"), Item(images[1], None)], [processor.embed_token_id])
    grid = batch["image_grid_thw"]
    assert grid.shape == (2, 3)
    per_image = (grid.prod(dim=1) // processor.merge_size**2).tolist()
    counts = (batch["input_ids"] == processor.image_token_id).sum(dim=1).tolist()
    assert counts == [per_image[0], 0, per_image[1]]
    assert torch.equal(batch["mm_token_type_ids"], (batch["input_ids"] == processor.image_token_id).long())
    assert batch["pixel_values"].shape[0] == int(grid.prod(dim=1).sum())
    row = batch["input_ids"][0].tolist()
    start, end = row.index(processor.vision_start_id), row.index(processor.vision_end_id)
    assert set(row[start + 1 : end]) == {processor.image_token_id}


def test_long_text_is_truncated_with_a_warning(processor):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = processor([Item(None, "red " * (processor.max_text_tokens + 10))], [processor.embed_token_id])
    assert int(batch["attention_mask"].sum()) == processor.max_text_tokens + 1
    assert any("truncated" in str(w.message) for w in caught)


def test_an_item_needs_an_image_or_text(processor):
    with pytest.raises(ValueError, match="image or a non-empty text"):
        processor([Item(None, "")], [processor.embed_token_id])
    with pytest.raises(ValueError, match="no items"):
        processor([], [processor.embed_token_id])


def test_unknown_and_known_words(processor):
    assert processor.unknown_words("what colour is the banana ?") == ["banana"]
    known = processor.known_words()
    assert "circle" in known and "[EMBED]" not in known and known == sorted(known)


def test_save_and_load_round_trip(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    loaded = LameProcessor.from_pretrained(tmp_path)
    items = [Item(Image.new("RGB", (140, 140), "blue"), "a red circle", "answer the question about the image .")]
    a, b = processor(items, [processor.embed_token_id]), loaded(items, [processor.embed_token_id])
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key])
    assert loaded.prompt_format == processor.prompt_format and loaded.max_text_tokens == processor.max_text_tokens


def test_unknown_prompt_format_is_refused(processor):
    with pytest.raises(ValueError, match="prompt_format"):
        LameProcessor(processor.tokenizer, processor.image_processor, prompt_format="chatml")


def test_text_first_puts_the_question_before_the_image_and_survives_a_save(processor, tmp_path):
    first = LameProcessor(processor.tokenizer, processor.image_processor, prompt_format="plain-text-first")
    item = Item(Image.new("RGB", (112, 112), "blue"), "what colour is the square ?", "answer the question about the image .")
    suffix = [processor.embed_token_id]
    plain_ids = processor([item], suffix)["input_ids"][0].tolist()
    first_ids = first([item], suffix)["input_ids"][0].tolist()
    text = processor.tokenizer("what colour is the square ?", add_special_tokens=False)["input_ids"]
    start, end = first_ids.index(processor.vision_start_id), first_ids.index(processor.vision_end_id)
    # the same tokens, the question moved from after the image to before it
    assert sorted(plain_ids) == sorted(first_ids)
    assert first_ids[start - len(text):start] == text and first_ids[end + 1:] == suffix
    assert plain_ids[plain_ids.index(processor.vision_end_id) + 1:-1] == text
    first.save_pretrained(tmp_path)
    assert LameProcessor.from_pretrained(tmp_path).prompt_format == "plain-text-first"


def test_a_tiny_run_takes_the_text_first_format_and_refuses_the_chat_one():
    from lame_tools.errors import LameError
    from lame_tools.train.build import build_model
    from lame_tools.train.config import build_config

    model = build_model(build_config("micro-discriminative", ["prompt_format=plain-text-first"]))
    assert model.processor.prompt_format == model.config.prompt_format == "plain-text-first"
    with pytest.raises(LameError, match="prompt_format"):
        build_config("micro-discriminative", ["prompt_format=qwen2-vl-chat"])
