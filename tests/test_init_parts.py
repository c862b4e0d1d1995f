"""`init_parts`: `vision` takes only the vision tower (and scene head) of its stage 0, so the
language model's depth can change over the same stage 0 (`fine` -> `fine-deep`); `model` continues a
trained model with every weight."""

from __future__ import annotations

import pytest
import torch

from lame_tools.data.shapes import VOCABULARY
from lame_tools.errors import LameError
from lame_tools.model import LameModel
from lame_tools.train import build_config
from lame_tools.train.build import build_model


@pytest.fixture(scope="module")
def stage0(tmp_path_factory):
    """A `fine` model standing in for the stage-0 output (random weights, a scene head), seed 7."""
    folder = tmp_path_factory.mktemp("stage0") / "model"
    LameModel.build_tiny("fine", num_reason_tokens=0, with_decoder=False, default_mode="discriminative",
                         seed=7, vocabulary=VOCABULARY, scene_head=True).save_pretrained(folder)
    return folder


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(("size", "layers"), [("fine-deep", 6), ("fine-deeper", 12)])
def test_vision_parts_load_the_tower_and_head_and_keep_the_deeper_lm_random(stage0, size, layers):
    source = LameModel.from_pretrained(stage0, device="cpu")
    config = build_config("see-discriminative", [f"size={size}", "init_parts=vision"], init_from=stage0)
    model = build_model(config)
    assert len(model.backbone.model.language_model.layers) == layers
    assert _states_equal(model.backbone.model.visual, source.backbone.model.visual)
    assert _states_equal(model.scene_head, source.scene_head)
    fresh = build_model(build_config("see-discriminative", [f"size={size}", "init_from=none"]))
    assert _states_equal(model.backbone.model.language_model, fresh.backbone.model.language_model)
    assert not _states_equal(model.backbone.model.visual, fresh.backbone.model.visual)


def test_a_size_mismatch_names_init_parts_and_a_bad_value_is_refused(stage0):
    with pytest.raises(LameError, match="init_parts=vision"):
        build_model(build_config("see-discriminative", ["size=fine-deep"], init_from=stage0))
    with pytest.raises(LameError, match="not the size this run builds"):
        build_model(build_config("see-discriminative", ["size=tiny", "init_parts=vision"], init_from=stage0))
    with pytest.raises(LameError, match="init_parts must be"):
        build_model(build_config("see-discriminative", ["init_parts=lm"], init_from=stage0))


def test_model_parts_continue_every_weight_and_refuse_other_settings(tmp_path):
    trained = LameModel.build_tiny("micro", num_reason_tokens=4, embed_dim=32, seed=3, vocabulary=VOCABULARY,
                                   scene_head=True)
    with torch.no_grad():
        trained.logit_scale.fill_(3.0)
    trained.save_pretrained(tmp_path / "trained")
    config = build_config("micro-lame", ["init_parts=model", "scene_head_weight=0.5"], init_from=tmp_path / "trained")
    model = build_model(config)
    # the reason / [EMBED] rows, head, temperature and decoder too, not only the backbone
    assert _states_equal(model, trained)
    assert float(model.logit_scale) == 3.0
    backbone_only = build_model(build_config("micro-lame", ["scene_head_weight=0.5"], init_from=tmp_path / "trained"))
    assert _states_equal(backbone_only.backbone, trained.backbone)
    assert not torch.equal(backbone_only.latent_embeddings, trained.latent_embeddings)
    with pytest.raises(LameError, match="init_parts=model needs the same settings"):
        build_model(build_config("micro-lame", ["init_parts=model", "num_reason_tokens=2", "scene_head_weight=0.5"],
                                 init_from=tmp_path / "trained"))
