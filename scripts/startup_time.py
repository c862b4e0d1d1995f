"""Start-up time of the README's run command: process start to the first successful API call.

    .venv/bin/python scripts/startup_time.py                 # runs `make run` (the README command) 3 times
    .venv/bin/python scripts/startup_time.py --command ".venv/bin/python app.py" --runs 1

Prints each run and the median, and writes JSON with --out. The app's start-up work: import gradio
and torch, load the shipped models (the three modes' and the race's sequential one), list the Shapes
corpus (renders cached on disk), launch; the corpus is embedded (or read from its cache) in the
background, so the first search may wait for it: that time is reported too.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

from gradio_client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app_process import save_or_print, start_app, stop_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--command", default="make run", help="the run command to time (default: the README's `make run`)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="JSON output file")
    args = parser.parse_args()
    seconds, first_search = [], []
    for run in range(args.runs):
        started = time.perf_counter()
        process, url, elapsed = start_app(shlex.split(args.command))
        try:
            Client(url, verbose=False, download_files=False).predict(None, "a red circle", "auto", "auto", "latent", 8, api_name="/search")
            search_s = time.perf_counter() - started
        finally:
            stop_app(process)
        seconds.append(elapsed)
        first_search.append(search_s)
        print(f"run {run + 1}: first successful API call after {elapsed:.1f} s, first search answered after {search_s:.1f} s", flush=True)
    from lame_tools.timing import hardware_info

    report = {
        "command": args.command,
        "seconds": seconds,
        "median_s": statistics.median(seconds),
        "first_search_s": first_search,
        "first_search_median_s": statistics.median(first_search),
        "load_average": os.getloadavg(),
        "hardware": hardware_info(),
    }
    print(f"median {report['median_s']:.1f} s to the first API call, {report['first_search_median_s']:.1f} s to the first "
          f"search, over {len(seconds)} runs of `{args.command}` (load average {report['load_average'][0]:.1f})")
    save_or_print(report, args.out)


if __name__ == "__main__":
    main()
