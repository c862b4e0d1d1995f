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
from lame_tools.adapters import LameAdapter, load_lane  # noqa: E402
from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.constants import MODES  # noqa: E402
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

    The tokenizer is the Shapes word-level one with Qwen2-VL's special tokens, whose ids the config
    takes from the library's own layout (`build_tiny_backbone_config`); the vocabulary (151,936 rows: embedding and LM head) keeps the published size, so the
    LM head costs what it costs in the real model. Prompts use Qwen2-VL's chat layout; images are
    resized to `image_pixels` (448x448 gives 256 visual tokens after the 2x2 merge).
    """
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from lame_tools.backbone import build_image_processor, build_tiny_backbone_config, build_tokenizer
    from lame_tools.config import LameConfig, get_preset
    from lame_tools.data.shapes import VOCABULARY
    from lame_tools.model import LameModel
    from lame_tools.processor import LameProcessor

    raw = {k: v for k, v in json.loads(CONFIG_2B.read_text()).items() if not k.startswith("_")}
    if layers is not None:  # the CPU smoke test runs the same path on a cut-down depth
        raw["num_hidden_layers"] = layers
        raw["max_window_layers"] = layers
        raw["vision_config"]["depth"] = layers
    tokenizer = build_tokenizer(VOCABULARY)
    config = Qwen2VLConfig.from_dict(raw)
    layout = build_tiny_backbone_config(tokenizer, get_preset("micro"))  # this tokenizer's special-token ids
    for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        setattr(config, key, getattr(layout, key))
    text = config.text_config
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(text, key, getattr(layout.text_config, key))
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


class Parts:
    """The parts of the check, most important first; each returns its JSON section. The 2B model
    built by `big_build` and the tiny lanes of `tiny_race` are kept for the later parts."""

    def __init__(self, device: torch.device, smoke: bool, cot_tokens: int) -> None:
        self.device, self.smoke, self.cot_tokens = device, smoke, cot_tokens
        self.dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
        self.model: Any = None
        self.lanes: dict[str, LameAdapter] = {}
        self.tiny: dict[str, Any] = {}

    def plan(self) -> list[tuple[str, Any]]:
        smoke = self.smoke
        return [
            ("big_build", self.big_build),
            ("big_one_pass", self.big_one_pass),
            ("big_cot_batch1", self.big_cot_batch1),
            ("tiny_race", self.tiny_race),
            ("big_cot_batch32", self.big_cot_batch32),
            ("big_ume_r1", lambda: _ume_r1_race(self.model, self.lanes["latent"], smoke)),
            ("big_encode", lambda: bench_encode(self.model, (1, 8) if smoke else (1, 8, 32), rounds=3 if smoke else 5)),
            ("tiny_encode", lambda: bench_encode(self.tiny["latent"].model, (1, 32), rounds=3 if smoke else 10)),
        ]

    def big_build(self) -> dict[str, Any]:
        model = build_random_lame(self.device, self.dtype, cot_tokens=self.cot_tokens, layers=1 if self.smoke else None,
                                  image_pixels=112 * 112 if self.smoke else 448 * 448)
        self.model = model
        self.lanes = {lane: LameAdapter(model, lane, f"2b-random-{lane}") for lane in MODES}
        info = {"parameters": sum(p.numel() for p in model.parameters()), "dtype": str(self.dtype),
                "attn_implementation": model.backbone.config._attn_implementation,
                "layers": model.backbone.config.text_config.num_hidden_layers, "cot_tokens": self.cot_tokens}
        if self.device.type == "cuda":
            info["memory_allocated_gib"] = torch.cuda.memory_allocated(self.device) / 2**30
        return info

    def big_one_pass(self) -> dict[str, Any]:
        one_pass = {k: self.lanes[k] for k in ("latent", "discriminative")}
        rep = bench_race(one_pass, n=8 if self.smoke else 128, batch_sizes=(1, 4) if self.smoke else (1, 32), warmup=2)
        print(format_race_table(rep), flush=True)
        return rep

    def big_cot_batch1(self) -> dict[str, Any]:
        rep = bench_race(self.lanes, n=2, batch_sizes=(1,), warmup=1)
        rep["generator_agreement"] = generator_agreement(self.lanes, rep, items=1)
        print(format_race_table(rep), flush=True)
        return rep

    def big_cot_batch32(self) -> dict[str, Any]:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        size = 4 if self.smoke else 32
        rep = bench_race(self.lanes, n=size, batch_sizes=(size,), warmup=0)
        if self.device.type == "cuda":
            rep["peak_memory_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        print(format_race_table(rep), flush=True)
        return rep

    def tiny_race(self) -> dict[str, Any]:
        self.tiny = {lane: load_lane(lane, SHIPPED_MODELS[lane], "lame", device=str(self.device)) for lane in MODES}
        rep = bench_race(self.tiny, n=8 if self.smoke else 64, batch_sizes=(1, 4) if self.smoke else (1, 32), warmup=1)
        rep["generator_agreement"] = generator_agreement(self.tiny, rep, items=2 if self.smoke else 10)
        print(format_race_table(rep), flush=True)
        return rep


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
    hw = hardware_info(device)
    card = (hw.get("gpu") or "cpu").replace("NVIDIA ", "").split()[0]
    date = time.strftime("%Y-%m-%d", time.gmtime())
    out_file = args.out / f"gpu_check_{card}_{date}{'_smoke' if args.smoke else ''}.json"
    report: dict[str, Any] = {"benchmark": "gpu_check", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "hardware": hw, "smoke": args.smoke}
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every part, so a run cut short keeps what it measured
        atomic_write_json(out_file, report)

    parts = Parts(device, args.smoke, 4 if args.smoke else args.cot_tokens)
    for name, fn in parts.plan():
        if args.deadline is not None and time.perf_counter() - began > args.deadline:
            report[name] = {"skipped": f"past the {args.deadline:.0f} s deadline"}
            continue
        if name.startswith("big_") and name != "big_build" and parts.model is None:
            report[name] = {"skipped": "the 2B model was not built"}
            continue
        section(name, fn, report, save)
    save()
    print(f"wrote {out_file}")
    return 0


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
