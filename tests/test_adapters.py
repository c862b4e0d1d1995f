"""Adapters for real checkpoints, verified on tiny random Qwen2-VL models of the same class with the
same special tokens and prompt layouts (UME-R1, VLM2Vec-V2 last-token pooling, LaME from a Qwen2-VL)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import LogitsProcessor, LogitsProcessorList

from lame_tools.adapters import LameAdapter, LastTokenAdapter, UmeR1Adapter, load_lane
from lame_tools.backbone import (
    build_backbone,
    build_image_processor,
    build_tiny_backbone_config,
    build_tokenizer,
    load_backbone,
)
from lame_tools.config import get_preset
from lame_tools.data.shapes import VOCABULARY
from lame_tools.errors import ModelLoadError
from lame_tools.lora import lora_scale, merge_lora
from lame_tools.timing import race, race_inputs, run_lane

UME_WORDS = ["<", ">", "/", "think", "answer", "represent", "embeddings", "input"]


@pytest.fixture(scope="module")
def ume_folder(tmp_path_factory):
    """A tiny random Qwen2-VL checkpoint folder whose tokenizer holds UME-R1's two added tokens."""
    folder = tmp_path_factory.mktemp("ume-r1-tiny")
    tokenizer = build_tokenizer(sorted(set(VOCABULARY) | set(UME_WORDS)))
    tokenizer.add_tokens(["<disc_emb>", "<gen_emb>"], special_tokens=True)
    backbone = build_backbone(build_tiny_backbone_config(tokenizer, get_preset("micro")), seed=1)
    backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    build_image_processor(112 * 112, 112 * 112).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def loaded(ume_folder):
    return load_backbone(ume_folder, device="cpu")


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _rope_forward(backbone, input_ids):
    """Reference: the full model (LM head included) on one unpadded row, last-layer states."""
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
             "mm_token_type_ids": torch.zeros_like(input_ids)}
    with torch.no_grad():
        out = backbone(**batch, output_hidden_states=True)
    return out.hidden_states[-1][0]


def test_ume_r1_prompt_layout(loaded, scenes):
    backbone, tokenizer, image_processor = loaded
    examples, images = scenes
    adapter = UmeR1Adapter(backbone, tokenizer, image_processor, "gen")
    prepared = adapter.prepare([images[0]], ["what colour is the circle ?"], "answer the question .")
    row = prepared.batch["input_ids"][0].tolist()
    head = _ids(tokenizer, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    tail = _ids(tokenizer, "<|im_end|>\n<|im_start|>assistant\n")
    assert row[: len(head)] == head and row[-len(tail) :] == tail
    ids = tokenizer.convert_tokens_to_ids
    n_image = row.count(ids("<|image_pad|>"))
    grid = prepared.batch["image_grid_thw"][0].tolist()
    assert n_image == grid[0] * grid[1] * grid[2] // 4
    start = row.index(ids("<|vision_start|>"))
    assert row[start + 1 + n_image] == ids("<|vision_end|>")
    disc = row.index(adapter.disc_id)
    query = _ids(tokenizer, "answer the question . what colour is the circle ?")
    assert row[start + 2 + n_image : disc] == query
    assert _ids(tokenizer, "represent")[0] in row[disc:]  # the generative instruction follows <disc_emb>
    disc_prompt = UmeR1Adapter(backbone, tokenizer, image_processor, "disc").prepare(
        [images[0]], ["what colour is the circle ?"], "answer the question ."
    )
    assert disc_prompt.batch["input_ids"][0].tolist()[disc + 1 :] == tail  # disc mode: nothing after it


def test_ume_r1_disc_reads_disc_emb_and_batches_consistently(loaded, scenes):
    backbone, tokenizer, image_processor = loaded
    adapter = UmeR1Adapter(backbone, tokenizer, image_processor, "disc")
    _, images = scenes
    texts = ["a red circle and a blue square", None]
    together = adapter.embed([None, images[1]], texts, "find the image that matches the caption .")
    for i in range(2):
        alone = adapter.embed([[None, images[1]][i]], [texts[i]], "find the image that matches the caption .")
        np.testing.assert_allclose(together[i].numpy(), alone[0].numpy(), atol=1e-4)
    prepared = adapter.prepare(None, ["a red circle"], "find the image that matches the caption .")
    ids = prepared.batch["input_ids"]
    reference = _rope_forward(backbone, ids)
    position = ids[0].tolist().index(adapter.disc_id)
    expected = torch.nn.functional.normalize(reference[position], dim=-1)
    np.testing.assert_allclose(adapter.embed(None, ["a red circle"], "find the image that matches the caption .")[0].numpy(),
                               expected.numpy(), atol=1e-4)


class _Script(LogitsProcessor):
    """Force a fixed continuation, whatever the random weights say."""

    def __init__(self, script: list[int], prompt_length: int) -> None:
        self.script, self.prompt_length = script, prompt_length

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_length
        forced = torch.full_like(scores, -1e9)
        forced[:, self.script[min(step, len(self.script) - 1)]] = 0.0
        return forced


def test_ume_r1_gen_reads_gen_emb_state_from_generation(loaded):
    backbone, tokenizer, image_processor = loaded
    adapter = UmeR1Adapter(backbone, tokenizer, image_processor, "gen", max_new_tokens=20)
    ids = tokenizer.convert_tokens_to_ids
    thought = _ids(tokenizer, "< think > red circle < / think > < answer > red < / answer >")
    script = [*thought, adapter.gen_id, ids("<|im_end|>")]
    prepared = adapter.prepare(None, ["a red circle"], "find the image that matches the caption .")
    prompt_length = prepared.batch["input_ids"].shape[1]
    adapter.generate_kwargs = {"logits_processor": LogitsProcessorList([_Script(script, prompt_length)])}
    run = run_lane(adapter, None, ["a red circle"], "find the image that matches the caption .")
    assert run.generated_ids == [[*thought, adapter.gen_id]]
    assert run.generated_tokens == [len(thought) + 1] and run.decode_steps == len(script)
    # reference: one full pass over prompt + generated text, state at <gen_emb>
    full = torch.cat([prepared.batch["input_ids"], torch.tensor([[*thought, adapter.gen_id]])], dim=1)
    expected = torch.nn.functional.normalize(_rope_forward(backbone, full)[-1], dim=-1)
    np.testing.assert_allclose(run.embeddings[0].numpy(), expected.numpy(), atol=1e-4)
    assert adapter.describe()["generative"] is True


def test_ume_r1_as_the_cot_lane_of_a_race(loaded, micro_model):
    backbone, tokenizer, image_processor = loaded
    cot = UmeR1Adapter(backbone, tokenizer, image_processor, "gen", max_new_tokens=4)
    events = list(race(LameAdapter(micro_model, "latent"), cot, None, *race_inputs(1), warmup=0, repeats=2))
    assert [e["event"] for e in events][:3] == ["start", "lane_start", "run_done"]
    assert [(e["lane"], e["round"]) for e in events if e["event"] == "run_done"] == [
        ("latent", 0), ("cot", 0), ("cot", 1), ("latent", 1)]
    assert events[-1]["event"] == "done" and events[-2]["lane"] == "cot" and len(events[-2]["runs_ms"]) == 2
    assert events[-2]["tokens"] <= 4 and events[0]["lanes_info"]["cot"]["adapter"] == "UmeR1Adapter"


def test_tokenizer_without_ume_tokens_is_refused(micro_model):
    with pytest.raises(ModelLoadError):
        UmeR1Adapter(micro_model.backbone, micro_model.processor.tokenizer, micro_model.processor.image_processor)


def test_last_token_adapter_layout_and_pooling(loaded, scenes):
    backbone, tokenizer, image_processor = loaded
    adapter = LastTokenAdapter(backbone, tokenizer, image_processor)
    _, images = scenes
    prepared = adapter.prepare([images[0], None], [None, "a red circle"], "represent the image .")
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    lengths = prepared.batch["attention_mask"].sum(1).tolist()
    first = prepared.batch["input_ids"][0, -lengths[0] :].tolist()
    n_image = first.count(image_pad)
    assert first[:n_image] == [image_pad] * n_image and first[n_image:] == _ids(tokenizer, "represent the image .")
    second = prepared.batch["input_ids"][1, -lengths[1] :].tolist()
    assert second == _ids(tokenizer, "represent the image . a red circle")
    both = adapter.embed([images[0], None], [None, "a red circle"], "represent the image .")
    alone = adapter.embed([None], ["a red circle"], "represent the image .")
    np.testing.assert_allclose(both[1].numpy(), alone[0].numpy(), atol=1e-4)
    reference = _rope_forward(backbone, torch.tensor([second]))
    np.testing.assert_allclose(alone[0].numpy(), torch.nn.functional.normalize(reference[-1], dim=-1).numpy(), atol=1e-4)


Q_PROJ = "model.language_model.layers.0.self_attn.q_proj"
V_PROJ = "model.language_model.layers.0.self_attn.v_proj"


def _write_lora(folder, backbone, config, ranks=None, seed=0):
    """A LoRA adapter folder in peft's layout, with random A and B for layer 0's q_proj and v_proj."""
    modules = dict(backbone.named_modules())
    generator = torch.Generator().manual_seed(seed)
    tensors, deltas = {}, {}
    for name in (Q_PROJ, V_PROJ):
        r = (ranks or {}).get(name, config["r"])
        layer = modules[name]
        a = torch.randn(r, layer.in_features, generator=generator)
        b = torch.randn(layer.out_features, r, generator=generator)
        tensors[f"base_model.model.{name}.lora_A.weight"] = a
        tensors[f"base_model.model.{name}.lora_B.weight"] = b
        deltas[name] = b @ a
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    full = {"peft_type": "LORA", "target_modules": ["q_proj", "v_proj"], **config}
    (folder / "adapter_config.json").write_text(json.dumps(full))
    return deltas


def _weights(backbone):
    modules = dict(backbone.named_modules())
    return {name: modules[name].weight.detach().clone() for name in (Q_PROJ, V_PROJ)}


@pytest.fixture()
def fresh_backbone(ume_folder):
    return load_backbone(ume_folder, device="cpu")[0]


def test_merge_lora_plain(fresh_backbone, tmp_path):
    before = _weights(fresh_backbone)
    deltas = _write_lora(tmp_path, fresh_backbone, {"r": 2, "lora_alpha": 4})
    assert merge_lora(fresh_backbone, tmp_path, use_peft=False) == 2
    after = _weights(fresh_backbone)
    for name in (Q_PROJ, V_PROJ):  # alpha / r = 2
        np.testing.assert_allclose(after[name].numpy(), (before[name] + 2.0 * deltas[name]).numpy(), atol=1e-5)


def test_merge_lora_rslora_and_patterns(fresh_backbone, tmp_path):
    config = {"r": 4, "lora_alpha": 4, "use_rslora": True, "rank_pattern": {"v_proj": 2}, "alpha_pattern": {"v_proj": 8}}
    assert lora_scale(config, Q_PROJ) == (4, 2.0)  # rsLoRA: alpha / sqrt(r) = 4 / 2, not alpha / r = 1
    assert lora_scale(config, V_PROJ) == pytest.approx((2, 8 / 2**0.5))
    assert lora_scale({"r": 4, "lora_alpha": 4}, Q_PROJ) == (4, 1.0)
    before = _weights(fresh_backbone)
    deltas = _write_lora(tmp_path, fresh_backbone, config, ranks={V_PROJ: 2})
    merge_lora(fresh_backbone, tmp_path, use_peft=False)
    after = _weights(fresh_backbone)
    np.testing.assert_allclose(after[Q_PROJ].numpy(), (before[Q_PROJ] + 2.0 * deltas[Q_PROJ]).numpy(), atol=1e-5)
    np.testing.assert_allclose(after[V_PROJ].numpy(), (before[V_PROJ] + 8 / 2**0.5 * deltas[V_PROJ]).numpy(), atol=1e-5)


def test_merge_lora_refuses_what_the_plain_merge_cannot_apply(fresh_backbone, tmp_path):
    before = _weights(fresh_backbone)
    _write_lora(tmp_path, fresh_backbone, {"r": 2, "lora_alpha": 4, "use_dora": True})
    with pytest.raises(ModelLoadError, match="DoRA"):
        merge_lora(fresh_backbone, tmp_path, use_peft=False)
    _write_lora(tmp_path, fresh_backbone, {"r": 2, "lora_alpha": 4, "modules_to_save": ["lm_head"]})
    with pytest.raises(ModelLoadError, match="modules_to_save.*peft"):
        merge_lora(fresh_backbone, tmp_path, use_peft=False)
    _write_lora(tmp_path, fresh_backbone, {"r": 3, "lora_alpha": 4})
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4}))
    with pytest.raises(ModelLoadError, match="do not fit"):
        merge_lora(fresh_backbone, tmp_path, use_peft=False)
    after = _weights(fresh_backbone)
    assert all(torch.equal(before[name], after[name]) for name in before)  # nothing half-merged
    with pytest.raises(ModelLoadError, match="no LoRA adapter"):
        merge_lora(fresh_backbone, tmp_path / "missing", use_peft=False)


def test_merge_lora_with_peft_matches_the_plain_merge(ume_folder, tmp_path):
    pytest.importorskip("peft")
    config = {"r": 4, "lora_alpha": 4, "use_rslora": True, "rank_pattern": {"v_proj": 2}, "alpha_pattern": {"v_proj": 8}}
    plain, with_peft = (load_backbone(ume_folder, device="cpu")[0] for _ in range(2))
    _write_lora(tmp_path, plain, config, ranks={V_PROJ: 2})
    merge_lora(plain, tmp_path, use_peft=False)
    assert merge_lora(with_peft, tmp_path, use_peft=True) > 0
    assert type(dict(with_peft.named_modules())[Q_PROJ]) is torch.nn.Linear  # peft's layers are gone again
    for name, weight in _weights(plain).items():
        np.testing.assert_allclose(_weights(with_peft)[name].numpy(), weight.numpy(), atol=1e-5)


def test_two_lanes_of_one_lora_folder_merge_it_once(ume_folder, loaded, tmp_path):
    base = _weights(loaded[0])
    deltas = _write_lora(tmp_path / "lora", loaded[0], {"r": 2, "lora_alpha": 2,
                                                         "base_model_name_or_path": str(ume_folder)})
    first = load_lane("latent", tmp_path / "lora", "vlm2vec", device="cpu")
    second = load_lane("discriminative", tmp_path / "lora", "vlm2vec", device="cpu")
    assert first.backbone is second.backbone  # one cached copy of the merged weights
    for name, weight in _weights(second.backbone).items():
        np.testing.assert_allclose(weight.numpy(), (base[name] + deltas[name]).numpy(), atol=1e-5)


def test_lame_from_a_qwen2_vl_base(ume_folder):
    adapter = load_lane("latent", ume_folder, "qwen2-vl-base", device="cpu")
    model = adapter.model
    assert model.config.prompt_format == "qwen2-vl-chat"
    run = run_lane(adapter, None, ["a red circle"], "find the image that matches the caption .")
    expected = model.encode(texts=["a red circle"], instruction="find the image that matches the caption .")
    np.testing.assert_allclose(run.embeddings.numpy(), expected, atol=1e-5)
    prepared = adapter.prepare(None, ["a red circle"], "find the image that matches the caption .")
    row = prepared.batch["input_ids"][0].tolist()
    k = model.num_reason_tokens
    assert row[-(k + 1) :] == [*model.processor.reason_token_ids(k), model.processor.embed_token_id]
    tail = _ids(model.processor.tokenizer, "<|im_end|>\n<|im_start|>assistant\n")
    assert row[-(k + 1) - len(tail) : -(k + 1)] == tail


def test_hub_ids_need_allow_hub():
    with pytest.raises(ModelLoadError, match="allow"):
        load_lane("cot", "zhibinlan/UME-R1-2B", "ume-r1")


def test_lame_cot_reads_embed_from_the_kv_cache_like_the_reread_pass(micro_model):
    """The CoT lane's default read (one cached step feeding LaME's own [EMBED] row after generation)
    equals the re-read pass over prompt + rationale + [EMBED], for rows that stopped early (masked
    tail), ran to the cap (last token fed first), with and without an image, in one padded batch."""
    images, texts, instructions = race_inputs(4)
    images, texts = [images[0], None, images[2], None], [None, texts[1], texts[2], "a red circle"]
    cached, reread = LameAdapter(micro_model, "cot"), LameAdapter(micro_model, "cot", cot_read="reread")
    cap = 8
    run = run_lane(cached, images, texts, instructions, max_new_tokens=cap)
    lengths = run.generated_tokens
    assert any(n == cap for n in lengths) and any(n < cap for n in lengths)  # both paths are exercised
    with torch.no_grad():
        expected = micro_model.forward_cot(micro_model.make_items(images, texts, instructions), run.generated_ids)
    assert (run.embeddings - expected.embeddings).abs().max().item() < 1e-4
    again = run_lane(reread, images, texts, instructions, max_new_tokens=cap)
    assert again.generated_ids == run.generated_ids
    assert (again.embeddings - run.embeddings).abs().max().item() < 1e-4
    assert cached.describe()["cot_read"] == "cache" and reread.describe()["cot_read"] == "reread"
    with pytest.raises(ValueError, match="cot_read"):
        LameAdapter(micro_model, "cot", cot_read="twice")


def test_lame_sequential_lane_is_one_pass_with_k_steps(micro_model):
    lane = LameAdapter(micro_model, "sequential")
    assert not lane.generative and lane.num_reason_tokens == micro_model.num_reason_tokens
    info = lane.describe()
    assert info["mode"] == "sequential" and info["trained_for_mode"] is False
    embeddings = lane.embed(*race_inputs(2))
    assert embeddings.shape == (2, micro_model.config.embed_dim)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(2), atol=1e-5)
