"""The trainer: presets, stage freezing, smoke runs, exact resumption after SIGKILL, corrupt-checkpoint
fallback, and one process vs two gloo processes. Everything on the `micro` backbone."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from _app_server import import_file
from safetensors.torch import load_file

from lame_tools.checkpoint import (
    CorruptCheckpointWarning,
    list_checkpoints,
    load_checkpoint,
    load_latest,
    save_checkpoint,
    verify_checkpoint,
)
from lame_tools.data.shapes import TASK_KINDS, VOCABULARY, make_example
from lame_tools.errors import LameError
from lame_tools.model import LameModel
from lame_tools.train import (
    PRESETS,
    batch_indices,
    build_config,
    build_model,
    decoder_sizes_for,
    embedding_loss,
    get_train_preset,
    lr_factor,
    make_batch,
    make_optimizer,
    make_scheduler,
    parse_override,
    set_stage,
    stage0_loss,
    train,
    train_step,
)

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lame_tools", "train", *args, "--quiet", "--threads", "1"]


def test_presets_describe_the_three_models_and_the_ablations():
    assert PRESETS["lame"].num_reason_tokens == 8 and PRESETS["lame"].with_decoder
    assert PRESETS["discriminative"].num_reason_tokens == 0 and not PRESETS["discriminative"].with_decoder
    assert PRESETS["cot"].kind == "cot" and PRESETS["cot"].default_mode == "cot"
    assert PRESETS["lame-nodecoder"].num_reason_tokens == 8 and not PRESETS["lame-nodecoder"].with_decoder
    for k in (0, 1, 2, 4, 16):
        assert PRESETS[f"lame-k{k}"].num_reason_tokens == k
    assert PRESETS["lame"].warmup_steps >= 100
    with pytest.raises(LameError):
        get_train_preset("nope")


def test_lr_schedule_warms_up_per_stage_then_decays():
    config = get_train_preset("lame")
    config.stage1_steps, config.stage2_steps = 100, 800
    warm1 = min(config.warmup_steps, config.stage1_steps // 4)  # a short stage warms up over its first quarter
    assert lr_factor(config, 0) == pytest.approx(1 / warm1)
    assert lr_factor(config, warm1 - 1) == pytest.approx(1.0)
    assert lr_factor(config, config.stage1_steps - 1) < 0.2
    # stage 2 warms up again from its own start, over the full warm-up
    assert lr_factor(config, config.stage1_steps) == pytest.approx(1 / config.warmup_steps)
    assert lr_factor(config, config.stage1_steps + config.warmup_steps - 1) == pytest.approx(1.0)
    assert lr_factor(config, config.total_steps - 1) == pytest.approx(config.min_lr_ratio, abs=0.02)


def test_batches_are_a_function_of_step_and_ranks_partition_them():
    config = get_train_preset("micro-lame")
    assert batch_indices(0, 5, 8) == batch_indices(0, 5, 8)
    assert batch_indices(0, 5, 8) != batch_indices(0, 6, 8)
    whole = make_batch(config, 3)
    halves = [make_batch(config, 3, rank, 2) for rank in range(2)]
    texts = sorted(q.text or "" for q in whole.queries)
    assert sorted((q.text or "") for h in halves for q in h.queries) == texts
    assert len(halves[0].queries) == len(halves[1].queries) == config.batch_size // 2


def test_config_from_a_preset_overrides_and_named_values():
    assert parse_override("lr_latent=0.5") == ("lr_latent", 0.5)
    assert parse_override("hard_negatives=yes") == ("hard_negatives", True)
    assert parse_override("init_from=none") == ("init_from", None)
    with pytest.raises(LameError, match="Unknown training setting"):
        parse_override("nope=1")
    with pytest.raises(LameError, match="KEY=VALUE"):
        parse_override("stage1_steps")
    config = build_config("micro-lame", ["seed=3", "stage1_steps=7"], seed=5, steps_scale=2.0, base=Path("/b"),
                          gradient_checkpointing=True)
    assert config.seed == 5  # a named value wins over an override of the same field
    assert config.stage1_steps == 7 and config.stage2_steps == 10  # the scale leaves overridden stages alone
    assert config.base == "/b" and config.gradient_checkpointing and not config.bf16
    assert build_config("micro-lame") == get_train_preset("micro-lame")


def test_homogeneous_batches_hold_only_the_kind_they_were_drawn_for():
    config = get_train_preset("micro-lame")
    config.batch_size = 32
    # the world does fall back: some scenes cannot hold their kind's question (grounding -> vqa ...)
    assert any(make_example(0, "train", i).task != TASK_KINDS[i % 4] for i in range(200))
    replaced = 0
    for step in range(16):
        plain = batch_indices(config.seed, step, config.batch_size, homogeneous=True)
        indices = batch_indices(config.seed, step, config.batch_size, homogeneous=True, world_seed=config.world_seed)
        kind = TASK_KINDS[plain[0] % 4]
        assert len(set(indices)) == len(indices) == config.batch_size
        assert all(make_example(0, "train", i).task == kind for i in indices), (step, kind)
        # the draw keeps its order; only the fallen examples move to the next index of their kind
        kept = [i == j for i, j in zip(plain, indices)]
        assert all(k or make_example(0, "train", i).task != kind for i, k in zip(plain, kept))
        replaced += kept.count(False)
        # a pure function of (seed, step): a resumed run draws the same
        assert indices == batch_indices(config.seed, step, config.batch_size, homogeneous=True, world_seed=0)
    assert replaced > 0
    mixed = batch_indices(config.seed, 0, 64, kinds=["vqa", "grounding"], world_seed=0)
    assert {make_example(0, "train", i).task for i in mixed} == {"vqa", "grounding"}
    assert all(make_example(0, "train", i).task == TASK_KINDS[i % 4] for i in mixed)
    step = next(s for s in range(16) if TASK_KINDS[batch_indices(0, s, 8, homogeneous=True)[0] % 4] == "grounding")
    assert {e.task for e in make_batch(config, step).examples} == {"grounding"}


def test_schedule_is_a_lambda_lr_and_train_step_clips_and_steps_it():
    config = get_train_preset("micro-lame")
    model = build_model(config)
    model.train()
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    peak = {"backbone": config.lr_backbone, "vision": config.lr_backbone, "latent": config.lr_latent,
            "decoder": config.lr_decoder}
    assert all("peak_lr" not in g for g in optimizer.param_groups)
    for step in range(config.total_steps):
        for group in optimizer.param_groups:  # the lr of each step is the old code's: peak * factor
            assert group["lr"] == peak[group["name"]] * lr_factor(config, step), (step, group["name"])
        set_stage(model, config, config.stage_of(step))
        before = model.latent_embeddings.detach().clone()
        out = train_step(model, optimizer, scheduler, config, step)
        assert set(out.losses) >= {"loss", "contrastive", "decoder"} and not out.losses["loss"].requires_grad
        assert not torch.equal(before, model.latent_embeddings.detach())
        encoder = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("decoder")]
        clipped = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in encoder]))
        assert float(clipped) == pytest.approx(min(float(out.grad_norm), config.clip_encoder), rel=1e-4)
    # a run that starts mid-way (the throughput benchmark) is set for its first step
    fresh = make_optimizer(model, config)
    make_scheduler(fresh, config, first_step=config.stage1_steps + 1)
    assert fresh.param_groups[0]["lr"] == config.lr_backbone * lr_factor(config, config.stage1_steps + 1)


def _grads(params):
    return [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params]


@pytest.mark.parametrize("preset", ["micro-lame", "micro-cot"])
def test_stage_freezing_which_parameters_get_gradients(preset):
    config = get_train_preset(preset)
    model = build_model(config)
    model.train()
    for stage, step in ((1, 0), (2, config.stage1_steps)):
        set_stage(model, config, stage)
        model.zero_grad(set_to_none=True)
        embedding_loss(model, config, step, 0, 1)["loss"].backward()
        backbone = list(model.backbone.model.language_model.parameters())
        if stage == 1:
            assert all(p.grad is None for p in model.backbone.parameters()), "backbone must be frozen in stage 1"
        else:
            assert any(_grads(backbone)), "stage 2 trains the backbone"
        assert model.latent_embeddings.grad is not None and model.embed_head.weight.grad is not None
        assert model.logit_scale.grad is not None
        if model.decoder is not None:
            assert all(p.grad is not None for p in model.decoder.parameters() if p.requires_grad)
    if preset == "micro-cot":
        # the rationale LM loss reaches the LM head in stage 2
        assert model.backbone.lm_head.weight.grad is not None and model.backbone.lm_head.weight.grad.abs().sum() > 0
    else:
        # the reason-token rows receive gradient (through the decoder and the contrastive loss)
        assert model.latent_embeddings.grad[:-1].abs().sum() > 0


def test_locked_text_stage1_trains_only_the_vision_tower():
    config = get_train_preset("micro-discriminative")
    config.stage1_trainable = "vision"
    config.task_kinds = "retrieval"
    model = build_model(config)
    set_stage(model, config, 1)
    embedding_loss(model, config, 0, 0, 1)["loss"].backward()
    assert any(_grads(list(model.backbone.model.visual.parameters())))
    assert all(p.grad is None for p in model.backbone.model.language_model.parameters())
    assert model.embed_head.weight.grad is None and model.latent_embeddings.grad is None
    batch = make_batch(config, 0)
    assert {e.task for e in batch.examples} == {"retrieval"}


def test_stage0_lm_trains_only_the_backbone():
    config = get_train_preset("micro-stage0")
    model = build_model(config)
    set_stage(model, config, 0)
    assert get_train_preset("stage0-lm").kind == "stage0" and get_train_preset("stage0").stage1_trainable == "vision"
    stage0_loss(model, config, 0, 0, 1)["loss"].backward()
    assert model.backbone.lm_head.weight.grad is not None
    assert model.latent_embeddings.grad is None and model.embed_head.weight.grad is None


def test_optimizer_groups_and_temperature_switch():
    config = get_train_preset("micro-lame")
    config.learnable_temperature = False
    model = build_model(config)
    names = [g["name"] for g in make_optimizer(model, config).param_groups]
    assert names == ["backbone", "vision", "latent", "decoder"]
    set_stage(model, config, 2)
    assert not model.logit_scale.requires_grad
    assert float(model.logit_scale.exp()) == pytest.approx(1 / config.temperature)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["micro-lame", "micro-discriminative", "micro-cot", "micro-stage0"])
def test_smoke_run_each_preset_writes_a_loadable_model(tmp_path, preset):
    config = get_train_preset(preset)
    result = train(config, tmp_path, show_progress=False)
    summary = result.summary
    assert result.complete and summary["steps"] == config.total_steps
    assert "model" not in summary and json.loads((tmp_path / "summary.json").read_text()) == summary
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == config.total_steps and all(r["loss"] == r["loss"] for r in rows)  # no NaN
    # the decoder's right padding leaves no padding setting in the saved tokenizer
    assert json.loads((tmp_path / "model" / "tokenizer.json").read_text())["padding"] is None
    model = LameModel.from_pretrained(tmp_path / "model", device="cpu")
    assert model.config.default_mode == config.default_mode
    assert model.training_info["trained"] and model.training_info["steps"] == config.total_steps
    emb = model.encode(texts=["a red circle"], instruction="represent the text .")
    assert emb.shape == (1, config.embed_dim)


def test_corrupt_checkpoint_is_named_and_the_previous_one_used(tmp_path):
    config = get_train_preset("micro-lame")
    train(config, tmp_path, show_progress=False, stop_after=4)  # saves at 2, 3 (end of stage 1), 4; keeps 2
    ckpts = list_checkpoints(tmp_path / "ckpt")
    assert [p.name for p in ckpts] == ["step-00000003", "step-00000004"]
    assert verify_checkpoint(ckpts[-1]) is None
    weights = ckpts[-1] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    problem = verify_checkpoint(ckpts[-1])
    assert "step-00000004" in problem and "truncated" in problem
    model = build_model(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = load_latest(tmp_path / "ckpt", model, make_optimizer(model, config))
    assert resumed is not None and resumed.state["step"] == 3
    assert any(issubclass(w.category, CorruptCheckpointWarning) and "step-00000004" in str(w.message) for w in caught)
    # a flipped byte (same size) is caught by the checksum
    state = ckpts[0] / "optimizer.safetensors"
    data = bytearray(state.read_bytes())
    data[-1] ^= 0xFF
    state.write_bytes(bytes(data))
    assert "checksum" in verify_checkpoint(ckpts[0])
    # a checkpoint folder without its manifest (killed mid-write) is never used
    (ckpts[0] / "MANIFEST.json").unlink()
    assert "MANIFEST" in verify_checkpoint(ckpts[0])


def test_a_checkpoint_without_scheduler_state_resumes_on_the_same_schedule(tmp_path):
    """Checkpoints written before the schedule was a LambdaLR kept the peak rate as "peak_lr" in each
    optimizer group and no scheduler state: they resume on the same lr values."""
    config = get_train_preset("micro-lame")
    reference = train(config, tmp_path / "ref", show_progress=False).model
    train(config, tmp_path / "old", show_progress=False, stop_after=4)
    ckpt_dir = tmp_path / "old" / "ckpt"
    model = build_model(config)
    optimizer = make_optimizer(model, config)
    state = load_checkpoint(list_checkpoints(ckpt_dir)[-1], model, optimizer)  # also restores the RNG states
    for group in optimizer.param_groups:
        group["peak_lr"] = group.pop("initial_lr")
        group["lr"] = group["peak_lr"] * lr_factor(config, 3)  # what the old loop left: the last step's lr
    for old in list_checkpoints(ckpt_dir):
        shutil.rmtree(old)
    kept = {k: v for k, v in state.items() if k not in ("step", "optimizer", "rng", "scheduler")}
    save_checkpoint(ckpt_dir, 4, model, optimizer, kept)
    assert "scheduler" not in json.loads((list_checkpoints(ckpt_dir)[-1] / "state.json").read_text())
    resumed = train(config, tmp_path / "old", resume=True, show_progress=False).model
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_ema_saves_the_running_average_of_the_weights_and_resumes_it_exactly(tmp_path):
    """With ema_decay the weights train exactly as without it; the saved model is the average of the
    weights after each step (the first step's copied, then decay * average + (1 - decay) * weights),
    and a run stopped and resumed saves the same average bit for bit."""
    decay = 0.6
    plain = dataclasses.replace(get_train_preset("micro-lame"), save_every=1, keep_checkpoints=100)
    train(plain, tmp_path / "plain", show_progress=False)
    steps = list_checkpoints(tmp_path / "plain" / "ckpt")
    assert len(steps) == plain.total_steps
    expected = None
    for path in steps:  # the raw weights after each step
        weights = load_file(str(path / "model.safetensors"))
        expected = weights if expected is None else {k: decay * expected[k] + (1 - decay) * v for k, v in weights.items()}

    config = build_config("micro-lame", [f"ema_decay={decay}"])
    averaged = train(config, tmp_path / "ema", show_progress=False).model
    last = load_file(str(steps[-1] / "model.safetensors"))
    saved = load_file(str(tmp_path / "ema" / "model" / "model.safetensors"))
    moved = 0
    for name, value in averaged.named_parameters():
        assert torch.allclose(value, expected[name], atol=1e-6), name
        moved += not torch.allclose(value, last[name], atol=1e-6)
    assert moved > 0  # the average is not the last step's weights
    for name in saved:
        assert torch.equal(saved[name], averaged.state_dict()[name]), name
    raw = load_file(str(list_checkpoints(tmp_path / "ema" / "ckpt")[-1] / "model.safetensors"))
    assert all(torch.equal(raw[k], last[k]) for k in last)  # training itself is untouched

    train(config, tmp_path / "split", show_progress=False, stop_after=5)
    resumed = train(config, tmp_path / "split", resume=True, show_progress=False).model
    for (name, a), b in zip(averaged.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(LameError, match="ema_decay"):
        build_config("micro-lame", ["ema_decay=1.0"])

    # scripts/checkpoint_model.py: a model folder from a checkpoint's own weights or from its average
    script = import_file(ROOT / "scripts" / "checkpoint_model.py", "checkpoint_model_script")
    newest = list_checkpoints(tmp_path / "ema" / "ckpt")[-1]
    script.checkpoint_model(newest, tmp_path / "ema" / "model", tmp_path / "as-ema", tensors="ema")
    script.checkpoint_model(newest, tmp_path / "ema" / "model", tmp_path / "as-step")
    as_ema = load_file(str(tmp_path / "as-ema" / "model.safetensors"))
    assert as_ema.keys() == saved.keys() and all(torch.equal(as_ema[k], saved[k]) for k in saved)
    step = LameModel.from_pretrained(tmp_path / "as-step", device="cpu")
    assert step.training_info["from_checkpoint"] == str(newest)
    for name, value in step.named_parameters():
        assert torch.equal(value, raw[name]), name
    with pytest.raises(LameError, match="holds no 'other' tensors"):
        script.checkpoint_model(newest, tmp_path / "ema" / "model", tmp_path / "bad", tensors="other")
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_gives_bit_identical_weights(tmp_path):
    args = ["--preset", "micro-lame", "--set", "stage2_steps=11", "--set", "save_every=1", "--set", "log_every=1"]
    total = 14
    reference = tmp_path / "reference"
    subprocess.run(_cli(*args, "--out", str(reference)), check=True, cwd=ROOT, env=_env(), capture_output=True)

    killed = tmp_path / "killed"
    kill_after = random.Random().randint(3, total - 3)
    proc = subprocess.Popen(_cli(*args, "--out", str(killed)), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and log.read_text().count("\n") >= kill_after:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed (kill at {kill_after})"
    assert not (killed / "model").exists()
    subprocess.run(_cli(*args, "--out", str(killed), "--resume"), check=True, cwd=ROOT, env=_env(), capture_output=True)

    a = load_file(str(reference / "model" / "model.safetensors"))
    b = load_file(str(killed / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resuming from a kill at step {kill_after}"
    steps = [json.loads(line)["step"] for line in (killed / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == total  # the log has each step once


@pytest.mark.slow
def test_two_gloo_processes_follow_the_one_process_loss_curve(tmp_path):
    args = ["--preset", "micro-lame", "--set", "log_every=1"]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(_cli(*args, "--out", str(one)), check=True, cwd=ROOT, env=_env(), capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "lame_tools", "train", *args, "--out", str(two), "--quiet", "--threads", "1"]
    done = subprocess.run(torchrun, cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((two / "summary.json").read_text())
    assert summary["processes"] == 2  # accelerator.num_processes inside the run
    curve1 = [json.loads(line) for line in (one / "log.jsonl").read_text().splitlines()]
    curve2 = [json.loads(line) for line in (two / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in curve1] == [r["step"] for r in curve2]
    for r1, r2 in zip(curve1, curve2):
        for key in ("loss", "contrastive", "decoder"):
            assert r2[key] == pytest.approx(r1[key], rel=1e-4, abs=1e-5), (r1["step"], key)


def _save_base(folder):
    """A Qwen2-VL-family folder (the micro backbone with its tokenizer and image processor)."""
    tiny = LameModel.build_tiny("micro", num_reason_tokens=0, with_decoder=False, vocabulary=VOCABULARY)
    tiny.backbone.save_pretrained(folder)
    tiny.processor.tokenizer.save_pretrained(folder)
    tiny.processor.image_processor.save_pretrained(folder)
    return folder


def test_base_qwen2vl_folder_with_gradient_checkpointing(tmp_path):
    """`--base DIR`: any Qwen2-VL-family folder is wrapped by `LameModel.from_backbone` and trained."""
    base = _save_base(tmp_path / "qwen2vl")
    config = get_train_preset("micro-lame")
    config.base, config.gradient_checkpointing, config.stage2_steps = str(base), True, 1
    result = train(config, tmp_path / "run", show_progress=False)
    assert result.complete and result.model.config.prompt_format == "qwen2-vl-chat"
    assert result.model.decoder is not None and result.summary["last_metrics"]["decoder"] > 0
    # the decoder is sized from the base's width (64 -> 32), not taken from the "tiny" preset (96)
    assert result.model.config.decoder["hidden_size"] == decoder_sizes_for(64).decoder_hidden_size == 32
    assert LameModel.from_pretrained(tmp_path / "run" / "model", device="cpu").config.num_reason_tokens == 4


def test_base_takes_what_the_tokens_read_and_refuses_tiny_only_settings(tmp_path):
    """A `base` run builds with the config's reason_layer / embed_reads / reason_reads / embed_pool (so
    the blind-token control runs on a real backbone too) and refuses the tiny backbone's own settings."""
    from lame_tools.train.build import build_model

    base = str(_save_base(tmp_path / "qwen2vl"))
    config = dataclasses.replace(get_train_preset("micro-lame"), base=base, with_decoder=False,
                                 reason_reads="reasons", embed_pool="mean", reason_layer=1)
    model = build_model(config)
    assert (model.config.reason_reads, model.config.embed_pool, model.config.reason_layer) == ("reasons", "mean", 1)
    assert model.restricts_attention
    with torch.no_grad():
        out = model.forward_items(model.make_items(texts=["a red circle", "what is left of the blue square ?"]),
                                  "latent")
    # blind reason tokens hold the same (layer-1) states whatever the query; [EMBED] still reads the input
    assert (out.reason_states[1] - out.reason_states[0]).abs().max() < 1e-4
    assert (out.embeddings[1] - out.embeddings[0]).abs().max() > 1e-3
    for name, value in (("scene_words", True), ("prompt_format", "plain-text-first")):
        with pytest.raises(LameError, match=f"{name} is for the tiny backbone only"):
            build_model(dataclasses.replace(config, reason_reads="all", **{name: value}))


def test_subtask_batches_hold_one_subtask_and_are_deterministic():
    from lame_tools.train import get_train_preset
    from lame_tools.train.data import make_batch, subtask_draws

    config = dataclasses.replace(get_train_preset("micro-discriminative"), subtasks="shape_of,relation_attribute")
    seen = set()
    for step in range(6):
        draws = subtask_draws(config, step)
        assert len(draws) == config.batch_size and len({i for i, _ in draws}) == config.batch_size
        kinds = {ex.subtask for _, ex in draws}
        assert len(kinds) == 1 and kinds <= {"shape_of", "relation_attribute"}
        seen |= kinds
        again = subtask_draws(config, step)
        assert [(i, e.query_text) for i, e in draws] == [(i, e.query_text) for i, e in again]
    assert seen == {"shape_of", "relation_attribute"}
    batch = make_batch(config, 0)
    assert [e.subtask for e in batch.examples] == [e.subtask for _, e in subtask_draws(config, 0)]
    halves = [make_batch(config, 0, rank, 2).examples for rank in (0, 1)]
    assert len(halves[0]) + len(halves[1]) == config.batch_size


def test_anchor_hard_negatives_name_the_anchor_and_candidates_stay_the_default():
    from lame_tools.data.tasks import relational_answer
    from lame_tools.train import get_train_preset
    from lame_tools.train.config import build_config
    from lame_tools.train.data import make_batch

    subtasks = "relation_two_step,relation_attribute,refer,count"
    base = dataclasses.replace(get_train_preset("micro-discriminative"), subtasks=subtasks, batch_size=8)
    anchor = dataclasses.replace(base, hard_negative_from="anchor")
    kinds, fell_back = set(), 0
    for step in range(24):
        plain, named = make_batch(base, step), make_batch(anchor, step)
        assert [e.query_text for e in plain.examples] == [e.query_text for e in named.examples]
        for ex, item, valid in zip(named.examples, named.hard_negatives, named.hard_negative_valid.tolist()):
            kinds.add(ex.subtask)
            assert valid and item.text != ex.target_text
            if ex.anchor is not None and relational_answer(ex.subtask, ex.anchor) != ex.target_text:
                assert item.text == relational_answer(ex.subtask, ex.anchor)  # the object the question names
            else:  # count, or an anchor that shares the answer's colour: a wrong candidate
                assert item.text in ex.candidates[1:]
                fell_back += 1
        # the default draws a wrong candidate, as before
        assert all(item.text in ex.candidates[1:] for ex, item in zip(plain.examples, plain.hard_negatives))
    assert kinds == set(subtasks.split(",")) and fell_back > 0
    with pytest.raises(LameError, match="hard_negative_from is one of candidates, anchor"):
        build_config("micro-discriminative", ["hard_negative_from=scene"])


def test_object_curriculum_caps_the_scenes_of_its_subtasks_until_its_steps():
    from lame_tools.train import get_train_preset
    from lame_tools.train.config import build_config
    from lame_tools.train.data import subtask_draws

    base = dataclasses.replace(get_train_preset("micro-discriminative"), batch_size=24,
                               object_curriculum="2:3,3:5", object_curriculum_subtasks="colour_of")
    colour, count = (dataclasses.replace(base, subtasks=name) for name in ("colour_of", "count"))
    most = []
    for step in range(7):
        draws = subtask_draws(colour, step)
        assert len(draws) == colour.batch_size and {e.subtask for _, e in draws} == {"colour_of"}
        assert [(i, e.query_text) for i, e in draws] == [(i, e.query_text) for i, e in subtask_draws(colour, step)]
        most.append(max(len(e.scene.objects) for _, e in draws))
    assert max(most[:3]) == 2 and max(most[3:5]) == 3 and max(most[5:]) == 4
    # count is not covered: its scenes keep every size from the first step
    assert max(len(e.scene.objects) for _, e in subtask_draws(count, 0)) == 4
    assert colour.max_objects(2, "colour_of") == 2 and colour.max_objects(4, "colour_of") == 3
    assert colour.max_objects(5, "colour_of") is None and colour.max_objects(0, "count") is None
    for bad in ("2:400,2:700", "3:400,2:700", "2:700,3:400", "two:400", "0:10"):
        with pytest.raises(LameError, match="object_curriculum"):
            build_config("micro-discriminative", [f"object_curriculum={bad}"])


def test_render_variation_draws_styled_images_deterministically():
    import numpy as np

    from lame_tools.data.shapes import make_example, render
    from lame_tools.train import get_train_preset
    from lame_tools.train.data import training_image

    example = make_example(0, "train", 3)
    plain = dataclasses.replace(get_train_preset("micro-discriminative"), render_variation=0.0)
    styled = dataclasses.replace(plain, render_variation=1.0)
    default = np.asarray(render(example.scene))
    assert np.array_equal(np.asarray(training_image(plain, example, 3, step=5)), default)
    images = [np.asarray(training_image(styled, example, 3, step=s)) for s in range(4)]
    assert all(im.shape != default.shape or not np.array_equal(im, default) for im in images)
    assert np.array_equal(np.asarray(training_image(styled, example, 3, step=2)), images[2])


def test_image_pixels_sets_the_tiny_models_image_size():
    from lame_tools.data.shapes import make_example, render
    from lame_tools.train import get_train_preset
    from lame_tools.train.build import build_model

    config = dataclasses.replace(get_train_preset("micro-discriminative"), image_pixels=224 * 224)
    model = build_model(config)
    assert model.config.image_min_pixels == model.config.image_max_pixels == 224 * 224
    batch = model.processor([make_example(0, "train", 0).query_item(render(make_example(0, "train", 0).scene))],
                            model.suffix_ids("discriminative"))
    t, h, w = batch["image_grid_thw"][0].tolist()
    assert h * w * 14 * 14 == pytest.approx(224 * 224, rel=0.15)  # ~256 patches instead of ~64


def test_sequential_latent_preset_trains_through_its_steps(tmp_path):
    from lame_tools.model import LameModel
    from lame_tools.train import build_config, train
    from lame_tools.train.build import build_model
    from lame_tools.train.data import make_batch

    config = build_config("micro-sequential")
    assert config.default_mode == "sequential"
    model = build_model(config)
    out = model.forward_items(make_batch(config, 0).queries, "sequential")
    out.reason_states[:, 0].sum().backward()  # the first step's state depends on the prompt, not on our rows
    assert model.latent_embeddings.grad is None or model.latent_embeddings.grad.abs().sum() == 0
    model.zero_grad()
    model.forward_items(make_batch(config, 0).queries, "sequential").embeddings.sum().backward()
    assert model.latent_embeddings.grad[-1].abs().sum() > 0  # the [EMBED] row is read after the K steps
    result = train(config, tmp_path / "run")
    assert result.summary["complete"]
    loaded = LameModel.from_pretrained(tmp_path / "run" / "model", device="cpu")
    assert loaded.config.default_mode == "sequential"
    assert loaded.encode(texts=["a red circle"]).shape == (1, loaded.config.embed_dim)
