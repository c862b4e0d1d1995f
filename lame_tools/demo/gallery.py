"""The app's searchable corpus: images and texts, embedded once per (model, mode), searched exactly.

The default corpus is the Shapes world's held-out test split: its rendered scenes (saved as PNG in
the app's own folder, so the browser can show them) and the texts its tasks use as targets
(captions, answers, object names, colours, shapes, counts). A user's uploads and added texts live in
a second, per-session `Gallery`; `search_many` merges results from both.

Every entry is embedded as a retrieval target, with the target instruction of the Shapes tasks
(`TARGET_INSTRUCTION`, as the evaluation harness does), in the mode being searched.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lame_tools.atomic import atomic_save_npy, atomic_write
from lame_tools.data.shapes import (
    ALL_OBJECT_NAMES,
    COLOURS,
    COUNT_WORDS,
    SHAPES,
    TARGET_INSTRUCTION,
    gallery_file_name,
    make_example,
    render,
)
from lame_tools.errors import InputError
from lame_tools.index import EmbeddingIndex
from lame_tools.index_build import image_files
from lame_tools.model import LameModel

KINDS = ("image", "text")
ENCODE_BATCH = 64


@dataclass(frozen=True)
class GalleryEntry:
    """One searchable item.

    Attributes:
        kind: "image" or "text".
        text: the text itself, or the image's caption (its ground truth, for display).
        image_path: the PNG the browser shows ("" for a text).
        group: what the item is, for colouring the map: a task name, "caption", "answer", "upload".
        source: "shapes" (the shipped corpus) or "user" (added in this session).
    """

    kind: str
    text: str
    image_path: str = ""
    group: str = ""
    source: str = "shapes"


@dataclass(frozen=True)
class ShapesSource:
    """Which Shapes examples a corpus holds: scenes 0..n-1 of `split` drawn with `seed`."""

    split: str
    seed: int


@dataclass(frozen=True)
class SearchHit:
    """One result: its 1-based rank, cosine score, the entry and the entry's stored embedding [D]."""

    rank: int
    score: float
    entry: GalleryEntry
    vector: np.ndarray


class Gallery:
    """A list of entries with lazily built per-(model, mode, kind) `EmbeddingIndex`es.

    Thread-safe: the first search in a mode embeds the corpus once while later callers wait.
    """

    def __init__(
        self,
        entries: list[GalleryEntry] | None = None,
        images: dict[int, Image.Image] | None = None,
        cache_dir: str | Path | None = None,
        spec: object = None,
        shapes: ShapesSource | None = None,
    ) -> None:
        """Args:
        entries: the items; images: decoded images by entry id (else read from `image_path` when needed).
        cache_dir: where embeddings of the initial entries are cached (per model weights, mode, kind);
            None: no disk cache (a user's per-session gallery).
        spec: what identifies the entries in the cache key (e.g. ("shapes", "test", seed, n)).
        shapes: the Shapes split and seed whose scenes the image entries are, in order (None: not Shapes).
        """
        self.entries: list[GalleryEntry] = list(entries or [])
        self._images: dict[int, Image.Image] = dict(images or {})
        self._indexes: dict[tuple[int, str, str], EmbeddingIndex] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[int, str, str], threading.Lock] = {}
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._spec = spec
        self.shapes = shapes
        self._initial = len(self.entries)
        self._fingerprints: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def ids(self, kind: str) -> list[int]:
        return [i for i, e in enumerate(self.entries) if e.kind == kind]

    def count(self, kind: str) -> int:
        return sum(1 for e in self.entries if e.kind == kind)

    def image(self, entry_id: int) -> Image.Image:
        """The decoded image of an image entry (kept in memory; the PNG is for display)."""
        if entry_id not in self._images:
            self._images[entry_id] = Image.open(self.entries[entry_id].image_path).convert("RGB")
        return self._images[entry_id]

    # ---- growing -------------------------------------------------------------------------------

    def add(self, entry: GalleryEntry, image: Image.Image | None = None) -> int:
        """Append an entry (and its decoded image); embeddings already built are extended lazily."""
        with self._lock:
            if image is not None:
                self._images[len(self.entries)] = image
            self.entries.append(entry)
            return len(self.entries) - 1

    # ---- embedding and search ------------------------------------------------------------------

    def _embed(self, model: LameModel, mode: str, ids: list[int]) -> np.ndarray:
        kind = self.entries[ids[0]].kind
        if kind == "image":
            return model.encode(
                images=[self.image(i) for i in ids], instruction=TARGET_INSTRUCTION, batch_size=ENCODE_BATCH, mode=mode
            )
        return model.encode(
            texts=[self.entries[i].text for i in ids], instruction=TARGET_INSTRUCTION, batch_size=ENCODE_BATCH, mode=mode
        )

    def index(self, model: LameModel, mode: str, kind: str) -> EmbeddingIndex:
        """The index of all `kind` entries for this model and mode (built or extended on first use)."""
        if kind not in KINDS:
            raise InputError(f"Search for images or texts, not {kind!r}.")
        key = (id(model), mode, kind)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        # One lock per (model, mode, kind): embedding the corpus in CoT mode (a minute on a CPU) never
        # holds up a search in another mode.
        with key_lock:
            index = self._indexes.get(key)
            if index is None:
                index = self._indexes[key] = self._cached(model, mode, kind) or EmbeddingIndex(dim=model.config.embed_dim)
                fresh = len(index) == 0
            else:
                fresh = False
            have = set(index.ids.tolist())
            missing = [i for i in self.ids(kind) if i not in have]
            if missing:
                index.add(self._embed(model, mode, missing), ids=np.asarray(missing, dtype=np.int64))
                if fresh:
                    self._save(index, model, mode, kind)
            return index

    # ---- the disk cache of the initial entries' embeddings ---------------------------------------

    def _cache_folder(self, model: LameModel, mode: str, kind: str) -> Path | None:
        if self._cache_dir is None or self._spec is None:
            return None
        from lame_tools.project import array_key, model_fingerprint

        if id(model) not in self._fingerprints:
            self._fingerprints[id(model)] = model_fingerprint(model)
        initial = [i for i in range(self._initial) if self.entries[i].kind == kind]
        return self._cache_dir / f"emb-{array_key(self._fingerprints[id(model)], self._spec, mode, kind, len(initial))}"

    def _cached(self, model: LameModel, mode: str, kind: str) -> EmbeddingIndex | None:
        """The cached index of the initial entries, if present and matching; else None."""
        folder = self._cache_folder(model, mode, kind)
        if folder is None or not folder.is_dir():
            return None
        try:
            index = EmbeddingIndex.load(folder)
        except InputError:
            return None
        expected = [i for i in range(self._initial) if self.entries[i].kind == kind]
        if index.ids.tolist() != expected or index.dim != model.config.embed_dim:
            return None
        return index

    def _save(self, index: EmbeddingIndex, model: LameModel, mode: str, kind: str) -> None:
        folder = self._cache_folder(model, mode, kind)
        expected = [i for i in range(self._initial) if self.entries[i].kind == kind]
        if folder is not None and index.ids.tolist() == expected:
            try:
                index.save(folder)
            except OSError:
                pass  # a read-only cache only costs the next start its embedding time

    def embeddings(self, model: LameModel, mode: str) -> tuple[np.ndarray, list[int]]:
        """[N, D] embeddings of every entry (images then texts) and their entry ids."""
        arrays, ids = [], []
        for kind in KINDS:
            if self.count(kind):
                index = self.index(model, mode, kind)
                arrays.append(index.embeddings)
                ids.extend(index.ids.tolist())
        if not arrays:
            return np.zeros((0, model.config.embed_dim), np.float32), []
        return np.concatenate(arrays), ids

    def search(
        self, query: np.ndarray, model: LameModel, mode: str, kind: str, k: int
    ) -> list[tuple[float, int, np.ndarray]]:
        """(score, entry id, stored embedding) of the k best `kind` entries for one query, best first."""
        if not self.count(kind):
            return []
        index = self.index(model, mode, kind)
        scores, ids = index.search(query, k)
        # Entries are indexed in increasing id order, so an id's row is found by bisection.
        rows = np.searchsorted(index.ids, ids[0])
        return [(float(s), int(i), index.embeddings[r]) for s, i, r in zip(scores[0], ids[0], rows)]


def search_many(
    galleries: list[Gallery], query: np.ndarray, model: LameModel, mode: str, kind: str, k: int
) -> list[SearchHit]:
    """Top-k over several galleries (the shipped corpus and a user's additions), merged by score."""
    found = []
    for gallery in galleries:
        found.extend((score, entry_id, vector, gallery) for score, entry_id, vector in gallery.search(query, model, mode, kind, k))
    found.sort(key=lambda hit: -hit[0])
    return [
        SearchHit(rank, score, gallery.entries[entry_id], np.asarray(vector, dtype=np.float32))
        for rank, (score, entry_id, vector, gallery) in enumerate(found[:k], 1)
    ]


def render_version() -> str:
    """A hash of the Shapes world's source: cached renders and embeddings are dropped when it changes."""
    import inspect

    from lame_tools.data import shapes

    return hashlib.sha256(inspect.getsource(shapes).encode()).hexdigest()[:12]


def shapes_gallery(
    folder: str | Path, n_images: int = 200, seed: int = 0, split: str = "test", cache_dir: str | Path | None = None
) -> Gallery:
    """The default corpus: `n_images` scenes of `split` (PNG files in `folder`) and target texts.

    Texts: the captions and target texts of those examples plus every object name, colour, shape
    and count word, without duplicates (about 300 texts for 200 scenes). A PNG already in `folder`
    is reused (write `folder` under a cache directory keyed by `render_version()` to reuse renders
    across runs); `cache_dir` caches the corpus embeddings per model and mode.
    """
    if n_images < 1:
        raise InputError("The gallery needs at least one image.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries: list[GalleryEntry] = []
    images: dict[int, Image.Image] = {}
    texts: dict[str, str] = {}
    for i in range(n_images):
        example = make_example(seed, split, i)
        path = folder / gallery_file_name(split, seed, i)
        if not path.is_file():
            image = render(example.scene)
            atomic_write(path, lambda f, image=image: image.save(f, format="PNG"))
            images[len(entries)] = image
        n_objects = len(example.scene.objects)
        group = f"scene, {n_objects} object{'s' if n_objects > 1 else ''}"
        entries.append(GalleryEntry("image", example.scene.caption(), str(path), group, "shapes"))
        if i < 200:
            texts.setdefault(example.scene.caption(), "caption")
            if example.target_text:
                texts.setdefault(example.target_text, f"answer ({example.subtask})")
    for word_list, group in ((ALL_OBJECT_NAMES, "object name"), (COLOURS, "colour"), (SHAPES, "shape"), (COUNT_WORDS[1:], "count")):
        for text in word_list:
            texts.setdefault(text, group)
    entries.extend(GalleryEntry("text", text, "", group, "shapes") for text, group in texts.items())
    spec = ("shapes", split, seed, n_images, render_version())
    return Gallery(entries, images, cache_dir=cache_dir, spec=spec, shapes=ShapesSource(split, seed))


# ---- a user's folder as the corpus ---------------------------------------------------------------

FOLDER_CHUNK = 256  # images decoded and embedded per step (progress and the cache advance per step)


class FolderGallery(Gallery):
    """The images of a folder (and the lines of a texts file) as the corpus (`app.py --gallery DIR`).

    Embeddings are cached on disk per model weights, mode and kind, keyed by each file's sha256 (a
    text's own), so a restart, a renamed file or a second copy costs nothing, and `refresh()` picks
    up files added since: only they are embedded on the next search. A file that is not a readable
    image is skipped with one line in `skipped`; everything else is kept. Images are decoded when
    embedded and not kept in memory (a folder may hold many thousands).
    """

    def __init__(self, folder: str | Path, texts_file: str | Path | None = None, cache_dir: str | Path | None = None):
        super().__init__()  # the base cache (keyed by entry order) stays off: this one is keyed by content
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"The gallery folder {str(self.folder)!r} does not exist.")
        self.texts_file = Path(texts_file) if texts_file is not None else None
        if self.texts_file is not None and not self.texts_file.is_file():
            raise InputError(f"The gallery texts file {str(self.texts_file)!r} does not exist.")
        self.content_cache = Path(cache_dir) if cache_dir is not None else None
        self.skipped: list[str] = []
        self.progress = {"kind": "", "mode": "", "done": 0, "total": 0}
        self._keys: dict[int, str] = {}
        self._listed: set[object] = set()  # image paths, ("text", line) pairs
        self._vectors: dict[tuple[int, str, str], dict[str, np.ndarray]] = {}
        self._bad: set[int] = set()
        self._fill_lock = threading.Lock()
        self.refresh()

    def refresh(self) -> int:
        """Add the folder's images and the texts file's lines not listed yet; returns how many were added."""
        added = 0
        for path in image_files(self.folder):
            if str(path) in self._listed:
                continue
            self._listed.add(str(path))
            entry_id = self.add(GalleryEntry("image", path.name, str(path), "folder image", "user"))
            self._keys[entry_id] = "image-" + hashlib.sha256(path.read_bytes()).hexdigest()
            added += 1
        lines = self.texts_file.read_text(encoding="utf-8", errors="replace").splitlines() if self.texts_file else []
        for line in dict.fromkeys(t.strip() for t in lines if t.strip()):
            if ("text", line) in self._listed:
                continue
            self._listed.add(("text", line))
            entry_id = self.add(GalleryEntry("text", line, "", "folder text", "user"))
            self._keys[entry_id] = "text-" + hashlib.sha256(line.encode()).hexdigest()
            added += 1
        return added

    def ids(self, kind: str) -> list[int]:
        return [i for i in super().ids(kind) if i not in self._bad]

    def count(self, kind: str) -> int:
        return len(self.ids(kind))

    def image(self, entry_id: int) -> Image.Image:
        from lame_tools.inputs import load_image

        return load_image(self.entries[entry_id].image_path, name="image")

    def index(self, model: LameModel, mode: str, kind: str) -> EmbeddingIndex:
        """The index of every readable `kind` entry (embedding what is missing first); while another
        thread is embedding, an index of what is embedded so far, so a search never waits for it."""
        if self._fill_lock.acquire(blocking=False):
            try:
                self._fill(model, mode, kind)
            finally:
                self._fill_lock.release()
            return super().index(model, mode, kind)
        vectors = self._load_cache(model, mode, kind)
        ids = [i for i in self.ids(kind) if self._keys[i] in vectors]
        partial = EmbeddingIndex(dim=model.config.embed_dim)
        if ids:
            partial.add(np.stack([vectors[self._keys[i]] for i in ids]), ids=np.asarray(ids, dtype=np.int64))
        return partial

    def _embed(self, model: LameModel, mode: str, ids: list[int]) -> np.ndarray:
        vectors = self._load_cache(model, mode, self.entries[ids[0]].kind)
        return np.stack([vectors[self._keys[i]] for i in ids])

    def _fill(self, model: LameModel, mode: str, kind: str) -> None:
        """Embed every entry of `kind` whose content is not cached yet, a chunk at a time (progress),
        saving the cache after each chunk; unreadable images are skipped with one line each."""
        vectors = self._load_cache(model, mode, kind)
        todo = [i for i in self.ids(kind) if self._keys[i] not in vectors]
        self.progress = {"kind": kind, "mode": mode, "done": 0, "total": len(todo)}
        for start in range(0, len(todo), FOLDER_CHUNK):
            chunk, inputs = [], []
            for entry_id in todo[start : start + FOLDER_CHUNK]:
                try:
                    inputs.append(self.image(entry_id) if kind == "image" else self.entries[entry_id].text)
                    chunk.append(entry_id)
                except InputError as exc:
                    self._bad.add(entry_id)
                    self.skipped.append(f"Skipped {self.entries[entry_id].text}: {exc}")
            if chunk:
                given = {"images": inputs} if kind == "image" else {"texts": inputs}
                rows = model.encode(**given, instruction=TARGET_INSTRUCTION, batch_size=ENCODE_BATCH, mode=mode)
                vectors.update((self._keys[i], row) for i, row in zip(chunk, rows))
                self._save_cache(model, mode, kind, vectors)
            self.progress = dict(self.progress, done=min(len(todo), start + FOLDER_CHUNK))

    def _cache_path(self, model: LameModel, mode: str, kind: str) -> Path | None:
        if self.content_cache is None:
            return None
        from lame_tools.project import model_fingerprint

        if id(model) not in self._fingerprints:
            self._fingerprints[id(model)] = model_fingerprint(model)
        return self.content_cache / f"folder-{self._fingerprints[id(model)][:16]}-{mode}-{kind}"

    def _load_cache(self, model: LameModel, mode: str, kind: str) -> dict[str, np.ndarray]:
        """{content key: embedding} from memory, else the disk cache, else empty."""
        memo, key = self._vectors, (id(model), mode, kind)
        if key not in memo:
            memo[key] = {}
            folder = self._cache_path(model, mode, kind)
            try:
                keys = json.loads((folder / "keys.json").read_text()) if folder else []
                array = np.load(folder / "vectors.npy", allow_pickle=False) if folder else None
                if array is not None and array.shape == (len(keys), model.config.embed_dim):
                    memo[key] = dict(zip(keys, array))
            except (OSError, ValueError):
                pass  # no cache yet, or an unreadable one: embed again
        return memo[key]

    def _save_cache(self, model: LameModel, mode: str, kind: str, vectors: dict[str, np.ndarray]) -> None:
        folder = self._cache_path(model, mode, kind)
        if folder is None:
            return
        try:
            atomic_save_npy(folder / "vectors.npy", np.stack(list(vectors.values())).astype(np.float32))
            atomic_write(folder / "keys.json", lambda f: f.write(json.dumps(list(vectors)).encode()))
        except OSError:
            pass  # a read-only cache only costs the next start its embedding time

    def status_line(self) -> str:
        """One line for the page: the folder's size, the embedding progress, and each skipped file."""
        line = f"Your gallery ({self.folder.name}): {self.count('image')} images and {self.count('text')} texts."
        done, total = self.progress["done"], self.progress["total"]
        if total and done < total:
            line += f" Embedding {self.progress['kind']}s ({self.progress['mode']} mode): {done} / {total}."
        return " ".join([line, *self.skipped])
