"""`self_distill`: one pass's `[EMBED]` states pulled toward the same model's states after the gold
rationale (the teacher pass, which trains with the contrastive loss too)."""

from __future__ import annotations

import pytest
import torch

from lame_tools.errors import LameError
from lame_tools.losses import state_distill_loss
from lame_tools.train import build_config
from lame_tools.train.build import build_model, set_stage
from lame_tools.train.data import make_batch
from lame_tools.train.step import embedding_loss, rationale_ids

RENAMED_SCENE = ["scene_head_weight=1.0", "scene_words=true", "scene_words_only=true", "rename_words=1.0"]


def test_state_distill_loss_against_a_hand_computation():
    teacher = torch.tensor([[[1.0, 3.0]], [[0.0, 4.0]]])  # 2 rows, 1 layer, 2 dims
    student = torch.tensor([[[2.0, 3.0]], [[0.0, 0.0]]], requires_grad=True)
    # row 0: |diff| (1, 0), teacher std (unbiased, 2 values) sqrt(2) -> mean 0.5 / sqrt(2)
    # row 1: |diff| (0, 4), teacher std sqrt(8) -> mean 2 / sqrt(8)
    expected = (0.5 / 2**0.5 + 2 / 8**0.5) / 2
    loss = state_distill_loss(student, teacher)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(state_distill_loss(teacher, teacher)) == 0.0
    live_teacher = teacher.clone().requires_grad_(True)
    state_distill_loss(student, live_teacher).backward()
    assert student.grad is not None and live_teacher.grad is None  # the teacher only shows the way
    with pytest.raises(ValueError, match="differ"):
        state_distill_loss(student, teacher[:, :, :1])


def test_embed_pass_gives_embed_after_every_layer_without_changing_the_embedding():
    config = build_config("micro-lame")
    model = build_model(config).eval()
    batch = make_batch(config, 0)
    prepared = model.prepare(batch.queries, "latent")
    k = model.num_reason_tokens
    with torch.no_grad():
        plain = model.embed_pass(prepared, k)
        full = model.embed_pass(prepared, k, layers=True)
        hidden = model.backbone_forward(prepared, output_hidden_states=True).hidden_states
    assert plain.embed_layers is None
    layers = len(hidden) - 1
    assert full.embed_layers.shape == (len(batch.queries), layers, plain.embed_states.shape[-1])
    torch.testing.assert_close(full.embeddings, plain.embeddings)
    torch.testing.assert_close(full.reason_states, plain.reason_states)
    torch.testing.assert_close(full.embed_layers[:, -1], plain.embed_states)
    torch.testing.assert_close(full.embed_layers[:, 0], hidden[1][:, -1])


@pytest.mark.parametrize("preset", ["micro-lame", "micro-discriminative"])
def test_a_distilled_step_adds_the_teacher_and_the_distance_and_leaves_the_rest(preset):
    plain_config = build_config(preset)
    config = build_config(preset, ["self_distill=2.0", "self_distill_teacher=0.5"])
    model = build_model(config).eval()  # no dropout: both steps see the same passes
    step = config.stage1_steps
    set_stage(model, config, 2)
    torch.manual_seed(0)
    plain = embedding_loss(model, plain_config, step, 0, 1)
    torch.manual_seed(0)
    distilled = embedding_loss(model, config, step, 0, 1)
    assert "distill" not in plain and "teacher" not in plain
    assert distilled["distill"] > 0 and distilled["teacher"] > 0
    torch.testing.assert_close(distilled["contrastive"], plain["contrastive"])
    added = 2.0 * distilled["distill"] + 0.5 * distilled["teacher"]
    torch.testing.assert_close(distilled["loss"].detach(), plain["loss"].detach() + added)
    # the teacher is the model's own CoT reading after the gold rationale: its distance is zero only
    # for a student that reads exactly those states, and the loss the teacher trains on is finite
    batch = make_batch(config, step)
    with torch.no_grad():
        cot = model.forward_cot(batch.queries, rationale_ids(model.processor.tokenizer, batch.examples))
    assert torch.isfinite(distilled["teacher"]) and cot.embeddings.shape[0] == len(batch.queries)


def test_the_distance_trains_the_reason_rows():
    config = build_config("micro-lame", ["self_distill=1.0", "self_distill_teacher=0.0"])
    model = build_model(config)
    step = config.stage1_steps
    set_stage(model, config, 2)
    grads = []
    for c in (config, build_config("micro-lame")):
        model.zero_grad(set_to_none=True)
        embedding_loss(model, c, step, 0, 1)["loss"].backward()
        grads.append(model.latent_embeddings.grad.clone())
    k = model.num_reason_tokens
    assert not torch.allclose(grads[0][:k], grads[1][:k])  # the distance reaches the reason rows


def test_the_scene_loss_reads_the_same_images_with_the_teacher_pass():
    """The teacher pass sees the query images again; the scene loss must still read each image once,
    in the order its scenes are listed."""
    plain_config = build_config("micro-discriminative", RENAMED_SCENE)
    config = build_config("micro-discriminative", [*RENAMED_SCENE, "self_distill=1.0"])
    model = build_model(config).eval()
    step = config.stage1_steps
    set_stage(model, config, 2)
    plain = embedding_loss(model, plain_config, step, 0, 1)
    distilled = embedding_loss(model, config, step, 0, 1)
    assert distilled["distill"] > 0
    torch.testing.assert_close(distilled["scene"], plain["scene"])
    torch.testing.assert_close(distilled["contrastive"], plain["contrastive"])


@pytest.mark.parametrize("preset,settings,message", [
    ("micro-sequential", ["self_distill=1.0"], "one-pass mode"),
    ("micro-cot", ["self_distill=1.0"], "one-pass mode"),
    ("micro-lame", ["self_distill=-1.0"], "loss weights >= 0"),
])
def test_self_distill_is_refused_where_it_has_no_one_pass(preset, settings, message):
    config = build_config(preset, settings)
    with pytest.raises(LameError, match=message):
        config.self_distill_weights()
    if preset == "micro-sequential":  # a training step refuses it too, rather than training without it
        model = build_model(config)
        set_stage(model, config, 2)
        with pytest.raises(LameError, match=message):
            embedding_loss(model, config, config.stage1_steps, 0, 1)
