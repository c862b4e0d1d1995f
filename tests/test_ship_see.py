"""scripts/ship_see.py: which runs it ships and the training history it writes into training.json."""

from __future__ import annotations

import json
from pathlib import Path

from _app_server import import_file

ROOT = Path(__file__).resolve().parent.parent
ship = import_file(ROOT / "scripts" / "ship_see.py", "ship_see_script")


def _run(runs: Path, name: str, init_from: str, wall: float, steps: int) -> Path:
    folder = runs / name
    folder.mkdir(parents=True)
    summary = {"command": f"python -m lame_tools train --out runs/see/{name}", "wall_s": wall, "total_steps": steps,
               "config": {"init_from": init_from}}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_the_shipped_runs_are_the_6_layer_pipelines_of_one_seed():
    assert ship.SHIPPED_SEED == 4
    assert ship.run_name(ship.MODELS["lame"][0], 4) == "see-deep-lame-k16-readsrat-bind-mixed-s4"
    assert ship.run_name(ship.MODELS["discriminative"][0], 0) == "see-deep-discriminative-bind-mixed"
    assert {mode for _, _, mode in ship.MODELS.values()} == {"latent", "discriminative", "cot", "sequential"}
    assert "seed 4" in ship.selection(4) and "not chosen among seeds" in ship.selection(4)


def test_phases_follow_each_run_back_to_stage_0(tmp_path):
    runs = tmp_path / "runs" / "see"
    _run(runs, "stage0-scene", "", 1000.0, 2500)
    _run(runs, "a-bind-s4", str(runs / "stage0-scene" / "model"), 300.0, 1100)
    _run(runs, "a-bind-lookup-s4", str(runs / "a-bind-s4" / "model"), 200.0, 600)
    last = _run(runs, "a-bind-mixed-s4", str(runs / "a-bind-lookup-s4" / "model"), 250.0, 600)
    chain = ship.phases(last)
    assert [p["run"] for p in chain] == ["a-bind-s4", "a-bind-lookup-s4", "a-bind-mixed-s4"]
    assert [p["steps"] for p in chain] == [1100, 600, 600]
    assert sum(p["wall_s"] for p in chain) == 750.0
