"""The latency harness and the race generator: structure and correctness, never timings."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from lame_tools.adapters import LameAdapter
from lame_tools.constants import MODES
from lame_tools.data.shapes import VOCABULARY
from lame_tools.model import LameModel
from lame_tools.timing import bench_race, format_race_table, physical_floor, race, race_inputs, run_lane

MAX_NEW = 5
WORD = "red"


@pytest.fixture(scope="module")
def talking_model():
    """The micro LaME with an LM head that always says WORD: its rationales run to the cap, so every
    CoT lane streams tokens (the micro model's random head stops at once). Embeddings read the
    backbone's states, never the head, so they are the micro model's own."""
    model = LameModel.build_tiny("micro", num_reason_tokens=4, embed_dim=32, seed=0, vocabulary=VOCABULARY)
    head = model.backbone.lm_head
    talking = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        talking.weight.zero_()
        talking.bias.fill_(-10.0)
        talking.bias[model.processor.tokenizer.convert_tokens_to_ids(WORD)] = 10.0
    model.backbone.lm_head = talking
    return model


@pytest.fixture(scope="module")
def lanes(talking_model):
    return {mode: LameAdapter(talking_model, mode, mode) for mode in MODES}


def test_run_lane_embeds_like_encode_and_stages_add_up(talking_model, lanes):
    images, texts, instructions = race_inputs(3)
    for mode in ("latent", "discriminative"):
        run = run_lane(lanes[mode], images, texts, instructions)
        expected = talking_model.encode(images=images, texts=texts, instruction=instructions, mode=mode)
        np.testing.assert_allclose(run.embeddings.numpy(), expected, atol=1e-5)
        assert set(run.stages_ms) == {"preprocess", "prefill", "pool"}
        assert sum(run.stages_ms.values()) == pytest.approx(run.total_ms, rel=1e-6)
        assert run.generated_tokens == [0, 0, 0] and run.decode_steps == 0
    k = talking_model.num_reason_tokens
    latent = run_lane(lanes["latent"], images, texts, instructions)
    assert [r - p for r, p in zip(latent.row_lengths, latent.prompt_lengths)] == [k + 1] * 3

    cot = run_lane(lanes["cot"], images, texts, instructions, max_new_tokens=MAX_NEW)
    assert set(cot.stages_ms) == {"preprocess", "vision_and_setup", "prefill", "decode", "generate_tail", "read"}
    assert sum(cot.stages_ms.values()) == pytest.approx(cot.total_ms, rel=1e-6)
    word = talking_model.processor.tokenizer.convert_tokens_to_ids(WORD)
    assert cot.generated_ids == [[word] * MAX_NEW] * 3
    assert cot.generated_tokens == [MAX_NEW] * 3 and cot.decode_steps == MAX_NEW
    items = talking_model.make_items(images, texts, instructions)
    with torch.no_grad():
        reread = talking_model.forward_cot(items, cot.generated_ids).embeddings
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
    assert [t["tokens"] for t in tokens] == list(range(1, MAX_NEW + 1))
    assert [t["text"] for t in tokens] == [" ".join([WORD] * i) for i in range(1, MAX_NEW + 1)]
    assert all(a["elapsed_ms"] <= b["elapsed_ms"] for a, b in zip(tokens, tokens[1:]))
    assert tokens[-1]["text"] == cot_done["text"]
    assert tokens[-1]["elapsed_ms"] <= cot_done["elapsed_ms"]
    latent_ms = events[2]["elapsed_ms"]
    for token in tokens:  # CoT time over latent time; `speedup` is its deprecated alias
        assert token["slowdown"] == pytest.approx(token["elapsed_ms"] / latent_ms)
        assert token["speedup"] == token["slowdown"]
    for done in (events[2], events[4], cot_done):
        assert done["elapsed_ms"] > 0 and done["ms_per_item"] == pytest.approx(done["elapsed_ms"] / 2)
        assert done["embedding_dim"] == 32
    final = events[-1]
    assert set(final["elapsed_ms"]) == {"latent", "discriminative", "cot"}
    assert final["slowdown"] == pytest.approx(final["ms_per_item"]["cot"] / final["ms_per_item"]["latent"])
    assert final["speedup"] == final["slowdown"]
    assert final["cot_tokens"] == MAX_NEW
    assert final["latent_vs_discriminative"] == pytest.approx(
        final["ms_per_item"]["latent"] / final["ms_per_item"]["discriminative"]
    )
    assert final["text"] == cot_done["text"]


class _Recording(LameAdapter):
    """A LaME adapter that keeps what its last generation returned."""

    def generate(self, prepared, max_new_tokens=None, streamer=None, stopping_criteria=None):
        self.generated = super().generate(prepared, max_new_tokens, streamer, stopping_criteria)
        return self.generated


def test_race_closed_early_stops_the_worker(talking_model, lanes):
    cap = 300
    cot = _Recording(talking_model, "cot", "cot")
    before = threading.active_count()
    stream = race(lanes["latent"], cot, max_new_tokens=cap, warmup=0)
    for event in stream:
        if event["event"] == "token":
            assert threading.active_count() == before + 1  # the CoT worker is generating
            break
    stream.close()
    assert threading.active_count() == before
    assert 1 <= len(cot.generated[0]) < cap  # stopped at a step after the close, not at the cap


def test_bench_race_report(lanes, talking_model):
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
    assert two["lanes"]["cot"]["generated_tokens"]["mean"] == MAX_NEW == two["cot_tokens_mean"]
    k = talking_model.num_reason_tokens
    prompt = one["lanes"]["discriminative"]["prompt_tokens_mean"]
    assert one["physical_floor"] == pytest.approx((prompt + k + 1) / (prompt + 1))
    assert one["speedup_cot_vs_latent"] == pytest.approx(
        one["lanes"]["cot"]["median"] / one["lanes"]["latent"]["median"]
    )
    assert report["lanes_info"]["cot"]["max_new_tokens"] == talking_model.config.cot_max_new_tokens
    assert physical_floor(0, 8) == 9.0
    table = format_race_table(report).splitlines()
    rows = [line.split()[:2] for line in table[2:] if line.split()[0].isdigit()]
    assert rows == [[str(bs), lane] for bs in (1, 2) for lane in MODES]
    assert sum("latent/discriminative" in line and f"K={k}" in line for line in table) == 2


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


def test_bench_encode_cli(micro_model, tmp_path, capsys):
    import json

    from lame_tools.cli import main

    folder = micro_model.save_pretrained(tmp_path / "micro")
    out = tmp_path / "encode.json"
    args = ["bench", "encode", "--model", str(folder), "--batch-sizes", "1", "2", "--rounds", "2", "--warmup", "0",
            "--mode", "discriminative", "--out", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "discriminative" and [r["batch_size"] for r in report["results"]] == [1, 2]
    for r in report["results"]:
        assert r["encode_ms"]["n"] == r["backbone_ms"]["n"] == 2
        assert r["overhead_ratio"] == pytest.approx(r["encode_ms"]["median"] / r["backbone_ms"]["median"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("encode benchmark (discriminative mode)")
    assert [line.split()[0] for line in printed[2:4]] == ["1", "2"]
