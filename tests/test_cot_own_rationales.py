"""`cot_own_rationales`: CoT queries embedded after the model's own rationale in training."""

from __future__ import annotations

import pytest
import torch

from lame_tools.errors import LameError
from lame_tools.train import build_config, train
from lame_tools.train.build import build_model, set_stage
from lame_tools.train.data import make_batch
from lame_tools.train.step import (
    embedding_loss,
    own_rationale_embeddings,
    own_rationale_rows,
    rationale_ids,
    swapped_rationale_embeddings,
    swapped_rationale_rows,
)


def stage2_losses_against_gold(model, config):
    """One stage-2 step's losses on `model` under `config` and under the gold-only micro-cot config."""
    step = config.stage1_steps
    set_stage(model, config, 2)
    return embedding_loss(model, config, step, 0, 1), embedding_loss(model, build_config("micro-cot"), step, 0, 1)


def test_own_rationale_rows_are_a_share_of_the_slice_and_deterministic():
    config = build_config("micro-cot", ["cot_own_rationales=0.5"])
    subtasks = ["count"] * 8
    rows = own_rationale_rows(config, 7, 0, subtasks)
    assert len(rows) == 4 and rows == sorted(set(rows)) and all(0 <= r < 8 for r in rows)
    assert own_rationale_rows(config, 7, 0, subtasks) == rows
    assert {tuple(own_rationale_rows(config, s, 0, subtasks)) for s in range(10)} != {tuple(rows)}
    assert own_rationale_rows(build_config("micro-cot"), 7, 0, subtasks) == []


def test_own_rationale_rows_only_of_the_named_subtasks():
    config = build_config("micro-cot", ["cot_own_rationales=0.5", "cot_own_subtasks=i2t,t2i"])
    subtasks = ["i2t", "count", "t2i", "i2t", "refer", "t2i", "t2i", "i2t"]  # 6 retrieval rows
    for step in range(20):
        rows = own_rationale_rows(config, step, 0, subtasks)
        assert len(rows) == 3 and {subtasks[r] for r in rows} <= {"i2t", "t2i"}
    assert own_rationale_rows(config, 0, 0, ["count"] * 8) == []  # a reasoning batch keeps gold rationales
    with pytest.raises(LameError, match="cot_own_subtasks names unknown subtasks"):
        build_config("micro-cot", ["cot_own_subtasks=i2t,captions"])


def test_own_rationale_embeddings_replace_only_their_rows_and_train(tmp_path):
    config = build_config("micro-cot", ["cot_own_rationales=0.5"])
    model = build_model(config)
    batch = make_batch(config, 0)
    rows = [1, 3]
    base = torch.zeros(len(batch.queries), config.embed_dim)
    mixed = own_rationale_embeddings(model, batch, rows, base)
    items = [batch.queries[i] for i in rows]
    with torch.no_grad():
        expected = model.forward_cot(items, model.generate_rationales(items)).embeddings
    torch.testing.assert_close(mixed[rows].detach(), expected)
    assert mixed[[0, 2]].abs().sum() == 0
    # a stage-2 step: the loss differs from the gold-only run's and gradients reach the backbone
    own, gold = stage2_losses_against_gold(model, config)
    assert torch.isfinite(own["loss"]) and not torch.isclose(own["contrastive"], gold["contrastive"])
    torch.testing.assert_close(own["cot_lm"], gold["cot_lm"])  # the LM loss stays on the gold rationales
    own["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
    assert train(config, tmp_path / "run", show_progress=False).complete


def test_the_cot_ownret_preset_is_the_queued_recipe(queued_config):
    config = build_config("see-cot-ownret")
    assert config == queued_config("see_13.json", "see-cot-ownret")
    assert config.cot_own_subtask_list == ["i2t", "t2i"] and config.cot_own_rationales == 1.0


def test_swapped_rationale_rows_are_of_the_named_subtasks_and_not_own_rows():
    config = build_config("micro-cot", ["cot_swap_rationales=0.5", "cot_swap_subtasks=colour_of,shape_of",
                                        "cot_own_rationales=1.0", "cot_own_subtasks=colour_of"])
    subtasks = ["colour_of", "shape_of", "count", "shape_of", "shape_of", "colour_of", "shape_of", "count"]
    for step in range(20):
        rows = swapped_rationale_rows(config, step, 0, subtasks)
        assert rows == swapped_rationale_rows(config, step, 0, subtasks)  # a pure function of the step
        # colour_of rows are read after their own rationale, so only shape_of rows are swapped
        assert rows and {subtasks[r] for r in rows} == {"shape_of"} and len(rows) <= 3
    assert swapped_rationale_rows(build_config("micro-cot"), 3, 0, subtasks) == []
    with pytest.raises(LameError, match="cot_swap_subtasks names unknown subtasks"):
        build_config("micro-cot", ["cot_swap_subtasks=colour"])
    with pytest.raises(LameError, match="cot_swap_rationales is a share"):
        build_config("micro-cot", ["cot_swap_rationales=1.5"])


def test_swapped_rationale_embeddings_read_the_next_rows_gold_rationale_and_train(tmp_path):
    config = build_config("micro-cot", ["cot_swap_rationales=0.5"])
    model = build_model(config)
    batch = make_batch(config, 0)
    n = len(batch.queries)
    rows = [0, n - 1]
    base = torch.zeros(n, config.embed_dim)
    mixed = swapped_rationale_embeddings(model, batch, rows, base)
    tok = model.processor.tokenizer
    others = rationale_ids(tok, [batch.examples[1], batch.examples[0]])
    assert batch.examples[1].rationale != batch.examples[0].rationale
    with torch.no_grad():
        expected = model.forward_cot([batch.queries[i] for i in rows], others).embeddings
        gold = model.forward_cot([batch.queries[i] for i in rows],
                                 rationale_ids(tok, [batch.examples[i] for i in rows])).embeddings
    torch.testing.assert_close(mixed[rows].detach(), expected)
    assert not torch.allclose(expected, gold)  # another scene's rationale moves the embedding
    assert mixed[1:n - 1].abs().sum() == 0
    swapped, plain = stage2_losses_against_gold(model, config)
    assert not torch.isclose(swapped["contrastive"], plain["contrastive"])
    torch.testing.assert_close(swapped["cot_lm"], plain["cot_lm"])  # the LM loss stays on each row's own
    assert train(config, tmp_path / "run", show_progress=False).complete
