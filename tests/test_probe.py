"""Probing: hooks equal eager attention, leave nothing behind, keep only the requested rows; the
attention grid, read-out, ablation, linear probes and CLI verbs behave as documented."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from lame_tools.constants import EMBED_TOKEN, reason_tokens
from lame_tools.data.shapes import make_example
from lame_tools.errors import InputError
from lame_tools.probe import (
    ProbeStates,
    ablate,
    asked_examples,
    attribute_labels,
    collect_states,
    fit_probes,
    hook_point_names,
    linear_probe,
    prepare_batch,
    probe_examples,
    readout_items,
    reason_attention_items,
    relational_examples,
    run_with_cache,
    run_with_hooks,
)


def _items(model, scenes, n=3, text_only_row=1):
    """A left-padded batch mixing image sizes and a text-only row."""
    examples, images = scenes
    items = model.make_items(images[:n], [e.query_text or None for e in examples[:n]], examples[0].instruction)
    items[text_only_row].image = None
    items[text_only_row].text = "what colour is the circle ?"
    return items


def _hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_recomputed_pattern_equals_eager_attention_on_left_padded_batch(micro_model, scenes):
    items = _items(micro_model, scenes)
    prepared = prepare_batch(micro_model, items, "latent")
    mask = prepared.batch["attention_mask"]
    assert (mask == 0).any(), "the batch must be left-padded for this test to mean anything"
    _, cache = run_with_cache(micro_model, prepared, "blocks.*.attn.hook_pattern")

    eager = copy.deepcopy(micro_model)
    eager.backbone.set_attn_implementation("eager")
    with torch.no_grad():
        out = eager.backbone_forward(prepared.batch, output_attentions=True)
    assert len(out.attentions) == len(micro_model.backbone.model.language_model.layers)
    for layer, reference in enumerate(out.attentions):
        got = cache[f"blocks.{layer}.attn.hook_pattern"]
        expected = reference[:, :, prepared.positions].float()
        assert got.shape == expected.shape  # [batch, head, K + 1, seq]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
        # padding keys get nothing
        assert float(got.masked_select(~mask.bool()[:, None, None, :].expand_as(got)).abs().max()) == 0.0


def test_hooks_are_removed_even_when_the_pass_raises(micro_model, scenes):
    items = _items(micro_model, scenes, n=2)
    before = _hook_count(micro_model)

    def explode(value, ctx):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_with_hooks(micro_model, items, [("blocks.0.hook_resid_post", explode)], mode="latent")
    assert _hook_count(micro_model) == before
    with pytest.raises(InputError):
        run_with_cache(micro_model, items, ["blocks.0.hook_resid_post", "blocks.99.nothing"])
    assert _hook_count(micro_model) == before
    run_with_cache(micro_model, items, None)  # every point, then all removed
    assert _hook_count(micro_model) == before


def test_run_with_cache_keeps_only_requested_names_and_rows(micro_model, scenes):
    items = _items(micro_model, scenes)
    k = micro_model.num_reason_tokens
    hidden = micro_model.backbone.config.text_config.hidden_size
    heads = micro_model.backbone.config.text_config.num_attention_heads
    out, cache = run_with_cache(micro_model, items, ["blocks.0.hook_resid_post", "blocks.0.attn.hook_pattern"])
    seq = cache.input_ids.shape[1]
    assert set(cache.keys()) == {"blocks.0.attn.hook_pattern", "blocks.0.hook_resid_post"}
    assert cache["blocks.0.hook_resid_post"].shape == (3, k + 1, hidden)  # rows, not [batch, seq, hidden]
    assert cache["blocks.0.attn.hook_pattern"].shape == (3, heads, k + 1, seq)  # rows, not [.., seq, seq]
    assert cache.nbytes() == 4 * (3 * (k + 1) * hidden + 3 * heads * (k + 1) * seq)
    assert cache.query_tokens == [*reason_tokens(k), EMBED_TOKEN]
    np.testing.assert_array_equal(cache.positions, np.arange(seq - k - 1, seq))
    # capturing does not change the result
    with torch.no_grad():
        reference = micro_model.forward_items(items, "latent")
    torch.testing.assert_close(out.embeddings, reference.embeddings)
    # the last layer's final-norm rows are the model's own reason/[EMBED] states
    _, final = run_with_cache(micro_model, items, "ln_final.hook_normalized")
    torch.testing.assert_close(final["ln_final.hook_normalized"][:, :k], reference.reason_states)
    assert "hook_embed" in hook_point_names(micro_model)


def test_reason_attention_grid_follows_the_merged_patch_grid(micro_model, scenes):
    items = _items(micro_model, scenes)
    results = reason_attention_items(micro_model, items, mode="latent")
    prepared = prepare_batch(micro_model, items, "latent")
    grids = prepared.batch["image_grid_thw"].tolist()
    k = micro_model.num_reason_tokens
    layers = len(micro_model.backbone.model.language_model.layers)
    heads = micro_model.backbone.config.text_config.num_attention_heads
    image_rows = [i for i, it in enumerate(items) if it.image is not None]
    for image_index, row in enumerate(image_rows):
        att = results[row]
        _, h, w = grids[image_index]
        assert att.image_attention.shape == (layers, heads, k + 1, h // 2, w // 2)
        assert att.image.shape[:2] == (items[row].image.height, items[row].image.width)
        total = att.image_attention.sum((-1, -2)) + att.text_attention.sum(-1)
        np.testing.assert_allclose(total, 1.0, atol=1e-5)
        np.testing.assert_allclose(att.image_mass, att.image_attention.sum((-1, -2)), atol=1e-6)
        assert "<|image_pad|>" not in att.text_tokens and "<|endoftext|>" not in att.text_tokens
        assert att.text_tokens[-1] == "[EMBED]"
    text_only = results[1]
    assert text_only.image_attention is None and text_only.grid is None
    assert "circle" in text_only.text_tokens
    np.testing.assert_allclose(text_only.text_attention.sum(-1), 1.0, atol=1e-5)

    # row-major order of the merged grid, checked against Qwen2-VL's own 3-D rotary positions
    positions = micro_model.position_ids(prepared.batch)  # [3, batch, seq]: (t, h, w)
    row = image_rows[0]
    is_image = prepared.batch["input_ids"][row] == micro_model.processor.image_token_id
    hh, ww = positions[1, row][is_image], positions[2, row][is_image]
    gw = grids[0][2] // 2
    index = torch.arange(len(hh))
    assert torch.equal(hh - hh.min(), index // gw) and torch.equal(ww - ww.min(), index % gw)


def test_discriminative_mode_probes_only_embed(micro_model, scenes):
    att = reason_attention_items(micro_model, _items(micro_model, scenes, n=2), mode="discriminative")[0]
    assert att.query_tokens == ["[EMBED]"] and att.image_attention.shape[2] == 1


def test_readout_decodes_reason_states(micro_model, scenes):
    items = _items(micro_model, scenes, n=2)
    result = readout_items(micro_model, items, max_new_tokens=5)
    assert len(result.texts) == 2 and len(result.token_ids) == 2
    for ids, probs in zip(result.token_ids, result.token_probs):
        assert len(ids) <= 5 and len(probs) == len(ids)
        assert np.all((probs >= 0) & (probs <= 1))
    beams = readout_items(micro_model, items, max_new_tokens=4, num_beams=2)
    assert len(beams.texts) == 2
    only = readout_items(micro_model, items, max_new_tokens=3, keep=[1])
    assert only.kept_reason_tokens == [1]
    with pytest.raises(InputError):
        readout_items(micro_model, items, keep=[99])


def test_ablation_reports_cosine_and_ranks(micro_model):
    examples = [make_example(0, "test", i, task="vqa") for i in range(4)]  # short answer candidates
    zero_all = ablate(micro_model, examples, tokens="all", how="zero")
    n = zero_all.cosine.shape[1]
    assert n == sum(1 for e in examples if e.candidates and not e.target_has_image) and n > 0
    assert zero_all.cosine.shape == (1, n) and np.all(zero_all.cosine < 1 - 1e-6)
    assert np.all((zero_all.rank_before >= 1) & (zero_all.rank_before <= zero_all.n_candidates))
    drop = ablate(micro_model, examples, tokens=[0, [1, 2]], how="drop")
    assert drop.conditions == ["drop [REASON_0]", "drop [REASON_1,REASON_2]"]
    assert drop.rank_after.shape == (2, n) and np.all(drop.cosine < 1)
    # swapping a token's stream with the same query's own stream changes nothing
    usable = [e for e in examples if e.candidates and not e.target_has_image]
    same = ablate(micro_model, usable, tokens=[[0, 3]], how="swap", donors=usable)
    np.testing.assert_allclose(same.cosine, 1.0, atol=1e-5)
    assert "condition,query,cosine" in same.to_csv().splitlines()[0]
    assert {"condition", "mean_cosine", "mean_rank_change", "hit1_before", "hit1_after"} <= set(same.summary()[0])
    with pytest.raises(InputError):
        ablate(micro_model, examples, how="melt")


def test_mask_hides_the_tokens_from_embed_and_keeps_every_position(micro_model, scenes):
    """`mask`: [EMBED] reads nothing of the hidden tokens (its attention on them is 0 and zeroing them
    changes nothing), while the sequence and its positions stay (unlike drop)."""
    from lame_tools.probe.ablation import _patch_hooks
    from lame_tools.probe.hooks import run_prepared

    k = micro_model.num_reason_tokens
    items = _items(micro_model, scenes)
    prepared = prepare_batch(micro_model, items, "latent")
    original = run_prepared(micro_model, prepared).embeddings
    dropped = run_prepared(micro_model, prepare_batch(micro_model, items, "latent", reason_indices=[])).embeddings
    with micro_model.hiding(range(k)):
        masked = run_prepared(micro_model, prepared).embeddings
        zeroed = run_with_hooks(micro_model, prepared, _patch_hooks(micro_model, list(range(k)), "zero", None)).embeddings
        attention = reason_attention_items(micro_model, items)
    assert not micro_model.restricts_attention  # the model reads as before after the block
    torch.testing.assert_close(zeroed, masked, atol=1e-5, rtol=0)  # the hidden tokens' content is not read
    assert (masked - original).abs().max() > 1e-4 and (masked - dropped).abs().max() > 1e-4
    embed_row = attention[0].query_tokens.index(EMBED_TOKEN)
    on_reasons = [t in reason_tokens(k) for t in attention[0].text_tokens]
    assert sum(on_reasons) == k and attention[0].text_attention[:, :, embed_row][..., on_reasons].max() < 1e-6
    assert attention[0].text_attention[:, :, 0][..., on_reasons].sum() > 0  # the reason rows still read them
    one = ablate(micro_model, [make_example(0, "test", i, task="vqa") for i in range(4)], tokens=[[1]], how="mask")
    assert one.conditions == ["mask [REASON_1]"] and np.all(one.cosine < 1)


def test_ablation_ranks_ties_pessimistically_on_a_collapsed_model(micro_model):
    """A model whose every embedding is the same point must not score Hit@1 by the order of its candidates."""
    collapsed = copy.deepcopy(micro_model)
    with torch.no_grad():
        collapsed.embed_head.weight.zero_()
        collapsed.embed_head.bias.fill_(1.0)  # every query and candidate embeds to one unit vector
    examples = [make_example(0, "test", i, task="vqa") for i in range(4)]
    result = ablate(collapsed, examples, tokens=[0], how="zero")
    np.testing.assert_array_equal(result.rank_before, result.n_candidates)  # the positive ranks last
    np.testing.assert_array_equal(result.rank_after[0], result.n_candidates)
    summary = result.summary()[0]
    assert summary["hit1_before"] == 0.0 and summary["hit1_after"] == 0.0
    assert summary["mean_rank_change"] == 0.0


def test_linear_probe_answer_labels_come_from_the_answer_object():
    examples = relational_examples(6, "test")
    assert len(examples) == 6 and all(e.subtask == "relation_two_step" for e in examples)
    colours = attribute_labels(examples, "answer_colour")
    shapes = attribute_labels(examples, "answer_shape")
    assert [f"a {c} {s}" for c, s in zip(colours, shapes)] == [e.target_text for e in examples]
    # the relation the question asks, as its words say it ("what is left of ...", "... above ...")
    for relation, example in zip(attribute_labels(examples, "question_relation"), examples):
        assert f" {relation} " in example.query_text
    assert probe_examples("question_relation", 6, "test") == examples


def test_binding_probe_labels_are_the_named_objects_attribute():
    """asked_colour: the colour of the shape a colour_of question names, in scenes of 2+ objects only."""
    colour_qs = asked_examples("colour_of", 8, "validation")
    shape_qs = asked_examples("shape_of", 8, "validation")
    assert len(colour_qs) == len(shape_qs) == 8
    assert all(len(e.scene.objects) >= 2 for e in colour_qs + shape_qs)
    colours = attribute_labels(colour_qs, "asked_colour")
    for colour, example in zip(colours, colour_qs):
        named = [o for o in example.scene.objects if f" {o.shape} " in f" {example.query_text} "]
        assert [o.colour for o in named] == [colour] == [example.target_text]
    shapes = attribute_labels(shape_qs, "asked_shape")
    for shape, example in zip(shapes, shape_qs):
        named = [o for o in example.scene.objects if f" {o.colour} " in f" {example.query_text} "]
        assert [o.shape for o in named] == [shape] == [example.target_text]
    with pytest.raises(InputError):
        attribute_labels(shape_qs, "asked_colour")
    # question_*: the word the question names, read from the text
    for word, example in zip(attribute_labels(colour_qs, "question_shape"), colour_qs):
        assert example.query_text == f"what colour is the {word} ?"
    for word, example in zip(attribute_labels(shape_qs, "question_colour"), shape_qs):
        assert example.query_text == f"what shape is the {word} object ?"


def test_linear_probe_runs_the_binding_attribute_end_to_end(micro_model):
    result = linear_probe(micro_model, "asked_colour", n=30, split="validation")
    assert result.attribute == "asked_colour" and result.n_train + result.n_test == 30
    assert set(result.classes) <= {"red", "green", "blue", "yellow", "purple"}


def test_linear_probe_reads_a_planted_signal_and_the_control_does_not():
    rng = np.random.default_rng(0)
    labels = np.array(["red", "blue", "green"] * 40)
    states = rng.normal(size=(120, 2, 3, 16)).astype(np.float32)
    code = {"red": 0, "blue": 1, "green": 2}
    for i, label in enumerate(labels):
        states[i, 1, 2, code[label]] += 4.0  # layer 1, token 2 carries the label
    result = fit_probes(
        ProbeStates(states, ["[REASON_0]", "[REASON_1]", "[EMBED]"], [0, 1], "latent"), labels, "colour"
    )
    assert result.accuracy.shape == (2, 3)
    assert result.best()[:2] == (1, "[EMBED]") and result.accuracy[1, 2] > 0.9
    assert result.control[1, 2] < 0.6 and result.accuracy[0].max() < 0.7
    assert result.n_train + result.n_test == 120


def test_linear_probe_states_and_labels_from_shapes(micro_model):
    examples = [make_example(0, "train", i, task="vqa") for i in range(40)]
    relational = [e for e in examples if e.subtask == "relation_two_step"][:12]
    states = collect_states(micro_model, relational, batch_size=8)
    k = micro_model.num_reason_tokens
    assert states.states.shape == (len(relational), 1, k + 1, micro_model.backbone.config.text_config.hidden_size)
    colours = attribute_labels(relational, "answer_colour")
    assert all(c in e.target_text for c, e in zip(colours, relational))
    with pytest.raises(InputError):
        attribute_labels([make_example(0, "train", 0, task="classification")], "answer_colour")


def test_cli_attention_and_readout_write_files(micro_model, scenes, tmp_path):
    from lame_tools.cli import main

    folder = micro_model.save_pretrained(tmp_path / "micro")
    image = tmp_path / "q.png"
    scenes[1][0].save(image)
    out = tmp_path / "att"
    args = ["probe", "attention", "--model", str(folder), "--device", "cpu", "--image", str(image)]
    assert main([*args, "--text", "what colour is the circle ?", "--out", str(out)]) == 0
    data = np.load(out / "attention.npz", allow_pickle=False)
    assert data["image_attention"].ndim == 5 and list(data["query_tokens"])[-1] == "[EMBED]"
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["top_patch"]) == micro_model.num_reason_tokens + 1
    for name in ("overlay.html", "overlay_embed.png", "text_attention.csv", "image_attention.csv", "heads_embed.html"):
        assert (out / name).is_file(), name
    assert (
        main(["probe", "readout", "--model", str(folder), "--text", "a red circle", "--out", str(tmp_path / "r")]) == 0
    )
    assert "text" in json.loads((tmp_path / "r" / "readout.json").read_text())
    assert main(["probe", "attention", "--model", str(folder), "--out", str(tmp_path / "x")]) == 2


def test_region_mass_counts_the_cells_a_box_overlaps():
    from lame_tools.probe import region_mass

    grid = np.zeros((2, 4, 4), np.float32)
    grid[0, 0, 0] = 1.0  # all attention in the top-left cell
    grid[1] = 1 / 16  # uniform
    mass, share = region_mass(grid, [(0.0, 0.0, 0.2, 0.2), (0.3, 0.3, 0.7, 0.7)])
    np.testing.assert_allclose(share, [1 / 16, 4 / 16])
    np.testing.assert_allclose(mass[0], [1.0, 0.0])
    np.testing.assert_allclose(mass[1] / share, [1.0, 1.0])  # uniform map: no preference


def test_cli_ablate_and_project_write_files(micro_model, tmp_path):
    from lame_tools.cli import main

    folder = micro_model.save_pretrained(tmp_path / "micro")
    model = ["--model", str(folder), "--device", "cpu"]
    out = tmp_path / "abl"
    assert main(["probe", "ablate", *model, "--n", "3", "--tokens", "0,1+2", "--how", "drop", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [c["condition"] for c in summary["conditions"]] == ["drop [REASON_0]", "drop [REASON_1,REASON_2]"]
    assert (out / "ablation.csv").is_file() and (out / "ablation.html").is_file()
    proj = tmp_path / "proj"
    args = ["probe", "project", *model, "--method", "pca", "--n", "12", "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--text", "a red circle", "--out", str(proj)]) == 0
    data = np.load(proj / "projection.npz", allow_pickle=False)
    assert data["coords"].shape == (12, 2) and data["new_coords"].shape == (1, 2)
    assert json.loads((proj / "summary.json").read_text())["source"] == "fit"
    assert main([*args, "--out", str(proj)]) == 0
    assert json.loads((proj / "summary.json").read_text())["source"] in ("memory", "disk")


def test_every_probe_result_has_rows_a_frame_and_a_plot(micro_model, scenes):
    import plotly.graph_objects as go

    from lame_tools.probe import LinearProbeResult

    items = _items(micro_model, scenes, n=2)
    attention = reason_attention_items(micro_model, items)
    frame = attention[0].to_frame()
    n_layers, n_heads = attention[0].text_attention.shape[:2]
    assert len(frame) == n_layers * n_heads * len(attention[0].query_tokens) * (1 + len(attention[0].text_tokens))
    # each probed row's attention sums to 1 over the image and the text keys
    sums = frame.groupby(["layer", "head", "query"])["attention"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-4)
    assert isinstance(attention[0].plot(), go.Figure) and isinstance(attention[1].plot(EMBED_TOKEN), go.Figure)
    read = readout_items(micro_model, items, max_new_tokens=4)
    assert len(read.to_frame()) == sum(len(t) for t in read.tokens)
    assert isinstance(read.plot(), go.Figure)
    examples = [make_example(0, "test", i, task="vqa") for i in range(4)]
    ablation = ablate(micro_model, examples, tokens=[0], how="zero")
    assert list(ablation.to_frame().columns)[:3] == ["condition", "query", "cosine"]
    assert ablation.rows_csv().splitlines()[0] == ablation.to_csv().splitlines()[0]  # the same long format
    assert len(ablation.plot().data) == 2
    probe = LinearProbeResult("n_objects", [0, 1], ["[EMBED]"], np.array([[0.5], [0.75]]), np.array([[0.3], [0.3]]),
                              0.25, 10, 4, ["1", "2"])
    assert probe.to_frame()["accuracy"].tolist() == [0.5, 0.75]
    assert len(probe.plot().data) == 2


def test_to_frame_without_pandas_says_so_in_one_sentence(micro_model, scenes, monkeypatch):
    import sys

    items = _items(micro_model, scenes, n=2)
    result = readout_items(micro_model, items, max_new_tokens=2)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(InputError, match="needs pandas"):
        result.to_frame()
    assert result.rows_csv().startswith("input,step,token")  # CSV needs no pandas


def test_cli_attribute_and_k_sweep_write_files(micro_model, tmp_path):
    from lame_tools.cli import main

    folder = micro_model.save_pretrained(tmp_path / "micro")
    out = tmp_path / "attr"
    base = ["--model", str(folder), "--device", "cpu"]
    assert main(["probe", "attribute", *base, "--example", "4", "--steps", "8", "--out", str(out)]) == 0
    summary = json.loads((out / "attribution.json").read_text())
    assert summary["query_total"] == pytest.approx(summary["cosine"] - summary["query_baseline_cosine"], abs=0.05)
    assert {"reason_share", "deletion", "figures"} <= set(summary)
    for name in ("attribution.csv", "flow.csv", "deletion.csv", "attribution.html"):
        assert (out / name).is_file(), name
    text_only = ["probe", "attribute", *base, "--text", "a red circle", "--item-text", "a blue square"]
    assert main([*text_only, "--out", str(tmp_path / "t")]) == 0
    assert "deletion" not in json.loads((tmp_path / "t" / "attribution.json").read_text())
    assert main(["probe", "attribute", *base, "--text", "a red circle", "--out", str(tmp_path / "n")]) == 2
    sweep_out = tmp_path / "k"
    assert main(["probe", "k-sweep", *base, "--example", "9", "--corpus-n", "10", "--out", str(sweep_out)]) == 0
    rows = json.loads((sweep_out / "k_sweep.json").read_text())["rows"]
    assert [r["k"] for r in rows] == list(range(micro_model.num_reason_tokens, -1, -1))
    assert {r["how"] for r in rows} == {"mask"}  # the CLI's default: positions kept
    assert (sweep_out / "k_sweep.csv").read_text().startswith("k,cosine_to_full,top_id")
