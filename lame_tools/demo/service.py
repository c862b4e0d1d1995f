"""`DemoService`: one method per app action, independent of Gradio.

The app calls these methods and only lays out their results. User mistakes (a bad upload, empty
text, words the model does not know) raise `LameError` subclasses carrying one sentence; the app
shows that sentence with `gr.Error`. Anything else is a bug and is not swallowed here.

The actions live by tab: `query` (word checks, examples, search, result downloads), `maps` (the
embedding map), `probes` (attention, read-out, ablation, linear probes), `about` (model facts);
`DemoService` joins them and adds loading, warm-up, the user's own corpus and the race.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lame_tools.constants import MODES, SEQUENTIAL_MODE
from lame_tools.demo.about import ABOUT, AboutActions
from lame_tools.demo.exports import write_json
from lame_tools.demo.gallery import FolderGallery, Gallery, GalleryEntry, render_version, shapes_gallery
from lame_tools.demo.maps import ALL_MODES, COLOUR_BY, MapActions, MapState, MapView
from lame_tools.demo.models import ModeModels, load_demo_models
from lame_tools.demo.probes import AblationView, AttentionChoice, AttentionView, ProbeActions, ProbeView
from lame_tools.demo.query import (
    AUTO,
    MAX_K,
    MAX_SESSION_QUERIES,
    MODE_LABELS,
    TASK_INSTRUCTIONS,
    Query,
    SearchResult,
    parse_mode,
    words_markdown,
)
from lame_tools.demo.race_board import RaceBoard, recorded_benchmarks
from lame_tools.demo.uploads import MAX_IMAGES_PER_ADD, UserUploads
from lame_tools.errors import InputError
from lame_tools.inputs import clean_text_noted, load_image

MAX_USER_IMAGES = 32
MAX_USER_TEXTS = 200

__all__ = [
    "ABOUT", "ALL_MODES", "AUTO", "COLOUR_BY", "MAX_K", "MAX_SESSION_QUERIES", "MAX_USER_IMAGES", "MAX_USER_TEXTS",
    "MODE_LABELS", "TASK_INSTRUCTIONS", "AblationView", "AttentionChoice", "AttentionView", "DemoService", "MapView",
    "ProbeView", "Query", "SearchResult", "demo_cache_dir", "parse_mode", "words_markdown",
]


def demo_cache_dir() -> Path:
    """`$LAME_CACHE_DIR/demo`, else `~/.cache/lame_tools/demo`: the app's renders and embeddings."""
    root = os.environ.get("LAME_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "lame_tools") / "demo"


class DemoService(ProbeActions, MapActions, AboutActions):
    """Models, corpus and the app's actions.

    Args:
        models: which model runs which mode.
        gallery: the shipped corpus.
        workdir: the app's own folder (gallery PNGs, downloads); the only folder the app serves.
        umap: False: maps are PCA only (no background UMAP fit; for tests).
    """

    def __init__(self, models: ModeModels, gallery: Gallery, workdir: Path, umap: bool = True) -> None:
        self.models = models
        self.gallery = gallery
        self.workdir = Path(workdir)
        self.downloads = self.workdir / "downloads"
        self.downloads.mkdir(parents=True, exist_ok=True)
        self.warm = False
        self.warm_lock = threading.Lock()
        self.map_state = MapState(umap=umap)
        self.probe_cache = {}
        self.ready = threading.Event()  # set once `prepare_in_background` has the latent-mode corpus
        self.user_uploads = UserUploads(self.workdir / "uploads")  # the sessions' own images, bounded

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
        gallery_dir: str | Path | None = None,
        gallery_texts: str | Path | None = None,
    ) -> DemoService:
        """Load the models and build the corpus; with `precompute`, embed the corpus in latent mode in a
        background thread (searches wait for it), then, with `fit_map`, fit the latent-mode UMAP map.

        Renders and corpus embeddings are cached under `demo_cache_dir()` (per Shapes version, model
        weights and mode), so a second start skips both. `gallery_dir` (and `gallery_texts`, one text
        a line) serve a folder of images as the corpus instead of the Shapes scenes (`FolderGallery`:
        cached by file contents, embedded in the background with progress in `gallery_status`).
        """
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="lame-demo-"))
            atexit.register(shutil.rmtree, workdir, True)  # downloads and uploads live as long as the process
        workdir = Path(workdir)
        models = load_demo_models(model, allow_hub=allow_hub, trust_remote_code=trust_remote_code, device=device)
        cache = demo_cache_dir()
        if gallery_dir is not None:
            gallery = FolderGallery(gallery_dir, gallery_texts, cache_dir=cache / "folder-embeddings")
        else:
            gallery = shapes_gallery(
                cache / f"shapes-test-{render_version()}", n_images=gallery_size, cache_dir=cache / "embeddings"
            )
        service = cls(models, gallery, workdir)
        if precompute:
            service.prepare_in_background(fit_map, background_modes)
        return service

    def gallery_status(self) -> str:
        """The corpus line: a folder gallery's size, embedding progress and skipped files (new files in
        the folder are listed first); the Shapes corpus's summary otherwise."""
        if isinstance(self.gallery, FolderGallery):
            self.gallery.refresh()
            return self.gallery.status_line()
        return self.corpus_summary()

    def prepare_in_background(self, fit_map: bool = True, other_modes: tuple[str, ...] | None = None) -> None:
        """Warm the models up and embed the corpus in latent mode (or load it from the cache), start the
        UMAP fit, then embed the corpus in the other modes (all cached on disk for the next start).

        `other_modes` default: `LAME_BACKGROUND_MODES` (comma-separated), else discriminative, cot and
        sequential (the race's sequential lane; skipped when no sequential-latent model is loaded).
        """
        if other_modes is None:
            names = os.environ.get("LAME_BACKGROUND_MODES", f"discriminative,cot,{SEQUENTIAL_MODE}")
            other_modes = tuple(m.strip() if m.strip() == SEQUENTIAL_MODE else parse_mode(m)
                                for m in names.split(",") if m.strip())

        def prepare() -> None:
            try:
                self.warm_up()
                for kind in ("image", "text"):
                    self.gallery.index(self.models.default, "latent", kind)
            finally:
                self.ready.set()
            if fit_map:
                self.start_map("latent")
            # then the other modes, so that choosing one later does not wait (CoT: a minute here), and
            # the sequential model's, which the race's sequential lane searches
            for mode in other_modes:
                if mode == SEQUENTIAL_MODE and mode not in self.models.models:
                    continue
                for kind in ("image", "text"):
                    self.gallery.index(self.lane_model(mode), mode, kind)

        threading.Thread(target=prepare, name="prepare-corpus", daemon=True).start()

    def served_folders(self) -> list[str]:
        """The only folders the app serves files from: its own work folder and the corpus renders."""
        folders = {str(self.workdir)}
        folders.update(str(Path(e.image_path).parent) for e in self.gallery.entries if e.image_path)
        return sorted(folders)

    def warm_up(self, device: str | None = None) -> None:
        """Move the models to `device` (a GPU inside a ZeroGPU call) and run each mode once, once per process."""
        with self.warm_lock:
            if device is not None:
                self.models.to(device)
            if self.warm:
                return
            for mode in MODES:
                model = self.models.model_for(mode)
                if mode == "cot":  # `generate_rationales` runs without gradients itself
                    model.generate_rationales(model.make_items(texts=["a red circle"]), max_new_tokens=2)
                else:
                    model.encode(texts=["a red circle"], mode=mode)
            self.warm = True

    # ---- the user's own corpus -----------------------------------------------------------------

    def add_to_gallery(self, user_gallery: Gallery | None, files: list[Any] | None, texts: str | None) -> tuple[Gallery, str]:
        """Add uploaded images (checked with `load_image`) and texts (one per line) to a user's corpus.

        Images are kept as thumbnails (`lame_tools.demo.uploads`), within a per-session and a global cap.

        Returns:
            (the user's gallery, a one-line summary, with any note such as a text cut to length).

        Raises:
            InputError: nothing to add, a bad file (named), unknown words, or a per-session or global limit.
        """
        gallery = user_gallery if user_gallery is not None else Gallery()
        files = [f for f in (files or []) if f]
        noted = [clean_text_noted(line, allow_empty=True) for line in (texts or "").splitlines()]
        lines = [line for line, _ in noted if line]
        notes = list(dict.fromkeys(note for _, note in noted if note))
        if not files and not lines:
            raise InputError("Upload images or type texts (one per line) to add to the corpus.")
        if len(files) > MAX_IMAGES_PER_ADD:
            raise InputError(f"Add at most {MAX_IMAGES_PER_ADD} images at a time ({MAX_USER_IMAGES} in all per session).")
        if gallery.count("image") + len(files) > MAX_USER_IMAGES:
            raise InputError(f"A session can add at most {MAX_USER_IMAGES} images.")
        if gallery.count("text") + len(lines) > MAX_USER_TEXTS:
            raise InputError(f"A session can add at most {MAX_USER_TEXTS} texts.")
        self.user_uploads.check_room(len(files))
        for line in lines:
            self.check_words(line, "text")
        decoded = []
        for number, file in enumerate(files, 1):
            named = isinstance(file, (str, Path))
            image = load_image(file, name="image" if named else f"image (upload {number})")
            decoded.append((image, Path(str(file)).name if named else f"upload {number}"))
        self.user_uploads.check_room(len(files))  # again: another session may have added meanwhile
        for number, (image, name) in enumerate(decoded, gallery.count("image") + 1):
            small, path = self.user_uploads.store(gallery, image, number)
            gallery.add(GalleryEntry("image", name, path, "upload", "user"), small)
        for line in lines:
            gallery.add(GalleryEntry("text", line, "", "user text", "user"))
        summary = f"Your additions: {gallery.count('image')} images and {gallery.count('text')} texts (this session only)."
        return gallery, " ".join([summary, *notes])

    def reset_gallery(self, user_gallery: Gallery | None) -> tuple[None, str]:
        """Forget a session's additions and delete the files stored for them ("Remove my additions")."""
        self.user_uploads.release(user_gallery)
        return None, "Your additions were removed; the corpus is the shipped Shapes set again."

    # ---- race --------------------------------------------------------------------------------

    RACE_WAIT_S = 60.0  # how long a race waits for start-up work before it runs labelled as disturbed
    RACE_REDRAW_S = 0.25  # the least time between two board updates (redraws) during a race

    def race(
        self, image: Any, text: str | None, task: str | None = AUTO, with_discriminative: bool = True,
        with_sequential: bool = False, repeats: int = 3, other_work: list[str] | None = None, wait: bool = True,
    ):
        """Stream `lame_tools.timing.race` on one query: latent vs explicit CoT (and K=0, and the
        sequential-latent lane), measured live. With `wait`, first waits (at most `RACE_WAIT_S`) for the
        app's background work to end; what still ran is recorded in the events (`other_work`)."""
        from lame_tools.timing import race

        query = self.prepare_query(image, text, task, AUTO)
        other = list(other_work or [])
        if wait:
            other += self.wait_for_background_work()
        yield from race(
            latent=self.models.model_for("latent"),
            cot=self.models.model_for("cot"),
            discriminative=self.models.model_for("discriminative") if with_discriminative else None,
            sequential=self.sequential_model() if with_sequential else None,
            images=[query.image] if query.image is not None else None,
            texts=[query.text] if query.text else None,
            instruction=query.instruction,
            repeats=repeats,
            other_work=other,
        )

    def sequential_model(self):
        """The model of the sequential-latent lane: a dedicated one if loaded, else the latent model."""
        return self.models.models.get(SEQUENTIAL_MODE) or self.models.model_for("latent")

    def lane_model(self, lane: str):
        """The model that runs a race lane (a mode, or the sequential lane)."""
        return self.sequential_model() if lane == SEQUENTIAL_MODE else self.models.model_for(lane)

    def wait_for_background_work(self) -> list[str]:
        """Wait (at most `RACE_WAIT_S`) for the corpus embedding and map fits to end; what still runs."""
        from lame_tools.demo.race_board import wait_for_background

        _, still, waited = wait_for_background(self.RACE_WAIT_S)
        return [f"{what}, still running after a {waited:.0f} s wait" for what in still]

    def race_boards(
        self, image: Any, text: str | None, task: str | None = AUTO, with_discriminative: bool = True,
        with_sequential: bool = False, repeats: int = 3,
    ) -> Iterator[tuple[RaceBoard, str | None]]:
        """`race` applied to one `RaceBoard`: (the board, the events' JSON download once the race ended).

        Redraws are throttled: the board is handed out on the start, on each CoT snapshot and lane
        result, and for other events at most every `RACE_REDRAW_S` (the race's worker waits while the
        board is drawn, so drawing never overlaps a timed run). Once the race ends, each lane's top
        result in the corpus is added (right or wrong when the query is a corpus example).
        """
        import time

        from lame_tools.demo.race_board import background_work

        board, record, shown = RaceBoard(), None, 0.0
        running = background_work()
        if running:
            board.hardware = "Waiting for " + "; ".join(running) + " to finish before timing..."
            yield board, None
        other = self.wait_for_background_work()
        for event in self.race(image, text, task, with_discriminative, with_sequential, repeats, other, wait=False):
            board.update(event)
            if event["event"] == "done":
                event["answers"] = board.answers = self.race_answers(board, image, text, task)
                for kept in board.events:
                    kept.pop("embedding", None)
                record = str(self.export_race_json(board.events))
            elif event["event"] in ("run_done", "lane_start") and time.perf_counter() - shown < self.RACE_REDRAW_S:
                continue
            shown = time.perf_counter()
            yield board, record

    def race_answers(self, board: RaceBoard, image: Any, text: str | None, task: str | None) -> dict[str, Any]:
        """Each lane's top result in the corpus for its race embedding (the lane's own model and mode;
        the sequential lane searches the latent-mode corpus unless a sequential model is loaded), and
        whether it is the known answer when the query is one of the corpus's examples."""
        import numpy as np

        from lame_tools.demo.gallery import search_many
        from lame_tools.demo.race_board import known_answer

        query = self.prepare_query(image, text, task, AUTO)
        answer = known_answer(self.example_queries(), query.image, query.text, query.instruction, TASK_INSTRUCTIONS)
        answers = {}
        for event in board.events:
            if event["event"] != "lane_done" or "embedding" not in event:
                continue
            lane = event["lane"]
            model = self.lane_model(lane)
            mode = lane if lane != SEQUENTIAL_MODE or SEQUENTIAL_MODE in self.models.models else "latent"
            vector = np.asarray(event["embedding"], dtype=np.float32)[None, :]
            hits = search_many([self.gallery], vector, model, mode, query.target_kind, 1)
            if hits:
                top = hits[0].entry.text
                answers[lane] = {"text": top, "score": hits[0].score, "corpus_mode": mode,
                                 "right": None if answer is None else top == answer, "answer": answer}
        return answers

    def export_race_json(self, events: list[dict[str, Any]]) -> Path:
        """A race's measured events (start, lane results, the final summary; token events summarised)."""
        kept = [e for e in events if e.get("event") != "token"]
        tokens = [e for e in events if e.get("event") == "token"]
        record = {"events": kept, "token_events": len(tokens), "last_token_event": tokens[-1] if tokens else None}
        return write_json(self.downloads, "lame-race", record)

    def recorded_benchmarks(self) -> list[dict[str, Any]]:
        """Race benchmarks recorded in `assets/benchmarks/*.json` (GPU card or CPU, dtype, date, per-lane ms)."""
        import lame_tools

        return recorded_benchmarks(lame_tools.ASSETS_DIR / "benchmarks")
