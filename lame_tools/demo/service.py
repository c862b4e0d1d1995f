"""`DemoService`: one method per app action, independent of Gradio.

The app calls these methods and only lays out their results. User mistakes (a bad upload, empty
text, words the model does not know) raise `LameError` subclasses carrying one sentence; the app
shows that sentence with `gr.Error`. Anything else is a bug and is not swallowed here.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lame_tools.config import MODES
from lame_tools.data.shapes import INSTRUCTIONS, make_example
from lame_tools.demo.exports import write_csv, write_json, write_npz, write_text
from lame_tools.demo.gallery import Gallery, GalleryEntry, SearchHit, render_version, search_many, shapes_gallery
from lame_tools.demo.models import ModeModels, load_demo_models
from lame_tools.errors import InputError
from lame_tools.inputs import MAX_TEXT_CHARS, clean_text, load_image
from lame_tools.model import LameModel

AUTO = "auto"
ALL_MODES = "all"  # the embedding map of every mode at once (one model only)
# The instructions of the Shapes tasks, by the name the app shows.
TASK_INSTRUCTIONS = {
    "find the image for a caption": INSTRUCTIONS["t2i"],
    "caption the image": INSTRUCTIONS["i2t"],
    "answer a question about the image": INSTRUCTIONS["colour_of"],
    "count the objects": INSTRUCTIONS["count"],
    "find the object named": INSTRUCTIONS["refer"],
}
MODE_LABELS = {"latent": "latent (LaME, one pass)", "discriminative": "discriminative (K=0)", "cot": "explicit CoT"}
MAX_K = 50
MAX_USER_IMAGES = 32
MAX_USER_TEXTS = 200


@dataclass
class Query:
    """A validated query: decoded image, cleaned text, the instruction and target kind in use, notes."""

    image: Image.Image | None
    text: str | None
    instruction: str
    target_kind: str
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        parts = (["[image]"] if self.image is not None else []) + ([self.text] if self.text else [])
        return " + ".join(parts)


@dataclass
class AttentionChoice:
    """What one (layer, head, token) choice draws.

    Attributes:
        token_index: the probed token's row.
        image_grid: [grid_h, grid_w] attention on the image patches, or None (no image).
        text_rows: [Q, T] attention of every probed token on the text keys.
        per_head: [layer, head, grid_h, grid_w] (or [layer, head, T] without an image) for the token.
        image_mass: the token's total attention on the image.
    """

    token_index: int
    image_grid: np.ndarray | None
    text_rows: np.ndarray
    per_head: np.ndarray
    image_mass: float


@dataclass
class MapView:
    """A drawn map: corpus coordinates [N, 2] with their entries, and the session's queries [M, 2]."""

    mode: str
    method: str
    status: str
    coords: np.ndarray
    entries: list[GalleryEntry]
    query_coords: np.ndarray
    query_labels: list[str]
    point_modes: list[str] = field(default_factory=list)


@dataclass
class SearchResult:
    """What one search returns: hits, the query's embedding, notes for the user and the timing."""

    query: Query
    mode: str
    hits: list[SearchHit]
    embedding: np.ndarray  # [D]
    encode_ms: float
    search_ms: float
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per hit, for a table or a CSV."""
        return [
            {
                "rank": hit.rank,
                "score": round(hit.score, 4),
                "kind": hit.entry.kind,
                "text": hit.entry.text,
                "group": hit.entry.group,
                "source": hit.entry.source,
                "image": Path(hit.entry.image_path).name if hit.entry.image_path else "",
            }
            for hit in self.hits
        ]


def demo_cache_dir() -> Path:
    """`$LAME_CACHE_DIR/demo`, else `~/.cache/lame_tools/demo`: the app's renders and embeddings."""
    root = os.environ.get("LAME_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "lame_tools") / "demo"


def parse_mode(mode: str | None) -> str:
    """Accept a mode name or its label ("explicit CoT" -> "cot")."""
    if not mode:
        return "latent"
    key = str(mode).strip().lower()
    for name, label in MODE_LABELS.items():
        if key in (name, label.lower()):
            return name
    if key in ("cot", "explicit-cot", "explicit cot"):
        return "cot"
    raise InputError(f"The mode must be one of {', '.join(MODES)}, not {mode!r}.")


class DemoService:
    """Models, corpus and the app's actions.

    Args:
        models: which model runs which mode.
        gallery: the shipped corpus.
        workdir: the app's own folder (gallery PNGs, downloads); the only folder the app serves.
    """

    def __init__(self, models: ModeModels, gallery: Gallery, workdir: Path, umap: bool = True) -> None:
        self.models = models
        self.gallery = gallery
        self.workdir = Path(workdir)
        self.downloads = self.workdir / "downloads"
        self.downloads.mkdir(parents=True, exist_ok=True)
        self._warm = False
        self._warm_lock = threading.Lock()
        self._umap = umap  # False: maps are PCA only (no background fit; for tests)
        self._map_lock = threading.Lock()
        self._map_threads: dict[str, threading.Thread] = {}
        self._maps: dict[str, Any] = {}
        self._map_errors: dict[str, str] = {}
        self._probes: dict[tuple[str, int], list[Any]] = {}
        self.ready = threading.Event()  # set once `prepare_in_background` has the latent-mode corpus

    @classmethod
    def create(
        cls,
        model: str | Path | None = None,
        *,
        allow_hub: bool = False,
        trust_remote_code: bool = False,
        device: str | None = None,
        gallery_size: int = 200,
        workdir: str | Path | None = None,
        precompute: bool = True,
        fit_map: bool = True,
        background_modes: tuple[str, ...] | None = None,
    ) -> DemoService:
        """Load the models and build the corpus; with `precompute`, embed the corpus in latent mode in a
        background thread (searches wait for it), then, with `fit_map`, fit the latent-mode UMAP map.

        Renders and corpus embeddings are cached under `demo_cache_dir()` (per Shapes version, model
        weights and mode), so a second start skips both.
        """
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="lame-demo-"))
            atexit.register(shutil.rmtree, workdir, True)  # downloads and uploads live as long as the process
        workdir = Path(workdir)
        models = load_demo_models(model, allow_hub=allow_hub, trust_remote_code=trust_remote_code, device=device)
        cache = demo_cache_dir()
        gallery = shapes_gallery(
            cache / f"shapes-test-{render_version()}", n_images=gallery_size, cache_dir=cache / "embeddings"
        )
        service = cls(models, gallery, workdir)
        if precompute:
            service.prepare_in_background(fit_map, background_modes)
        return service

    def prepare_in_background(self, fit_map: bool = True, other_modes: tuple[str, ...] | None = None) -> None:
        """Warm the models up and embed the corpus in latent mode (or load it from the cache), start the
        UMAP fit, then embed the corpus in the other modes (all cached on disk for the next start).

        `other_modes` default: `LAME_BACKGROUND_MODES` (comma-separated), else discriminative and cot.
        """
        if other_modes is None:
            names = os.environ.get("LAME_BACKGROUND_MODES", "discriminative,cot")
            other_modes = tuple(parse_mode(m) for m in names.split(",") if m.strip())

        def prepare() -> None:
            try:
                self.warm_up()
                for kind in ("image", "text"):
                    self.gallery.index(self.models.default, "latent", kind)
            finally:
                self.ready.set()
            if fit_map:
                self.start_map("latent")
            # then the other modes, so that choosing one later does not wait (CoT: a minute here)
            for mode in other_modes:
                for kind in ("image", "text"):
                    self.gallery.index(self.models.model_for(mode), mode, kind)

        threading.Thread(target=prepare, name="prepare-corpus", daemon=True).start()

    def served_folders(self) -> list[str]:
        """The only folders the app serves files from: its own work folder and the corpus renders."""
        folders = {str(self.workdir)}
        folders.update(str(Path(e.image_path).parent) for e in self.gallery.entries if e.image_path)
        return sorted(folders)

    # ---- facts shown in the page -------------------------------------------------------------

    def known_words(self) -> list[str]:
        return self.models.default.processor.known_words()

    def has_closed_vocabulary(self) -> bool:
        """True for a word-level tokenizer (the Shapes model); a real checkpoint's tokenizer reads any word."""
        return bool(self.models.default.processor.unknown_words("zzqx"))

    def check_words(self, text: str | None, what: str = "query") -> None:
        """Refuse text the model cannot read (it would silently become [UNK] noise)."""
        if not text:
            return
        unknown: list[str] = []
        for model in self.models.unique():
            unknown += [w for w in model.processor.unknown_words(text) if w not in unknown]
        if unknown:
            shown = ", ".join(repr(w) for w in unknown[:8]) + (" ..." if len(unknown) > 8 else "")
            raise InputError(
                f"The {what} uses words the model does not know ({shown}); this model only knows the "
                "Shapes world's words, listed under 'Words the model knows'."
            )

    def example_queries(self, n_per_task: int = 2) -> list[dict[str, Any]]:
        """Clickable examples whose answers are in the corpus: (image path, text, task, target kind)."""
        images = {Path(e.image_path).name: e.image_path for e in self.gallery.entries if e.kind == "image"}
        wanted = {"t2i": 2, "relation_two_step": n_per_task, "i2t": 1, "count": 1, "colour_of": 1, "refer": 1}
        examples = []
        for i in range(len(images)):
            ex = make_example(0, "test", i)
            if wanted.get(ex.subtask, 0) <= 0:
                continue
            wanted[ex.subtask] -= 1
            path = images.get(f"test_s0_{i:05d}.png")
            if path is None:
                continue
            task = next(name for name, inst in TASK_INSTRUCTIONS.items() if inst == ex.instruction)
            examples.append(
                {
                    "image": path if ex.query_has_image else None,
                    "text": ex.query_text,
                    "task": task,
                    "target": "images" if ex.target_has_image else "texts",
                    "answer": ex.target_text or ex.scene.caption(),
                }
            )
        return examples

    # ---- queries -----------------------------------------------------------------------------

    def prepare_query(self, image: Any, text: str | None, task: str | None, target: str | None) -> Query:
        """Decode and check a query (uploads go through `load_image`); choose instruction and targets.

        Args:
            image: None, a path, bytes, a PIL image or an array.
            text: the query text (may be empty when there is an image).
            task: a key of TASK_INSTRUCTIONS, "auto", or a custom instruction in the model's words.
            target: "images", "texts" or "auto" (text-only queries search images, others texts).

        Raises:
            InputError: no input, a bad image, or words the model does not know.
        """
        notes: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            decoded = load_image(image, name="query image") if image is not None and image != "" else None
            cleaned = clean_text(text, name="query text", allow_empty=True) or None
        notes += [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        if cleaned and len(cleaned) >= MAX_TEXT_CHARS and " " in cleaned:
            cleaned = cleaned.rsplit(" ", 1)[0]  # truncation may have cut the last word in two
        if decoded is None and not cleaned:
            raise InputError("Give a query: type a text, upload an image, or both.")
        task = (task or AUTO).strip()
        if task == AUTO:
            if decoded is not None and cleaned:
                instruction = TASK_INSTRUCTIONS["answer a question about the image"]
            elif decoded is not None:
                instruction = TASK_INSTRUCTIONS["caption the image"]
            else:
                instruction = TASK_INSTRUCTIONS["find the image for a caption"]
        else:
            instruction = TASK_INSTRUCTIONS.get(task) or clean_text(task, name="instruction")
        target = (target or AUTO).strip().lower()
        if target == AUTO:
            target = "image" if decoded is None else "text"
        target = {"images": "image", "texts": "text"}.get(target, target)
        if target not in ("image", "text"):
            raise InputError(f"Search for images or texts, not {target!r}.")
        self.check_words(cleaned, "query")
        self.check_words(instruction, "instruction")
        return Query(decoded, cleaned, instruction, target, notes)

    def encode_query(self, query: Query, mode: str) -> np.ndarray:
        """[D] embedding of a query in `mode` with the model that runs that mode."""
        model = self.models.model_for(mode)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            embedding = model.encode(
                images=[query.image] if query.image is not None else None,
                texts=[query.text] if query.text else None,
                instruction=query.instruction,
                mode=mode,
            )[0]
        query.notes += [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        return embedding

    def search(
        self,
        image: Any,
        text: str | None,
        task: str | None = AUTO,
        target: str | None = AUTO,
        mode: str | None = "latent",
        k: int = 8,
        user_gallery: Gallery | None = None,
    ) -> SearchResult:
        """Embed the query in `mode` and return the top-k of the corpus (plus the user's additions)."""
        mode = parse_mode(mode)
        k = int(k or 8)
        if not 1 <= k <= MAX_K:
            raise InputError(f"Ask for between 1 and {MAX_K} results, not {k}.")
        query = self.prepare_query(image, text, task, target)
        model = self.models.model_for(mode)
        started = time.perf_counter()
        embedding = self.encode_query(query, mode)
        encoded = time.perf_counter()
        galleries = [self.gallery] + ([user_gallery] if user_gallery is not None and len(user_gallery) else [])
        hits = search_many(galleries, embedding[None, :], model, mode, query.target_kind, k)
        done = time.perf_counter()
        return SearchResult(
            query, mode, hits, embedding, (encoded - started) * 1000.0, (done - encoded) * 1000.0, list(query.notes)
        )

    def export_results_csv(self, result: SearchResult) -> Path:
        """The result table as CSV (rank, score, kind, text, group, source, image file)."""
        return write_csv(self.downloads, f"lame-search-{result.mode}", result.rows())

    def export_results_npz(self, result: SearchResult) -> Path:
        """The query embedding and the hits' embeddings, scores and texts as NPZ (no pickle needed)."""
        dim = result.embedding.shape[0]
        return write_npz(
            self.downloads,
            f"lame-search-{result.mode}",
            {
                "query_embedding": result.embedding.astype(np.float32),
                "query_text": np.array(result.query.text or ""),
                "instruction": np.array(result.query.instruction),
                "mode": np.array(result.mode),
                "scores": np.array([h.score for h in result.hits], dtype=np.float32),
                "texts": np.array([h.entry.text for h in result.hits]),
                "kinds": np.array([h.entry.kind for h in result.hits]),
                "result_embeddings": np.stack([h.vector for h in result.hits]) if result.hits else np.zeros((0, dim), np.float32),
            },
        )

    @staticmethod
    def session_query(result: SearchResult) -> dict[str, Any]:
        """What the embedding map needs to place a session's query: its embedding, label and mode."""
        return {"embedding": result.embedding.astype(np.float32).tolist(), "label": result.query.label, "mode": result.mode}

    # ---- attention and read-out -------------------------------------------------------------

    def attention(self, image: Any, text: str | None, task: str | None = AUTO) -> tuple[Query, Any, str | None]:
        """Reason-token attention of one query in latent mode (`lame_tools.probe.reason_attention`),
        every layer and head, plus the latent decoder's read-out of its reason states (None without
        a decoder or reason tokens)."""
        from lame_tools.probe import reason_attention
        from lame_tools.probe.readout import readout

        query = self.prepare_query(image, text, task, AUTO)
        model = self.models.model_for("latent")
        attention = reason_attention(model, query.image, query.text, query.instruction, mode="latent")
        text_out = None
        if model.decoder is not None and model.num_reason_tokens > 0:
            text_out = readout(model, query.image, query.text, query.instruction).texts[0]
        return query, attention, text_out

    def attention_axes(self) -> tuple[int, int, list[str]]:
        """(layers, heads, probed token names) of the latent model, for the Attention tab's pickers."""
        model = self.models.model_for("latent")
        text_config = model.backbone.config.text_config
        tokens = [f"[REASON_{i}]" for i in range(model.num_reason_tokens)] + ["[EMBED]"]
        return int(text_config.num_hidden_layers), int(text_config.num_attention_heads), tokens

    def export_text(self, stem: str, text: str, suffix: str = ".csv") -> Path:
        """Ready-made text (a probe's own CSV) as a download in the app's folder."""
        return write_text(self.downloads, stem, suffix, text)

    @staticmethod
    def attention_choice(attention: Any, layer: str, head: str, token: str) -> AttentionChoice:
        """Select what to draw from a `ReasonAttention`: one layer (or the mean over layers), one head
        (or the mean over heads) and one probed token.

        Args:
            layer: "mean" or "L<i>"; head: "mean" or "H<j>"; token: one of `attention.query_tokens`.
        """
        if token not in attention.query_tokens:
            raise InputError(f"Pick one of {', '.join(attention.query_tokens)}, not {token!r}.")
        q = attention.query_tokens.index(token)

        def pick(array: np.ndarray) -> np.ndarray:  # [layer, head, ...] -> [...]
            array = array.mean(0) if layer == "mean" else array[_index(layer, "L", array.shape[0])]
            return array.mean(0) if head == "mean" else array[_index(head, "H", array.shape[0])]

        image_grid = pick(attention.image_attention[:, :, q]) if attention.image_attention is not None else None
        text_rows = pick(attention.text_attention)  # [Q, T]
        per_head = attention.image_attention[:, :, q] if attention.image_attention is not None else attention.text_attention[:, :, q]
        return AttentionChoice(q, image_grid, text_rows, per_head, float(pick(attention.image_mass)[q]))

    def export_attention_png(self, attention: Any, choice: AttentionChoice) -> Path | None:
        """The chosen attention map laid over the query image, as a PNG (None for a text-only query)."""
        from lame_tools.demo.exports import _unique
        from lame_tools.viz import overlay_png

        if choice.image_grid is None or attention.image is None:
            return None
        return overlay_png(attention.image, choice.image_grid, _unique(self.downloads, "lame-attention", ".png"))

    def export_race_json(self, events: list[dict[str, Any]]) -> Path:
        """A race's measured events (start, lane results, the final summary; token events summarised)."""
        kept = [e for e in events if e.get("event") != "token"]
        tokens = [e for e in events if e.get("event") == "token"]
        record = {"events": kept, "token_events": len(tokens), "last_token_event": tokens[-1] if tokens else None}
        return write_json(self.downloads, "lame-race", record)

    def export_attention_npz(self, attention: Any, readout_text: str | None) -> Path:
        """Every layer's and head's attention of the probed tokens (see `ReasonAttention`) as NPZ."""
        arrays = attention.to_npz_dict()
        arrays["readout"] = np.array(readout_text or "")
        return write_npz(self.downloads, "lame-attention", arrays)

    # ---- embedding map -----------------------------------------------------------------------

    def map_modes(self, mode: str) -> list[str]:
        """The modes a map holds: one, or all three when `mode` is "all" (one model must run them all:
        the shipped checkpoints are three models whose embeddings live in different spaces)."""
        if mode != ALL_MODES:
            return [parse_mode(mode)]
        if not self.models.single:
            raise InputError(
                "One map of all modes needs one model running them (start with --model); the shipped modes are "
                "three different models, whose embeddings cannot share a map."
            )
        return list(MODES)

    def map_key(self, mode: str) -> str:
        """Cache key of the corpus map: (model weights, corpus, mode or "all")."""
        from lame_tools.project import corpus_key

        spec = ("demo-gallery", self.gallery.count("image"), self.gallery.count("text"))
        return corpus_key(self.models.model_for(self.map_modes(mode)[0]), spec, mode)

    def map_labels(self, mode: str) -> tuple[np.ndarray, list[GalleryEntry], list[str]]:
        """The corpus embeddings of the map (images then texts, per mode), their entries and modes."""
        arrays, entries, modes = [], [], []
        for name in self.map_modes(mode):
            embeddings, ids = self.gallery.embeddings(self.models.model_for(name), name)
            arrays.append(embeddings)
            entries += [self.gallery.entries[i] for i in ids]
            modes += [name] * len(ids)
        return np.concatenate(arrays), entries, modes

    def start_map(self, mode: str = "latent") -> None:
        """Fit the UMAP map of the corpus for `mode` in a background thread (or load it from the cache)."""
        with self._map_lock:
            if mode in self._map_threads or not self._umap:
                return
            thread = threading.Thread(target=self._fit_umap, args=(mode,), name=f"umap-{mode}", daemon=True)
            self._map_threads[mode] = thread
            thread.start()

    def _fit_umap(self, mode: str) -> None:
        from lame_tools.project import fit_projection

        try:
            embeddings, _, _ = self.map_labels(mode)
            projection = fit_projection(embeddings, "umap", key=self.map_key(mode))
            projection.transform(embeddings[:1])  # compile UMAP's transform here, not in the first request
            self._maps[mode] = projection
        except Exception as exc:  # noqa: BLE001 - the map falls back to PCA and says why
            self._map_errors[mode] = f"UMAP failed ({type(exc).__name__}: {exc}); PCA is shown."

    def wait_for_map(self, mode: str = "latent", timeout: float | None = None) -> bool:
        """Block until the background UMAP fit of `mode` ends (tests, benchmarks); True if it did."""
        thread = self._map_threads.get(mode)
        if thread is not None:
            thread.join(timeout)
        return mode in self._maps or mode in self._map_errors

    def embedding_map(self, mode: str | None, session_queries: list[dict[str, Any]] | None = None) -> MapView:
        """The corpus in 2-D for `mode` (UMAP when fitted, PCA meanwhile) and this session's queries
        of that mode placed on it with `transform`."""
        from lame_tools.project import fit_projection

        mode = ALL_MODES if mode == ALL_MODES else parse_mode(mode)
        modes = self.map_modes(mode)
        self.start_map(mode)
        embeddings, entries, point_modes = self.map_labels(mode)
        projection = self._maps.get(mode)
        if projection is not None:
            status = f"UMAP ({'fitted at start-up' if projection.source == 'fit' else 'loaded from the ' + projection.source + ' cache'})"
        else:
            projection = fit_projection(embeddings, "pca", key=self.map_key(mode))
            status = self._map_errors.get(mode) or (
                "PCA (UMAP is still fitting in the background; draw again in a few seconds)" if self._umap else "PCA"
            )
        queries = [q for q in (session_queries or []) if q.get("mode") in modes]
        query_coords = np.zeros((0, 2), np.float32)
        if queries:
            query_coords = projection.transform(np.asarray([q["embedding"] for q in queries], dtype=np.float32))
        labels = [q["label"] + (f" ({q['mode']})" if len(modes) > 1 else "") for q in queries]
        return MapView(mode, projection.method, status, projection.coords, entries, query_coords, labels, point_modes)

    def export_map_csv(self, view: MapView) -> Path:
        rows = [
            {"x": float(x), "y": float(y), "mode": m, "kind": e.kind, "group": e.group, "text": e.text, "source": e.source,
             "point": "corpus"}
            for (x, y), e, m in zip(view.coords, view.entries, view.point_modes)
        ]
        rows += [
            {"x": float(x), "y": float(y), "mode": "", "kind": "query", "group": "your queries", "text": label, "source": "session",
             "point": "query"}
            for (x, y), label in zip(view.query_coords, view.query_labels)
        ]
        return write_csv(self.downloads, f"lame-map-{view.mode}-{view.method}", rows)

    # ---- race --------------------------------------------------------------------------------

    def race(self, image: Any, text: str | None, task: str | None = AUTO, with_discriminative: bool = True):
        """Stream `lame_tools.timing.race` on one query: latent vs explicit CoT (and K=0), measured live."""
        from lame_tools.timing import race

        query = self.prepare_query(image, text, task, AUTO)
        yield from race(
            latent=self.models.model_for("latent"),
            cot=self.models.model_for("cot"),
            discriminative=self.models.model_for("discriminative") if with_discriminative else None,
            images=[query.image] if query.image is not None else None,
            texts=[query.text] if query.text else None,
            instruction=query.instruction,
        )

    def recorded_benchmarks(self) -> list[dict[str, Any]]:
        """Race benchmarks recorded in `assets/benchmarks/*.json` (GPU card or CPU, dtype, date, per-lane ms)."""
        from lame_tools import ASSETS_DIR

        found = []
        for path in sorted((ASSETS_DIR / "benchmarks").glob("*.json")):
            try:
                report = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            found.extend(_recorded_races(report, path.name))
        return found

    # ---- probes ------------------------------------------------------------------------------

    def ablation(self, how: str = "zero", n: int = 24) -> Any:
        """`lame_tools.probe.ablation.ablate` on `n` Shapes test queries with text candidates, each reason token."""
        from lame_tools.probe.ablation import ablate

        if not 4 <= int(n) <= 200:
            raise InputError("Use between 4 and 200 queries for the ablation.")
        examples = [e for e in (make_example(0, "test", i) for i in range(int(n) * 2)) if e.candidates][: int(n)]
        return ablate(self.models.model_for("latent"), examples, tokens="each", how=how)

    def linear_probe(self, attribute: str, n: int = 200) -> list[Any]:
        """`lame_tools.probe.linear.linear_probe` on the latent model, and on the K=0 model when it is a
        different checkpoint (the baseline); cached per (attribute, n)."""
        from lame_tools.probe.linear import ATTRIBUTES, linear_probe

        if attribute not in ATTRIBUTES:
            raise InputError(f"Probe one of {', '.join(ATTRIBUTES)}, not {attribute!r}.")
        if not 40 <= int(n) <= 1000:
            raise InputError("Use between 40 and 1000 examples for a linear probe.")
        key = (attribute, int(n))
        if key not in self._probes:
            from threadpoolctl import threadpool_limits

            # Many tiny scikit-learn fits: BLAS thread pools only add contention (measured 5x slower
            # with the default threads on this 2-core machine under load).
            with threadpool_limits(1):
                results = [linear_probe(self.models.model_for("latent"), attribute, n=int(n), mode="latent")]
                baseline = self.models.model_for("discriminative")
                if baseline is not self.models.model_for("latent"):
                    results.append(linear_probe(baseline, attribute, n=int(n), mode="discriminative"))
            self._probes[key] = results
        return self._probes[key]

    # ---- the user's own corpus -----------------------------------------------------------------

    def add_to_gallery(self, user_gallery: Gallery | None, files: list[Any] | None, texts: str | None) -> tuple[Gallery, str]:
        """Add uploaded images (checked with `load_image`) and texts (one per line) to a user's corpus.

        Returns:
            (the user's gallery, a one-line summary).

        Raises:
            InputError: nothing to add, a bad file (named), unknown words, or the per-session limit.
        """
        gallery = user_gallery if user_gallery is not None else Gallery()
        files = [f for f in (files or []) if f]
        lines = [clean_text(line, allow_empty=True) for line in (texts or "").splitlines()]
        lines = [line for line in lines if line]
        if not files and not lines:
            raise InputError("Upload images or type texts (one per line) to add to the corpus.")
        if gallery.count("image") + len(files) > MAX_USER_IMAGES:
            raise InputError(f"A session can add at most {MAX_USER_IMAGES} images.")
        if gallery.count("text") + len(lines) > MAX_USER_TEXTS:
            raise InputError(f"A session can add at most {MAX_USER_TEXTS} texts.")
        decoded = []
        for number, file in enumerate(files, 1):
            name = Path(str(file)).name if isinstance(file, (str, Path)) else f"upload {number}"
            image = load_image(file, name=f"image {name!r}")
            path = self.workdir / "uploads" / f"{time.time_ns()}_{number}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
            decoded.append((image, str(path), name))
        for line in lines:
            self.check_words(line, "text")
        for image, path, name in decoded:
            gallery.add(GalleryEntry("image", name, path, "upload", "user"), image)
        for line in lines:
            gallery.add(GalleryEntry("text", line, "", "user text", "user"))
        summary = f"Your additions: {gallery.count('image')} images and {gallery.count('text')} texts (this session only)."
        return gallery, summary

    def about_markdown(self) -> str:
        """The About tab: what LaME is, the loaded checkpoints, how to load another."""
        lines = ["| mode | checkpoint | K | embedding | parameters | trained |", "|---|---|---|---|---|---|"]
        for fact in self.model_facts():
            lines.append(
                f"| {fact['mode']} | {fact['checkpoint']} | {fact['reason tokens (K)']} | {fact['embedding size']} | "
                f"{fact['parameters'] / 1e6:.2f} M | {'yes' if fact['trained'] else 'no'} |"
            )
        corpus = (
            f"The corpus: {self.gallery.count('image')} scenes and {self.gallery.count('text')} texts of the Shapes "
            "world's held-out test split (colour-shape pairs never seen in training)."
        )
        training = "\n".join(f"- {fact['mode']}: {fact['training']}" for fact in self.model_facts())
        notes = "".join(f"\n- {n}" for n in self.models.notes)
        return (
            ABOUT + "\n## Loaded now\n\n" + "\n".join(lines) + "\n\nHow each was trained:\n\n" + training
            + "\n\n" + corpus + notes + "\n"
        )

    # ---- device ------------------------------------------------------------------------------

    def warm_up(self, device: str | None = None) -> None:
        """Move the models to `device` (a GPU inside a ZeroGPU call) and run each mode once, once per process."""
        with self._warm_lock:
            if device is not None:
                self.models.to(device)
            if self._warm:
                return
            for mode in MODES:
                model = self.models.model_for(mode)
                if mode == "cot":
                    with torch_no_grad():
                        model.generate_rationales(model.make_items(texts=["a red circle"]), max_new_tokens=2)
                else:
                    model.encode(texts=["a red circle"], mode=mode)
            self._warm = True

    # ---- about -------------------------------------------------------------------------------

    def model_facts(self) -> list[dict[str, Any]]:
        """Per mode: the checkpoint, K, embedding size, parameters and how it was trained."""
        facts = []
        for mode in MODES:
            model: LameModel = self.models.model_for(mode)
            info = model.training_info or {}
            facts.append(
                {
                    "mode": mode,
                    "checkpoint": self.models.sources[mode],
                    "reason tokens (K)": model.num_reason_tokens,
                    "embedding size": model.config.embed_dim,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "device": str(model.device),
                    "trained": info.get("trained", bool(info)),
                    "training": _short(info),
                }
            )
        return facts


ABOUT = """
## What LaME is

LaME (Latent Reasoning Multimodal Embedding, arXiv 2606.13061) turns a vision-language model into an
embedding model that reasons without writing: after the input it appends K learnable `[REASON]` tokens
and one `[EMBED]` token, runs **one forward pass**, and takes the normalised state at `[EMBED]` as the
embedding. Training is a weakly supervised information bottleneck: a contrastive loss at `[EMBED]`,
and a small latent decoder that must rebuild the target text from the K reason states alone. No
chain-of-thought annotation is needed. Explicit-CoT embedders (UME-R1 style) first generate a
rationale (hundreds of tokens at real scale) and then embed; the Race tab times both on this machine.

## The three modes

| mode | what runs |
|---|---|
| latent | input + K `[REASON]` + `[EMBED]`, one pass (LaME) |
| discriminative | input + `[EMBED]`, one pass (K = 0; VLM2Vec / GME style) |
| cot | input + `[THINK]`, generate a rationale, then one pass ending in `[EMBED]` (UME-R1 style) |

## Loading another model

```bash
python app.py --model path/to/lame-folder            # a folder written by LameModel.save_pretrained
python app.py --model path/to/Qwen2-VL-2B-Instruct   # a Qwen2-VL-family folder, wrapped as an untrained LaME (for timing)
python app.py --model owner/name --allow-hub         # a hub id: downloaded once (needs network)
python app.py --model owner/name --allow-hub --trust-remote-code   # only if that checkpoint needs its own code
```

With no `--model`, each mode is run by the shipped checkpoint trained for it (`assets/models/`).
Nothing is downloaded unless you pass `--allow-hub`; remote code never runs without `--trust-remote-code`.
Every number this page shows is measured live on the machine serving it, unless it is labelled as recorded.
"""


def _index(choice: str, prefix: str, size: int) -> int:
    """"L2" -> 2 (checked against `size`)."""
    try:
        value = int(str(choice).removeprefix(prefix))
    except ValueError:
        raise InputError(f"Pick 'mean' or {prefix}0..{prefix}{size - 1}, not {choice!r}.") from None
    if not 0 <= value < size:
        raise InputError(f"Pick 'mean' or {prefix}0..{prefix}{size - 1}, not {choice!r}.")
    return value


def _recorded_races(report: Any, source: str, depth: int = 0) -> list[dict[str, Any]]:
    """Every race record in a JSON document: the document itself, or lists / dicts of records."""
    summary = _recorded_summary(report, source)
    if summary is not None:
        return [summary]
    if depth >= 2:
        return []
    children = report if isinstance(report, list) else list(report.values()) if isinstance(report, dict) else []
    return [s for child in children if isinstance(child, (dict, list)) for s in _recorded_races(child, source, depth + 1)]


def _recorded_summary(record: Any, source: str) -> dict[str, Any] | None:
    """Card (or CPU), dtype, date and per-lane median ms of a recorded race benchmark, or None if it is not one."""
    if not isinstance(record, dict) or record.get("benchmark", "race") != "race":
        return None
    hardware = record.get("hardware") or {}
    lanes = record.get("lanes") or {}
    if not isinstance(hardware, dict) or not isinstance(lanes, dict):
        return None
    card = hardware.get("gpu") or (f"CPU: {hardware['cpu']}" if hardware.get("cpu") else None)
    if not card:
        return None
    per_lane, batch = {}, None
    for name, lane in lanes.items():
        if isinstance(lane, dict) and isinstance(lane.get("median"), (int, float)):
            per_lane[name] = float(lane["median"])
            batch = lane.get("batch_size", batch)
    if not per_lane:
        return None
    return {
        "file": source,
        "card": card,
        "dtype": record.get("dtype") or hardware.get("dtype") or "",
        "date": record.get("date") or record.get("recorded_at") or hardware.get("date") or "",
        "model": record.get("model") or record.get("name") or "",
        "ms_per_item": per_lane,
        "batch_size": batch,
        "threads": hardware.get("torch_threads"),
    }


def _short(info: dict[str, Any]) -> str:
    """A one-line summary of a training.json: note, steps, time, held-out score, the command."""
    if not info:
        return "no training record"
    parts = []
    for key in ("note", "preset", "stage", "steps", "seed"):
        if key in info and not isinstance(info[key], (dict, list)):
            parts.append(f"{key}: {info[key]}")
    if isinstance(info.get("wall_s"), (int, float)):
        parts.append(f"trained for {info['wall_s'] / 60:.1f} min")
    for key in ("test_scores", "scores", "eval"):
        scores = info.get(key)
        if isinstance(scores, dict) and isinstance(scores.get("overall"), (int, float)):
            parts.append(f"held-out overall {scores['overall']:.3f} ({scores.get('split', 'test')})")
            break
    if isinstance(info.get("command"), str):
        parts.append(f"`{info['command']}`")
    return "; ".join(parts) or "see training.json"


def torch_no_grad():
    import torch

    return torch.no_grad()


def words_markdown(words: list[str]) -> str:
    """The known-word list as one wrapped Markdown paragraph."""
    return ", ".join(f"`{w}`" for w in words if re.fullmatch(r"[a-z]+", w))
