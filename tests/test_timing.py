"""The latency harness and the race generator: structure and correctness, never timings."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from lame_tools.adapters import LameAdapter
from lame_tools.timing import bench_race, physical_floor, race, race_inputs, race_markdown, run_lane

MAX_NEW = 5


@pytest.fixture(scope="module")
def lanes(micro_model):
    return {mode: LameAdapter(micro_model, mode, mode) for mode in ("latent", "discriminative", "cot")}


def test_run_lane_embeds_like_encode_and_stages_add_up(micro_model, lanes):
    images, texts, instructions = race_inputs(3)
    for mode in ("latent", "discriminative"):
        run = run_lane(lanes[mode], images, texts, instructions)
        expected = micro_model.encode(images=images, texts=texts, instruction=instructions, mode=mode)
        np.testing.assert_allclose(run.embeddings.numpy(), expected, atol=1e-5)
        assert set(run.stages_ms) == {"preprocess", "prefill", "pool"}
        assert sum(run.stages_ms.values()) == pytest.approx(run.total_ms, rel=1e-6)
        assert run.generated_tokens == [0, 0, 0] and run.decode_steps == 0
    k = micro_model.num_reason_tokens
    latent = run_lane(lanes["latent"], images, texts, instructions)
    assert [r - p for r, p in zip(latent.row_lengths, latent.prompt_lengths)] == [k + 1] * 3

    cot = run_lane(lanes["cot"], images, texts, instructions, max_new_tokens=MAX_NEW)
    assert set(cot.stages_ms) == {"preprocess", "vision_and_setup", "prefill", "decode", "generate_tail", "read"}
    assert sum(cot.stages_ms.values()) == pytest.approx(cot.total_ms, rel=1e-6)
    assert all(0 <= t <= MAX_NEW for t in cot.generated_tokens)
    assert 1 <= cot.decode_steps <= MAX_NEW
    items = micro_model.make_items(images, texts, instructions)
    with torch.no_grad():
        reread = micro_model._forward_cot(items, cot.generated_ids).embeddings
    np.testing.assert_allclose(cot.embeddings.numpy(), reread.numpy(), atol=1e-5)


def test_race_event_order_and_contents(lanes):
    images, texts, instructions = race_inputs(2)
    events = list(race(lanes["latent"], lanes["cot"], lanes["discriminative"], images, texts, instructions,
                       max_new_tokens=MAX_NEW, warmup=0))
    kinds = [(e["event"], e.get("lane")) for e in events]
    tokens = [e for e in events if e["event"] == "token"]
    expected = [("start", None), ("lane_start", "latent"), ("lane_done", "latent"),
                ("lane_start", "discriminative"), ("lane_done", "discriminative"), ("lane_start", "cot")]
    assert kinds[:6] == expected
    assert kinds[6 : 6 + len(tokens)] == [("token", "cot")] * len(tokens)
    assert kinds[6 + len(tokens) :] == [("lane_done", "cot"), ("done", None)]

    start = events[0]
    assert start["lanes"] == ["latent", "discriminative", "cot"]
    assert start["batch_size"] == 2 and len(start["prompt_tokens"]) == 2
    assert start["max_new_tokens"] == MAX_NEW and "cpu" in start["hardware"]
    assert start["lanes_info"]["latent"]["num_reason_tokens"] == 4
    assert all(earlier["t_ms"] <= later["t_ms"] for earlier, later in zip(events, events[1:]))

    cot_done = events[-2]
    assert cot_done["tokens"] == len(tokens) <= MAX_NEW
    assert len(cot_done["tokens_per_row"]) == 2
    assert [t["tokens"] for t in tokens] == list(range(1, len(tokens) + 1))
    assert all(a["elapsed_ms"] <= b["elapsed_ms"] for a, b in zip(tokens, tokens[1:]))
    if tokens:
        assert tokens[-1]["text"] == cot_done["text"]
        assert tokens[-1]["elapsed_ms"] <= cot_done["elapsed_ms"]
        latent_ms = events[2]["elapsed_ms"]
        assert tokens[-1]["speedup"] == pytest.approx(tokens[-1]["elapsed_ms"] / latent_ms)
    for done in (events[2], events[4], cot_done):
        assert done["elapsed_ms"] > 0 and done["ms_per_item"] == pytest.approx(done["elapsed_ms"] / 2)
        assert done["embedding_dim"] == 32
    final = events[-1]
    assert set(final["elapsed_ms"]) == {"latent", "discriminative", "cot"}
    assert final["speedup"] == pytest.approx(final["ms_per_item"]["cot"] / final["ms_per_item"]["latent"])
    assert final["latent_vs_discriminative"] == pytest.approx(
        final["ms_per_item"]["latent"] / final["ms_per_item"]["discriminative"]
    )
    assert final["text"] == cot_done["text"]


def test_race_closed_early_stops_the_worker(lanes):
    before = threading.active_count()
    stream = race(lanes["latent"], lanes["cot"], max_new_tokens=40, warmup=0)
    for event in stream:
        if event["event"] == "lane_start" and event["lane"] == "cot":
            break
    stream.close()
    assert threading.active_count() == before


def test_bench_race_report(lanes, micro_model):
    report = bench_race(lanes, n=2, batch_sizes=(1, 2), warmup=0, max_new_tokens=MAX_NEW, min_rounds=2)
    assert set(report["lanes"]) == {"latent", "discriminative", "cot"}
    for lane in report["lanes"].values():
        assert set(lane["by_batch_size"]) == {"1", "2"} and lane["batch_size"] == 1
        assert lane["median"] == lane["by_batch_size"]["1"]["median"]
        assert all(v["p90"] >= v["median"] > 0 for v in lane["by_batch_size"].values())
    one, two = report["results"]
    assert one["batch_size"] == 1 and one["lanes"]["latent"]["batches"] == 2
    assert two["batch_size"] == 2 and two["lanes"]["cot"]["batches"] == 2  # one batch cycled to 2 rounds
    assert two["lanes"]["cot"]["generated_tokens"]["n"] == 4
    k = micro_model.num_reason_tokens
    prompt = one["lanes"]["discriminative"]["prompt_tokens_mean"]
    assert one["physical_floor"] == pytest.approx((prompt + k + 1) / (prompt + 1))
    assert one["speedup_cot_vs_latent"] == pytest.approx(
        one["lanes"]["cot"]["median"] / one["lanes"]["latent"]["median"]
    )
    assert report["lanes_info"]["cot"]["max_new_tokens"] == micro_model.config.cot_max_new_tokens
    assert physical_floor(0, 8) == 9.0
    table = race_markdown(report)
    assert "| 1 | latent |" in table and "| 2 | cot |" in table and "physical floor" in table


def test_bench_race_cli(micro_model, tmp_path, capsys):
    import json

    from lame_tools.cli import main

    folder = micro_model.save_pretrained(tmp_path / "micro")
    out = tmp_path / "race.json"
    args = ["bench", "race", "--lame", str(folder), "--discriminative", "none", "--cot", str(folder), "--n", "2",
            "--batch-sizes", "1", "--max-new-tokens", "3", "--agreement-items", "1", "--warmup", "0", "--min-rounds", "1",
            "--out", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert set(report["lanes"]) == {"latent", "cot"}
    assert report["lanes_info"]["cot"]["mode"] == "cot" and report["lanes_info"]["latent"]["mode"] == "latent"
    agreement = report["generator_agreement"]["lanes"]
    assert set(agreement) == {"latent", "cot"}
    for entry in agreement.values():
        assert entry["ratio"] == pytest.approx(entry["race_median_ms"] / entry["offline_median_ms"])
        assert entry["bench_median_ms_same_inputs"] > 0
    assert "cot/latent" in capsys.readouterr().out
    assert main(["bench", "race", "--lame", str(tmp_path / "missing"), "--n", "1"]) == 2
