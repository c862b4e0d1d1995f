"""scripts/science_queue.py: a run's score is added to the results file as it is on disk when the
score is written, so two queues sharing the file (one paused for an hour) keep each other's runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _app_server import import_file

ROOT = Path(__file__).resolve().parent.parent


def test_a_queue_keeps_the_runs_another_queue_wrote_meanwhile(tmp_path, monkeypatch):
    queue_script = import_file(ROOT / "scripts" / "science_queue.py", "science_queue_script")
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"earlier@validation": {"overall": 0.5}}))
    queue = tmp_path / "queue.json"
    queue.write_text(json.dumps([{"name": "mine", "preset": "micro-lame", "set": []}]))
    summary = {"overall": 0.6, "tasks": {"count": {"score": 0.6, "n": 10, "interval": [0.3, 0.8], "query_groups": None}}}

    def score_while_another_queue_writes(run, runs, split):
        # the other queue finishes a run while this one is scoring
        written = json.loads(results.read_text())
        results.write_text(json.dumps({**written, "theirs@validation": {"overall": 0.7}}))
        return summary

    monkeypatch.setattr(queue_script, "train", lambda run, runs, threads: 1.0)
    monkeypatch.setattr(queue_script, "score", score_while_another_queue_writes)
    monkeypatch.setattr(sys, "argv", ["science_queue.py", str(queue), "--runs", str(tmp_path / "runs"),
                                      "--results", str(results)])
    assert queue_script.main() == 0
    written = json.loads(results.read_text())
    assert set(written) == {"earlier@validation", "theirs@validation", "mine@validation"}
    assert written["mine@validation"]["overall"] == 0.6 and written["mine@validation"]["train_wall_seconds"] == 1.0
