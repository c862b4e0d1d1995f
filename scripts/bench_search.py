"""Benchmark: a text->image search round trip on a 1,000-image corpus, p50 / p95.

    .venv/bin/python scripts/bench_search.py                   # starts `python app.py --gallery-size 1000`
    .venv/bin/python scripts/bench_search.py --n 200 --out runs/bench_search.json

Measured one request at a time, after a warm-up, four ways:
  gradio_client   `Client.predict(..., api_name="/search")`: the round trip a Python client of the app sees;
  client floor    the same client calling `/known_words` (no model, no corpus): the client's own cost;
  raw HTTP        Gradio's REST API (`POST /gradio_api/call/search`, then read the event stream) with httpx;
  in the server   the encode + search time the app itself reports for each request.
The client floor exists because gradio_client 2.x polls its message queue every 50 ms and opens an
event stream per call: a request that does nothing costs about 150 ms through it on this machine.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from functools import partial
from pathlib import Path

import httpx
from gradio_client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app_process import save_or_print, start_app, stop_app, wait_for_corpus  # noqa: E402

from lame_tools.evaluate import sample_stats  # noqa: E402

# p50, p95 and mean of latencies in milliseconds, and their count (the keys of the recorded JSON).
latency_stats = partial(sample_stats, percentiles=(50, 95), spread=False, suffix="_ms")


def captions(n: int) -> list[str]:
    """Captions of Shapes test scenes: real text->image queries whose answers are in the corpus."""
    from lame_tools.data.shapes import make_scene

    return [make_scene(0, "test", i).caption() for i in range(n)]


def raw_http(http: httpx.Client, url: str, data: list) -> None:
    """One call through Gradio's REST API: POST returns an event id, GET streams the result."""
    event = http.post(f"{url}gradio_api/call/search", json={"data": data}).json()["event_id"]
    with http.stream("GET", f"{url}gradio_api/call/search/{event}") as response:
        body = "".join(response.iter_text())
    if "event: complete" not in body:
        raise RuntimeError(f"search failed: {body[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="an app already running (default: start one)")
    parser.add_argument("--gallery-size", type=int, default=1000)
    parser.add_argument("--n", type=int, default=100, help="timed requests per method")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    process = None
    report: dict = {"gallery_images": args.gallery_size, "k": args.k, "load_average_start": os.getloadavg()}
    try:
        if args.url:
            url = args.url
        else:
            process, url, startup_s = start_app(extra_args=["--gallery-size", str(args.gallery_size)], timeout=600)
            report["startup_s"] = startup_s
        client = Client(url, verbose=False, download_files=False)
        queries = captions(args.n)
        started = time.perf_counter()
        client.predict(None, queries[0], "auto", "auto", "latent", args.k, api_name="/search")  # waits for the corpus
        report["first_search_s"] = time.perf_counter() - started
        report["corpus_ready_s"] = wait_for_corpus(url)
        time.sleep(5)  # let the background UMAP fit start and settle
        info = client.predict(api_name="/model_info")
        report["model"] = info[0]["checkpoint"]
        for q in queries[: args.warmup]:
            client.predict(None, q, "auto", "auto", "latent", args.k, api_name="/search")

        through_client, in_server = [], []
        for q in queries:
            t = time.perf_counter()
            _, table, summary = client.predict(None, q, "auto", "auto", "latent", args.k, api_name="/search")
            through_client.append((time.perf_counter() - t) * 1000.0)
            encode, search = (float(x) for x in re.search(r"encode (\d+) ms, search ([\d.]+) ms", summary).groups())
            in_server.append(encode + search)
            assert len(table["data"]) == args.k
        floor = []
        for _ in queries:
            t = time.perf_counter()
            client.predict(api_name="/known_words")
            floor.append((time.perf_counter() - t) * 1000.0)
        raw = []
        with httpx.Client(timeout=60) as http:
            for q in queries:
                t = time.perf_counter()
                raw_http(http, url, [None, q, "auto", "auto", "latent", args.k])
                raw.append((time.perf_counter() - t) * 1000.0)
    finally:
        if process is not None:
            stop_app(process)

    from lame_tools.timing import hardware_info

    report.update(
        gradio_client=latency_stats(through_client),
        client_floor_known_words=latency_stats(floor),
        raw_http=latency_stats(raw),
        in_server_encode_plus_search=latency_stats(in_server),
        hardware=hardware_info(),
        load_average_end=os.getloadavg(),
    )
    print(f"text->image search, {args.gallery_size}-image corpus, top-{args.k}, {args.n} requests each ({report['model']}):")
    for key, label in (
        ("gradio_client", "gradio_client round trip"),
        ("client_floor_known_words", "gradio_client, no-model endpoint"),
        ("raw_http", "raw HTTP (REST API)"),
        ("in_server_encode_plus_search", "in the server: encode + search"),
    ):
        print(f"  {label:<36} p50 {report[key]['p50_ms']:7.1f} ms   p95 {report[key]['p95_ms']:7.1f} ms")
    print(f"  load average {report['load_average_start'][0]:.1f} at start, {report['load_average_end'][0]:.1f} at end")
    save_or_print(report, args.out)


if __name__ == "__main__":
    main()
