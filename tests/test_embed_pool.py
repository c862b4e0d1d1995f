"""`embed_pool="mean"`: the embedding head reads the mean of `[EMBED]`'s and the K latent states (our
departure from the paper, which reads `[EMBED]` alone)."""

from __future__ import annotations

import pytest
import torch

from lame_tools.config import LameConfig
from lame_tools.data.shapes import VOCABULARY
from lame_tools.model import LameModel
from lame_tools.train import build_config
from lame_tools.train.build import build_model


def _pair():
    build = dict(num_reason_tokens=4, embed_dim=32, seed=0, vocabulary=VOCABULARY)
    return LameModel.build_tiny("tiny", **build), LameModel.build_tiny("tiny", embed_pool="mean", **build)


def test_mean_pool_reads_embed_and_reason_states():
    paper, pooled = _pair()
    hidden = torch.randn(3, 9, pooled.backbone.config.text_config.hidden_size)
    k = pooled.num_reason_tokens
    embeddings, embed_states, reason_states = pooled.pool(hidden, k)
    expected = torch.nn.functional.normalize(pooled.embed_head(hidden[:, -1 - k:].mean(1)), dim=-1)
    torch.testing.assert_close(embeddings, expected)
    torch.testing.assert_close(embed_states, hidden[:, -1])  # the [EMBED] state itself is unchanged
    torch.testing.assert_close(reason_states, hidden[:, -1 - k:-1])
    # the paper's pool ignores the reason rows; the mean pool moves when they move
    moved = hidden.clone()
    moved[:, -1 - k:-1] += 1.0
    torch.testing.assert_close(paper.pool(moved, k)[0], paper.pool(hidden, k)[0])
    assert (pooled.pool(moved, k)[0] - embeddings).abs().max() > 1e-3
    # without reason tokens (discriminative, cot) both read [EMBED] alone
    torch.testing.assert_close(pooled.pool(hidden, 0)[0], paper.pool(hidden, 0)[0])


def test_mean_pool_changes_latent_mode_only(scenes):
    examples, images = scenes
    paper, pooled = _pair()
    items = paper.make_items(images=images[:2], texts=[e.query_text for e in examples[:2]])
    with torch.no_grad():
        torch.testing.assert_close(paper.forward_items(items, "discriminative").embeddings,
                                   pooled.forward_items(items, "discriminative").embeddings)
        assert not torch.allclose(paper.forward_items(items, "latent").embeddings,
                                  pooled.forward_items(items, "latent").embeddings)


def test_embed_pool_is_set_from_training_saved_and_refused_when_unknown(tmp_path):
    model = build_model(build_config("micro-lame", ["embed_pool=mean"]))
    assert model.config.embed_pool == "mean"
    model.save_pretrained(tmp_path / "m")
    assert LameModel.from_pretrained(tmp_path / "m", device="cpu").config.embed_pool == "mean"
    with pytest.raises(ValueError, match="embed_pool must be one of"):
        LameConfig.from_dict({**model.config.to_dict(), "embed_pool": "max"})
