"""K in the loop: embeddings, top results and read-outs as reason tokens are removed K..0."""

from __future__ import annotations

import numpy as np
import pytest

from lame_tools.data.shapes import TARGET_INSTRUCTION
from lame_tools.errors import InputError
from lame_tools.index import EmbeddingIndex
from lame_tools.probe.hooks import prepare_batch, run_prepared
from lame_tools.probe.k_sweep import k_sweep


def test_k_sweep_rows_match_dropped_passes_and_the_index(micro_model, scenes):
    examples, images = scenes
    texts = ["a red circle", "a blue square", "two", "three", "a green triangle"]
    corpus = micro_model.encode(texts=texts, instruction=TARGET_INSTRUCTION)
    query = examples[0].query_item(images[0])
    sweep = k_sweep(micro_model, query, corpus, texts, top_k=3)
    k = micro_model.num_reason_tokens
    assert sweep.ks == list(range(k, -1, -1)) and sweep.embeddings.shape == (k + 1, corpus.shape[1])
    assert sweep.cosine_to_full[0] == pytest.approx(1.0, abs=1e-5)
    # k = 2: the same embedding as a pass with only [REASON_0], [REASON_1] in the suffix
    two = run_prepared(micro_model, prepare_batch(micro_model, [query], "latent", reason_indices=[0, 1]))
    assert np.allclose(sweep.embeddings[k - 2], two.embeddings[0].numpy(), atol=1e-5)
    index = EmbeddingIndex()
    index.add(corpus)
    scores, ids = index.search(sweep.embeddings, 3)
    assert np.array_equal(sweep.top_ids, ids) and sweep.top_labels == [texts[i] for i in ids[:, 0]]
    assert sweep.readouts[-1] == "" and all(isinstance(r, str) for r in sweep.readouts)
    frame = sweep.to_frame()
    assert list(frame["k"]) == sweep.ks
    assert len(sweep.plot().data) == 2 and sweep.how == "drop"


def test_k_sweep_mask_keeps_positions_and_differs_from_drop(micro_model, scenes):
    """`how="mask"`: k = K is the full pass, k = 0 is the pass whose [EMBED] reads none of the tokens
    at their places (`hiding`), and the sweep is not the drop sweep (that one moves [EMBED])."""
    from lame_tools.probe.ablation import _patch_hooks
    from lame_tools.probe.hooks import run_with_hooks

    examples, images = scenes
    texts = ["a red circle", "a blue square", "two", "three", "a green triangle"]
    corpus = micro_model.encode(texts=texts, instruction=TARGET_INSTRUCTION)
    query = examples[0].query_item(images[0])
    masked = k_sweep(micro_model, query, corpus, texts, top_k=2, how="mask")
    dropped = k_sweep(micro_model, query, corpus, texts, top_k=2, how="drop")
    k = micro_model.num_reason_tokens
    assert masked.how == "mask" and masked.rows()[0]["how"] == "mask"
    np.testing.assert_allclose(masked.embeddings[0], dropped.embeddings[0], atol=1e-5)  # K: nothing taken away
    assert np.abs(masked.embeddings[1:] - dropped.embeddings[1:]).max() > 1e-4
    full = prepare_batch(micro_model, [query], "latent")
    with micro_model.hiding(range(k)):  # k = 0 does not depend on what the tokens hold
        zeroed = run_with_hooks(micro_model, full, _patch_hooks(micro_model, list(range(k)), "zero", None))
    np.testing.assert_allclose(masked.embeddings[-1], zeroed.embeddings[0].numpy(), atol=1e-5)
    assert "positions kept" in masked.plot().layout.xaxis.title.text
    with pytest.raises(InputError):
        k_sweep(micro_model, query, corpus, texts, how="melt")


def test_k_sweep_refuses_a_model_without_reason_tokens_and_an_empty_corpus(micro_model, scenes, monkeypatch):
    examples, images = scenes
    with pytest.raises(InputError):
        k_sweep(micro_model, examples[0].query_item(images[0]), EmbeddingIndex(dim=32))
    monkeypatch.setattr(micro_model.config, "num_reason_tokens", 0)
    with pytest.raises(InputError):
        k_sweep(micro_model, examples[0].query_item(images[0]), np.eye(32, dtype=np.float32)[:3])
