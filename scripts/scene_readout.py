"""What a model's vision tower sees: the scene head's read-out of every object of the Shapes test scenes,
with the default renderer and each rendering style, shape apart on held-out and seen colour-shape pairs.

    .venv/bin/python scripts/scene_readout.py runs/see/stage0-scene/model --out assets/results/scene_readout_stage0.json

The read-out is `lame_tools.scene_head.scene_readout` (the head on each object's cell of merged visual
tokens); the JSON holds, per rendering, shape and colour accuracy and the share of scenes whose head
cells name as many objects as the scene holds ("count"), with Wilson 95% intervals.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.data.render import ROBUSTNESS_VARIANTS, render  # noqa: E402
from lame_tools.data.scene import make_scene  # noqa: E402
from lame_tools.intervals import wilson_interval  # noqa: E402
from lame_tools.model import LameModel  # noqa: E402
from lame_tools.scene_head import scene_readout  # noqa: E402


def with_intervals(readout: dict) -> dict:
    n, held = readout["objects"], readout["held_out_objects"]
    counts = {"shape": n, "colour": n, "shape_held_out": held, "shape_seen": n - held, "count": readout["scenes"]}
    out = dict(readout)
    for key, total in counts.items():
        if readout[key] is not None and total:
            interval = wilson_interval(round(readout[key] * total), total)
            out[f"{key}_interval"] = [interval.low, interval.high]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scenes", type=int, default=300, help="the first N test scenes")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    model = LameModel.from_pretrained(args.model).eval()
    scenes = [make_scene(0, args.split, i) for i in range(args.scenes)]
    report = {"model": str(args.model), "split": args.split, "scenes": args.scenes, "renderings": {}}
    for name, style in [("default", None), *ROBUSTNESS_VARIANTS.items()]:
        start = time.perf_counter()
        readout = scene_readout(model, scenes, [render(s, style) for s in scenes])
        report["renderings"][name] = r = {**with_intervals(readout), "seconds": round(time.perf_counter() - start, 1)}
        print(f"{name:15s} shape {100 * r['shape']:.1f} (held-out {100 * r['shape_held_out']:.1f}, seen "
              f"{100 * r['shape_seen']:.1f})  colour {100 * r['colour']:.1f}  objects {r['objects']}  "
              f"scenes counted right {100 * r['count']:.1f}", flush=True)
    atomic_write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
