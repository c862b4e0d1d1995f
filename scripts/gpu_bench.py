"""GPU latency check: the race and the encode benchmark on the tiny shipped models and on a 2B-sized
random-weight Qwen2-VL (Qwen2-VL-2B's published config, bf16, sdpa). No network needed.

    python scripts/gpu_bench.py --out DIR            # on a CUDA machine
    python scripts/gpu_bench.py --smoke --out DIR    # CPU check: tiny models, and the 2B path cut to 1 layer

Random weights never emit a stop token, so every CoT lane of the 2B part writes exactly its cap:
`--cot-tokens` (default 403, UME-R1's reported mean rationale length). The numbers are speed only.
Writes DIR/gpu_check_<card>_<date>.json and prints the tables.
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

from lame_tools import SHIPPED_MODELS  # noqa: E402
from lame_tools.adapters import LameAdapter  # noqa: E402
from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.timing import (  # noqa: E402
    bench_encode,
    bench_race,
    format_race_table,
    generator_agreement,
    hardware_info,
)

CONFIG_2B = ROOT / "assets" / "benchmarks" / "qwen2_vl_2b_config.json"


def build_random_lame(
    device: torch.device,
    dtype: torch.dtype,
    num_reason_tokens: int = 8,
    image_pixels: int = 448 * 448,
    cot_tokens: int = 403,
    layers: int | None = None,
    seed: int = 0,
):
    """A LaME over a randomly initialised Qwen2-VL-2B-sized backbone, built directly on `device`.

    The tokenizer is the Shapes word-level one with Qwen2-VL's special tokens (ids remapped in the
    config); the vocabulary (151,936 rows: embedding and LM head) keeps the published size, so the
    LM head costs what it costs in the real model. Prompts use Qwen2-VL's chat layout; images are
    resized to `image_pixels` (448x448 gives 256 visual tokens after the 2x2 merge).
    """
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from lame_tools.backbone import build_image_processor, build_tokenizer
    from lame_tools.config import LameConfig
    from lame_tools.data.shapes import VOCABULARY
    from lame_tools.model import LameModel
    from lame_tools.processor import LameProcessor

    raw = {k: v for k, v in json.loads(CONFIG_2B.read_text()).items() if not k.startswith("_")}
    if layers is not None:  # the CPU smoke test runs the same path on a cut-down depth
        raw["num_hidden_layers"] = layers
        raw["max_window_layers"] = layers
        raw["vision_config"]["depth"] = layers
    tokenizer = build_tokenizer(VOCABULARY)
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig.from_dict(raw)
    config.image_token_id, config.video_token_id = ids("<|image_pad|>"), ids("<|video_pad|>")
    config.vision_start_token_id, config.vision_end_token_id = ids("<|vision_start|>"), ids("<|vision_end|>")
    text = config.text_config
    text.bos_token_id, text.eos_token_id, text.pad_token_id = ids("<|im_start|>"), ids("<|im_end|>"), ids("<|endoftext|>")
    lame_config = LameConfig(
        num_reason_tokens=num_reason_tokens,
        embed_dim=text.hidden_size,
        backbone=config.to_dict(),
        decoder=None,
        prompt_format="qwen2-vl-chat",
        image_min_pixels=image_pixels,
        image_max_pixels=image_pixels,
        max_text_tokens=512,
        cot_max_new_tokens=cot_tokens,
    )
    processor = LameProcessor(
        tokenizer, build_image_processor(image_pixels, image_pixels), "qwen2-vl-chat", lame_config.max_text_tokens
    )
    torch.manual_seed(seed)
    with torch.device(device):
        backbone = Qwen2VLForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
        model = LameModel(lame_config, backbone, processor, None)
    model._reason_ids = model._reason_ids.cpu()  # as from_pretrained leaves it: no device sync per forward
    return model.to(device=device, dtype=dtype).eval()


def section(name: str, fn, report: dict[str, Any], save) -> None:
    """Run one part; record its result or its error (one failing part must not lose the others)."""
    start = time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        report[name] = fn()
    except Exception as exc:  # noqa: BLE001 - reported in the JSON, the run goes on
        traceback.print_exc()
        report[name] = {"error": f"{type(exc).__name__}: {exc}"}
    report.setdefault("seconds", {})[name] = round(time.perf_counter() - start, 1)
    save()
    print(f"== {name} done in {report['seconds'][name]} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="CPU check: small n, the 2B path cut to 1 layer, fp32")
    parser.add_argument("--device", default=None)
    parser.add_argument("--cot-tokens", type=int, default=403)
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds after start past which remaining parts are skipped (most important first)")
    args = parser.parse_args(argv)

    began = time.perf_counter()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    smoke = args.smoke
    hw = hardware_info(device)
    card = (hw.get("gpu") or "cpu").replace("NVIDIA ", "").split()[0]
    date = time.strftime("%Y-%m-%d", time.gmtime())
    out_file = args.out / f"gpu_check_{card}_{date}{'_smoke' if smoke else ''}.json"
    report: dict[str, Any] = {"benchmark": "gpu_check", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "hardware": hw, "smoke": smoke}
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every part, so a run cut short keeps what it measured
        atomic_write_json(out_file, report)

    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    cot_tokens = 4 if smoke else args.cot_tokens
    state: dict[str, Any] = {}

    def big_build() -> dict[str, Any]:
        model = build_random_lame(device, dtype, cot_tokens=cot_tokens, layers=1 if smoke else None,
                                  image_pixels=112 * 112 if smoke else 448 * 448)
        state["model"] = model
        state["lanes"] = {lane: LameAdapter(model, lane, f"2b-random-{lane}") for lane in ("latent", "discriminative", "cot")}
        info = {"parameters": sum(p.numel() for p in model.parameters()), "dtype": str(dtype),
                "attn_implementation": model.backbone.config._attn_implementation,
                "layers": model.backbone.config.text_config.num_hidden_layers, "cot_tokens": cot_tokens}
        if device.type == "cuda":
            info["memory_allocated_gib"] = torch.cuda.memory_allocated(device) / 2**30
        return info

    def big_one_pass() -> dict[str, Any]:
        one_pass = {k: state["lanes"][k] for k in ("latent", "discriminative")}
        rep = bench_race(one_pass, n=8 if smoke else 128, batch_sizes=(1, 4) if smoke else (1, 32), warmup=2)
        print(format_race_table(rep), flush=True)
        return rep

    def big_cot_batch1() -> dict[str, Any]:
        rep = bench_race(state["lanes"], n=2, batch_sizes=(1,), warmup=1)
        rep["generator_agreement"] = generator_agreement(state["lanes"], rep, items=1)
        print(format_race_table(rep), flush=True)
        return rep

    def big_cot_batch32() -> dict[str, Any]:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rep = bench_race(state["lanes"], n=4 if smoke else 32, batch_sizes=(4 if smoke else 32,), warmup=0)
        if device.type == "cuda":
            rep["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        print(format_race_table(rep), flush=True)
        return rep

    def tiny_race() -> dict[str, Any]:
        tiny = {lane: LameAdapter(LameModel_load(SHIPPED_MODELS[lane], device), lane, lane)
                for lane in ("latent", "discriminative", "cot")}
        state["tiny"] = tiny
        rep = bench_race(tiny, n=8 if smoke else 64, batch_sizes=(1, 4) if smoke else (1, 32), warmup=1)
        rep["generator_agreement"] = generator_agreement(tiny, rep, items=2 if smoke else 10)
        print(format_race_table(rep), flush=True)
        return rep

    parts = [
        ("big_build", big_build),
        ("big_one_pass", big_one_pass),
        ("big_cot_batch1", big_cot_batch1),
        ("tiny_race", tiny_race),
        ("big_cot_batch32", big_cot_batch32),
        ("big_ume_r1", lambda: _ume_r1_race(state["model"], state["lanes"]["latent"], smoke)),
        ("big_encode", lambda: bench_encode(state["model"], (1, 8) if smoke else (1, 8, 32), rounds=3 if smoke else 5)),
        ("tiny_encode", lambda: bench_encode(state["tiny"]["latent"].model, (1, 32), rounds=3 if smoke else 10)),
    ]
    for name, fn in parts:
        if args.deadline is not None and time.perf_counter() - began > args.deadline:
            report[name] = {"skipped": f"past the {args.deadline:.0f} s deadline"}
            continue
        if name.startswith("big_") and name != "big_build" and "model" not in state:
            report[name] = {"skipped": "the 2B model was not built"}
            continue
        section(name, fn, report, save)
    save()
    print(f"wrote {out_file}")
    return 0


def LameModel_load(path: Path, device: torch.device):  # noqa: N802 - reads like the class method it wraps
    from lame_tools.model import LameModel

    return LameModel.from_pretrained(path, device=str(device))


def _ume_r1_race(model, latent: LameAdapter, smoke: bool) -> dict[str, Any]:
    """UME-R1's two modes on the same random 2B backbone (its tokenizer gains <disc_emb>/<gen_emb>):
    disc (one pass, read at <disc_emb> mid-prompt) and gen (generate to the cap with
    output_hidden_states, read at <gen_emb>), raced against the LaME latent lane."""
    from lame_tools.adapters import UmeR1Adapter
    from lame_tools.backbone import build_tokenizer
    from lame_tools.data.shapes import VOCABULARY

    tokenizer = build_tokenizer(sorted(set(VOCABULARY) | {"<", ">", "/", "think", "answer", "represent"}))
    tokenizer.add_tokens(["<disc_emb>", "<gen_emb>"], special_tokens=True)
    image_processor = model.processor.image_processor
    cap = model.config.cot_max_new_tokens
    lanes = {
        "latent": latent,
        "discriminative": UmeR1Adapter(model.backbone, tokenizer, image_processor, "disc", name="ume-r1-disc"),
        "cot": UmeR1Adapter(model.backbone, tokenizer, image_processor, "gen", max_new_tokens=cap, name="ume-r1-gen"),
    }
    rep = bench_race(lanes, n=2, batch_sizes=(1,), warmup=0)
    rep32 = bench_race(lanes, n=4 if smoke else 32, batch_sizes=(4 if smoke else 32,), warmup=0)
    rep["results"] += rep32["results"]
    for lane in rep["lanes"]:
        rep["lanes"][lane]["by_batch_size"].update(rep32["lanes"][lane]["by_batch_size"])
    print(format_race_table(rep), flush=True)
    return rep


if __name__ == "__main__":
    raise SystemExit(main())
