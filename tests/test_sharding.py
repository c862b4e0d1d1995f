"""Sharding: the split, the ordered gather, resumable shard files; and, under `torchrun` with two
gloo processes, `index build` and `eval` give what one process gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lame_tools.sharding import ProcessGroup, ShardStore, gather_rows, split

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "assets" / "models" / "lame-shapes"


def test_split_is_contiguous_balanced_and_ordered():
    for n in (0, 1, 5, 17):
        for world in (1, 2, 3, 8):
            parts = split(n, world)
            assert len(parts) == world
            assert [i for part in parts for i in part] == list(range(n))
            sizes = [len(p) for p in parts]
            assert max(sizes) - min(sizes) <= 1


def test_gather_in_one_process_returns_the_rows():
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(gather_rows(rows, ProcessGroup()), rows)


def test_shard_store_resumes_and_reads_in_order(tmp_path):
    fingerprint = {"model": "m", "inputs": list(range(10))}
    store = ShardStore(tmp_path, fingerprint, total=10, shard_size=4)
    assert store.num_shards == 3 and [len(store.bounds(s)) for s in range(3)] == [4, 4, 2]
    assert store.mine(ProcessGroup(0, 2)) == [0, 2] and store.mine(ProcessGroup(1, 2)) == [1]
    store.write(0, np.zeros((4, 2)))
    with pytest.raises(FileNotFoundError):
        store.read_all()
    assert store.mine(ProcessGroup(0, 2)) == [2]  # shard 0 is done: a rerun skips it
    store.write(2, np.full((2, 2), 2.0))
    store.write(1, np.ones((4, 2)))
    np.testing.assert_array_equal(store.read_all()[:, 0], [0] * 4 + [1] * 4 + [2] * 2)
    with pytest.raises(ValueError):
        store.write(1, np.ones((3, 2)))
    other = ShardStore(tmp_path, {"model": "other", "inputs": list(range(10))}, total=10, shard_size=4)
    assert other.mine(ProcessGroup()) == [0, 1, 2]  # another job's shards are never reused


# ---- two gloo processes under torchrun ------------------------------------------------------------

GATHER_WORKER = """
import numpy as np
from lame_tools.sharding import gather_rows, process_group, split
group = process_group()
assert group.world == 2, group
mine = split(5, group.world)[group.rank]
rows = np.stack([np.full(3, i, np.float32) for i in mine]) if len(mine) else np.zeros((0, 3), np.float32)
out = gather_rows(rows, group)
assert out.tolist() == [[float(i)] * 3 for i in range(5)], out
empty = gather_rows(rows if group.rank == 0 else np.zeros((0, 0), np.float32), group)
assert empty.shape == (len(split(5, 2)[0]), 3), empty.shape
# one file per process (two processes printing to one pipe interleave their lines)
import pathlib
(pathlib.Path(__file__).parent / f"gathered{group.rank}").write_text("ok")
"""


def _run(args: list[str], launch: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] if launch else [sys.executable]
    done = subprocess.run(prefix + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


@pytest.mark.slow
def test_two_processes_gather_in_order(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(GATHER_WORKER)
    _run([str(script)], launch=True)
    assert (tmp_path / "gathered0").read_text() == (tmp_path / "gathered1").read_text() == "ok"


@pytest.mark.slow
def test_two_process_index_build_and_eval_equal_one_process(tmp_path, scenes):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(scenes[1]):
        image.save(folder / f"{i:02d}.png")
    (folder / "zz-broken.png").write_bytes(b"not an image")
    texts = tmp_path / "texts.txt"
    texts.write_text("a red circle\na blue square\nthree objects\n")
    for launch, name in ((False, "one"), (True, "two")):
        common = ["--model", str(MODEL), "--images", str(folder), "--texts", str(texts), "--shard-size", "3"]
        _run(["-m", "lame_tools", "index", "build", *common, "--out", str(tmp_path / name)], launch)
        _run(["-m", "lame_tools", "eval", "--model", str(MODEL), "--benchmark", "shapes", "--limit", "40",
              "--no-resume", "--out", str(tmp_path / f"{name}.json")], launch)
    one, two = tmp_path / "one", tmp_path / "two"
    np.testing.assert_allclose(np.load(two / "embeddings.npy"), np.load(one / "embeddings.npy"), atol=1e-6)
    np.testing.assert_array_equal(np.load(two / "ids.npy"), np.load(one / "ids.npy"))
    items = json.loads((one / "items.json").read_text())
    assert items == json.loads((two / "items.json").read_text())
    assert len(items["items"]) == 11 and items["skipped"] == [str(folder / "zz-broken.png")]
    assert (tmp_path / "two.json").read_bytes() == (tmp_path / "one.json").read_bytes()
    # resumption under the launcher: every task file is reused, the summary is the same
    _run(["-m", "lame_tools", "eval", "--model", str(MODEL), "--benchmark", "shapes", "--limit", "40",
          "--out", str(tmp_path / "two.json")], True)
    assert (tmp_path / "two.json").read_bytes() == (tmp_path / "one.json").read_bytes()
