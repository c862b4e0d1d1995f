"""Similarity attribution: hand-checkable sums and signs, completeness and faithfulness on the shipped model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lame_tools.data.shapes import make_example
from lame_tools.errors import InputError
from lame_tools.probe.attribution import (
    attribute,
    deletion_check,
    gradient_x_input,
    integrated_gradients,
    rollout_split,
)


def test_gradient_x_input_and_integrated_gradients_on_a_linear_function():
    w = torch.tensor([2.0, -3.0, 0.5, 0.0])
    x = torch.tensor([1.0, 1.0, -4.0, 7.0])

    def f(points):  # rows independent: [n, 4] -> [n]
        return points @ w

    gxi = gradient_x_input(f, x)
    assert torch.allclose(gxi, torch.tensor([2.0, -3.0, -2.0, 0.0]))  # w_i x_i: the signs of w_i x_i
    ig = integrated_gradients(f, x, steps=4)
    assert torch.allclose(ig, gxi)  # linear: every step has the same gradient
    assert float(ig.sum()) == pytest.approx(float(f(x[None])[0]))  # completeness from a zero baseline


def test_integrated_gradients_sum_to_the_change_on_a_quadratic():
    x = torch.tensor([3.0, -1.0])
    baseline = torch.tensor([1.0, 1.0])

    def f(points):
        return (points**2).sum(-1)

    ig = integrated_gradients(f, x, baseline, steps=8)
    # exact for a quadratic with the midpoint rule: x_i^2 - b_i^2 per input
    assert torch.allclose(ig, torch.tensor([8.0, 0.0]), atol=1e-5)
    assert float(ig.sum()) == pytest.approx(float(f(x[None]) - f(baseline[None])))


def test_rollout_split_by_hand():
    # positions: 0 input, 1 reason token, 2 [EMBED]; one head, two layers
    upper = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0.0, 1.0, 0.0]])  # [EMBED] reads the reason token only
    lower = np.array([[1.0, 0, 0], [1.0, 0, 0], [0.5, 0.0, 0.5]])
    patterns = np.stack([lower, upper])[:, None]
    total, direct = rollout_split(patterns, np.array([False, True, False]), target=2)
    assert total.sum() == pytest.approx(1.0)
    # A_upper = 0.5 * upper + 0.5 I: [EMBED]'s row puts 0.5 on the reason token and 0.5 on itself
    a_low = 0.5 * lower + 0.5 * np.eye(3)
    assert direct[0] == pytest.approx(0.5 * a_low[2, 0])  # only the stay-at-[EMBED] path is direct
    assert total[0] - direct[0] == pytest.approx(0.5 * a_low[1, 0])  # the rest went through [REASON]


def test_attribution_shapes_and_errors_on_the_micro_model(micro_model, scenes):
    examples, images = scenes
    example = examples[1]
    query, item = example.query_item(images[1]), example.target_item()
    result = attribute(micro_model, query, item, steps=4)
    assert result.query.image_scores is not None and result.query.image_scores.ndim == 2
    assert result.item.image_scores is None and len(result.item.text_tokens) == len(result.item.text_scores)
    assert result.flow is not None and 0 <= result.flow.reason_share <= 1
    assert np.allclose(result.flow.total, result.flow.through_reason + result.flow.direct)
    frame = result.to_frame()
    assert set(frame["side"]) == {"query", "item"} and len(frame) == len(result.rows())
    assert len(result.plot().data) >= 3
    with pytest.raises(InputError):
        attribute(micro_model, query, item, method="saliency")
    with pytest.raises(InputError):
        attribute(micro_model, query, item, mode="cot")


@pytest.mark.slow
def test_integrated_gradients_are_complete_and_faithful_on_the_shipped_model(shipped_model):
    checked = 0
    for index in range(12):
        example = make_example(0, "test", index)
        if not example.query_has_image or example.target_has_image:
            continue
        query, item = example.query_item(), example.target_item()
        result = attribute(shipped_model, query, item, steps=32)
        # completeness: each side's scores sum to cos - cos(at the baseline), the steps doubled until they do
        assert result.query.total == pytest.approx(result.score - result.query_baseline_score, abs=5e-3)
        assert result.item.total == pytest.approx(result.score - result.item_baseline_score, abs=5e-3)
        assert {result.query.steps, result.item.steps} <= {32, 64, 128, 256}
        check = deletion_check(shipped_model, query, item, result, fraction=0.25, trials=16)
        assert check.top_drop > check.random_drop, (index, check)
        checked += 1
    assert checked >= 8


def test_integrated_gradients_double_their_steps_until_complete(micro_model, monkeypatch):
    import lame_tools.probe.attribution as attribution

    example = next(make_example(0, "test", i) for i in range(20) if make_example(0, "test", i).query_has_image)
    query, item = example.query_item(), example.target_item()
    monkeypatch.setattr(attribution, "COMPLETENESS_TOLERANCE", 1.0)  # anything is complete: the steps asked
    assert attribute(micro_model, query, item, steps=8).query.steps == 8
    monkeypatch.setattr(attribution, "COMPLETENESS_TOLERANCE", 0.0)  # nothing is: doubled up to the cap
    result = attribute(micro_model, query, item, steps=8)
    assert result.query.steps == result.item.steps == attribution.MAX_STEPS
    assert attribute(micro_model, query, item, method="grad_x_input").query.steps == 0
