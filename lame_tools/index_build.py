"""Embed a folder of images and / or a file of texts into a saved index, sharded and resumable.

`build_index` runs unchanged in one process or under a launcher (`torchrun --nproc_per_node N`,
`accelerate launch --num_processes N`): the inputs are cut into fixed-size shards
(`lame_tools.sharding.ShardStore`), shard i is embedded by rank i % N and written as a `.npy` file,
and once every rank is done the main process reads the shards back in input order and writes the
index. A killed run, rerun with the same arguments (and any number of processes), embeds only the
shards not written yet. An unreadable image is skipped (one line each, listed in `items.json`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lame_tools.atomic import atomic_write_json
from lame_tools.errors import InputError
from lame_tools.index import EmbeddingIndex
from lame_tools.inputs import load_image
from lame_tools.sharding import ShardStore, barrier, process_group

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files under `folder` (recursively, by suffix), in sorted path order."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def list_inputs(images: str | os.PathLike | None, texts: str | os.PathLike | None) -> list[tuple[str, str]]:
    """(kind, source) per input: the folder's images (sorted paths), then the file's non-empty lines."""
    inputs: list[tuple[str, str]] = []
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise InputError(f"The image folder {str(folder)!r} does not exist.")
        inputs += [("image", str(p)) for p in image_files(folder)]
    if texts is not None:
        path = Path(texts)
        if not path.is_file():
            raise InputError(f"The texts file {str(path)!r} does not exist.")
        inputs += [("text", line.strip()) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not inputs:
        raise InputError("Nothing to embed: the folder has no images and the texts file no lines.")
    return inputs


def embed_shard(
    model, inputs: list[tuple[str, str]], instruction: str | None, mode: str | None, batch_size: int
) -> np.ndarray:
    """[n, D] embeddings of one shard, a row of NaN for an image that cannot be decoded."""
    rows = np.full((len(inputs), model.config.embed_dim), np.nan, np.float32)
    images, image_rows = [], []
    for row, (kind, source) in enumerate(inputs):
        if kind == "image":
            try:
                images.append(load_image(source, name="image"))
                image_rows.append(row)
            except InputError:
                pass
    text_rows = [row for row, (kind, _) in enumerate(inputs) if kind == "text"]
    common = {"instruction": instruction, "batch_size": batch_size, "mode": mode}
    if images:
        rows[image_rows] = model.encode(images=images, **common)
    if text_rows:
        rows[text_rows] = model.encode(texts=[inputs[r][1] for r in text_rows], **common)
    return rows


def build_index(
    model_dir: str | os.PathLike,
    out: str | os.PathLike,
    images: str | os.PathLike | None = None,
    texts: str | os.PathLike | None = None,
    instruction: str | None = None,
    mode: str | None = None,
    batch_size: int = 32,
    shard_size: int = 1024,
    backend: str = "numpy",
    device: str | None = None,
    resume: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Embed the inputs into `out/` (`embeddings.npy` + `ids.npy`, or a FAISS index with `backend`
    "exact" / "hnsw" / "ivf") with `items.json` (id, kind, source per item); returns its summary."""
    from lame_tools.fingerprint import folder_fingerprint
    from lame_tools.model import LameModel

    group = process_group()
    inputs = list_inputs(images, texts)
    fingerprint = {
        "model": folder_fingerprint(Path(model_dir)),
        "inputs": inputs,
        "instruction": instruction,
        "mode": mode,
        "batch_size": batch_size,
    }
    store = ShardStore(Path(out) / "shards", fingerprint, len(inputs), shard_size)
    todo = store.mine(group) if resume else list(range(group.rank, store.num_shards, group.world))
    if todo:
        model = LameModel.from_pretrained(model_dir, device=device or (group.device if group.distributed else None))
        for shard in tqdm(todo, desc="index build", unit="shard", disable=not group.is_main):
            bounds = store.bounds(shard)
            store.write(shard, embed_shard(model, inputs[bounds.start : bounds.stop], instruction, mode, batch_size))
    barrier(group)
    summary = {"count": 0, "skipped": [], "backend": backend, "shards": store.num_shards}
    if group.is_main:
        summary = _write_index(Path(out), store.read_all(), inputs, backend, log)
    barrier(group)
    return summary


def _write_index(out: Path, rows: np.ndarray, inputs: list[tuple[str, str]], backend: str, log: Callable) -> dict:
    keep = np.flatnonzero(np.isfinite(rows).all(axis=1))
    skipped = [inputs[i][1] for i in np.flatnonzero(~np.isfinite(rows).all(axis=1))]
    for source in skipped:
        log(f"skipped {source}: not a readable image")
    summary: dict = {"count": int(keep.size), "skipped": skipped, "backend": backend}
    if backend == "numpy":
        index = EmbeddingIndex(dim=rows.shape[1])
        index.add(rows[keep], ids=keep, normalize=True)
        index.save(out)
    else:
        from lame_tools.faiss_index import FaissIndex

        index = FaissIndex(rows.shape[1], kind=backend)
        index.add(rows[keep], ids=keep, normalize=True)
        if backend != "exact":
            summary["recall_at_10"] = index.recall_at_10()
            log(f"recall@10 against exact search: {summary['recall_at_10']:.3f}")
        index.save(out, extra={"recall_at_10": summary.get("recall_at_10", 1.0)})
    items = [{"id": int(i), "kind": inputs[i][0], "source": inputs[i][1]} for i in keep]
    atomic_write_json(out / "items.json", {"items": items, "skipped": skipped})
    log(f"wrote an index of {keep.size} items ({backend}) to {out}")
    return summary
