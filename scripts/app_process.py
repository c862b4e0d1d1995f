"""Start the app as a separate process on 127.0.0.1 and a free port, wait until it answers, stop it.

Shared by scripts/startup_time.py, scripts/load_test.py and scripts/bench_search.py (which run it
exactly as a user would: a fresh process, nothing imported in the measuring one).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE_API = "/model_info"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(command: list[str] | None = None, extra_args: list[str] | None = None, timeout: float = 180.0,
              log_path: Path | None = None) -> tuple[subprocess.Popen, str, float]:
    """Run the app and wait for its first successful API call.

    Args:
        command: what to run (default: this Python on app.py); `extra_args` are appended.
        timeout: give up (and stop the process) after this many seconds.
        log_path: where the app's output goes (default: discarded).

    Returns:
        (process, url, seconds from process start to the first successful API call).
    """
    from gradio_client import Client

    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False")
    command = list(command or [sys.executable, "app.py"]) + list(extra_args or [])
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with status {process.returncode} before answering (see {log_path or 'its log'})")
        if time.perf_counter() - started > timeout:
            stop_app(process)
            raise TimeoutError(f"the app did not answer within {timeout:.0f} s")
        try:
            Client(url, verbose=False, download_files=False).predict(api_name=PROBE_API)
            return process, url, time.perf_counter() - started
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)


def stop_app(process: subprocess.Popen) -> None:
    """Stop the app process (and its children, e.g. `make`'s python) that `start_app` started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_corpus(url: str) -> float:
    """Block until the app has embedded its corpus in every mode (one search per mode and target kind
    waits for the background embedding), so that timings are not taken beside it. Returns seconds."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    started = time.perf_counter()
    for mode in ("latent", "discriminative", "cot"):
        for target in ("images", "texts"):
            client.predict(None, "a red circle", "auto", target, mode, 1, api_name="/search")
    return time.perf_counter() - started


def save_or_print(report: dict, out: Path | None) -> None:
    """Write a measurement report atomically to `out`, or print it as JSON when no file is given."""
    if out:
        from lame_tools.atomic import atomic_write_json

        atomic_write_json(out, report)
        print(f"wrote {out}")
    else:
        import json

        print(json.dumps(report, indent=2))
