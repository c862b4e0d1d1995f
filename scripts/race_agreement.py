"""Does the app's live race agree with the offline benchmark? One command, a few minutes.

Starts the app (a fresh process on 127.0.0.1, `OMP_NUM_THREADS` = --threads), drives its `/race`
endpoint through gradio_client on --races Shapes test queries, and after each app race times the same
lanes offline on the same query in this process (`run_lane`, the `bench race --batch-sizes 1`
protocol: warm-up, then --repeats rounds in rotating order, same thread count). Compares the CoT /
latent ratio of the two (within 15% counts as agreement) and writes
assets/benchmarks/race_agreement_<hw>_t<threads>.json with every run, the hardware and the load average.

    python scripts/race_agreement.py                      # 10 races of 7 runs a lane, 2 threads
    python scripts/race_agreement.py --threads 1 --races 5 --repeats 3
    python scripts/race_agreement.py --app /tmp/before/app.py --out /tmp/before.json   # another tree's app
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def app_race(client: Any, image: str | None, text: str | None, task: str, repeats: int) -> dict[str, Any]:
    """One race through `/race`: the events of its JSON download (older apps take four inputs)."""
    from gradio_client import handle_file

    args = [handle_file(image) if image else None, text or "", task, True]
    try:
        out = client.predict(*args, True, repeats, api_name="/race")
    except Exception:  # noqa: BLE001 - an app from before the sequential lane and repeats
        out = client.predict(*args, api_name="/race")
    record = out[-1]
    path = record.get("path") if isinstance(record, dict) else record
    return json.loads(Path(path).read_text())


def app_lane_ms(record: dict[str, Any]) -> dict[str, list[float]]:
    """Every timed run's ms per lane in a race download (one run per lane in older apps)."""
    done = {e["lane"]: e for e in record["events"] if e["event"] == "lane_done"}
    return {lane: list(e.get("runs_ms") or [e["elapsed_ms"]]) for lane, e in done.items()}


def offline_runs(lanes: dict[str, Any], one: tuple, repeats: int) -> dict[str, list[float]]:
    """`bench race`'s protocol on one query: a warm-up of each lane, then rotating timed rounds."""
    from lame_tools.timing import run_lane

    names = list(lanes)
    for name in names:
        run_lane(lanes[name], *one)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            runs[name].append(run_lane(lanes[name], *one).total_ms)
    return runs


def ratio(runs: dict[str, list[float]]) -> float:
    import numpy as np

    return float(np.median(runs["cot"]) / np.median(runs["latent"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 10 races x 7 runs: with 5 x 3 (15 runs a lane) the CoT lane's spread alone moved the ratio by
    # 16% on a quiet machine (2026-12-06)
    parser.add_argument("--races", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--app", type=Path, default=ROOT / "app.py", help="the app to start (default: this tree's)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds to wait after start-up (for an app whose race does not wait for its start-up work)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import numpy as np
    import torch
    from app_process import start_app, stop_app
    from gradio_client import Client

    from lame_tools import SHIPPED_MODELS
    from lame_tools.adapters import load_lane
    from lame_tools.atomic import atomic_write_json
    from lame_tools.demo.query import TASK_INSTRUCTIONS
    from lame_tools.timing import hardware_info, race_inputs

    torch.set_num_threads(args.threads)
    images, texts, instructions = race_inputs(args.races)
    folder = Path(tempfile.mkdtemp(prefix="race-agreement-"))
    process, url, startup_s = start_app([sys.executable, str(args.app)], log_path=folder / "app.log")
    lanes = {lane: load_lane(lane, SHIPPED_MODELS[lane], device="cpu") for lane in ("latent", "discriminative", "sequential", "cot")}
    queries = []
    try:
        client = Client(url, verbose=False, download_files=False)
        time.sleep(args.settle)
        app_race(client, None, "a red circle", "auto", 1)  # a first race waits for start-up work; untimed
        for i in range(args.races):
            png = None
            if images[i] is not None:
                png = str(folder / f"query{i}.png")
                images[i].save(png)
            task = next(k for k, v in TASK_INSTRUCTIONS.items() if v == instructions[i])
            record = app_race(client, png, texts[i], task, args.repeats)
            app = app_lane_ms(record)
            one = (images[i : i + 1], texts[i : i + 1], instructions[i : i + 1])
            offline = offline_runs({name: lanes[name] for name in app if name in lanes}, one, args.repeats)
            start = record["events"][0]
            queries.append({"text": texts[i], "task": task, "image": png is not None, "app_ms": app, "offline_ms": offline,
                            "app_ratio": ratio(app), "offline_ratio": ratio(offline),
                            "app_other_work": start.get("other_work"), "app_threads": start["hardware"]["torch_threads"],
                            "load_average": list(os.getloadavg())})
            print(f"query {i}: app cot/latent {ratio(app):.2f}, offline {ratio(offline):.2f}", flush=True)
    finally:
        stop_app(process)

    def pooled(side: str) -> dict[str, float]:
        return {lane: float(np.median([ms for q in queries for ms in q[side].get(lane, [])]))
                for lane in queries[0][side]}

    app_median, offline_median = pooled("app_ms"), pooled("offline_ms")
    agreement = (app_median["cot"] / app_median["latent"]) / (offline_median["cot"] / offline_median["latent"])
    hw = hardware_info(torch.device("cpu"))
    report = {
        "benchmark": "race_agreement", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "date": time.strftime("%Y-%m-%d", time.gmtime()), "hardware": hw, "threads": args.threads,
        "repeats": args.repeats, "races": args.races, "app": str(args.app), "app_startup_s": startup_s,
        "load_average_end": list(os.getloadavg()), "queries": queries,
        "app_median_ms": app_median, "offline_median_ms": offline_median,
        "app_cot_over_latent": app_median["cot"] / app_median["latent"],
        "offline_cot_over_latent": offline_median["cot"] / offline_median["latent"],
        "ratio_of_ratios": agreement, "within_15pct": bool(abs(agreement - 1.0) <= 0.15),
        "note": "busy machine unless the load averages say otherwise",
    }
    out = args.out or ROOT / "assets" / "benchmarks" / f"race_agreement_{'gpu' if hw.get('gpu') else 'cpu'}_t{args.threads}.json"
    atomic_write_json(out, report)
    print(f"app cot/latent {report['app_cot_over_latent']:.2f}, offline {report['offline_cot_over_latent']:.2f}: "
          f"ratio {agreement:.2f} ({'within' if report['within_15pct'] else 'NOT within'} 15%); "
          f"load {os.getloadavg()[0]:.2f}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
