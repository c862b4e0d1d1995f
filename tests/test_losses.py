"""The training losses on tiny tensors whose values are computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lame_tools.constants import IGNORE_INDEX
from lame_tools.losses import (
    decoder_loss,
    info_nce,
    sequence_mean_ce,
    suffix_lm_loss,
    text_keys,
)


def test_info_nce_two_orthogonal_pairs_by_hand():
    q = torch.eye(2)
    t = torch.eye(2)
    # scale 1: logits = identity; each row: -log(e / (e + 1))
    loss = info_nce(q, t, logit_scale=0.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


def test_info_nce_scale_and_asymmetric_directions():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [math.sqrt(0.5), math.sqrt(0.5)]])
    s = 2.0
    loss = info_nce(q, t, logit_scale=math.log(s))
    sim = q @ t.T  # [[1, .707], [0, .707]]
    # query->target rows
    r0 = -math.log(math.exp(s * sim[0, 0]) / (math.exp(s * sim[0, 0]) + math.exp(s * sim[0, 1])))
    r1 = -math.log(math.exp(s * sim[1, 1]) / (math.exp(s * sim[1, 0]) + math.exp(s * sim[1, 1])))
    # target->query columns
    c0 = -math.log(math.exp(s * sim[0, 0]) / (math.exp(s * sim[0, 0]) + math.exp(s * sim[1, 0])))
    c1 = -math.log(math.exp(s * sim[1, 1]) / (math.exp(s * sim[0, 1]) + math.exp(s * sim[1, 1])))
    expected = 0.5 * ((r0 + r1) / 2 + (c0 + c1) / 2)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_info_nce_masks_duplicate_targets():
    # rows 0 and 1 share the target "red": neither is a negative of the other
    q = torch.eye(3)
    t = torch.eye(3)
    keys = torch.tensor([7, 7, 9])
    loss = info_nce(q, t, 0.0, target_keys=keys)
    e = math.e
    row01 = -math.log(e / (e + 1))  # rows 0, 1: only target 2 is a negative
    row2 = -math.log(e / (e + 2))  # row 2: targets 0 and 1 are negatives
    expected = (2 * row01 + row2) / 3  # symmetric: columns give the same numbers
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # and without keys every other row is a negative
    assert info_nce(q, t, 0.0).item() == pytest.approx(-math.log(e / (e + 2)), abs=1e-6)


def test_info_nce_hard_negatives_add_columns_and_are_masked_when_invalid_or_duplicate():
    q = torch.eye(2)
    t = torch.eye(2)
    hard = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # as close as the positives
    e = math.e
    base = -math.log(e / (e + 1))
    # each query sees its own hard negative (score e) and the other row's (score 1)
    with_hard = info_nce(q, t, 0.0, target_keys=torch.tensor([1, 2]), hard_negatives=hard,
                         hard_negative_keys=torch.tensor([3, 4]))
    row = -math.log(e / (e + 1 + e + 1))
    assert with_hard.item() == pytest.approx(0.5 * (row + base), abs=1e-6)
    invalid = info_nce(q, t, 0.0, target_keys=torch.tensor([1, 2]), hard_negatives=hard,
                       hard_negative_keys=torch.tensor([3, 4]), hard_negative_valid=torch.tensor([False, False]))
    assert invalid.item() == pytest.approx(base, abs=1e-6)
    # a "hard negative" equal to a row's positive is masked for that row (the other row's still counts)
    dup = info_nce(q, t, 0.0, target_keys=torch.tensor([1, 2]), hard_negatives=hard,
                   hard_negative_keys=torch.tensor([1, 2]))
    assert dup.item() == pytest.approx(0.5 * (-math.log(e / (e + 2)) + base), abs=1e-6)


def test_info_nce_gradient_flows_to_temperature_and_clamps_scale():
    q = torch.nn.functional.normalize(torch.randn(4, 3), dim=-1).requires_grad_()
    t = torch.nn.functional.normalize(torch.randn(4, 3), dim=-1)
    scale = torch.tensor(math.log(20.0), requires_grad=True)
    info_nce(q, t, scale).backward()
    assert scale.grad is not None and q.grad is not None
    big = info_nce(q.detach(), t, math.log(1e6))
    capped = info_nce(q.detach(), t, math.log(100.0))
    assert big.item() == pytest.approx(capped.item(), rel=1e-6)


def test_text_keys_deterministic_and_distinct():
    a = text_keys(["red", "blue", "red"])
    assert a[0] == a[2] and a[0] != a[1]
    assert torch.equal(a, text_keys(["red", "blue", "red"]))


def test_sequence_mean_ce_uniform_logits_and_per_row_mean():
    vocab = 5
    logits = torch.zeros(2, 4, vocab)  # uniform: every token costs log(5)
    labels = torch.tensor([[IGNORE_INDEX, 1, 2, 3], [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 4]])
    assert sequence_mean_ce(logits, labels).item() == pytest.approx(math.log(vocab), abs=1e-6)
    # per-row mean: a row with 3 tokens and a row with 1 token weigh the same
    logits = torch.zeros(2, 3, 2)
    logits[0, :, 0] = 10.0  # row 0 predicts token 0 confidently
    labels = torch.tensor([[IGNORE_INDEX, 0, 0], [IGNORE_INDEX, IGNORE_INDEX, 1]])
    row0 = -torch.log_softmax(torch.tensor([10.0, 0.0]), 0)[0].item()
    row1 = math.log(2)
    assert sequence_mean_ce(logits, labels).item() == pytest.approx((row0 + row1) / 2, abs=1e-6)


def test_sequence_mean_ce_weighted_mean_within_a_row():
    # row 0: two labels, the first (token 0) confident, the second (token 1) uniform; weight 3 on token 1
    logits = torch.zeros(1, 3, 2)
    logits[0, 0, 0] = 10.0
    labels = torch.tensor([[IGNORE_INDEX, 0, 1]])
    sure = -torch.log_softmax(torch.tensor([10.0, 0.0]), 0)[0].item()
    weights = torch.tensor([[1.0, 1.0, 3.0]])
    assert sequence_mean_ce(logits, labels, weights).item() == pytest.approx((sure + 3 * math.log(2)) / 4, abs=1e-6)
    assert sequence_mean_ce(logits, labels, torch.ones(1, 3)).item() == pytest.approx(
        sequence_mean_ce(logits, labels).item(), abs=1e-7)


def test_suffix_lm_loss_scores_only_the_last_tokens():
    vocab = 4
    input_ids = torch.tensor([[0, 1, 2, 3], [0, 0, 3, 2]])
    logits = torch.zeros(2, 4, vocab)
    # row 0 predicts token 3 at position 3 (from position 2) perfectly; position 2's token is wrong
    logits[0, 2, 3] = 50.0
    loss_last1 = suffix_lm_loss(logits[:1], input_ids[:1], torch.tensor([1]))
    assert loss_last1.item() == pytest.approx(0.0, abs=1e-6)
    loss_last2 = suffix_lm_loss(logits[:1], input_ids[:1], torch.tensor([2]))
    assert loss_last2.item() == pytest.approx(math.log(vocab) / 2, abs=1e-5)
    both = suffix_lm_loss(logits, input_ids, torch.tensor([1, 2]))
    assert both.item() == pytest.approx((0.0 + math.log(vocab)) / 2, abs=1e-5)


def test_decoder_loss_matches_hf_loss_when_lengths_are_equal(micro_model):
    decoder = micro_model.decoder
    torch.manual_seed(0)
    reason = torch.randn(3, 4, micro_model.backbone.config.text_config.hidden_size)
    ids = torch.tensor([[10, 11, 12], [13, 14, 15], [16, 17, 18]])
    mask = torch.ones_like(ids)
    ours = decoder_loss(decoder, reason, ids, mask)
    hf = decoder(reason, ids, mask).loss  # token mean == per-sequence mean when lengths are equal
    assert ours.item() == pytest.approx(hf.item(), rel=1e-5)


def test_decoder_loss_per_sequence_mean_with_padding(micro_model):
    decoder = micro_model.decoder
    torch.manual_seed(1)
    reason = torch.randn(2, 4, micro_model.backbone.config.text_config.hidden_size)
    ids = torch.tensor([[10, 11, 12], [13, 0, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    both = decoder_loss(decoder, reason, ids, mask)
    first = decoder_loss(decoder, reason[:1], ids[:1], mask[:1])
    second = decoder_loss(decoder, reason[1:], ids[1:, :1], mask[1:, :1])
    assert both.item() == pytest.approx((first.item() + second.item()) / 2, rel=1e-5)
    reason.requires_grad_()
    decoder_loss(decoder, reason, ids, mask).backward()
    assert reason.grad.abs().sum() > 0  # the bottleneck receives the reconstruction signal
