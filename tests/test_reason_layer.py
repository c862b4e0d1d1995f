"""`reason_layer`: the layer whose reason states the latent decoder reads, and `lr_vision`."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lame_tools.config import LameConfig
from lame_tools.data.shapes import VOCABULARY
from lame_tools.model import LameModel
from lame_tools.probe.hooks import prepare_batch, run_prepared
from lame_tools.train import build_config, train
from lame_tools.train.build import build_model, make_optimizer
from lame_tools.train.data import make_batch


def _models(layer: int, preset: str = "micro"):
    build = dict(num_reason_tokens=4, embed_dim=32, seed=0, vocabulary=VOCABULARY)
    return LameModel.build_tiny(preset, **build), LameModel.build_tiny(preset, reason_layer=layer, **build)


def test_reason_states_come_from_the_named_layer_and_the_embedding_does_not_change(scenes):
    examples, images = scenes
    last, inner = _models(1, "tiny")  # 3 layers: the decoder reads layer 1's output
    items = last.make_items(images=images[:3], texts=[e.query_text for e in examples[:3]])
    with torch.no_grad():
        a, b = last.forward_items(items, "latent"), inner.forward_items(items, "latent")
        out = inner.backbone_forward(inner.prepare(items, "latent"), output_hidden_states=True)
    torch.testing.assert_close(a.embeddings, b.embeddings)
    torch.testing.assert_close(a.embed_states, b.embed_states)
    assert b.reason_states.shape == a.reason_states.shape == (3, 4, a.embed_states.shape[-1])
    torch.testing.assert_close(b.reason_states, out.hidden_states[1][:, -5:-1])
    assert not torch.allclose(a.reason_states, b.reason_states)
    # reason_layer = the layer count is the last layer's (normed) output, as 0 is
    torch.testing.assert_close(_models(3, "tiny")[1].forward_items(items, "latent").reason_states, a.reason_states)
    # the probes' pass reads the same states
    prepared = prepare_batch(inner, items, "latent")
    torch.testing.assert_close(run_prepared(inner, prepared).reason_states, b.reason_states)


def test_reason_layer_is_saved_and_out_of_range_refused(tmp_path):
    _, inner = _models(1)  # micro: one layer
    inner.save_pretrained(tmp_path / "m")
    assert LameModel.from_pretrained(tmp_path / "m", device="cpu").config.reason_layer == 1
    with pytest.raises(ValueError, match="reason_layer must be in 0..1"):
        LameConfig.from_dict({**inner.config.to_dict(), "reason_layer": 2})


def test_a_run_with_reason_layer_trains_and_saves_it(tmp_path):
    config = build_config("micro-lame", ["reason_layer=1"])
    model = build_model(config)
    assert model.config.reason_layer == 1
    out = model.forward_items(make_batch(config, 0).queries, "latent")
    out.reason_states.sum().backward()
    assert model.latent_embeddings.grad[:4].abs().sum() > 0
    result = train(config, tmp_path / "run", show_progress=False)
    assert result.complete
    assert LameModel.from_pretrained(tmp_path / "run" / "model", device="cpu").config.reason_layer == 1


def test_lr_vision_sets_the_vision_groups_rate_only():
    config = build_config("micro-lame", ["lr_backbone=0.0003", "lr_vision=0.002"])
    groups = {g["name"]: g["lr"] for g in make_optimizer(build_model(config), config).param_groups}
    assert groups["vision"] == pytest.approx(0.002) and groups["backbone"] == pytest.approx(0.0003)
    default = dataclasses.replace(config, lr_vision=0.0)
    groups = {g["name"]: g["lr"] for g in make_optimizer(build_model(default), default).param_groups}
    assert groups["vision"] == groups["backbone"] == pytest.approx(0.0003)


def test_the_rationale_l2_preset_is_the_queued_recipe(queued_config):
    assert build_config("see-lame-rationale-l2") == queued_config("see_5.json", "see-lame-rationale-l2")
    assert build_config("see-lame-rationale-l2").reason_layer == 2
