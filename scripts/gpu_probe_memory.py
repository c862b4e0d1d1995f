"""Peak memory (and time) of reason-token attention capture on a 2B-sized random-weight Qwen2-VL.

    python scripts/gpu_probe_memory.py --out DIR            # CUDA: Qwen2-VL-2B's published config, bf16, sdpa
    python scripts/gpu_probe_memory.py --smoke --out DIR    # CPU: the tiny preset, fp32 (checks the path)

Compares, for one query (448x448 image -> 256 visual tokens + a question) and a batch of 8:
    plain       the timed path: one sdpa pass (no hooks)
    rows        `run_with_cache` of every layer's `attn.hook_pattern` (K + 1 query rows only) and
                `hook_resid_post` rows: what `lame_tools.probe` keeps
    eager_full  the alternative it avoids: eager attention with output_attentions=True (full maps)
Peak is `torch.cuda.max_memory_allocated` above the memory held before the call (weights); on
CPU it is not measured (null) and only the kept bytes and times are reported.
Writes DIR/probe_memory_<card>[_smoke].json. Random weights: memory and time only, no meaning.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.data.shapes import VOCABULARY  # noqa: E402
from lame_tools.timing import hardware_info  # noqa: E402


def build_2b(device: torch.device, dtype: torch.dtype, image_pixels: int, k: int = 8, layers: int | None = None):
    """A LaME over a random Qwen2-VL-2B-sized backbone: the same builder the latency benchmark uses
    (`scripts/gpu_bench.py`, Qwen2-VL-2B's published config); `layers` cuts its depth for a CPU check."""
    from gpu_bench import build_random_lame

    return build_random_lame(device, dtype, num_reason_tokens=k, image_pixels=image_pixels, layers=layers)


def build_smoke():
    from lame_tools.model import LameModel

    return LameModel.build_tiny("tiny", num_reason_tokens=8, embed_dim=128, with_decoder=False, vocabulary=VOCABULARY)


def measure(fn, device: torch.device, repeats: int = 3) -> dict[str, Any]:
    """Peak extra memory of one call and its median time over `repeats` calls."""
    fn()  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    result = fn()
    peak = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "peak_extra_mib": None if peak is None else round(peak, 1),
        "ms_median": round(sorted(times)[len(times) // 2], 2),
        "result": result,
    }


def run(model, device: torch.device, batch_size: int, image_size: int) -> dict[str, Any]:
    from lame_tools.data.shapes import make_example, render
    from lame_tools.probe import prepare_batch, run_prepared, run_with_cache

    examples = [make_example(0, "test", i, task="vqa") for i in range(batch_size)]
    items = [e.query_item(render(e.scene).resize((image_size, image_size))) for e in examples]
    prepared = prepare_batch(model, items, "latent")
    seq = int(prepared.batch["input_ids"].shape[1])
    lm = model.backbone.config.text_config
    layers, heads = lm.num_hidden_layers, lm.num_attention_heads
    names = ["blocks.*.attn.hook_pattern", "blocks.*.hook_resid_post"]
    report: dict[str, Any] = {
        "batch_size": batch_size,
        "seq_len": seq,
        "layers": layers,
        "heads": heads,
        "query_rows": prepared.num_query,
    }

    def plain() -> None:
        run_prepared(model, prepared)

    def rows() -> int:
        _, cache = run_with_cache(model, prepared, names)
        return cache.nbytes()

    def eager_full() -> int:
        with torch.no_grad():
            out = model.backbone_forward(prepared.batch, output_attentions=True)
        return sum(a.numel() * a.element_size() for a in out.attentions)

    report["plain"] = measure(plain, device)
    report["rows"] = measure(rows, device)
    report["rows"]["kept_mib"] = round(report["rows"].pop("result") / 2**20, 3)
    report["plain"].pop("result")
    model.backbone.set_attn_implementation("eager")
    try:
        report["eager_full"] = measure(eager_full, device)
        report["eager_full"]["attention_maps_mib"] = round(report["eager_full"].pop("result") / 2**20, 3)
    finally:
        model.backbone.set_attn_implementation("sdpa")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="CPU: the tiny preset in fp32")
    parser.add_argument("--device", default=None)
    parser.add_argument("--layers", type=int, default=None, help="the 2B config cut to this depth (CPU path check)")
    args, _ = parser.parse_known_args(argv)  # gpu_check.sh passes its own flags too

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    hw = hardware_info(device)
    card = (hw.get("gpu") or "cpu").replace("NVIDIA ", "").split()[0]
    report: dict[str, Any] = {
        "benchmark": "probe_memory",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hardware": hw,
        "smoke": args.smoke,
    }
    image_size = 112 if args.smoke else 448
    try:
        start = time.perf_counter()
        if args.layers is not None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
            model = build_2b(device, dtype, image_size * image_size, layers=args.layers)
            report["model"] = (
                f"Qwen2-VL-2B published config cut to {args.layers} layer(s), {dtype}, random weights, K=8"
            )
        elif args.smoke or device.type != "cuda":
            model, report["model"] = build_smoke().to(device), "tiny preset, fp32, random weights"
        else:
            model = build_2b(device, torch.bfloat16, image_size * image_size)
            report["model"] = "Qwen2-VL-2B published config, bf16, sdpa, random weights, K=8"
        report["build_s"] = round(time.perf_counter() - start, 1)
        report["parameters_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 1)
        if device.type == "cuda":
            report["weights_mib"] = round(torch.cuda.memory_allocated(device) / 2**20, 1)
        for batch_size in (1, 8):
            key = f"batch_{batch_size}"
            try:
                report[key] = run(model, device, batch_size, image_size)
            except Exception as exc:  # noqa: BLE001 - keep the other batch size
                traceback.print_exc()
                report[key] = {"error": f"{type(exc).__name__}: {exc}"}
            print(key, json.dumps(report[key]), flush=True)
    except Exception as exc:  # noqa: BLE001 - the JSON says what failed
        traceback.print_exc()
        report["error"] = f"{type(exc).__name__}: {exc}"
    path = args.out / f"probe_memory_{card}{'_smoke' if args.smoke else ''}.json"
    atomic_write_json(path, report)
    print(f"wrote {path}")
    return 0 if "error" not in report else 1


if __name__ == "__main__":
    sys.exit(main())
