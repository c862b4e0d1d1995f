"""Training throughput per preset, and the share of step time spent in the latent decoder and in
checkpointing. Prints a table and writes JSON (a benchmark: no assertions).

    python scripts/train_bench.py --steps 20 --out assets/results/train_throughput.json

Method: the presets take turns step by step (round-robin), so a load that changes over the run hits
them alike; each step is the trainer's own `train_step` (batch construction, forward, backward,
gradient clipping, optimizer, schedule), timed end to end after `--warmup` untimed steps, in stage 2
(everything trains). The decoder share is measured two ways:
directly (the decoder's forward + backward, timed inside the LaME step on its own reason states) and
as 1 - t(lame-nodecoder) / t(lame). The checkpoint share is one `save_checkpoint` divided by
`save_every` steps.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="lame,discriminative,cot,lame-nodecoder")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init-from", default="runs/stage0/model")
    parser.add_argument("--render-cache", default="runs/cache")
    parser.add_argument("--out", default="assets/results/train_throughput.json")
    return parser.parse_args()


def _build_runs(args: argparse.Namespace) -> dict:
    """Per preset: (config, model, optimizer, scheduler, step times, decoder times), in stage 2."""
    from lame_tools.train import build_model, get_train_preset, make_optimizer, make_scheduler, set_stage

    runs = {}
    for name in args.presets.split(","):
        config = get_train_preset(name)
        config.init_from = args.init_from if Path(args.init_from).is_dir() else None
        config.render_cache = args.render_cache if Path(args.render_cache).is_dir() else None
        model = build_model(config)
        model.train()
        set_stage(model, config, 2)
        optimizer = make_optimizer(model, config)
        scheduler = make_scheduler(optimizer, config, first_step=config.stage1_steps)
        runs[name] = (config, model, optimizer, scheduler, [], [])
    return runs


def _decoder_seconds(model, config, step: int) -> float:
    """The latent decoder's forward + backward on the step's reason states (computed apart)."""
    import torch

    from lame_tools.losses import decoder_loss
    from lame_tools.train import decoder_targets, make_batch

    batch = make_batch(config, step)
    with torch.no_grad():
        reason = model.forward_items(batch.queries, "latent").reason_states
    reason.requires_grad_()
    d0 = time.perf_counter()
    ids, mask = decoder_targets(model.processor.tokenizer, batch.decoder_texts, reason.device)
    decoder_loss(model.decoder, reason, ids, mask).backward()
    return time.perf_counter() - d0


def _time_rounds(runs: dict, warmup: int, steps: int) -> None:
    """The presets take turns, one `train_step` each per round; times after `warmup` rounds are kept."""
    from lame_tools.train import train_step

    for i in range(warmup + steps):
        for config, model, optimizer, scheduler, times, decoder_times in runs.values():
            step = config.stage1_steps + i
            start = time.perf_counter()
            train_step(model, optimizer, scheduler, config, step)
            elapsed = time.perf_counter() - start
            decoder_elapsed = _decoder_seconds(model, config, step) if model.decoder is not None else None
            if i >= warmup:
                times.append(elapsed)
                if decoder_elapsed is not None:
                    decoder_times.append(decoder_elapsed)
        print(f"round {i + 1}/{warmup + steps}", file=sys.stderr)


def _result(runs: dict, args: argparse.Namespace) -> dict:
    import numpy as np

    from lame_tools.checkpoint import save_checkpoint
    from lame_tools.timing import hardware_info, summarize

    result = {"hardware": hardware_info(), "threads": args.threads, "steps": args.steps, "presets": {}}
    for name, (config, model, optimizer, scheduler, times, decoder_times) in runs.items():
        with tempfile.TemporaryDirectory() as tmp:
            c0 = time.perf_counter()
            save_checkpoint(tmp, 1, model, optimizer, {"config": config.to_dict()}, scheduler=scheduler)
            checkpoint_s = time.perf_counter() - c0
        step_s = float(np.median(times))
        entry = {
            "step_s": summarize(times),
            "batch_size": config.batch_size,
            "samples_per_s": config.batch_size / step_s,
            "checkpoint_s": checkpoint_s,
            "checkpoint_share": checkpoint_s / (checkpoint_s + config.save_every * step_s),
        }
        if decoder_times:
            entry["decoder_s"] = summarize(decoder_times)
            entry["decoder_share_direct"] = float(np.median(decoder_times)) / step_s
        result["presets"][name] = entry
    if "lame" in result["presets"] and "lame-nodecoder" in result["presets"]:
        t_full = result["presets"]["lame"]["step_s"]["median"]
        t_nodec = result["presets"]["lame-nodecoder"]["step_s"]["median"]
        result["decoder_share_by_difference"] = 1 - t_nodec / t_full
    return result


def main() -> int:
    import torch

    from lame_tools.atomic import atomic_write_json

    args = _parse_args()
    torch.set_num_threads(args.threads)
    runs = _build_runs(args)
    _time_rounds(runs, args.warmup, args.steps)
    result = _result(runs, args)
    atomic_write_json(args.out, result)
    print(f"{'preset':<16} {'samples/s':>10} {'step s':>8} {'decoder':>8} {'ckpt':>7}")
    for name, e in result["presets"].items():
        dec = f"{e['decoder_share_direct']:.0%}" if "decoder_share_direct" in e else "-"
        print(f"{name:<16} {e['samples_per_s']:>10.1f} {e['step_s']['median']:>8.3f} {dec:>8} {e['checkpoint_share']:>7.2%}")
    if "decoder_share_by_difference" in result:
        print(f"decoder share by difference (lame vs lame-nodecoder): {result['decoder_share_by_difference']:.0%}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
