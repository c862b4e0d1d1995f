"""`train()`: the resumable loop over the steps of a run, with its JSONL log, checkpoints, quick
validation and the final model folder.

Accelerate builds the process group, picks the device and gives the bf16 autocast; its `prepare`
and `backward` are not used, on purpose:
- the model is driven through its own methods (`forward_items`, `hidden_states`, `pool`), never
  its `__call__`, so a DistributedDataParallel wrapper would not see the forward passes to sync;
- the trainable set changes between stages (`set_stage`), which DDP fixes when it wraps the model;
- gradients are averaged by hand (`average_gradients`, one flat all-reduce with missing gradients
  zero-filled), then the encoder and the decoder are clipped apart;
- exact resume needs no data loader: the batch of step s is a pure function of (seed, s), and the
  scheduler's epoch is the global step (a prepared scheduler steps once per process).
So N processes follow the one-process loss curve for the same global batch.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lame_tools.atomic import atomic_write_json, atomic_write_text
from lame_tools.checkpoint import load_extra_tensors, load_latest, save_checkpoint
from lame_tools.data.shapes import TARGET_INSTRUCTION, make_example, render
from lame_tools.errors import LameError
from lame_tools.inputs import Item
from lame_tools.scene_head import scene_readout
from lame_tools.train.build import build_model, lr_factor, make_optimizer, make_scheduler, set_stage
from lame_tools.train.config import TrainConfig
from lame_tools.train.step import train_step

# ---- validation (quick, in-training) ---------------------------------------------------------------


def _embed_all(model, items: list[Item], mode: str, chunk: int) -> torch.Tensor:
    return torch.cat([model.forward_items(items[i : i + chunk], mode).embeddings for i in range(0, len(items), chunk)])


@torch.no_grad()
def quick_validation(model, config: TrainConfig, n: int | None = None) -> dict[str, float]:
    """Hit@1 over each example's own candidates on the first `n` validation examples (t2i: the
    positive image among the other t2i images of the subset), and with a scene head its read-out
    accuracy per object (`val_scene_shape`, `val_scene_colour`). A cheap signal while training; the
    reported scores come from `lame_tools.evaluate`."""
    n = n or config.eval_examples
    mode = config.default_mode
    examples = [make_example(config.world_seed, "validation", i) for i in range(n)]
    images = [render(e.scene) for e in examples]
    was_training = model.training
    model.eval()
    q = _embed_all(model, [e.query_item(im) for e, im in zip(examples, images)], mode, 32)
    texts = sorted({c for e in examples for c in e.candidates})
    t = _embed_all(model, [Item(None, text, TARGET_INSTRUCTION) for text in texts], mode, 64)
    row_of = {text: i for i, text in enumerate(texts)}
    t2i = [i for i, e in enumerate(examples) if e.target_has_image]
    if t2i:
        img = _embed_all(model, [examples[i].target_item(images[i]) for i in t2i], mode, 32)
    hits: dict[str, list[float]] = {}
    for i, ex in enumerate(examples):
        if ex.target_has_image:
            hit = float(int((img @ q[i]).argmax()) == t2i.index(i))
        else:
            hit = float(int((t[[row_of[c] for c in ex.candidates]] @ q[i]).argmax()) == 0)
        hits.setdefault(ex.subtask, []).append(hit)
    result = {f"val_{k}": float(np.mean(v)) for k, v in sorted(hits.items())}
    result["val_overall"] = float(np.mean([np.mean(v) for v in hits.values()]))
    if model.scene_head is not None:  # what the vision tower sees, object by object
        readout = scene_readout(model, [e.scene for e in examples], images)
        result["val_scene_shape"], result["val_scene_colour"] = readout["shape"], readout["colour"]
    model.train(was_training)
    return result


# ---- the run -------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """What `train` returns: the summary (plain data, as in summary.json) and the trained model."""

    summary: dict[str, Any]
    model: Any

    @property
    def complete(self) -> bool:
        return bool(self.summary["complete"])


def read_log(path: Path) -> list[dict[str, Any]]:
    """The rows of a run's log.jsonl (a line cut by a kill, and everything after it, dropped)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            break
    return rows


@dataclass
class _Run:
    """The state of a run in progress (one process)."""

    config: TrainConfig
    out_dir: Path
    accelerator: Any
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    step: int = 0
    end: int = 0
    previous_wall: float = 0.0
    checkpoint_s: float = 0.0
    step_times: list[float] = field(default_factory=list)
    last_metrics: dict[str, float] = field(default_factory=dict)
    ema: Any = None  # torch.optim.swa_utils.AveragedModel of the weights, with ema_decay

    @property
    def ckpt_dir(self) -> Path:
        return self.out_dir / "ckpt"

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process


def _resume(run: _Run) -> None:
    """Continue from the newest whole checkpoint (model, optimizer, schedule, RNG, step)."""
    resumed = load_latest(run.ckpt_dir, run.model, run.optimizer, run.scheduler)
    if resumed is None:
        return
    run.step = int(resumed.state["step"])
    saved_ema = load_extra_tensors(resumed.path, "ema")
    if run.ema is not None and saved_ema is not None:
        _load_ema(run.ema, saved_ema)
    elif run.ema is not None and run.main:  # a checkpoint of a run without one: average from here
        print(f"{resumed.path} holds no weight average; it starts at step {run.step}", file=sys.stderr)
    if "scheduler" not in resumed.state:  # written before the schedule was saved: re-seat it at the step
        run.scheduler = make_scheduler(run.optimizer, run.config, run.step)
    if run.main:
        print(f"resumed from {resumed.path} at step {run.step}", file=sys.stderr)


def _open_run(config: TrainConfig, out_dir: Path, resume: bool, command: str | None) -> _Run:
    """Build the accelerator, the model, optimizer and schedule; resume; truncate the log to the step."""
    from accelerate import Accelerator

    if config.threads:
        torch.set_num_threads(config.threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="bf16" if config.bf16 else "no")
    if config.batch_size % accelerator.num_processes:
        raise LameError(f"batch_size {config.batch_size} must be divisible by the {accelerator.num_processes} processes.")
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    model = build_model(config).to(accelerator.device)
    if config.gradient_checkpointing:
        model.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = make_optimizer(model, config)
    run = _Run(config, out_dir, accelerator, model, optimizer, make_scheduler(optimizer, config))
    if config.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        run.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
    if resume:
        _resume(run)
    log_path = out_dir / "log.jsonl"
    rows = [r for r in read_log(log_path) if r.get("step", 0) <= run.step] if run.step else []
    if run.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in rows))
        atomic_write_json(out_dir / "config.json", {"config": config.to_dict(), "command": command})
    run.previous_wall = float(rows[-1].get("wall_s", 0.0)) if rows else 0.0
    run.checkpoint_s = float(rows[-1].get("checkpoint_s", 0.0)) if rows else 0.0
    return run


def _ema_tensors(ema) -> dict[str, torch.Tensor]:
    """The average's parameters by name, and how many steps it has averaged (for the checkpoint)."""
    return {**dict(ema.module.named_parameters()), "n_averaged": ema.n_averaged}


def _load_ema(ema, tensors: dict[str, torch.Tensor]) -> None:
    params = dict(ema.module.named_parameters())
    if set(params) | {"n_averaged"} != set(tensors):
        raise LameError("the checkpoint's weight average does not match the model; resume without ema_decay "
                        "or start the run again.")
    with torch.no_grad():
        for name, value in params.items():
            value.copy_(tensors[name])
        ema.n_averaged.copy_(tensors["n_averaged"])


def _mean_over_processes(losses: dict[str, torch.Tensor], world: int, device) -> dict[str, float]:
    metrics = {k: float(v) for k, v in losses.items()}
    if world == 1:
        return metrics
    values = torch.tensor([metrics[k] for k in sorted(metrics)], device=device)
    torch.distributed.all_reduce(values)
    return {k: float(v) / world for k, v in zip(sorted(metrics), values.tolist())}


def _save(run: _Run) -> None:
    """A resume checkpoint of the current step (written by the main process; everyone waits)."""
    c0 = time.perf_counter()
    if run.main:
        state = {"stage": run.config.stage_of(run.step), "data_position": run.step, "config": run.config.to_dict()}
        save_checkpoint(run.ckpt_dir, run.step, run.model, run.optimizer, state, keep=run.config.keep_checkpoints,
                        scheduler=run.scheduler,
                        extra_tensors={"ema": _ema_tensors(run.ema)} if run.ema is not None else None)
    run.accelerator.wait_for_everyone()
    run.checkpoint_s += time.perf_counter() - c0


def _step_once(run: _Run, stage: int, started: float) -> tuple[dict[str, Any], bool, bool]:
    """Train the current step and validate when due. Returns (log row, whether due to log, whether due
    to checkpoint): the caller writes the row before the checkpoint, so a kill between the two never
    leaves a checkpoint whose log line is missing (resuming truncates the log to the checkpoint's step)."""
    config, accelerator = run.config, run.accelerator
    t0 = time.perf_counter()
    factor = lr_factor(config, run.step)
    out = train_step(run.model, run.optimizer, run.scheduler, config, run.step, accelerator.process_index,
                     accelerator.num_processes, autocast=accelerator.autocast)
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    run.step += 1
    step = run.step
    run.step_times.append(time.perf_counter() - t0)
    metrics = _mean_over_processes(out.losses, accelerator.num_processes, accelerator.device)
    run.last_metrics = metrics
    if config.eval_every and (step % config.eval_every == 0 or step == config.total_steps) and stage > 0 and run.main:
        metrics.update(quick_validation(run.model, config))
    saved = step % config.save_every == 0 or step in (run.end, config.total_steps) or config.stage_of(step) != stage
    row = {
        "step": step, "stage": stage, "lr_factor": round(factor, 6),
        "logit_scale": float(run.model.logit_scale.detach().exp()), "grad_norm": float(out.grad_norm),
        "step_s": round(run.step_times[-1], 4), "wall_s": round(run.previous_wall + time.perf_counter() - started, 2),
        "checkpoint_s": round(run.checkpoint_s, 3), **{k: round(v, 6) for k, v in metrics.items()},
    }
    return row, step % config.log_every == 0 or saved or "val_overall" in metrics, saved


def _summary(run: _Run, command: str | None, wall: float) -> dict[str, Any]:
    config, times = run.config, run.step_times
    return {
        "config": config.to_dict(),
        "command": command,
        "steps": run.step,
        "total_steps": config.total_steps,
        "complete": run.step >= config.total_steps,
        "wall_s": round(wall, 1),
        "checkpoint_s": round(run.checkpoint_s, 2),
        "median_step_s": float(np.median(times)) if times else None,
        "samples_per_s": (config.batch_size / float(np.median(times))) if times else None,
        "processes": run.accelerator.num_processes,
        "device": str(run.accelerator.device),
        "last_metrics": run.last_metrics,
    }


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    resume: bool = False,
    show_progress: bool = True,
    command: str | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Run (or continue) the training described by `config`; write checkpoints, the JSONL log and the
    final model folder under `out_dir`.

    Args:
        out_dir: run folder: `ckpt/` (resume checkpoints), `log.jsonl`, `model/` (the final
            `save_pretrained` folder), `summary.json`.
        resume: continue from the newest whole checkpoint in `out_dir/ckpt` (a fresh start if none).
        stop_after: stop (as if killed, after saving a checkpoint) once this global step is done;
            for tests and for splitting a run across sessions.

    Returns:
        the summary (config, steps, wall time, throughput, last metrics; "model_dir" once complete)
        and the model.
    """
    out_dir = Path(out_dir)
    run = _open_run(config, out_dir, resume, command)
    run.end = config.total_steps if stop_after is None else min(config.total_steps, stop_after)
    started = time.perf_counter()
    bar = tqdm(total=config.total_steps, initial=run.step, disable=not (show_progress and run.main),
               desc=f"train {config.kind}", dynamic_ncols=True)
    log_file = (out_dir / "log.jsonl").open("a") if run.main else None
    stage = None
    while run.step < run.end:
        if config.stage_of(run.step) != stage:
            stage = config.stage_of(run.step)
            set_stage(run.model, config, stage)
        row, due, saved = _step_once(run, stage, started)
        if log_file is not None and due:
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()  # in the OS's hands before the checkpoint exists: a SIGKILL cannot lose it
        if saved:
            _save(run)
        bar.set_postfix(stage=stage, loss=f"{row['loss']:.3f}")
        bar.update(1)
    bar.close()
    if log_file is not None:
        log_file.close()
    summary = _summary(run, command, run.previous_wall + time.perf_counter() - started)
    if run.ema is not None and summary["complete"]:  # the saved model, and each process's returned one, is the average
        with torch.no_grad():
            for mine, averaged in zip(run.model.parameters(), run.ema.module.parameters()):
                mine.copy_(averaged)
    if run.main and summary["complete"]:
        summary["model_dir"] = str(out_dir / "model")
        run.model.eval()
        run.model.save_pretrained(out_dir / "model", training_info=training_info(summary))
        atomic_write_json(out_dir / "summary.json", summary)
    run.accelerator.wait_for_everyone()
    run.accelerator.end_training()
    return TrainResult(summary, run.model)


def training_info(summary: dict[str, Any]) -> dict[str, Any]:
    """The `training.json` written into a model folder: how it was trained (scores are added later)."""
    return {
        "trained": True,
        "command": summary.get("command"),
        "config": summary["config"],
        "steps": summary["steps"],
        "wall_s": summary["wall_s"],
        "samples_per_s": summary.get("samples_per_s"),
        "processes": summary.get("processes"),
        "device": summary.get("device"),
        "torch": torch.__version__,
    }
