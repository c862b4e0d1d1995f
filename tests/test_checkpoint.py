"""Resume checkpoints on a small module: whole round trips (model, optimizer, schedule, RNG), the
checksummed manifest, atomic writes, pruning, and the fallback past a truncated or altered checkpoint."""

from __future__ import annotations

import json
import random
import warnings

import numpy as np
import pytest
import torch

from lame_tools import checkpoint
from lame_tools.checkpoint import (
    FILES,
    MANIFEST,
    CorruptCheckpointWarning,
    list_checkpoints,
    load_checkpoint,
    load_extra_tensors,
    load_latest,
    optimizer_from_parts,
    optimizer_to_parts,
    save_checkpoint,
    verify_checkpoint,
)


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    return model, optimizer, scheduler


def _train(model, optimizer, scheduler, steps: int) -> None:
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(5, 4)).square().mean().backward()
        optimizer.step()
        scheduler.step()


def _save(directory, step, model, optimizer, scheduler, keep=2):
    return save_checkpoint(directory, step, model, optimizer, {"stage": 1, "data_position": step}, keep=keep,
                           scheduler=scheduler)


def test_a_round_trip_restores_model_optimizer_schedule_and_rng(tmp_path):
    model, optimizer, scheduler = _setup()
    _train(model, optimizer, scheduler, 3)
    random.seed(7)
    np.random.seed(7)
    path = _save(tmp_path, 3, model, optimizer, scheduler)
    # what the original run does next
    expected_draws = (random.random(), float(np.random.rand()), torch.rand(3))
    _train(model, optimizer, scheduler, 2)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    other, other_optimizer, other_scheduler = _setup(seed=1)
    assert not torch.equal(other[0].weight, model[0].weight)
    state = load_checkpoint(path, other, other_optimizer, other_scheduler)
    assert state["step"] == 3 and state["stage"] == 1 and state["data_position"] == 3
    assert other_scheduler.last_epoch == 3 and other_optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / 4)
    draws = (random.random(), float(np.random.rand()), torch.rand(3))
    assert draws[:2] == expected_draws[:2] and torch.equal(draws[2], expected_draws[2])
    _train(other, other_optimizer, other_scheduler, 2)
    for name, value in other.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_the_manifest_names_every_file_with_its_size_and_sha256(tmp_path):
    import hashlib

    model, optimizer, scheduler = _setup()
    path = _save(tmp_path, 1, model, optimizer, scheduler)
    assert path.name == "step-00000001"
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["step"] == 1 and set(manifest["files"]) == set(FILES)
    for name, entry in manifest["files"].items():
        data = (path / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert verify_checkpoint(path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001"]  # no staging folder left


def test_extra_tensors_round_trip_under_the_manifest(tmp_path):
    model, optimizer, scheduler = _setup()
    average = {"0.weight": torch.randn(3, 4), "n_averaged": torch.tensor(7)}
    path = save_checkpoint(tmp_path, 1, model, optimizer, {}, scheduler=scheduler, extra_tensors={"ema": average})
    assert set(json.loads((path / MANIFEST).read_text())["files"]) == {*FILES, "ema.safetensors"}
    loaded = load_extra_tensors(path, "ema")
    assert loaded.keys() == average.keys() and all(torch.equal(loaded[k], average[k]) for k in average)
    assert load_extra_tensors(path, "other") is None
    extra = path / "ema.safetensors"  # damaged like the checkpoint's own files: the checkpoint is skipped
    extra.write_bytes(extra.read_bytes()[:-4])
    assert "ema.safetensors is truncated" in verify_checkpoint(path)
    extra.unlink()
    assert "missing ema.safetensors" in verify_checkpoint(path)
    with pytest.raises(ValueError, match="named like"):
        save_checkpoint(tmp_path, 2, model, optimizer, {}, extra_tensors={"model": average})
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000001"]


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    model, optimizer, scheduler = _setup()
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, model, optimizer, scheduler, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003", "step-00000004"]


def test_a_write_that_fails_midway_leaves_the_previous_checkpoint_alone(tmp_path, monkeypatch):
    model, optimizer, scheduler = _setup()
    _save(tmp_path, 1, model, optimizer, scheduler)
    original = checkpoint.atomic_write_json

    def failing(path, data, *args, **kwargs):
        if path.name == MANIFEST:  # every other file is already in the staging folder
            raise OSError("disk full")
        return original(path, data, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_write_json", failing)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, 2, model, optimizer, scheduler)
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000001"]
    assert load_latest(tmp_path, *_setup()[:2]).state["step"] == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "no-manifest"])
def test_a_damaged_checkpoint_is_named_and_the_previous_one_used(tmp_path, damage):
    model, optimizer, scheduler = _setup()
    _save(tmp_path, 1, model, optimizer, scheduler)
    _train(model, optimizer, scheduler, 1)
    newest = _save(tmp_path, 2, model, optimizer, scheduler)
    weights = newest / "optimizer.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-10])
    elif damage == "flip":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "delete":
        (newest / "state.json").unlink()
    else:
        (newest / MANIFEST).unlink()
    expected = {"truncate": "truncated", "flip": "checksum", "delete": "missing state.json", "no-manifest": MANIFEST}
    problem = verify_checkpoint(newest)
    assert "step-00000002" in problem and expected[damage] in problem

    restored, restored_optimizer, restored_scheduler = _setup(seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = load_latest(tmp_path, restored, restored_optimizer, restored_scheduler)
    assert resumed.path.name == "step-00000001" and resumed.state["step"] == 1
    assert restored_scheduler.last_epoch == 0
    named = [w for w in caught if issubclass(w.category, CorruptCheckpointWarning)]
    assert len(named) == 1 and "step-00000002" in str(named[0].message)


def test_no_usable_checkpoint_means_a_fresh_start(tmp_path):
    assert load_latest(tmp_path / "absent", *_setup()[:2]) is None
    model, optimizer, scheduler = _setup()
    only = _save(tmp_path, 1, model, optimizer, scheduler)
    (only / "model.safetensors").write_bytes(b"")
    with pytest.warns(CorruptCheckpointWarning):
        assert load_latest(tmp_path, model, optimizer) is None


def test_a_checkpoint_without_scheduler_state_leaves_the_scheduler_alone(tmp_path):
    model, optimizer, scheduler = _setup()
    _train(model, optimizer, scheduler, 2)
    path = save_checkpoint(tmp_path, 2, model, optimizer, {"stage": 1})
    fresh, fresh_optimizer, fresh_scheduler = _setup()
    state = load_checkpoint(path, fresh, fresh_optimizer, fresh_scheduler)
    assert "scheduler" not in state and fresh_scheduler.last_epoch == 0
    assert torch.equal(fresh[1].bias, model[1].bias)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    model, optimizer, scheduler = _setup()
    path = _save(tmp_path, 1, model, optimizer, scheduler)
    other = torch.nn.Linear(4, 2)
    with pytest.raises(RuntimeError, match="does not match the model"):
        load_checkpoint(path, other, torch.optim.AdamW(other.parameters()))


def test_optimizer_state_splits_into_tensors_and_plain_data_and_back():
    model, optimizer, scheduler = _setup()
    _train(model, optimizer, scheduler, 2)
    tensors, plain = optimizer_to_parts(optimizer)
    assert tensors and all(isinstance(v, torch.Tensor) for v in tensors.values())
    json.dumps(plain)  # plain data only
    rebuilt = optimizer_from_parts(tensors, plain)
    original = optimizer.state_dict()
    assert rebuilt["param_groups"] == original["param_groups"]
    for index, entry in original["state"].items():
        for name, value in entry.items():
            assert torch.equal(torch.as_tensor(rebuilt["state"][index][name]), torch.as_tensor(value))
