"""The latent decoder: its teacher-forced layout, the loss over it, and the greedy read-out."""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from lame_tools.constants import IGNORE_INDEX
from lame_tools.decoder import DecoderReadout
from lame_tools.losses import decoder_loss, sequence_mean_ce


def _reason(model, batch: int, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(batch, model.num_reason_tokens, model.backbone.config.text_config.hidden_size)


@contextmanager
def _forced_tokens(decoder, schedule: list[int]):
    """Make the decoder's LM head pick `schedule[i]` at generation step i (eos after the schedule)."""
    calls = {"n": 0}

    def hook(module, args, output):
        step = calls["n"]
        calls["n"] += 1
        token = schedule[step] if step < len(schedule) else decoder.config.eos_token_id
        output = output.clone()
        output[..., token] += 1e4
        return output

    handle = decoder.lm.lm_head.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def test_sequence_layout_bos_target_eos_and_labels(micro_model):
    decoder = micro_model.decoder
    bos, eos = decoder.config.bos_token_id, decoder.config.eos_token_id
    ids = torch.tensor([[10, 11, 12], [13, 0, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    tokens, attention, labels = decoder.sequence(ids, mask, num_prefix=2)
    assert tokens[0].tolist() == [bos, 10, 11, 12, eos]
    assert tokens[1, :3].tolist() == [bos, 13, eos]  # what follows eos is masked below
    assert attention.tolist() == [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]]
    i = IGNORE_INDEX
    # prefix (2) and bos are never predicted; the target and eos are, at their own positions
    assert labels.tolist() == [[i, i, i, 10, 11, 12, eos], [i, i, i, 13, eos, i, i]]


def test_loss_ignores_the_prefix_and_bos_positions(micro_model):
    decoder = micro_model.decoder
    ids = torch.tensor([[10, 11, 12], [13, 0, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    k = 3
    _, _, labels = decoder.sequence(ids, mask, num_prefix=k)
    vocab = 7 + 13
    logits = torch.zeros(2, labels.shape[1], vocab)
    uniform = sequence_mean_ce(logits, labels).item()
    assert uniform == pytest.approx(math.log(vocab), abs=1e-6)
    # logits at the prefix positions predict the prefix and bos: none of them counts
    noisy = logits.clone()
    noisy[:, :k] = torch.randn(2, k, vocab) * 50
    assert sequence_mean_ce(noisy, labels).item() == pytest.approx(uniform, abs=1e-6)
    # the bos position predicts the first target token: it counts
    confident = logits.clone()
    confident[0, k, 10] = 50.0
    assert sequence_mean_ce(confident, labels).item() < uniform - 0.1


def test_decoder_loss_reads_the_decoders_own_labels_and_weighs_the_named_tokens(micro_model):
    decoder = micro_model.decoder
    reason = _reason(micro_model, 2, seed=3)
    ids = torch.tensor([[10, 11, 12], [13, 14, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    with torch.no_grad():
        out = decoder(reason, ids, mask)
        _, _, labels = decoder.sequence(ids, mask, reason.shape[1])
        assert out.logits.shape[1] == labels.shape[1]
        plain = decoder_loss(decoder, reason, ids, mask).item()
        assert plain == pytest.approx(sequence_mean_ce(out.logits, labels).item(), rel=1e-6)
        # token 11 weighs 4 in its row's mean (decoder_relation_weight); weight 1 is the plain mean
        assert int((labels == 11).sum()) == 1
        weighted = decoder_loss(decoder, reason, ids, mask, torch.tensor([11]), 4.0).item()
        expected = sequence_mean_ce(out.logits, labels, torch.where(labels == 11, 4.0, 1.0)).item()
        assert weighted == pytest.approx(expected, rel=1e-6) and weighted != pytest.approx(plain, rel=1e-4)
        assert decoder_loss(decoder, reason, ids, mask, torch.tensor([11]), 1.0).item() == plain


def test_greedy_readout_is_the_decoders_argmax_with_its_probabilities(micro_model):
    decoder = micro_model.decoder
    reason = _reason(micro_model, 2, seed=1)
    result = decoder.readout(reason, max_new_tokens=5)
    assert isinstance(result, DecoderReadout) and len(result.token_ids) == 2
    stops = {decoder.config.eos_token_id, decoder.config.pad_token_id}
    for row, (ids, probs) in enumerate(zip(result.token_ids, result.token_probs)):
        assert len(ids) <= 5 and not stops & set(ids) and len(probs) == len(ids)
        # teacher-forcing the read-out gives back each token as the argmax, with the reported probability
        bos = torch.tensor([[decoder.config.bos_token_id, *ids]])
        with torch.no_grad():
            embeds = torch.cat([decoder.prefix(reason[row : row + 1]), decoder.lm.get_input_embeddings()(bos)], 1)
            logits = decoder.lm(inputs_embeds=embeds).logits[0, reason.shape[1] :].float()
        expected = torch.softmax(logits, -1)[torch.arange(len(ids)), ids]
        assert logits[: len(ids)].argmax(-1).tolist() == ids
        np.testing.assert_allclose(probs, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_readout_stops_at_eos_and_at_the_length_cap(micro_model):
    decoder = micro_model.decoder
    reason = _reason(micro_model, 2)
    with _forced_tokens(decoder, [20, 21]):
        stopped = decoder.readout(reason, max_new_tokens=6)
    assert stopped.token_ids == [[20, 21], [20, 21]]  # eos (step 3) is cut, and nothing follows it
    assert all(p.shape == (2,) and np.all(p > 0.99) for p in stopped.token_probs)
    with _forced_tokens(decoder, [20, 21, 22, 23]):
        capped = decoder.readout(reason, max_new_tokens=3)
    assert capped.token_ids == [[20, 21, 22], [20, 21, 22]]
    with _forced_tokens(decoder, []):
        empty = decoder.readout(reason, max_new_tokens=4)
    assert empty.token_ids == [[], []] and all(len(p) == 0 for p in empty.token_probs)


def test_beam_readout_has_ids_but_no_probabilities(micro_model):
    decoder = micro_model.decoder
    result = decoder.readout(_reason(micro_model, 2, seed=2), max_new_tokens=4, num_beams=2)
    stops = {decoder.config.eos_token_id, decoder.config.pad_token_id}
    assert len(result.token_ids) == 2
    assert all(len(ids) <= 4 and not stops & set(ids) for ids in result.token_ids)
    assert all(p.shape == (0,) for p in result.token_probs)


def test_decoder_targets_steps_drop_the_objects_list_and_keep_the_reasoning():
    """decoder_target=steps: each example's rationale after its opening objects list; a relation's
    steps name the anchor, the relation and the object that answers, and the scene is not listed."""
    from lame_tools.data.shapes import balanced_examples
    from lame_tools.errors import LameError
    from lame_tools.train import build_config
    from lame_tools.train.data import make_batch

    ex = balanced_examples(0, "test", 1, ("relation_two_step",))[0][1]
    assert ex.steps == (f"find the {ex.anchor.name} . then look {ex.relation} : {ex.answer_object.name} . "
                        f"answer : {ex.answer_object.describe()} .")
    assert ex.rationale.startswith("objects : ") and ex.rationale.endswith(" " + ex.steps)
    config = build_config("micro-lame", ["decoder_target=steps"])
    batch = make_batch(config, 0)
    assert all(not text.startswith("objects") for text in batch.decoder_texts)
    assert batch.decoder_texts == [e.steps for e in batch.examples]
    rationale = make_batch(build_config("micro-lame", ["decoder_target=rationale"]), 0)
    assert [r.endswith(s) and len(r) > len(s) for r, s in zip(rationale.decoder_texts, batch.decoder_texts)] == \
        [True] * len(batch.decoder_texts)
    with pytest.raises(LameError, match="decoder_target is one of target, rationale, steps"):
        build_config("micro-lame", ["decoder_target=answer"])


def test_decoder_relation_weight_weighs_the_look_steps_relation_word():
    """decoder_relation_weight: the training step's decoder loss is the weighted mean with the relation
    words (and only they) at the weight; the same model and batch at weight 1 give the plain mean."""
    from lame_tools.data.scene import RELATIONS
    from lame_tools.errors import LameError
    from lame_tools.train import build_config
    from lame_tools.train.build import build_model
    from lame_tools.train.data import make_batch
    from lame_tools.train.step import decoder_targets, embedding_loss, relation_word_ids

    sets = ["decoder_target=rationale", "subtasks=relation_two_step"]
    plain_config = build_config("micro-lame", sets)
    config = build_config("micro-lame", [*sets, "decoder_relation_weight=5"])
    torch.manual_seed(0)
    model = build_model(config)
    tok = model.processor.tokenizer
    ids = relation_word_ids(tok)
    assert sorted(tok.convert_ids_to_tokens(ids.tolist())) == sorted(RELATIONS)
    step = 4  # stage 2: contrastive and decoder losses
    batch = make_batch(config, step)
    targets, _ = decoder_targets(tok, batch.decoder_texts, torch.device("cpu"))
    assert all(int(torch.isin(row, ids).sum()) == 1 for row in targets)  # one look step a rationale
    with torch.no_grad():
        weighted = embedding_loss(model, config, step, 0, 1)["decoder"]
        plain = embedding_loss(model, plain_config, step, 0, 1)["decoder"]
        one = embedding_loss(model, build_config("micro-lame", [*sets, "decoder_relation_weight=1"]), step, 0, 1)
    assert one["decoder"].item() == plain.item()  # the step is deterministic: the weight alone moves it
    assert torch.isfinite(weighted) and weighted.item() != pytest.approx(plain.item(), rel=1e-4)
    for bad, match in ((["decoder_relation_weight=0"], "token weight > 0"),
                       (["decoder_relation_weight=2"], "needs decoder_target=rationale or steps")):
        with pytest.raises(LameError, match=match):
            build_config("micro-lame", bad)
