"""Start-up time of the README's run command: process start to the first successful API call.

    .venv/bin/python scripts/startup_time.py                 # runs `make run` (the README command) 3 times
    .venv/bin/python scripts/startup_time.py --command ".venv/bin/python app.py" --runs 1

Prints each run and the median, and writes JSON with --out. The app's own start-up work: import
gradio and torch, load the three shipped models, render and embed the Shapes corpus, launch.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app_process import start_app, stop_app  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--command", default="make run", help="the run command to time (default: the README's `make run`)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="JSON output file")
    args = parser.parse_args()
    seconds = []
    for run in range(args.runs):
        process, url, elapsed = start_app(shlex.split(args.command))
        stop_app(process)
        seconds.append(elapsed)
        print(f"run {run + 1}: first successful API call after {elapsed:.1f} s ({url})", flush=True)
    from lame_tools.timing import hardware_info

    report = {"command": args.command, "seconds": seconds, "median_s": statistics.median(seconds), "hardware": hardware_info()}
    print(f"median {report['median_s']:.1f} s over {len(seconds)} runs of `{args.command}`")
    if args.out:
        from lame_tools.atomic import atomic_write_json

        atomic_write_json(args.out, report)
        print(f"wrote {args.out}")
    else:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
