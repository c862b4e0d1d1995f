"""The latency harness and the race generator: structure and correctness, never timings."""

from __future__ import annotations

import threading
import time

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


def test_race_event_order_and_contents(lanes, talking_model):
    images, texts, instructions = race_inputs(2)
    sequential = LameAdapter(talking_model, "sequential", "sequential")
    events = list(race(lanes["latent"], lanes["cot"], lanes["discriminative"], images, texts, instructions,
                       max_new_tokens=MAX_NEW, warmup=0, repeats=3, sequential=sequential, poll_s=0.0,
                       other_work=["a UMAP map fit"]))
    names = ["latent", "discriminative", "sequential", "cot"]
    start, final = events[0], events[-1]
    assert start["event"] == "start" and final["event"] == "done"
    assert start["lanes"] == names and start["repeats"] == 3 and start["other_work"] == ["a UMAP map fit"]
    assert start["batch_size"] == 2 and len(start["prompt_tokens"]) == 2
    assert start["max_new_tokens"] == MAX_NEW and "cpu" in start["hardware"]
    assert start["lanes_info"]["latent"]["num_reason_tokens"] == 4
    assert start["lanes_info"]["sequential"]["num_reason_tokens"] == 4
    assert start["lanes_info"]["sequential"]["trained_for_mode"] is False
    assert start["protocol"]["batch_size"] == 2 and start["protocol"]["cot_read"] == "cache"
    assert all(earlier["t_ms"] <= later["t_ms"] for earlier, later in zip(events, events[1:]))

    runs = [(e["lane"], e["round"]) for e in events if e["event"] == "run_done"]
    rotated = [names[r:] + names[:r] for r in range(3)]
    assert runs == [(lane, r) for r in range(3) for lane in rotated[r]]  # every lane 3 times, order rotating
    lane_starts = [e["lane"] for e in events if e["event"] == "lane_start"]
    assert lane_starts == names
    done = {e["lane"]: e for e in events if e["event"] == "lane_done"}
    assert [e["event"] for e in events[-5:]] == ["lane_done"] * 4 + ["done"] and list(done) == names
    for lane, event in done.items():
        timed = [e["total_ms"] for e in events if e["event"] == "run_done" and e["lane"] == lane]
        assert event["runs_ms"] == timed and event["elapsed_ms"] == pytest.approx(float(np.median(timed)))
        assert event["spread_ms"]["min"] == min(timed) and event["spread_ms"]["max"] == max(timed)
        assert event["ms_per_item"] == pytest.approx(event["elapsed_ms"] / 2) and event["embedding_dim"] == 32
        assert len(event["embedding"]) == 32
    cot_done = done["cot"]
    assert cot_done["tokens"] == MAX_NEW and cot_done["tokens_per_row"] == [MAX_NEW, MAX_NEW]
    assert cot_done["text"] == " ".join([WORD] * MAX_NEW) and done["latent"]["text"] is None

    tokens = [e for e in events if e["event"] == "token"]
    for token in tokens:  # snapshots of the streamed (first timed) CoT run only
        assert token["text"] == " ".join([WORD] * token["tokens"]) and token["speedup"] == token["slowdown"]
    assert [t["tokens"] for t in tokens] == sorted(t["tokens"] for t in tokens)
    streamed = next(e for e in events if e["event"] == "run_done" and e["lane"] == "cot")
    assert streamed["ui_updates"] == len(tokens)

    assert set(final["elapsed_ms"]) == set(names) and final["runs_ms"]["cot"] == cot_done["runs_ms"]
    assert final["slowdown"] == pytest.approx(final["ms_per_item"]["cot"] / final["ms_per_item"]["latent"])
    assert final["speedup"] == final["slowdown"] and final["cot_tokens"] == MAX_NEW
    assert final["latent_vs_discriminative"] == pytest.approx(
        final["ms_per_item"]["latent"] / final["ms_per_item"]["discriminative"]
    )
    assert final["sequential_vs_latent"] == pytest.approx(
        final["ms_per_item"]["sequential"] / final["ms_per_item"]["latent"]
    )
    assert final["text"] == cot_done["text"] and final["other_work"] == ["a UMAP map fit"]


class _Stamping(LameAdapter):
    """A LaME adapter that notes when each of its runs begins (its `prepare`)."""

    def __init__(self, model, mode, stamps):
        super().__init__(model, mode, mode)
        self.stamps = stamps

    def prepare(self, images, texts, instruction):
        self.stamps.append(time.perf_counter())
        return super().prepare(images, texts, instruction)


def test_race_worker_waits_for_the_consumer_between_runs(talking_model):
    """No timed run starts while the consumer still handles the previous event (a UI redraw)."""
    stamps: list[float] = []
    latent, cot = _Stamping(talking_model, "latent", stamps), _Stamping(talking_model, "cot", stamps)
    handled = []
    for event in race(latent, cot, None, *race_inputs(1), max_new_tokens=2, warmup=0, repeats=2):
        if event["event"] == "run_done":
            time.sleep(0.05)  # the consumer is busy drawing; the worker must wait for it
            handled.append(time.perf_counter())
    runs = stamps[1:]  # the first `prepare` is the start event's (prompt lengths)
    assert len(runs) == 4 and len(handled) == 4
    assert all(begin >= end for begin, end in zip(runs[1:], handled))


class _Recording(LameAdapter):
    """A LaME adapter that keeps what its last generation returned."""

    def generate(self, prepared, max_new_tokens=None, streamer=None, stopping_criteria=None):
        self.generated = super().generate(prepared, max_new_tokens, streamer, stopping_criteria)
        return self.generated


def test_race_closed_early_stops_the_worker(talking_model, lanes):
    cap = 300
    cot = _Recording(talking_model, "cot", "cot")
    before = threading.active_count()
    stream = race(lanes["latent"], cot, max_new_tokens=cap, warmup=0, repeats=1, poll_s=0.01)
    for event in stream:
        if event["event"] == "token":
            assert threading.active_count() == before + 1  # the lanes' worker is generating
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
    assert report["lane_sources"] == {"latent": str(folder), "cot": str(folder)}
    assert report["cot_read"] == "cache" and len(report["load_average"]) == 3
    assert main(["bench", "race", "--lame", str(tmp_path / "missing"), "--n", "1"]) == 2
    assert main(["bench", "race", "--lanes", "latent,typo", "--n", "1"]) == 2


def test_bench_race_cli_sequential_lane_and_reread(micro_model, tmp_path, capsys):
    import json

    from lame_tools.cli import main

    folder = micro_model.save_pretrained(tmp_path / "micro")
    out = tmp_path / "race.json"
    args = ["bench", "race", "--lame", str(folder), "--cot", str(folder), "--lanes", "latent,sequential,cot",
            "--cot-read", "reread", "--n", "2", "--batch-sizes", "1", "--max-new-tokens", "2", "--agreement-items", "0",
            "--warmup", "0", "--min-rounds", "1", "--out", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert set(report["lanes"]) == {"latent", "sequential", "cot"}
    assert report["lanes_info"]["sequential"]["mode"] == "sequential"
    assert report["lanes_info"]["sequential"]["trained_for_mode"] is False
    assert report["lanes_info"]["cot"]["cot_read"] == "reread" and report["cot_read"] == "reread"
    result = report["results"][0]
    assert result["sequential_vs_latent"] == pytest.approx(
        result["lanes"]["sequential"]["median"] / result["lanes"]["latent"]["median"])
    assert "sequential/latent" in capsys.readouterr().out


def test_bench_race_sequential_lane_defaults_to_the_shipped_sequential_model(tmp_path):
    from lame_tools import SHIPPED_MODELS
    from lame_tools.cli.bench import _default_sequential

    # beside the shipped LaME, the model trained for sequential steps; beside another LaME, that one
    assert _default_sequential(str(SHIPPED_MODELS["latent"])) == str(SHIPPED_MODELS["sequential"])
    assert _default_sequential(str(tmp_path / "other")) == str(tmp_path / "other")
    assert _default_sequential("none") == "none"


def test_sequential_lane_embeds_like_forward_sequential(talking_model):
    images, texts, instructions = race_inputs(3)
    run = run_lane(LameAdapter(talking_model, "sequential"), images, texts, instructions)
    with torch.no_grad():
        expected = talking_model.forward_sequential(talking_model.make_items(images, texts, instructions)).embeddings
    np.testing.assert_allclose(run.embeddings.numpy(), expected.numpy(), atol=1e-6)
    k = talking_model.num_reason_tokens
    assert [r - p for r, p in zip(run.row_lengths, run.prompt_lengths)] == [k + 1] * 3
    assert set(run.stages_ms) == {"preprocess", "prefill", "pool"} and run.decode_steps == 0


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


def test_frontier_joins_recorded_quality_and_cost(tmp_path):
    import json

    from lame_tools.demo.frontier import frontier_figure, frontier_markdown, frontier_points

    results, benchmarks = tmp_path / "results", tmp_path / "benchmarks"
    results.mkdir(), benchmarks.mkdir()
    for model, mode, hit in (("lame-shapes", "latent", 0.49), ("cot-shapes", "cot", 0.36), ("other", "latent", 0.1)):
        (results / f"eval_{model}_{mode}.json").write_text(json.dumps(
            {"benchmark": "shapes", "model": f"/x/{model}", "mode": mode, "overall": hit,
             "intervals": {"overall": [hit - 0.02, hit + 0.01]}}))
    (results / "eval_broken.json").write_text("{")

    def race_report(created, ms):
        return {"benchmark": "race", "created": created, "date": created[:10], "load_average": [3.5, 3, 3],
                "hardware": {"cpu": "Xeon", "torch_threads": 1},
                "lane_sources": {"latent": "/m/lame-shapes", "cot": "/m/cot-shapes"},
                "lanes_info": {"latent": {"mode": "latent"}, "cot": {"mode": "cot", "cot_read": "cache"}},
                "lanes": {"latent": {"by_batch_size": {"1": {"median": ms, "p90": ms}}},
                          "cot": {"by_batch_size": {"1": {"median": 9 * ms, "p90": 9 * ms}}}}}

    (benchmarks / "old.json").write_text(json.dumps(race_report("2026-11-01T00:00:00Z", 100.0)))
    (benchmarks / "new.json").write_text(json.dumps(race_report("2026-12-01T00:00:00Z", 8.0)))
    points, label = frontier_points(results, benchmarks)
    assert [(p["model"], p["mode"]) for p in points] == [("lame-shapes", "latent"), ("cot-shapes", "cot")]
    assert points[0]["ms"] == 8.0 and points[1]["ms"] == 72.0  # the newest report
    assert points[1]["low"] == pytest.approx(0.34) and points[1]["high"] == pytest.approx(0.37)
    assert label["bench_file"] == "new.json" and label["threads"] == 1
    figure = frontier_figure(points, label)
    assert len(figure.data) == 2 and figure.data[1].x[0] == 72.0 and figure.data[1].y[0] == pytest.approx(36.0)
    assert "Xeon" in figure.layout.title.text and "2026-12-01" in figure.layout.title.text
    ticks = dict(zip(figure.layout.xaxis.tickvals, figure.layout.xaxis.ticktext))
    assert ticks[20] == "20" and ticks[50] == "50" and ticks[10] == "10"  # log ticks labelled in full
    assert "| cot-shapes · cot | 72.0 | 36.0 (34.0-37.0) |" in frontier_markdown(points, label)
    assert frontier_points(results, tmp_path / "none") == ([], {})


def test_race_board_lines_notes_and_answers(tmp_path):
    from PIL import Image

    from lame_tools.demo.race_board import RaceBoard, background_work, known_answer, wait_for_background

    board = RaceBoard()
    board.update({"event": "start", "hardware": {"cpu": "Xeon", "torch_threads": 1, "device": "cpu"},
                  "lanes": ["latent", "sequential", "cot"], "batch_size": 1, "prompt_tokens": [27],
                  "max_new_tokens": 48, "repeats": 3, "warmup": 1, "other_work": ["a UMAP map fit (latent mode)"],
                  "protocol": {"torch_threads": 1, "dtype": "float32", "cot_read": "cache"},
                  "lanes_info": {"sequential": {"trained_for_mode": False}}})
    assert "Disturbed" in board.hardware and "UMAP" in board.hardware and "1 warm-up + 3 timed runs" in board.hardware
    for lane, runs in (("latent", [8.0, 9.0, 30.0]), ("sequential", [20.0, 21.0, 22.0]), ("cot", [60.0, 61.0, 70.0])):
        for r, ms in enumerate(runs):
            board.update({"event": "run_done", "lane": lane, "round": r, "total_ms": ms})
    assert board.elapsed_ms["latent"] == 9.0  # the median so far
    board.update({"event": "done", "ms_per_item": {"cot": 61.0, "latent": 9.0}, "slowdown": 61 / 9, "cot_tokens": 24,
                  "repeats": 3})
    board.answers = {"cot": {"text": "a blue circle", "right": True}, "latent": {"text": "a red square", "right": False}}
    lines = board.lane_lines()
    assert "**CoT**: 61.0 ms (median of 3, 60.0-70.0), top result 'a blue circle' (right)" in lines
    assert "**latent**: 9.0 ms (median of 3, 8.0-30.0), top result 'a red square' (wrong)" in lines
    assert "not trained for sequential steps" in lines
    record = {"file": "race.json", "card": "CPU: Xeon", "threads": 1, "batch_size": 1,
              "ms_per_item": {"latent": 8.5, "cot": 30.0}}
    note = board.recorded_note([record])
    assert "Differs" in note and "cot 61.0 ms live vs 30.0 ms recorded" in note and "latent" not in note.split(":")[1]
    assert "other work was running" in note
    assert board.recorded_note([dict(record, threads=2)]) == ""  # another protocol is not compared

    image = Image.new("RGB", (8, 8), "red")
    path = tmp_path / "scene.png"
    image.save(path)
    examples = [{"image": str(path), "text": "what is left of it ?", "task": "vqa", "answer": "a blue circle"},
                {"image": None, "text": "a red circle", "task": "retrieval", "answer": "scene 3"}]
    instructions = {"vqa": "answer", "retrieval": "find"}
    assert known_answer(examples, image, "what is left of it ?", "answer", instructions) == "a blue circle"
    assert known_answer(examples, Image.new("RGB", (8, 8), "blue"), "what is left of it ?", "answer", instructions) is None
    assert known_answer(examples, None, "a red circle", "find", instructions) == "scene 3"
    assert known_answer(examples, None, "a red circle", "answer", instructions) is None

    release = threading.Event()
    fit = threading.Thread(target=release.wait, name="umap-latent", daemon=True)
    fit.start()
    assert background_work() == ["a UMAP map fit (latent mode)"]
    first, still, waited = wait_for_background(0.05, poll_s=0.01)
    assert first == still == ["a UMAP map fit (latent mode)"] and waited >= 0.05
    release.set()
    fit.join()
    assert wait_for_background(1.0)[1] == []
