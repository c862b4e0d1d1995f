"""The embedding map: the corpus in 2-D per mode (UMAP fitted once in the background, PCA meanwhile).

`MapActions` is the part of `DemoService` that draws maps; it keeps its fits in `map_state`
(a `MapState`) and needs the service's `models`, `gallery` and `downloads`. `MapView` is what the
Embedding map tab shows, with its labels, hover texts, title and status ready-made.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lame_tools.constants import MODES
from lame_tools.demo.exports import write_csv
from lame_tools.demo.gallery import Gallery, GalleryEntry
from lame_tools.demo.models import ModeModels
from lame_tools.demo.query import mode_choices, parse_mode
from lame_tools.errors import InputError

ALL_MODES = "all"  # the embedding map of every mode at once (one model only)
# What the map's points can be coloured by.
COLOUR_BY = ("group", "kind", "mode", "source")


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

    def labels(self, colour_by: str) -> list[str]:
        """Each corpus point's colour label: its mode, or an entry field ("group", "kind", "source"; else kind)."""
        if colour_by == "mode":
            return list(self.point_modes)
        name = colour_by if colour_by in ("kind", "group", "source") else "kind"
        return [getattr(e, name) for e in self.entries]

    @property
    def hover(self) -> list[str]:
        return [f"{e.kind}: {e.text}" for e in self.entries]

    @property
    def title(self) -> str:
        return f"{len(self.entries)} corpus items, {self.mode} mode, {self.method.upper()}"

    @property
    def status_markdown(self) -> str:
        return f"Map: **{self.status}**. {len(self.query_labels)} of your queries in {self.mode} mode are drawn as stars."

    def rows(self) -> list[dict[str, Any]]:
        """One dict per point (corpus, then the session's queries), for the CSV download."""
        rows = [
            {"x": float(x), "y": float(y), "mode": m, "kind": e.kind, "group": e.group, "text": e.text,
             "source": e.source, "point": "corpus"}
            for (x, y), e, m in zip(self.coords, self.entries, self.point_modes)
        ]
        rows += [
            {"x": float(x), "y": float(y), "mode": "", "kind": "query", "group": "your queries", "text": label,
             "source": "session", "point": "query"}
            for (x, y), label in zip(self.query_coords, self.query_labels)
        ]
        return rows


@dataclass
class MapState:
    """The service's maps: background UMAP fits by mode, and why a fit failed."""

    umap: bool = True  # False: maps are PCA only (no background fit; for tests)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: dict[str, threading.Thread] = field(default_factory=dict)
    fitted: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class MapActions:
    """Corpus maps per mode, with a session's queries placed on them (part of `DemoService`)."""

    models: ModeModels
    gallery: Gallery
    downloads: Path
    map_state: MapState

    def map_mode_choices(self) -> list[tuple[str, str]]:
        """(label, mode) for the map's mode picker: every mode, and "all" when one model runs them all."""
        return mode_choices() + ([("all modes, one map", ALL_MODES)] if self.models.single else [])

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
        state = self.map_state
        with state.lock:
            if mode in state.threads or not state.umap:
                return
            thread = threading.Thread(target=self.fit_umap, args=(mode,), name=f"umap-{mode}", daemon=True)
            state.threads[mode] = thread
            thread.start()

    def fit_umap(self, mode: str) -> None:
        """Fit (or load) the UMAP map of `mode` now; a failure is kept as the reason the map stays PCA."""
        from lame_tools.project import fit_projection

        try:
            embeddings, _, _ = self.map_labels(mode)
            projection = fit_projection(embeddings, "umap", key=self.map_key(mode))
            projection.transform(embeddings[:1])  # compile UMAP's transform here, not in the first request
            self.map_state.fitted[mode] = projection
        except Exception as exc:  # noqa: BLE001 - the map falls back to PCA and says why
            self.map_state.errors[mode] = f"UMAP failed ({type(exc).__name__}: {exc}); PCA is shown."

    def wait_for_map(self, mode: str = "latent", timeout: float | None = None) -> bool:
        """Block until the background UMAP fit of `mode` ends (tests, benchmarks); True if it did."""
        state = self.map_state
        thread = state.threads.get(mode)
        if thread is not None:
            thread.join(timeout)
        return mode in state.fitted or mode in state.errors

    def embedding_map(self, mode: str | None, session_queries: list[dict[str, Any]] | None = None) -> MapView:
        """The corpus in 2-D for `mode` (UMAP when fitted, PCA meanwhile) and this session's queries
        of that mode placed on it with `transform`."""
        from lame_tools.project import fit_projection

        mode = ALL_MODES if mode == ALL_MODES else parse_mode(mode)
        modes = self.map_modes(mode)
        self.start_map(mode)
        embeddings, entries, point_modes = self.map_labels(mode)
        state = self.map_state
        projection = state.fitted.get(mode)
        if projection is not None:
            where = "fitted at start-up" if projection.source == "fit" else f"loaded from the {projection.source} cache"
            status = f"UMAP ({where})"
        else:
            projection = fit_projection(embeddings, "pca", key=self.map_key(mode))
            status = state.errors.get(mode) or (
                "PCA (UMAP is still fitting in the background; draw again in a few seconds)" if state.umap else "PCA"
            )
        queries = [q for q in (session_queries or []) if q.get("mode") in modes]
        query_coords = np.zeros((0, 2), np.float32)
        if queries:
            query_coords = projection.transform(np.asarray([q["embedding"] for q in queries], dtype=np.float32))
        labels = [q["label"] + (f" ({q['mode']})" if len(modes) > 1 else "") for q in queries]
        return MapView(mode, projection.method, status, projection.coords, entries, query_coords, labels, point_modes)

    def export_map_csv(self, view: MapView) -> Path:
        """The map's coordinates (corpus points and the session's queries) as CSV."""
        return write_csv(self.downloads, f"lame-map-{view.mode}-{view.method}", view.rows())
