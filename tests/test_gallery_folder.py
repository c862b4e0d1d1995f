"""A folder as the app's corpus: embedded once (cached by model and file contents), new files picked
up, a corrupt file skipped with one line and nothing else lost."""

from __future__ import annotations

import numpy as np
import pytest

from lame_tools.data.shapes import TARGET_INSTRUCTION
from lame_tools.demo.gallery import FolderGallery, search_many
from lame_tools.errors import InputError


def _write_scenes(folder, scenes, names):
    folder.mkdir(parents=True, exist_ok=True)
    for scene, name in zip(scenes, names):
        scene.save(folder / name, format="PNG")


def test_folder_gallery_embeds_caches_refreshes_and_skips_corrupt_files(tmp_path, micro_model, scenes):
    scenes = scenes[1]  # the rendered images
    folder, cache = tmp_path / "photos", tmp_path / "cache"
    _write_scenes(folder, scenes[:3], ["a.png", "b.png", "sub_c.png"])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "notes.txt").write_text("ignored: not an image")
    texts = tmp_path / "texts.txt"
    texts.write_text("a red circle\n\na blue square\na red circle\n")
    gallery = FolderGallery(folder, texts, cache_dir=cache)
    assert [e.image_path.rsplit("/", 1)[-1] for e in gallery.entries if e.kind == "image"] == [
        "a.png", "b.png", "broken.png", "sub_c.png"]
    assert [e.text for e in gallery.entries if e.kind == "text"] == ["a red circle", "a blue square"]

    index = gallery.index(micro_model, "latent", "image")
    assert len(index) == 3 and gallery.count("image") == 3
    assert len(gallery.skipped) == 1 and "broken.png" in gallery.skipped[0] and "\n" not in gallery.skipped[0]
    assert "broken.png" in gallery.status_line()
    want = micro_model.encode(images=[folder / "a.png", folder / "b.png", folder / "sub_c.png"],
                              instruction=TARGET_INSTRUCTION, batch_size=8, mode="latent")
    np.testing.assert_allclose(index.embeddings, want, atol=1e-5)
    query = micro_model.encode(texts=["a red circle"], mode="latent")
    hits = search_many([gallery], query, micro_model, "latent", "image", 2)
    assert len(hits) == 2 and hits[0].score >= hits[1].score
    assert gallery.index(micro_model, "latent", "text").ids.tolist() == [4, 5]

    # a new file: only it is embedded; the cache on disk now holds all four readable files
    _write_scenes(folder, scenes[3:4], ["d.png"])
    assert gallery.refresh() == 1 and gallery.refresh() == 0
    assert len(gallery.index(micro_model, "latent", "image")) == 4

    # a second start reads every vector from the cache, keyed by content (a renamed file included)
    (folder / "d.png").rename(folder / "renamed.png")
    again = FolderGallery(folder, texts, cache_dir=cache)
    calls = []
    original = micro_model.encode

    def counting_encode(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    micro_model.encode = counting_encode
    try:
        reloaded = again.index(micro_model, "latent", "image")
    finally:
        del micro_model.encode
    assert calls == [] and len(reloaded) == 4
    assert len(again.skipped) == 1


def test_missing_folder_is_one_sentence(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        FolderGallery(tmp_path / "nowhere")
