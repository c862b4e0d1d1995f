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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lame_tools.constants import MODES
from lame_tools.demo.about import ABOUT, AboutActions
from lame_tools.demo.exports import write_json
from lame_tools.demo.gallery import Gallery, GalleryEntry, render_version, shapes_gallery
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
from lame_tools.errors import InputError
from lame_tools.inputs import clean_text, load_image

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

    def race_boards(
        self, image: Any, text: str | None, task: str | None = AUTO, with_discriminative: bool = True
    ) -> Iterator[tuple[RaceBoard, str | None]]:
        """`race` applied to one `RaceBoard`: (the board, the events' JSON download once the race ended)
        after every event."""
        board, record = RaceBoard(), None
        for event in self.race(image, text, task, with_discriminative):
            board.update(event)
            if board.finished:
                record = str(self.export_race_json(board.events))
            yield board, record

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
