from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lame_tools.data.shapes import make_scene, render


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lame_tools", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_embed_cli_writes_npy(tmp_path):
    image = tmp_path / "a.png"
    render(make_scene(0, "test", 1)).save(image)
    out = tmp_path / "emb.npy"
    result = _run("embed", "--image", str(image), "--text", "what is left of the red triangle ?", "--out", str(out))
    assert result.returncode == 0, result.stderr
    array = np.load(out)
    assert array.shape[0] == 1 and abs(np.linalg.norm(array[0]) - 1) < 1e-5


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    result = _run("embed", "--image", str(bad), "--out", str(tmp_path / "x.npy"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "empty" in result.stderr
    result = _run("embed", "--model", str(tmp_path / "nomodel"), "--text", "a", "--out", str(tmp_path / "x.npy"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "x.npy").exists()


def test_shapes_export_cli(tmp_path):
    result = _run("shapes", "export", "--split", "test", "--limit", "8", "--out", str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "d").glob("*.jsonl")) and list((tmp_path / "d" / "images").glob("*.png"))


def test_shapes_export_balanced_split_and_eval_compare(tmp_path):
    import json

    from lame_tools.data.shapes import SUBTASKS

    result = _run("shapes", "export", "--split", "validation", "--per-subtask", "2", "--out", str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
    files = {p.stem: p for p in (tmp_path / "b").glob("*.jsonl")}
    assert set(files) == set(SUBTASKS)
    assert all(len(p.read_text().splitlines()) == 2 for p in files.values())
    assert len(list((tmp_path / "b" / "images").glob("*.png"))) == 2 * len(SUBTASKS)  # one scene per query
    result = _run("eval-compare", str(tmp_path / "missing.json"), str(tmp_path / "missing.json"))
    assert result.returncode == 2 and "not a readable evaluation JSON" in result.stderr
    (tmp_path / "old.json").write_text(json.dumps({"tasks": {"count": {"score": 0.5}}}))
    result = _run("eval-compare", str(tmp_path / "old.json"), str(tmp_path / "old.json"))
    assert result.returncode == 2 and "no per-query scores" in result.stderr


def test_shapes_eval_defaults_to_the_balanced_split():
    from lame_tools.cli import build_parser
    from lame_tools.cli.eval import _per_subtask
    from lame_tools.data.shapes import BALANCED_SIZES
    from lame_tools.errors import InputError

    def per_subtask(*argv):
        return _per_subtask(build_parser().parse_args(["eval", "--out", "x.json", *argv]))

    assert per_subtask() == BALANCED_SIZES["test"] == 300
    assert per_subtask("--split", "validation") == per_subtask("--split", "validation", "--balanced") == 100
    assert per_subtask("--per-subtask", "7") == 7
    assert per_subtask("--unbalanced") is None and per_subtask("--limit", "40") is None
    assert per_subtask("--split", "train") is None  # no balanced size: the fixed split
    with pytest.raises(InputError, match="no balanced size"):
        per_subtask("--split", "train", "--balanced")
    assert per_subtask("--benchmark", "mmeb-v2") is None
