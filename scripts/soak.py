"""Soak test: several gradio_client clients send mixed good and bad requests to the app on 127.0.0.1.

    .venv/bin/python scripts/soak.py                    # starts `python app.py`, 4 clients, at most 120 s / 400 requests
    .venv/bin/python scripts/soak.py --seconds 60 --requests 200 --clients 3 --out /tmp/soak.json

Bounded in time (`--seconds`) and count (`--requests`), loopback only. Each client cycles through
`REQUESTS`: good searches (text, image upload, other modes), the known-word list, corpus additions
and their removal, and bad ones (unknown words, empty query, a corrupt or empty upload, a string where
a file is expected, k="seven", k out of range, 200 KB of text). A good request must succeed; a bad one
must be refused with a sentence (not Gradio's bare "Error"). Reports the unexpected outcomes, latency
median / p90 / p95 per request kind, the app's RSS at the start, its peak and at the end, the
hardware and the load average. Writes
`assets/benchmarks/soak_<hw>.json` (or `--out`).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil  # installed with accelerate
from gradio_client import Client, handle_file
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app_process import ROOT, save_or_print, start_app, stop_app, wait_for_corpus  # noqa: E402

TIMEOUT_S = 120.0
GENERIC = ("", "Error", "None")


def make_files(folder: Path) -> dict[str, str]:
    """The uploads the requests use: a good PNG, a rotated JPEG, a corrupt PNG, an empty file."""
    good = folder / "good.png"
    Image.new("RGB", (96, 96), (220, 40, 40)).save(good)
    jpeg = folder / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (160, 80), (40, 40, 220)).save(jpeg, exif=exif.tobytes())
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "green").save(buffer, format="PNG")
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(buffer.getvalue()[:70])
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    return {"good": str(good), "jpeg": str(jpeg), "corrupt": str(corrupt), "empty": str(empty)}


def search(image=None, text="a red circle", mode="latent", k=8) -> dict:
    return {"args": (image, text, "auto", "auto", mode, k), "api_name": "/search"}


def request_kinds(files: dict[str, str]) -> list[tuple[str, bool, Callable[[], dict]]]:
    """(kind, whether it should succeed, the call's arguments) for every request the soak sends."""
    return [
        ("search text", True, lambda: search()),
        ("search image", True, lambda: search(handle_file(files["good"]), "")),
        ("search rotated jpeg", True, lambda: search(handle_file(files["jpeg"]), "what colour is the square ?")),
        ("search discriminative", True, lambda: search(text="a blue square", mode="discriminative")),
        ("known words", True, lambda: {"args": (), "api_name": "/known_words"}),
        ("add to corpus", True, lambda: {"args": ([handle_file(files["good"])], "a red circle"), "api_name": "/add_to_corpus"}),
        ("reset corpus", True, lambda: {"args": (), "api_name": "/reset_corpus"}),
        ("bad: unknown words", False, lambda: search(text="zzqx banana ...")),
        ("bad: empty query", False, lambda: search(text="")),
        ("bad: corrupt upload", False, lambda: search(handle_file(files["corrupt"]), "")),
        ("bad: empty upload", False, lambda: {"args": ([handle_file(files["empty"])], ""), "api_name": "/add_to_corpus"}),
        ("bad: string for a file", False, lambda: search("just a string", "")),
        ("bad: k is text", False, lambda: search(k="seven")),
        ("bad: k out of range", False, lambda: search(k=999)),
        ("long text", True, lambda: search(text="a red circle " * 15000)),
    ]


class RssSampler(threading.Thread):
    """Samples a process's resident memory every `every` seconds (start, peak, end in MB)."""

    def __init__(self, pid: int | None, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid) if pid else None
        self.every, self.samples, self.stopped = every, [], threading.Event()

    def rss_mb(self) -> float | None:
        return self.process.memory_info().rss / 2**20 if self.process is not None else None

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            if (mb := self.rss_mb()) is not None:
                self.samples.append(mb)


def soak(url: str, files: dict[str, str], clients: int, max_requests: int, seconds: float) -> list[dict]:
    """`clients` clients send requests round-robin from `request_kinds` until the count or time is up."""
    kinds = request_kinds(files)
    deadline = time.monotonic() + seconds
    counter, lock, outcomes = iter(range(max_requests)), threading.Lock(), []

    def run_client(index: int) -> None:
        client = Client(url, verbose=False, download_files=False)
        while time.monotonic() < deadline:
            with lock:
                number = next(counter, None)
            if number is None:
                return
            kind, should_succeed, make = kinds[(number + index) % len(kinds)]
            call = make()
            started = time.perf_counter()
            try:
                client.predict(*call["args"], api_name=call["api_name"])
                ok, message = True, ""
            except Exception as exc:  # noqa: BLE001 - every refusal is classified
                ok, message = False, str(exc).strip()
            outcome = {"kind": kind, "ms": (time.perf_counter() - started) * 1000.0, "ok": ok, "message": message[:200]}
            outcome["expected"] = ok if should_succeed else (not ok and message not in GENERIC and "\n" not in message)
            with lock:
                outcomes.append(outcome)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run_client, range(clients)))
    return outcomes


def latency(values: list[float]) -> dict[str, float]:
    from lame_tools.timing import summarize

    return {**summarize(values), "p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def report_of(outcomes: list[dict], wall: float) -> dict:
    unexpected: dict[str, int] = {}
    for o in outcomes:
        if not o["expected"]:
            key = f"{o['kind']}: {'succeeded' if o['ok'] else o['message'][:120]}"
            unexpected[key] = unexpected.get(key, 0) + 1
    by_kind = {kind: latency([o["ms"] for o in outcomes if o["kind"] == kind]) for kind in sorted({o["kind"] for o in outcomes})}
    good = [o["ms"] for o in outcomes if not o["kind"].startswith("bad")]
    bad = [o["ms"] for o in outcomes if o["kind"].startswith("bad")]
    return {
        "requests": len(outcomes),
        "unexpected": sum(unexpected.values()),
        "unexpected_outcomes": unexpected,
        "wall_s": wall,
        "latency_ms_good": latency(good) if good else None,
        "latency_ms_bad": latency(bad) if bad else None,
        "latency_ms_by_kind": by_kind,
        "refusal_examples": {o["kind"]: o["message"] for o in outcomes if o["kind"].startswith("bad") and not o["ok"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="an app already running (default: start one on 127.0.0.1)")
    parser.add_argument("--pid", type=int, default=None, help="with --url: the app's process id, for its RSS")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=400, help="at most this many requests in all")
    parser.add_argument("--seconds", type=float, default=120.0, help="stop sending after this many seconds")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.url and not args.url.startswith(("http://127.0.0.1", "http://localhost")):
        raise SystemExit("the soak test drives a local app only (127.0.0.1)")

    from lame_tools.timing import hardware_info

    hardware = hardware_info()
    report: dict = {"load_average_start": os.getloadavg(), "hardware": hardware,
                    "bounds": {"clients": args.clients, "requests": args.requests, "seconds": args.seconds}}
    process = None
    try:
        if args.url:
            url, pid = args.url, args.pid
        else:
            process, url, report["startup_s"] = start_app(extra_args=["--gallery-size", "200"])
            pid = process.pid
        report["corpus_ready_s"] = wait_for_corpus(url)
        sampler = RssSampler(pid)
        report["rss_mb_start"] = sampler.rss_mb()
        sampler.start()
        files = make_files(Path(tempfile.mkdtemp(prefix="lame-soak-files-")))
        started = time.perf_counter()
        outcomes = soak(url, files, args.clients, args.requests, args.seconds)
        report.update(report_of(outcomes, time.perf_counter() - started))
        sampler.stopped.set()
        report["rss_mb_end"] = sampler.rss_mb()
        report["rss_mb_peak"] = max(sampler.samples, default=report["rss_mb_end"])
        report["rss_mb_every_10s"] = [round(mb) for mb in sampler.samples[::20]]  # does it level off?
    finally:
        if process is not None:
            stop_app(process)
    report["load_average_end"] = os.getloadavg()
    show(report)
    name = "cpu" if hardware["device"] == "cpu" else hardware.get("gpu", hardware["device"]).replace(" ", "_").lower()
    save_or_print(report, args.out or ROOT / "assets" / "benchmarks" / f"soak_{name}.json")


def show(report: dict) -> None:
    print(f"{report['requests']} requests in {report['wall_s']:.0f} s from {report['bounds']['clients']} clients; "
          f"{report['unexpected']} unexpected outcomes")
    for what, count in report["unexpected_outcomes"].items():
        print(f"  {count} x {what}")
    for label in ("good", "bad"):
        lat = report[f"latency_ms_{label}"]
        if lat:
            print(f"  {label} requests: median {lat['median']:.0f} ms, p90 {lat['p90']:.0f} ms, p95 {lat['p95']:.0f} ms (n={lat['n']})")
    print(f"  RSS {report['rss_mb_start']:.0f} MB at the start, peak {report['rss_mb_peak']:.0f} MB, "
          f"{report['rss_mb_end']:.0f} MB at the end" if report["rss_mb_start"] else "  RSS not measured (no --pid)")
    print(f"  load average {report['load_average_start']} -> {report['load_average_end']}")


if __name__ == "__main__":
    main()
