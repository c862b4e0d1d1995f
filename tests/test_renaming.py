"""Renaming (lame_tools.renaming): an example's shape and colour words relabelled alike in its texts and
its images' scene words, drawn reproducibly, refused where it is not a symmetry."""

from __future__ import annotations

import pytest
import torch

from lame_tools.data.render import render
from lame_tools.data.scene import COLOURS, SHAPES
from lame_tools.data.shapes import VOCABULARY, make_example
from lame_tools.errors import LameError
from lame_tools.model import LameModel
from lame_tools.renaming import draw_renaming, rename_text
from lame_tools.scene_head import vision_tokens
from lame_tools.scene_words import renamed, scene_word_vectors, word_ids
from lame_tools.train.config import build_config
from lame_tools.train.data import make_batch


def test_a_draw_is_a_permutation_of_shapes_and_of_colours_and_repeats():
    renaming = draw_renaming(0, 5, 17, 1.0)
    assert sorted(renaming[s] for s in SHAPES) == sorted(SHAPES)
    assert sorted(renaming[c] for c in COLOURS) == sorted(COLOURS)
    assert draw_renaming(0, 5, 17, 1.0) == renaming
    assert draw_renaming(0, 0, 0, 0.0) is None
    drawn = [draw_renaming(1, step, 3, 0.5) for step in range(400)]
    assert 150 < sum(r is not None for r in drawn) < 250  # about half
    assert len({tuple(sorted(r.items())) for r in drawn if r}) > 50


def test_rename_text_swaps_whole_words_at_once():
    swap = {**{s: s for s in SHAPES}, **{c: c for c in COLOURS}, "red": "green", "green": "red",
            "square": "circle", "circle": "square"}
    assert rename_text("what colour is the square left of the red circle ?", swap) == \
        "what colour is the circle left of the green square ?"
    assert rename_text("objects : green square , red circle .", swap) == "objects : red circle , green square ."
    assert rename_text("squares are redder", swap) == "squares are redder"  # whole words only
    assert rename_text("a red circle", None) == "a red circle"
    assert rename_text(None, swap) is None


def test_make_batch_relabels_each_example_alike_and_keys_follow_the_new_names():
    plain = make_batch(build_config("micro-scene", ["scene_words=true", "scene_words_only=true"]), 2)
    config = build_config("micro-scene", ["scene_words=true", "scene_words_only=true", "rename_words=1.0"])
    batch = make_batch(config, 2)
    assert plain.renamings is None and batch.renamings is not None
    for row, renaming in enumerate(batch.renamings):
        assert batch.queries[row].text == rename_text(plain.queries[row].text, renaming)
        assert batch.targets[row].text == rename_text(plain.targets[row].text, renaming)
        assert batch.hard_negatives[row].text == rename_text(plain.hard_negatives[row].text, renaming)
    # equal keys for equal (renamed) text targets, different for different ones
    texts = [t.text for t in batch.targets]
    for i in range(len(texts)):
        for j in range(len(texts)):
            if texts[i] is not None and texts[j] is not None and not batch.examples[i].target_has_image \
                    and not batch.examples[j].target_has_image:
                assert (batch.target_keys[i] == batch.target_keys[j]) == (texts[i] == texts[j])
    with_images = [r for ex, r in zip(batch.examples, batch.renamings) if ex.query_has_image]
    assert batch.image_renamings("query") == with_images


def test_an_image_carries_its_words_under_its_renaming():
    model = LameModel.build_tiny("micro", num_reason_tokens=0, embed_dim=16, with_decoder=False,
                                 default_mode="discriminative", seed=0, vocabulary=VOCABULARY, scene_head=True,
                                 scene_words=True, scene_words_only=True)
    images = [render(make_example(0, "train", i).scene) for i in (3, 4)]
    raw, _ = vision_tokens(model, images)
    per_image = len(raw) // 2
    swap = {**{s: s for s in SHAPES}, **{c: c for c in COLOURS}, "square": "circle", "circle": "square",
            "red": "blue", "blue": "red"}
    table = model.backbone.get_input_embeddings().weight
    shapes, colours = word_ids(model.processor.tokenizer)
    perm_shapes = torch.tensor([shapes[SHAPES.index(swap[s])] for s in SHAPES])
    perm_colours = torch.tensor([colours[COLOURS.index(swap[c])] for c in COLOURS])
    with torch.no_grad():
        plain = model.backbone.model.visual(*_pixels(model, images))
        with renamed(model, [None, swap]):
            swapped = model.backbone.model.visual(*_pixels(model, images))
        plain, swapped = (getattr(o, "pooler_output", o) for o in (plain, swapped))
        torch.testing.assert_close(swapped[:per_image], plain[:per_image])  # the first image is not renamed
        # the second image's words are the same probabilities over the permuted rows
        shape_logits, colour_logits = model.scene_head(raw[per_image:])
        pad = model.processor.image_token_id
        words = (shape_logits.softmax(-1) @ table[[*perm_shapes.tolist(), pad]]
                 + colour_logits.softmax(-1) @ table[[*perm_colours.tolist(), pad]])
        word_norm = torch.cat([table[shapes], table[colours]]).norm(dim=-1).mean()
        expected = words * raw[per_image:].norm(dim=-1, keepdim=True) / word_norm
        torch.testing.assert_close(swapped[per_image:], expected, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(swapped[per_image:], plain[per_image:])
        # and an identity renaming is the plain path
        same = {**{s: s for s in SHAPES}, **{c: c for c in COLOURS}}
        rows = scene_word_vectors(model, raw, with_none=True)
        from lame_tools.scene_words import renaming_rows
        torch.testing.assert_close(
            scene_word_vectors(model, raw, with_none=True, renamed_rows=renaming_rows(model, [same, same], [per_image] * 2)),
            rows, atol=1e-5, rtol=1e-4)
        # and in the words-beside-the-token variant (no "none" row)
        torch.testing.assert_close(
            scene_word_vectors(model, raw, renamed_rows=renaming_rows(model, [same, None], [per_image] * 2)),
            scene_word_vectors(model, raw), atol=1e-5, rtol=1e-4)


def _pixels(model, images):
    from lame_tools.image_batch import pixel_inputs

    vision = model.move_batch(pixel_inputs(model.processor.image_processor, images))
    return vision["pixel_values"], vision["image_grid_thw"]


def test_renaming_is_refused_where_it_is_no_symmetry():
    with pytest.raises(LameError, match="scene_words_only"):
        build_config("micro-scene", ["scene_words=true", "rename_words=0.5"])
    with pytest.raises(LameError, match=r"\[0, 1\]"):
        build_config("micro-scene", ["scene_words=true", "scene_words_only=true", "rename_words=1.5"])
    assert build_config("micro-scene", ["scene_words=true", "scene_words_only=true",
                                        "rename_words=0.5"]).rename_words == 0.5


def test_a_renamed_training_run_with_the_word_look_up_trains(tmp_path):
    import json

    from lame_tools.train import train

    overrides = ["scene_words=true", "scene_words_only=true", "rename_words=1.0", "lookup_weight=1.0",
                 "lookup_from=word", "lookup_layer=0", "subtasks=colour_of,shape_of,count", "stage2_steps=4"]
    config = build_config("micro-scene", overrides)
    assert train(config, tmp_path / "run", show_progress=False).complete
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    stage2 = [entry for entry in logged if entry.get("stage") == 2]
    named = [entry for entry in stage2 if "lookup" in entry]
    assert named and all(entry["lookup"] > 0 for entry in named)


def test_the_look_up_finds_the_naming_word_under_its_new_name():
    from lame_tools.lookup_loss import NAMING_ATTRIBUTE, naming_word_positions

    config = build_config("micro-scene", ["scene_words=true", "scene_words_only=true", "rename_words=1.0",
                                          "subtasks=colour_of,shape_of", "homogeneous_batches=false"])
    batch = make_batch(config, 1)
    model = LameModel.build_tiny("micro", num_reason_tokens=0, embed_dim=16, with_decoder=False,
                                 default_mode="discriminative", seed=0, vocabulary=VOCABULARY, scene_head=True)
    tokenizer = model.processor.tokenizer
    ids = model.prepare(batch.queries, "discriminative")["input_ids"]
    positions = naming_word_positions(ids, tokenizer, batch.examples, batch.renamings)
    moved = 0
    for row, (ex, renaming) in enumerate(zip(batch.examples, batch.renamings)):
        true_name = getattr(ex.answer_object, NAMING_ATTRIBUTE[ex.subtask])
        assert positions[row] >= 0
        word = tokenizer.convert_ids_to_tokens(int(ids[row, positions[row]]))
        assert word == renaming[true_name]
        moved += word != true_name
    assert moved > 0
