"""`embed_reads="reasons"`: `[EMBED]` attends only to the reason tokens (our departure from the paper)."""

from __future__ import annotations

import pytest
import torch

from lame_tools.config import LameConfig
from lame_tools.data.shapes import VOCABULARY
from lame_tools.embed_reads import allowed_keys
from lame_tools.model import LameModel
from lame_tools.probe.hooks import num_layers, prepare_batch, run_with_cache, run_with_hooks
from lame_tools.train import build_config
from lame_tools.train.build import build_model


def _pair(preset: str = "tiny"):
    build = dict(num_reason_tokens=4, embed_dim=32, seed=0, vocabulary=VOCABULARY)
    return LameModel.build_tiny(preset, **build), LameModel.build_tiny(preset, embed_reads="reasons", **build)


def test_allowed_keys_restrict_only_the_embed_row_of_rows_with_reason_tokens():
    # row 0: pad, a, b, R0, R1, E ; row 1 (no reason tokens): pad, pad, a, b, c, E
    ids = torch.tensor([[0, 5, 6, 10, 11, 20], [0, 0, 5, 6, 7, 20]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    allowed = allowed_keys(ids, mask, [10, 11])
    assert allowed[0, -1].tolist() == [False, False, False, True, True, True]
    assert allowed[0, 4].tolist() == [False, True, True, True, True, False]  # a reason token reads the prompt
    assert allowed[1, -1].tolist() == [False, False, True, True, True, True]  # no reason tokens: causal
    assert allowed[:, 0, 0].all() and not allowed[0, 1, 0]  # padding reads itself only; nobody reads padding


def test_embed_sees_the_input_only_through_the_reason_tokens(scenes):
    examples, images = scenes
    full, restricted = _pair()
    items = restricted.make_items(images=images[:3], texts=[e.query_text for e in examples[:3]])
    prepared = prepare_batch(restricted, items, "latent")
    k = restricted.num_reason_tokens
    _, cache = run_with_cache(restricted, prepared, names="blocks.*.attn.hook_pattern")
    for layer in range(num_layers(restricted)):
        embed_row = cache[f"blocks.{layer}.attn.hook_pattern"][:, :, -1]  # [batch, head, seq]
        assert embed_row[..., : -1 - k].abs().max() == 0
        torch.testing.assert_close(embed_row.sum(-1), torch.ones_like(embed_row.sum(-1)))

    def zero_reasons(value, ctx):
        value = value.clone()
        value[:, ctx.positions[:k]] = 0
        return value

    # with the reason rows zeroed at every layer, every query gives the same embedding ...
    names = ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(num_layers(restricted))]
    blind = run_with_hooks(restricted, prepared, [(n, zero_reasons) for n in names]).embeddings
    torch.testing.assert_close(blind[1:], blind[:1].expand_as(blind[1:]), atol=1e-5, rtol=0)
    # ... which in the paper's attention it does not
    blind_full = run_with_hooks(full, prepare_batch(full, items, "latent"), [(n, zero_reasons) for n in names]).embeddings
    assert (blind_full[1:] - blind_full[:1]).abs().max() > 1e-3


def test_other_modes_are_unchanged_and_latent_differs(scenes):
    examples, images = scenes
    full, restricted = _pair()
    items = full.make_items(images=images[:2], texts=[e.query_text for e in examples[:2]])
    with torch.no_grad():
        for mode in ("discriminative", "sequential"):
            torch.testing.assert_close(full.forward_items(items, mode).embeddings,
                                       restricted.forward_items(items, mode).embeddings)
        assert not torch.allclose(full.forward_items(items, "latent").embeddings,
                                  restricted.forward_items(items, "latent").embeddings)


def test_embed_reads_is_saved_refused_when_unknown_and_trains(tmp_path):
    config = build_config("micro-lame", ["embed_reads=reasons"])
    model = build_model(config)
    assert model.config.embed_reads == "reasons"
    model.forward_items(model.make_items(texts=["a red circle"]), "latent").embeddings.sum().backward()
    assert model.latent_embeddings.grad[:4].abs().sum() > 0
    model.save_pretrained(tmp_path / "m")
    assert LameModel.from_pretrained(tmp_path / "m", device="cpu").config.embed_reads == "reasons"
    with pytest.raises(ValueError, match="embed_reads must be one of"):
        LameConfig.from_dict({**model.config.to_dict(), "embed_reads": "prompt"})


def test_reading_switches_embed_reads_within_the_block_only(scenes):
    examples, images = scenes
    full, restricted = _pair()
    items = full.make_items(images=images[:2], texts=[e.query_text for e in examples[:2]])
    with torch.no_grad():
        before = full.forward_items(items, "latent").embeddings
        with full.reading("reasons"):
            torch.testing.assert_close(full.forward_items(items, "latent").embeddings,
                                       restricted.forward_items(items, "latent").embeddings)
        torch.testing.assert_close(full.forward_items(items, "latent").embeddings, before)
    with pytest.raises(RuntimeError), full.reading("reasons"):
        raise RuntimeError("a failing step")
    assert full.config.embed_reads == "all"
    with pytest.raises(ValueError, match="embed_reads must be one of"), full.reading("prompt"):
        pass


def test_direct_route_dropout_cuts_a_seeded_share_of_steps():
    from lame_tools.errors import LameError
    from lame_tools.train.step import cuts_direct_route

    config = build_config("micro-lame", ["direct_route_dropout=0.3"])
    cut = [cuts_direct_route(config, step) for step in range(2000)]
    assert cut == [cuts_direct_route(config, step) for step in range(2000)]  # a resumed run cuts the same steps
    assert 0.26 < sum(cut) / len(cut) < 0.34
    assert not any(cuts_direct_route(build_config("micro-lame"), step) for step in range(200))
    assert all(cuts_direct_route(build_config("micro-lame", ["direct_route_dropout=1"]), step) for step in range(200))
    for bad in (["direct_route_dropout=1.5"], ["direct_route_dropout=0.5", "embed_reads=reasons"],
                ["direct_route_dropout=0.5", "num_reason_tokens=0", "with_decoder=false"]):
        with pytest.raises(LameError, match="direct_route_dropout"):
            build_model(build_config("micro-lame", bad))


def test_a_cut_step_trains_as_the_restricted_model_and_the_model_still_reads_all():
    from lame_tools.train.step import embedding_loss

    torch.manual_seed(0)
    cut = build_model(build_config("micro-lame", ["direct_route_dropout=1"]))
    torch.manual_seed(0)
    restricted = build_model(build_config("micro-lame", ["embed_reads=reasons"]))
    torch.manual_seed(0)
    plain = build_model(build_config("micro-lame"))
    step = 4  # stage 2: contrastive and decoder losses
    losses = {name: embedding_loss(model, build_config("micro-lame", sets), step, 0, 1)
              for name, model, sets in (("cut", cut, ["direct_route_dropout=1"]),
                                        ("restricted", restricted, ["embed_reads=reasons"]),
                                        ("plain", plain, []))}
    torch.testing.assert_close(losses["cut"]["contrastive"], losses["restricted"]["contrastive"])
    torch.testing.assert_close(losses["cut"]["decoder"], losses["restricted"]["decoder"])
    assert not torch.allclose(losses["cut"]["contrastive"], losses["plain"]["contrastive"])
    assert cut.config.embed_reads == "all"


# ---- reason_reads="reasons": reason tokens blind to the input (a register control) ----------------


def test_allowed_keys_blind_reason_rows_read_only_earlier_reason_tokens():
    # row 0: pad, a, b, R0, R1, E ; row 1 (no reason tokens): pad, pad, a, b, c, E
    ids = torch.tensor([[0, 5, 6, 10, 11, 20], [0, 0, 5, 6, 7, 20]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    allowed = allowed_keys(ids, mask, [10, 11], embed_reads="all", reason_reads="reasons")
    assert allowed[0, 3].tolist() == [False, False, False, True, False, False]  # R0 reads itself
    assert allowed[0, 4].tolist() == [False, False, False, True, True, False]  # R1 reads R0 and itself
    assert allowed[0, -1].tolist() == [False, True, True, True, True, True]  # [EMBED] reads everything
    assert allowed[0, 2].tolist() == [False, True, True, False, False, False]  # the prompt stays causal
    assert allowed[1].tolist() == allowed_keys(ids, mask, [10, 11], embed_reads="all")[1].tolist()
    assert allowed_keys(ids, mask, [10, 11], embed_reads="all").tolist() == (
        torch.ones(6, 6, dtype=torch.bool).tril()[None] & mask.bool()[:, None, :] | torch.eye(6, dtype=torch.bool)
    ).tolist()


def test_blind_reason_tokens_hold_the_same_states_for_every_query(scenes):
    examples, images = scenes
    build = dict(num_reason_tokens=4, embed_dim=32, seed=0, vocabulary=VOCABULARY)
    full = LameModel.build_tiny("tiny", **build)
    blind = LameModel.build_tiny("tiny", reason_reads="reasons", **build)
    assert blind.restricts_attention and not full.restricts_attention
    texts = [e.query_text for e in examples[:3]]
    k = blind.num_reason_tokens
    names = [f"blocks.{i}.hook_resid_post" for i in range(num_layers(blind))]
    states = {}
    for name, model in (("full", full), ("blind", blind)):
        # different images and prompts (of different lengths once padded alike: left padding)
        items = model.make_items(images=images[:3], texts=texts)
        _, cache = run_with_cache(model, prepare_batch(model, items, "latent"), names=names)
        states[name] = torch.stack([cache[n][:, :k] for n in names])  # [layer, batch, k, hidden]
    spread = {name: (s[:, 1:] - s[:, :1]).abs().max().item() for name, s in states.items()}
    assert spread["blind"] < 1e-4 < spread["full"], spread
    with torch.no_grad():
        items = blind.make_items(images=images[:3], texts=texts)
        embeddings = blind.forward_items(items, "latent").embeddings
    assert (embeddings[1:] - embeddings[:1]).abs().max() > 1e-3  # [EMBED] still reads the input


def test_reason_reads_is_saved_refused_when_unknown_or_with_embed_reads_and_trains(tmp_path):
    from lame_tools.errors import LameError

    model = build_model(build_config("micro-lame", ["reason_reads=reasons"]))
    assert model.config.reason_reads == "reasons"
    model.forward_items(model.make_items(texts=["a red circle"]), "latent").embeddings.sum().backward()
    assert model.latent_embeddings.grad[:4].abs().sum() > 0  # the reason rows still get a gradient
    model.save_pretrained(tmp_path / "m")
    assert LameModel.from_pretrained(tmp_path / "m", device="cpu").config.reason_reads == "reasons"
    with pytest.raises(ValueError, match="reason_reads must be one of"):
        LameConfig.from_dict({**model.config.to_dict(), "reason_reads": "prompt"})
    with pytest.raises(ValueError, match="nothing of the input"):
        LameConfig.from_dict({**model.config.to_dict(), "embed_reads": "reasons"})
    with pytest.raises(ValueError, match="nothing of the input"), model.reading("reasons"):
        pass
    assert model.config.embed_reads == "all"
    for bad in (["reason_reads=reasons", "embed_reads=reasons"], ["reason_reads=reasons", "latent_steps=sequential"]):
        with pytest.raises(LameError, match="reason_reads=reasons needs"):
            build_model(build_config("micro-lame", bad))
    with pytest.raises(LameError, match="reason_reads=all"):
        build_model(build_config("micro-lame", ["reason_reads=reasons", "direct_route_dropout=0.5"]))


def test_allowed_keys_hidden_tokens_are_cut_from_the_embed_row_only():
    # row 0: pad, a, b, R0, R1, E ; row 1 (no reason tokens): pad, pad, a, b, c, E
    ids = torch.tensor([[0, 5, 6, 10, 11, 20], [0, 0, 5, 6, 7, 20]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    plain = allowed_keys(ids, mask, [10, 11], embed_reads="all")
    allowed = allowed_keys(ids, mask, [10, 11], embed_reads="all", hidden=[11])
    assert allowed[0, -1].tolist() == [False, True, True, True, False, True]  # [EMBED] no longer reads R1
    assert allowed[:, :-1].tolist() == plain[:, :-1].tolist()  # every other row as before (R1 reads R0)
    assert allowed[1].tolist() == plain[1].tolist()
    both = allowed_keys(ids, mask, [10, 11], embed_reads="reasons", hidden=[10, 11])
    assert both[0, -1].tolist() == [False, False, False, False, False, True]  # only itself is left
