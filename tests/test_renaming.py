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


COT_RENAMED = ["scene_head_weight=1.0", "scene_words=true", "scene_words_only=true", "rename_words=1.0"]


def _cot_step(config, monkeypatch):
    """One stage-2 CoT step's losses, with every rationale the step reads (the ids given to `prepare`
    and `forward_cot`, generated ones too) and the renamings active when the model read them."""
    from lame_tools.train.build import build_model, set_stage
    from lame_tools.train.step import embedding_loss

    model = build_model(config)
    set_stage(model, config, 2)
    reads = []
    prepare, forward_cot, generate = model.prepare, model.forward_cot, model.generate_rationales

    def spy_prepare(items, mode=None, rationales=None):
        if mode == "cot" and rationales and any(rationales):
            reads.append(("gold", [list(r) for r in rationales]))
        return prepare(items, mode, rationales)

    def spy_forward_cot(items, rationales=None):
        reads.append(("forward_cot", getattr(model, "_scene_word_renamings", None), rationales))
        return forward_cot(items, rationales)

    def spy_generate(items, *args, **kwargs):
        out = generate(items, *args, **kwargs)
        reads.append(("generate", getattr(model, "_scene_word_renamings", None)))
        return out

    monkeypatch.setattr(model, "prepare", spy_prepare)
    monkeypatch.setattr(model, "forward_cot", spy_forward_cot)
    monkeypatch.setattr(model, "generate_rationales", spy_generate)
    torch.manual_seed(0)
    return model, embedding_loss(model, config, config.stage1_steps, 0, 1), reads


def test_a_renamed_cot_step_reads_and_writes_its_rationales_in_the_new_names(monkeypatch):
    from lame_tools.train.step import own_rationale_rows, swapped_rationale_rows

    config = build_config("micro-cot", [*COT_RENAMED, "cot_own_rationales=0.5", "cot_swap_rationales=0.5"])
    model, losses, reads = _cot_step(config, monkeypatch)
    assert torch.isfinite(losses["loss"]) and losses["cot_lm"] > 0
    batch = make_batch(config, config.stage1_steps)
    tok = model.processor.tokenizer
    # the gold rationales the queries read (and the LM loss predicts) are in each example's new names
    gold = [tok.decode(ids) for ids in reads[0][1]]
    assert reads[0][0] == "gold" and len(gold) == len(batch.examples)
    moved = 0
    for text, ex, renaming in zip(gold, batch.examples, batch.renamings, strict=True):
        assert text.split() == rename_text(ex.rationale, renaming).split()
        moved += text.split() != ex.rationale.split()
    assert moved > 0
    # the model writes its own rationales, and reads the swapped ones, seeing its images renamed
    subtasks = [ex.subtask for ex in batch.examples]
    own = own_rationale_rows(config, config.stage1_steps, 0, subtasks)
    swapped = swapped_rationale_rows(config, config.stage1_steps, 0, subtasks)
    assert own and swapped
    calls = [r for r in reads if r[0] != "gold"]
    assert calls[0] == ("generate", batch.image_renamings("query", own))
    assert calls[1][:2] == ("forward_cot", batch.image_renamings("query", own))
    assert calls[2][:2] == ("forward_cot", batch.image_renamings("query", swapped))
    # a swapped row reads the next row's gold rationale under its own renaming
    n = len(batch.examples)
    for row, ids in zip(swapped, calls[2][2], strict=True):
        other = batch.examples[(row + 1) % n].rationale
        assert tok.decode(ids).split() == rename_text(other, batch.renaming(row)).split()


def test_an_identity_renaming_leaves_a_cot_step_as_it_was(monkeypatch):
    import lame_tools.train.data as data

    plain_config = build_config("micro-cot", [*COT_RENAMED[:3], "cot_own_rationales=0.5"])
    _, plain, _ = _cot_step(plain_config, monkeypatch)
    same = {**{s: s for s in SHAPES}, **{c: c for c in COLOURS}}
    monkeypatch.setattr(data, "draw_renaming", lambda *args: dict(same))
    config = build_config("micro-cot", [*COT_RENAMED, "cot_own_rationales=0.5"])
    _, renamed_losses, _ = _cot_step(config, monkeypatch)
    for name in ("contrastive", "cot_lm", "scene"):
        torch.testing.assert_close(renamed_losses[name], plain[name], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("phase", [0, 1, 2])
def test_the_binding_presets_are_the_queued_pipeline(phase, queued_config):
    """The three binding presets of each one-pass kind are the recipes the queues trained (see_38 /
    see_39 seed 0, see_40 seeds 2-4), each starting from the previous phase's model."""
    import dataclasses

    from lame_tools.train.config import BINDING_PHASES

    queued = {"discriminative": ("see_39.json", ["see-discriminative-swo-rn-s1", "see-disc-swo-rn-s1-wordlookup-ft",
                                                 "see-disc-swo-rn-s1-wl-ft-mixc"]),
              "lame-k16": ("see_39.json", ["see-lame-k16-swo-rn", "see-k16-swo-rn-wordlookup-ft",
                                           "see-lame-k16-swo-rn-wl-ft-mixc"])}
    for kind, (queue, runs) in queued.items():
        preset = f"see-{kind}-{BINDING_PHASES[phase]}"
        seed = queued_config(queue, runs[phase]).seed
        assert dataclasses.replace(build_config(preset, seed=seed), init_from=None) == \
            dataclasses.replace(queued_config(queue, runs[phase]), init_from=None)
        assert build_config(preset).init_from == (
            "runs/see/stage0-scene/model" if phase == 0 else f"runs/see/see-{kind}-{BINDING_PHASES[phase - 1]}/model")
    for s in (2, 3, 4):
        assert build_config("see-discriminative-bind-mixed", seed=s) == dataclasses.replace(
            queued_config("see_40.json", f"see-disc-swo-rn-s{s}-wl-ft-mixc"),
            init_from="runs/see/see-discriminative-bind-lookup/model")
    assert build_config("see-cot-bind") == dataclasses.replace(queued_config("see_41.json", "see-cot-swo-rn"))
    assert build_config("see-cot-bind-mixed").kind == "cot"
    sequential = build_config("see-sequential-k16-bind-mixed")
    assert sequential.default_mode == "sequential" and sequential.lookup_subtask_list == ["colour_of", "shape_of"]


@pytest.mark.parametrize("phase", [0, 1, 2])
def test_the_deep_binding_presets_are_the_queued_6_layer_pipelines(phase, queued_config):
    """The named 6-layer presets that `scripts/train_see.sh` trains are the recipes the queues trained
    for seeds 3-4 (see_65, see_67), each starting from the previous phase's model."""
    import dataclasses

    from lame_tools.train.config import BINDING_PHASES

    queued = {"deep-discriminative": ("see_65.json", "see-deep-discriminative"),
              "deep-lame-k16-readsrat": ("see_65.json", "see-deep-lame-k16-readsrat"),
              "deep-cot": ("see_65.json", "see-deep-cot"),
              "deep-sequential-k16": ("see_67.json", "see-deep-sequential-k16")}
    for kind, (queue, stem) in queued.items():
        preset = f"see-{kind}-{BINDING_PHASES[phase]}"
        for seed in ((3, 4) if queue == "see_65.json" else (4,)):
            run = queued_config(queue, f"{stem}-{BINDING_PHASES[phase]}-s{seed}")
            assert run.seed == seed and run.size == "fine-deep"
            assert dataclasses.replace(build_config(preset, seed=seed), init_from=None) == \
                dataclasses.replace(run, init_from=None)
        assert build_config(preset).init_from == (
            "runs/see/stage0-scene/model" if phase == 0 else f"runs/see/see-{kind}-{BINDING_PHASES[phase - 1]}/model")
    lame = build_config("see-deep-lame-k16-readsrat-bind-mixed")
    assert (lame.embed_reads, lame.decoder_target, lame.num_reason_tokens) == ("reasons", "rationale", 16)
    assert build_config("see-deep-sequential-k16-bind").init_parts == "vision"
