"""The look-up loss (lame_tools.lookup_loss): the attention row it reads is the probe's, the token it
names holds the named object's centre, its gradient raises that attention, and the config refuses
it where it cannot apply."""

from __future__ import annotations

import pytest
import torch

from lame_tools.data.render import render
from lame_tools.data.shapes import VOCABULARY, balanced_examples, make_example
from lame_tools.errors import LameError
from lame_tools.lookup_loss import (
    attention_rows,
    head_rows,
    lookup_loss,
    named_token_positions,
    naming_word_positions,
)
from lame_tools.model import LameModel
from lame_tools.probe.attention import reason_attention_items
from lame_tools.train.config import build_config


def _colour_queries(n: int):
    examples = []
    index = 0
    while len(examples) < n:
        ex = make_example(0, "train", index)
        index += 1
        if ex.subtask == "colour_of":
            examples.append(ex)
    return examples


def _latent_batch(examples):
    """A micro model with K = 3 reason tokens, the examples as its items, and their latent batch."""
    model = LameModel.build_tiny("micro", num_reason_tokens=3, embed_dim=16, with_decoder=False, seed=0,
                                 vocabulary=VOCABULARY)
    items = model.make_items([render(e.scene) for e in examples], [e.query_text for e in examples],
                             [e.instruction for e in examples])
    return model, items, model.prepare(items, "latent")


@pytest.fixture()
def disc_model():
    return LameModel.build_tiny("micro", num_reason_tokens=0, embed_dim=16, with_decoder=False, seed=0,
                                vocabulary=VOCABULARY)


def test_the_row_is_the_probes_embed_attention_and_the_position_the_named_cell(disc_model):
    examples = _colour_queries(3)
    items = disc_model.make_items([render(e.scene) for e in examples], [e.query_text for e in examples],
                                  [e.instruction for e in examples])
    batch = disc_model.prepare(items, "discriminative")
    with torch.no_grad(), attention_rows(disc_model, 0, batch["attention_mask"], [-1] * 3) as rows:
        disc_model.embed_pass(batch, 0)
    assert len(rows) == 1 and rows[0].shape == (3, 2, batch["input_ids"].shape[1])  # micro: 2 heads
    torch.testing.assert_close(rows[0].sum(-1), torch.ones(3, 2))
    row_of = head_rows(rows[0], 1)
    probed = reason_attention_items(disc_model, items, "discriminative", layers=[0])
    positions = named_token_positions(batch["input_ids"], disc_model.processor.image_token_id,
                                      batch["image_grid_thw"], disc_model.processor.merge_size,
                                      [e.answer_object for e in examples])
    image_id = disc_model.processor.image_token_id
    for row, (example, att, position) in enumerate(zip(examples, probed, positions)):
        grid_h, grid_w = att.image_attention.shape[-2:]
        r = min(grid_h - 1, int(example.answer_object.y * grid_h))
        c = min(grid_w - 1, int(example.answer_object.x * grid_w))
        # the probe lays the same row on the image grid: the named cell's weight is the row's at `position`
        assert batch["input_ids"][row, position] == image_id
        assert float(row_of[row, position]) == pytest.approx(float(att.image_attention[0, 1, -1, r, c]), abs=1e-5)
    # rows that name nothing, or have no image, get no position
    text_only = disc_model.make_items(None, ["a red circle"], None)
    plain = disc_model.prepare(text_only, "discriminative")
    assert named_token_positions(plain["input_ids"], image_id, None, disc_model.processor.merge_size,
                                 [examples[0].answer_object]) == [None]
    assert named_token_positions(batch["input_ids"], image_id, batch["image_grid_thw"],
                                 disc_model.processor.merge_size, [None, None, None]) == [None, None, None]
    assert lookup_loss(row_of, [None, None, None]) is None
    with pytest.raises(ValueError, match="lookup_head"):
        head_rows(rows[0], 2)


def test_the_naming_word_reads_its_own_row(disc_model):
    examples = _colour_queries(2) + [make_example(0, "train", i) for i in range(40)
                                     if make_example(0, "train", i).subtask == "shape_of"][:1]
    items = disc_model.make_items([render(e.scene) for e in examples], [e.query_text for e in examples],
                                  [e.instruction for e in examples])
    batch = disc_model.prepare(items, "discriminative")
    tokenizer = disc_model.processor.tokenizer
    positions = naming_word_positions(batch["input_ids"], tokenizer, examples)
    words = [e.answer_object.shape for e in examples[:2]] + [examples[2].answer_object.colour]
    for row, (position, word) in enumerate(zip(positions, words)):
        assert tokenizer.convert_ids_to_tokens(int(batch["input_ids"][row, position])) == word
    with torch.no_grad(), attention_rows(disc_model, 0, batch["attention_mask"], positions) as rows:
        disc_model.embed_pass(batch, 0)
    with torch.no_grad(), attention_rows(disc_model, 0, batch["attention_mask"], [-1] * 3) as last:
        disc_model.embed_pass(batch, 0)
    rows, last = [head_rows(r[0], 0) for r in (rows, last)]
    for row, position in enumerate(positions):
        # causal: the word reads nothing after itself; [EMBED] reads the whole row
        assert float(rows[row, position + 1:].sum()) == 0.0
        assert float(rows[row].sum()) == pytest.approx(1.0, abs=1e-5)
        assert not torch.allclose(rows[row], last[row])
    count = next(make_example(0, "train", i) for i in range(40) if make_example(0, "train", i).subtask == "count")
    assert naming_word_positions(batch["input_ids"][:1], tokenizer, [count]) == [-1]


def test_its_gradient_raises_the_attention_on_the_named_token(disc_model):
    examples = _colour_queries(4)
    items = disc_model.make_items([render(e.scene) for e in examples], [e.query_text for e in examples],
                                  [e.instruction for e in examples])
    batch = disc_model.prepare(items, "discriminative")
    positions = named_token_positions(batch["input_ids"], disc_model.processor.image_token_id,
                                      batch["image_grid_thw"], disc_model.processor.merge_size,
                                      [e.answer_object for e in examples])
    optimizer = torch.optim.Adam(disc_model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        with attention_rows(disc_model, 0, batch["attention_mask"], [-1] * 4) as rows:
            disc_model.embed_pass(batch, 0)
        loss = lookup_loss(head_rows(rows[0], 0), positions)
        losses.append(float(loss.detach()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < losses[0] - 0.5


def test_the_config_refuses_it_where_it_cannot_apply():
    assert build_config("micro-discriminative", ["lookup_weight=1.0"]).lookup_subtask_list == ["colour_of", "shape_of"]
    with pytest.raises(LameError, match="prompt pass holds the reader"):
        build_config("micro-cot", ["lookup_weight=1.0"])
    with pytest.raises(LameError, match="prompt pass holds the reader"):
        build_config("micro-sequential", ["lookup_weight=1.0"])  # [EMBED] is not in the prompt pass
    for preset in ("micro-sequential", "micro-cot"):
        assert build_config(preset, ["lookup_weight=1.0", "lookup_from=word"]).lookup_subtask_list == [
            "colour_of", "shape_of"]
    restricted = ["lookup_weight=1.0", "embed_reads=reasons"]
    with pytest.raises(LameError, match="lookup_from=embed needs embed_reads=all"):
        build_config("micro-lame", restricted)
    assert build_config("micro-lame", [*restricted, "lookup_from=word"]).lookup_subtask_list == ["colour_of", "shape_of"]
    with pytest.raises(LameError, match="unknown subtasks"):
        build_config("micro-discriminative", ["lookup_weight=1.0", "lookup_subtasks=colour_of,nonsense"])
    with pytest.raises(LameError, match="colour_of and shape_of only"):
        build_config("micro-discriminative", ["lookup_weight=1.0", "lookup_from=word", "lookup_subtasks=refer"])
    with pytest.raises(LameError, match="embed or word"):
        build_config("micro-discriminative", ["lookup_weight=1.0", "lookup_from=cls"])
    with pytest.raises(LameError, match=">= 0"):
        build_config("micro-discriminative", ["lookup_weight=-1"])


def test_a_training_step_logs_it(tmp_path):
    import json

    from lame_tools.train import train

    config = build_config("micro-discriminative", ["lookup_weight=1.0", "lookup_layer=0",
                                                   "subtasks=colour_of,shape_of", "stage2_steps=2"])
    result = train(config, tmp_path / "run", show_progress=False)
    assert result.complete
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    stage2 = [entry for entry in logged if entry.get("stage") == 2]
    assert stage2 and all(entry["lookup"] > 0 for entry in stage2)
    # stage 1 trains no backbone here, and stage 2's loss is the sum of its parts
    for entry in stage2:
        assert entry["loss"] == pytest.approx(entry["contrastive"] + entry["lookup"], rel=1e-4)


def test_a_sequential_query_is_looked_up_on_its_prompt_pass():
    """The sequential baseline's prompt pass holds the question's words and the image: the rows
    recorded there (its first forward; the one-position steps after it are not recorded) are the
    rows of a parallel pass over the same layout, which the words read alike (causal attention)."""
    examples = _colour_queries(3)
    model, items, batch = _latent_batch(examples)
    words = naming_word_positions(batch["input_ids"], model.processor.tokenizer, examples)
    prompt = batch["input_ids"].shape[1] - 3 - 1
    with torch.no_grad(), attention_rows(model, 0, batch["attention_mask"], words, once=True) as seq_rows:
        model.forward_sequential(items)
    with torch.no_grad(), attention_rows(model, 0, batch["attention_mask"], words) as par_rows:
        model.embed_pass(batch, 3)
    assert len(seq_rows) == 1 and seq_rows[0].shape[-1] == prompt
    torch.testing.assert_close(seq_rows[0], par_rows[0][..., :prompt], atol=1e-5, rtol=1e-4)
    assert float(par_rows[0][..., prompt:].abs().sum()) == 0.0
    assert float(seq_rows[0].sum(-1).min()) == pytest.approx(1.0, abs=1e-5)
    # the training step hands the sequential pass the batch it already prepared: the same embeddings
    with torch.no_grad():
        torch.testing.assert_close(model.forward_sequential(items, batch=batch).embeddings,
                                   model.forward_sequential(items).embeddings)


@pytest.mark.parametrize("preset, extra", [("micro-sequential", []), ("micro-lame", ["embed_reads=reasons"])])
def test_a_training_step_reads_it_from_the_naming_word(tmp_path, preset, extra):
    """lookup_from=word on the sequential model's prompt pass, and on a LaME whose [EMBED] reads only
    the reason tokens (the word's row is a prompt row: the restriction does not touch it)."""
    import json

    from lame_tools.train import train

    config = build_config(preset, ["lookup_weight=1.0", "lookup_from=word", "lookup_layer=0",
                                   "subtasks=colour_of,shape_of", "stage2_steps=2", *extra])
    assert train(config, tmp_path / "run", show_progress=False).complete
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    stage2 = [entry for entry in logged if entry.get("stage") == 2]
    assert stage2 and all(entry["lookup"] > 0 for entry in stage2)


def test_a_cot_query_is_looked_up_from_its_question_not_its_rationale(tmp_path):
    """In a CoT row the rationale names the object again ("find the square"); the reader is the
    question's word, before `[THINK]`, and a CoT training step logs the loss."""
    import json

    from lame_tools.train import train
    from lame_tools.train.step import rationale_ids

    model = LameModel.build_tiny("micro", num_reason_tokens=0, embed_dim=16, with_decoder=False, seed=0,
                                 vocabulary=VOCABULARY, default_mode="cot")
    examples = _colour_queries(2)
    items = model.make_items([render(e.scene) for e in examples], [e.query_text for e in examples],
                             [e.instruction for e in examples])
    tokenizer = model.processor.tokenizer
    batch = model.prepare(items, "cot", rationale_ids(tokenizer, examples))
    think = model.processor.think_token_id
    last = naming_word_positions(batch["input_ids"], tokenizer, examples)
    asked = naming_word_positions(batch["input_ids"], tokenizer, examples, stop_id=think)
    for row, example in enumerate(examples):
        start = int(torch.nonzero(batch["input_ids"][row] == think)[0])
        assert asked[row] < start < last[row]  # the rationale's "find the square" is the last occurrence
        for position in (asked[row], last[row]):
            word = tokenizer.convert_ids_to_tokens(int(batch["input_ids"][row, position]))
            assert word == example.answer_object.shape
    config = build_config("micro-cot", ["lookup_weight=1.0", "lookup_from=word", "lookup_layer=0", "subtasks=colour_of,shape_of",
                                        "stage2_steps=2"])
    assert train(config, tmp_path / "run", show_progress=False).complete
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    stage2 = [entry for entry in logged if entry.get("stage") == 2]
    assert stage2 and all(entry["lookup"] > 0 and "cot_lm" in entry for entry in stage2)


def test_a_span_reads_the_k_reason_rows_each_as_its_own_row():
    lame, _, batch = _latent_batch([e for _, e in balanced_examples(0, "train", 2, ("relation_two_step",))])
    with torch.no_grad(), attention_rows(lame, 0, batch["attention_mask"], [-2] * 2, span=3) as spans:
        lame.embed_pass(batch, 3)
    assert spans[0].shape == (2, 2, 3, batch["input_ids"].shape[1])  # [batch, head, K, seq]
    reason_ids = lame.processor.reason_token_ids(3)
    for k, position in enumerate((-4, -3, -2)):
        assert all(int(batch["input_ids"][row, position]) == reason_ids[k] for row in range(2))
        with torch.no_grad(), attention_rows(lame, 0, batch["attention_mask"], [position] * 2) as single:
            lame.embed_pass(batch, 3)
        torch.testing.assert_close(spans[0][:, :, k], single[0])
    assert head_rows(spans[0], 1).shape == (2, 3, batch["input_ids"].shape[1])


def test_the_relation_look_up_trains_the_reason_tokens_toward_the_answer(tmp_path):
    """A training run with the relation look-up logs it on relational batches, and its gradient
    raises the reason tokens' attention on the answering object's cell."""
    import json

    from lame_tools.train import train

    settings = ["relation_lookup_weight=1.0", "relation_lookup_layer=0", "relation_lookup_head=0",
                "subtasks=relation_two_step", "stage2_steps=12", "lr_backbone=3e-3", "lr_latent=3e-3"]
    config = build_config("micro-lame", settings)
    assert train(config, tmp_path / "run", show_progress=False).complete
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    stage2 = [entry for entry in logged if entry.get("stage") == 2]
    assert stage2 and all(entry["relation_lookup"] > 0 for entry in stage2)
    assert min(e["relation_lookup"] for e in stage2[-3:]) < stage2[0]["relation_lookup"]


def test_the_config_refuses_a_relation_look_up_it_cannot_read():
    assert build_config("micro-lame", ["relation_lookup_weight=1.0"]).relation_lookup_from == "reasons"
    assert build_config("micro-discriminative", ["relation_lookup_weight=1.0", "relation_lookup_from=embed"])
    for preset in ("micro-discriminative", "micro-sequential", "micro-cot"):
        with pytest.raises(LameError, match="relation_lookup_from=reasons needs parallel reason tokens"):
            build_config(preset, ["relation_lookup_weight=1.0"])
    with pytest.raises(LameError, match="relation_lookup_from=embed needs a one-pass mode"):
        build_config("micro-lame", ["relation_lookup_weight=1.0", "relation_lookup_from=embed", "embed_reads=reasons"])
    with pytest.raises(LameError, match="reasons or embed"):
        build_config("micro-lame", ["relation_lookup_weight=1.0", "relation_lookup_from=word"])
    with pytest.raises(LameError, match=">= 0"):
        build_config("micro-lame", ["relation_lookup_weight=-1"])
