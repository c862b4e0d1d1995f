"""Load test: concurrent retrieval requests from several gradio_client clients on 127.0.0.1, then a full queue.

    .venv/bin/python scripts/load_test.py                      # starts the app itself (python app.py)
    .venv/bin/python scripts/load_test.py --url http://127.0.0.1:7860/ --skip-queue-full

Phase 1: `--clients` clients (10) each submit `--requests / --clients` text->image searches at once
(50 in flight), against the app's default queue (64 places): every request must succeed; prints
errors, p50 / p95 / max latency (submit to answer) and throughput.
Phase 2 (unless --skip-queue-full): the same burst against an app started with a queue of
`--small-queue` (8) places: the surplus must be refused at once with gradio's "queue full" answer
(HTTP 503), not left hanging; then one more request must succeed.
Writes JSON with --out.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from gradio_client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app_process import save_or_print, start_app, stop_app, wait_for_corpus  # noqa: E402

CAPTIONS = [
    "a red circle", "a blue square and a green triangle", "a yellow diamond", "a purple circle and a red square",
    "a green diamond , a blue circle and a yellow square", "a red triangle and a purple diamond", "a blue triangle",
    "a yellow circle and a green square", "a purple square", "a green circle , a red diamond and a blue square",
]
TIMEOUT_S = 300.0


def burst(url: str, clients: int, requests: int) -> dict:
    """`clients` clients submit `requests` searches in total, all at once; wait for every answer."""
    per_client = requests // clients
    pool = [Client(url, verbose=False, download_files=False) for _ in range(clients)]
    results: list[dict] = []
    lock = threading.Lock()

    def run_client(client_index: int) -> None:
        client = pool[client_index]
        jobs = []
        for r in range(per_client):
            caption = CAPTIONS[(client_index * per_client + r) % len(CAPTIONS)]
            jobs.append((time.perf_counter(), client.submit(None, caption, "auto", "auto", "latent", 8, api_name="/search")))
        for submitted, job in jobs:
            outcome: dict = {"client": client_index}
            try:
                job.result(timeout=TIMEOUT_S)
                outcome["ok"] = True
            except Exception as exc:  # noqa: BLE001 - we classify every failure
                outcome.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:120]}")
            outcome["latency_ms"] = (time.perf_counter() - submitted) * 1000.0
            with lock:
                results.append(outcome)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as executor:
        list(executor.map(run_client, range(clients)))
    wall = time.perf_counter() - started
    ok = [r["latency_ms"] for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    errors: dict[str, int] = {}
    for r in failed:
        errors[r["error"]] = errors.get(r["error"], 0) + 1
    report = {
        "clients": clients,
        "requests": len(results),
        "succeeded": len(ok),
        "failed": len(failed),
        "errors": errors,
        "wall_s": wall,
        "throughput_per_s": len(ok) / wall if wall else 0.0,
    }
    if ok:
        report.update(p50_ms=float(np.percentile(ok, 50)), p95_ms=float(np.percentile(ok, 95)), max_ms=float(max(ok)))
    if failed:
        report["slowest_failure_ms"] = float(max(r["latency_ms"] for r in failed))
    return report


def show(title: str, report: dict) -> None:
    print(f"\n{title}")
    print(f"  {report['requests']} requests from {report['clients']} clients: {report['succeeded']} ok, {report['failed']} failed")
    if "p50_ms" in report:
        print(f"  latency p50 {report['p50_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms, max {report['max_ms']:.0f} ms; "
              f"{report['throughput_per_s']:.1f} requests/s over {report['wall_s']:.1f} s")
    for error, count in report["errors"].items():
        print(f"  {count} x {error}")
    if "slowest_failure_ms" in report:
        print(f"  every refusal arrived within {report['slowest_failure_ms']:.0f} ms of its submission")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="an app already running (default: start one)")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--small-queue", type=int, default=8)
    parser.add_argument("--skip-queue-full", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    report: dict = {"load_average_start": os.getloadavg()}
    process = None
    try:
        if args.url:
            url = args.url
        else:
            process, url, _ = start_app()
        report["corpus_ready_s"] = wait_for_corpus(url)
        report["burst"] = burst(url, args.clients, args.requests)
        show("burst against the default queue", report["burst"])
    finally:
        if process is not None:
            stop_app(process)

    if not args.skip_queue_full:
        process, url, _ = start_app(extra_args=["--max-queue", str(args.small_queue)])
        try:
            wait_for_corpus(url)
            report["queue_full"] = burst(url, args.clients, args.requests)
            report["queue_full"]["max_queue"] = args.small_queue
            show(f"the same burst against a queue of {args.small_queue} places", report["queue_full"])
            after = time.perf_counter()
            Client(url, verbose=False, download_files=False).predict(None, "a blue square", "auto", "auto", "latent", 8, api_name="/search")
            report["queue_full"]["next_request_ok_ms"] = (time.perf_counter() - after) * 1000.0
            print(f"  a request after the burst succeeded in {report['queue_full']['next_request_ok_ms']:.0f} ms")
        finally:
            stop_app(process)

    from lame_tools.timing import hardware_info

    report["hardware"] = hardware_info()
    report["load_average_end"] = os.getloadavg()
    save_or_print(report, args.out)


if __name__ == "__main__":
    main()
