from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from lame_tools.data.shapes import VOCABULARY
from lame_tools.errors import InputError, ModelLoadError
from lame_tools.model import LameModel
from lame_tools.processor import Item


def test_tiny_model_builds_offline_with_the_given_vocabulary():
    model = LameModel.build_tiny("micro", num_reason_tokens=2, vocabulary=VOCABULARY)
    vocab = model.processor.tokenizer.get_vocab()
    assert {"circle", "left", "?"} <= set(vocab)
    assert model.latent_embeddings.shape == (3, model.backbone.config.text_config.hidden_size)
    assert model.backbone.config.text_config.num_hidden_layers == 1  # the micro preset
    other = LameModel.build_tiny("micro", num_reason_tokens=2, vocabulary=["circle", "banana"])
    assert other.processor.unknown_words("a banana circle") == ["a"]


@pytest.mark.parametrize("mode", ["latent", "discriminative", "cot"])
def test_encode_image_text_and_pairs_unit_norm(micro_model, scenes, mode):
    examples, images = scenes
    texts = [e.query_text or "a red circle" for e in examples]
    for kwargs in ({"images": images}, {"texts": texts}, {"images": images, "texts": texts}):
        out = micro_model.encode(**kwargs, instruction="answer the question about the image .", batch_size=3, mode=mode)
        assert out.dtype == np.float32 and out.shape == (8, micro_model.config.embed_dim)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_batches_of_mixed_image_grids_equal_one_by_one(micro_model, scenes):
    examples, images = scenes
    grids = {im.size for im in images}
    assert len(grids) > 2, "the fixture must mix image sizes"
    texts = [e.query_text or None for e in examples]
    # mixed batch: image+text, image-only, text-only rows together
    mixed_images = [im if i % 3 else None for i, im in enumerate(images)]
    mixed_texts = [t if i % 4 else None for i, t in enumerate(texts)]
    mixed_texts = [t or ("a red circle" if im is None else None) for t, im in zip(mixed_texts, mixed_images)]
    for mode in ("latent", "discriminative"):
        batched = micro_model.encode(images=mixed_images, texts=mixed_texts, batch_size=8, mode=mode)
        single = np.concatenate(
            [micro_model.encode(images=[im] if im else None, texts=[t] if t else None, mode=mode)
             if im or t else None for im, t in zip(mixed_images, mixed_texts)]
        )
        np.testing.assert_allclose(batched, single, atol=2e-5)


def test_modes_differ_and_reason_tokens_matter(micro_model, scenes):
    _, images = scenes
    latent = micro_model.encode(images=images[:2], mode="latent")
    disc = micro_model.encode(images=images[:2], mode="discriminative")
    assert latent.shape == disc.shape
    assert not np.allclose(latent, disc)
    # the reason tokens' own input rows feed the latent embedding and nothing else
    k = micro_model.num_reason_tokens
    saved = micro_model.latent_embeddings.detach().clone()
    try:
        with torch.no_grad():
            micro_model.latent_embeddings[:k] += torch.randn_like(micro_model.latent_embeddings[:k])
        assert not np.allclose(micro_model.encode(images=images[:2], mode="latent"), latent, atol=1e-4)
        np.testing.assert_array_equal(micro_model.encode(images=images[:2], mode="discriminative"), disc)
    finally:
        with torch.no_grad():
            micro_model.latent_embeddings.copy_(saved)
    np.testing.assert_array_equal(micro_model.encode(images=images[:2], mode="latent"), latent)


def test_prepare_builds_each_mode_suffix_on_the_device(micro_model, scenes):
    _, images = scenes
    items = micro_model.make_items(images[:2], ["a red circle", None])
    proc = micro_model.processor
    k = micro_model.num_reason_tokens
    latent = micro_model.prepare(items, "latent")
    assert latent["input_ids"][:, -(k + 1):].tolist() == [proc.reason_token_ids(k) + [proc.embed_token_id]] * 2
    assert micro_model.prepare(items, "discriminative")["input_ids"][:, -1].tolist() == [proc.embed_token_id] * 2
    assert micro_model.prepare(items, "cot")["input_ids"][:, -1].tolist() == [proc.think_token_id] * 2
    read = micro_model.prepare(items, "cot", rationales=[[5, 6], [7]])
    assert read["input_ids"][0, -4:].tolist() == [proc.think_token_id, 5, 6, proc.embed_token_id]
    assert read["input_ids"][1, -3:].tolist() == [proc.think_token_id, 7, proc.embed_token_id]
    assert read["pixel_values"].dtype == micro_model.backbone.dtype
    assert all(v.device == micro_model.device for v in read.values())
    with pytest.raises(ValueError, match="cot mode"):
        micro_model.prepare(items, "latent", rationales=[[5], [6]])


def test_forward_cot_with_given_rationales_equals_the_read_pass(micro_model, scenes):
    _, images = scenes
    items = micro_model.make_items(images[:2], None)
    with torch.no_grad():
        generated = micro_model.generate_rationales(items)
        out = micro_model.forward_cot(items, generated)
        hidden = micro_model.hidden_states(micro_model.prepare(items, "cot", generated))
        expected = micro_model.pool(hidden, 0)[0]
    torch.testing.assert_close(out.embeddings, expected)
    assert out.rationale_ids == generated


def test_reason_states_shape(micro_model, scenes):
    _, images = scenes
    items = micro_model.make_items(images[:3], ["a red circle", None, "what is left of the blue square ?"])
    with torch.no_grad():
        out = micro_model.forward_items(items, "latent")
    hidden = micro_model.backbone.config.text_config.hidden_size
    assert out.reason_states.shape == (3, micro_model.num_reason_tokens, hidden)
    assert out.embed_states.shape == (3, hidden)


def test_cot_mode_generates_then_embeds(micro_model, scenes):
    _, images = scenes
    items = micro_model.make_items(images[:2], None)
    with torch.no_grad():
        out = micro_model.forward_items(items, "cot")
    assert out.rationale_ids is not None and len(out.rationale_ids) == 2
    assert all(len(r) <= micro_model.config.cot_max_new_tokens for r in out.rationale_ids)
    forbidden = set(micro_model.processor.cot_suppressed_ids())
    assert not forbidden & {t for r in out.rationale_ids for t in r}


def test_save_and_load_bit_identical(micro_model, scenes, tmp_path):
    _, images = scenes
    before = micro_model.encode(images=images[:3], texts=["a", "b c", None])
    micro_model.save_pretrained(tmp_path / "m", training_info={"note": "test"})
    loaded = LameModel.from_pretrained(tmp_path / "m", device="cpu")
    after = loaded.encode(images=images[:3], texts=["a", "b c", None])
    assert np.array_equal(before, after)
    assert loaded.training_info == {"note": "test"}
    # saving over an existing folder replaces it atomically
    micro_model.save_pretrained(tmp_path / "m")
    assert not list(tmp_path.glob(".m.*"))


def test_bad_model_folders_give_one_sentence(micro_model, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        LameModel.from_pretrained(tmp_path / "nope")
    folder = micro_model.save_pretrained(tmp_path / "half")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        LameModel.from_pretrained(folder)
    weights.unlink()
    with pytest.raises(ModelLoadError, match="model.safetensors is missing"):
        LameModel.from_pretrained(folder)
    folder2 = micro_model.save_pretrained(tmp_path / "badjson")
    (folder2 / "lame_config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not a valid LaME config"):
        LameModel.from_pretrained(folder2)


def test_bad_inputs_to_encode(micro_model, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("hello")
    with pytest.raises(InputError, match="not an image"):
        micro_model.encode(images=[fake])
    with pytest.raises(InputError, match="empty"):
        micro_model.encode(texts=[""])
    with pytest.raises(InputError, match="pair them"):
        micro_model.encode(images=[Image.new("RGB", (9, 9))], texts=["a", "b"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = micro_model.encode(texts=["red " * 50_000])
    assert out.shape == (1, micro_model.config.embed_dim)
    assert any("truncated" in str(w.message) or "characters" in str(w.message) for w in caught)
    # the model still works after bad inputs
    assert micro_model.encode(texts=["a red circle"]).shape == (1, micro_model.config.embed_dim)


def test_unknown_words_are_reported(micro_model):
    assert micro_model.processor.unknown_words("what colour is the banana ?") == ["banana"]
    assert micro_model.processor.unknown_words("what colour is the circle ?") == []


def test_processor_layout_puts_suffix_last(micro_model, scenes):
    _, images = scenes
    items = [Item(images[0], "a red circle"), Item(None, "a blue square , a red circle and a green diamond")]
    suffix = micro_model.suffix_ids("latent")
    batch = micro_model.processor(items, suffix)
    for row in batch["input_ids"].tolist():
        assert row[-len(suffix):] == suffix
    assert batch["attention_mask"][1, 0] == 0  # the shorter row is left-padded


def test_shipped_default_loads_and_embeds(shipped_model):
    out = shipped_model.encode(texts=["a red circle"], instruction="represent the text .")
    assert out.shape == (1, shipped_model.config.embed_dim)


def test_sequential_latent_batches_like_one_by_one_and_runs_k_steps(micro_model, scenes):
    examples, images = scenes
    items = [e.query_item(im) for e, im in zip(examples, images)]
    calls = []
    hook = micro_model.backbone.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(kwargs["inputs_embeds"].shape[1]), with_kwargs=True
    )
    try:
        with torch.no_grad():
            batched = micro_model.forward_items(items, "sequential")
    finally:
        hook.remove()
    k = micro_model.num_reason_tokens
    assert calls[1:] == [1] * (k + 1)  # one prefill, then K latent steps and the [EMBED] step, one position each
    assert batched.reason_states.shape == (len(items), k, micro_model.backbone.config.text_config.hidden_size)
    with torch.no_grad():
        single = torch.cat([micro_model.forward_sequential([it]).embeddings for it in items])
        no_steps = micro_model.forward_sequential(items, num_steps=0).embeddings
        disc = micro_model.forward_items(items, "discriminative").embeddings
    torch.testing.assert_close(batched.embeddings, single, atol=2e-5, rtol=0)
    torch.testing.assert_close(no_steps, disc, atol=2e-5, rtol=0)  # zero steps: prompt + [EMBED], one pass


def test_hiding_the_steps_from_embed_leaves_the_prompt_pass(micro_model, scenes, monkeypatch):
    """`hiding`: with every latent step hidden, the sequential [EMBED] step reads the prompt alone, as
    the parallel pass's [EMBED] does with every reason token hidden (same positions); hiding some
    steps changes the embedding. A sequential model's ablation takes mask only."""
    from lame_tools.data.shapes import make_example
    from lame_tools.probe import ablate

    examples, images = scenes
    items = [e.query_item(im) for e, im in zip(examples, images)]
    k = micro_model.num_reason_tokens
    with torch.no_grad():
        full = micro_model.forward_sequential(items).embeddings
        with micro_model.hiding(range(k)):
            blind_seq = micro_model.forward_sequential(items).embeddings
            blind_par = micro_model.forward_items(items, "latent").embeddings
        with micro_model.hiding([0]):
            one = micro_model.forward_sequential(items).embeddings
    torch.testing.assert_close(blind_seq, blind_par, atol=2e-5, rtol=0)
    assert (blind_seq - full).abs().max() > 1e-4 and (one - full).abs().max() > 1e-6
    assert micro_model.hidden_from_embed == []
    seen = []
    with micro_model.hiding(range(k)):  # another thread (a background corpus fill) reads every token
        worker = threading.Thread(target=lambda: seen.append(micro_model.hidden_from_embed))
        worker.start()
        worker.join()
        assert micro_model.hidden_from_embed == list(range(k))
    assert seen == [[]]
    monkeypatch.setattr(micro_model.config, "default_mode", "sequential")
    queries = [make_example(0, "test", i, task="vqa") for i in range(4)]
    with pytest.raises(InputError, match="can be masked"):
        ablate(micro_model, queries, tokens="all", how="zero")
    masked = ablate(micro_model, queries, tokens="all", how="mask")
    usable = [e for e in queries if e.candidates and not e.target_has_image]
    with torch.no_grad():
        again = micro_model.forward_sequential([e.query_item() for e in usable]).embeddings.numpy()
        with micro_model.hiding(range(k)):
            hidden = micro_model.forward_sequential([e.query_item() for e in usable]).embeddings.numpy()
    assert np.allclose(masked.cosine[0], (again * hidden).sum(1), atol=1e-5)


def test_sequential_steps_feed_each_state_forward(micro_model, scenes):
    """Without the cache: step t's input embedding is the last-layer state at the position before it."""
    examples, images = scenes
    items = [examples[0].query_item(images[0])]
    k = micro_model.num_reason_tokens
    with torch.no_grad():
        out = micro_model.forward_sequential(items)
        batch = micro_model.prepare(items, "latent")
        embeds = micro_model.input_embeddings(batch["input_ids"]).clone()
        prompt = batch["input_ids"].shape[1] - k - 1
        kwargs = dict(
            attention_mask=batch["attention_mask"], position_ids=micro_model.position_ids(batch),
            pixel_values=batch["pixel_values"], image_grid_thw=batch["image_grid_thw"],
            mm_token_type_ids=batch["mm_token_type_ids"], use_cache=False,
        )
        for step in range(k):
            hidden = micro_model.backbone.model(input_ids=batch["input_ids"], inputs_embeds=embeds, **kwargs).last_hidden_state
            embeds[:, prompt + step] = hidden[:, prompt + step - 1]
        hidden = micro_model.backbone.model(input_ids=batch["input_ids"], inputs_embeds=embeds, **kwargs).last_hidden_state
    torch.testing.assert_close(out.embeddings, micro_model.pool(hidden, k)[0], atol=2e-5, rtol=0)
    torch.testing.assert_close(out.reason_states, hidden[:, prompt : prompt + k], atol=2e-5, rtol=0)
