"""The embedding map: the corpus in 2-D per mode (UMAP fitted once in the background, PCA meanwhile).

`MapActions` is the part of `DemoService` that draws maps; it keeps its fits in `map_state`
(a `MapState`) and needs the service's `models`, `gallery` and `downloads`. `MapView` is what the
Embedding map tab shows, with its labels, hover texts, thumbnails, title and status ready-made, and
the corpus embeddings behind it: a clicked point's neighbours are found in the full embedding space
(`lame_tools.project.full_space_neighbours`, an exact `EmbeddingIndex`), never in the 2-D picture.

Hover thumbnails: plotly's hover labels are SVG text and cannot show an image, and Gradio's
`gr.Plot` (6.31) forwards no plotly events to Python. So each point carries [its index, a small
base64 PNG] as customdata, and `MAP_EVENTS_JS` (run in the page when the plot changes) listens to
the plotly div's own hover / click / selection events: hover fills an HTML panel beside the map
with the thumbnail (no server round trip), click and lasso/box selection write the point indices
into hidden textboxes whose change events call Python (neighbours, the selection's list).
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lame_tools.constants import MODES
from lame_tools.data.shapes import COLOURS, SHAPES
from lame_tools.demo.exports import write_csv
from lame_tools.demo.gallery import Gallery, GalleryEntry
from lame_tools.demo.models import ModeModels
from lame_tools.demo.query import mode_choices, parse_mode
from lame_tools.errors import InputError

ALL_MODES = "all"  # the embedding map of every mode at once (one model only)
# What the map's points can be coloured by.
COLOUR_BY = ("group", "kind", "mode", "source", "colour", "shape")
THUMB_SIDE = 72
NEIGHBOUR_COLUMNS = ("rank", "cosine", "kind", "text", "group")
SELECTION_COLUMNS = ("point", "kind", "text", "group")
MAP_EVENTS_JS = """
() => {
  const send = (id, value) => {
    const box = document.querySelector(`#${id} textarea, #${id} input`);
    if (!box) return;
    box.value = value;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    box.dispatchEvent(new Event('change', {bubbles: true}));
  };
  const escape = (t) => String(t).replace(/[&<>"]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
  const attach = (tries) => {
    const gd = document.querySelector('#m-plot .js-plotly-plot');
    if (!gd || !gd.on) { if (tries > 0) setTimeout(() => attach(tries - 1), 200); return; }
    if (gd.dataset.lameBound === '1') return;
    gd.dataset.lameBound = '1';
    gd.on('plotly_hover', (ev) => {
      const panel = document.querySelector('#m-hover');
      const p = ev.points[0];
      const [index, thumb] = p.customdata || [-1, ''];
      if (!panel) return;
      panel.innerHTML = (thumb ? `<img id="m-thumb" alt="thumbnail" src="${thumb}" width="144" height="144">` : '')
        + `<div class="m-hover-text">${escape(p.text || '')}</div>`;
      panel.dataset.point = String(index);
    });
    gd.on('plotly_click', (ev) => send('m-clicked', String(ev.points[0].customdata[0])));
    gd.on('plotly_selected', (ev) => send('m-selected',
      ((ev && ev.points) || []).map((p) => p.customdata[0]).filter((i) => i >= 0).join(',')));
  };
  attach(60);
}
"""


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
    embeddings: np.ndarray | None = None  # [N, D] the corpus embeddings behind the points
    thumbnails: list[str] = field(default_factory=list)  # per point: a data: URI ("" for texts)

    def labels(self, colour_by: str) -> list[str]:
        """Each corpus point's colour label: its mode, or an entry field ("group", "kind", "source"; else kind)."""
        if colour_by == "mode":
            return list(self.point_modes)
        if colour_by in ("colour", "shape"):
            words = COLOURS if colour_by == "colour" else SHAPES
            return [next((w for w in e.text.split() if w in words), f"no {colour_by}") for e in self.entries]
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

    def neighbours(self, point: int, k: int = 10) -> list[list[Any]]:
        """The k nearest corpus entries of point `point` in the full embedding space (itself left out),
        as rows of `NEIGHBOUR_COLUMNS`."""
        from lame_tools.project import corpus_index, full_space_neighbours

        if self.embeddings is None:
            raise InputError("Draw the map first.")
        ids, scores = full_space_neighbours(corpus_index(self.embeddings), int(point), k)
        return [[rank, round(float(score), 4), self.entries[i].kind, self.entries[i].text, self.entries[i].group]
                for rank, (i, score) in enumerate(zip(ids, scores), start=1)]

    def selection(self, points: str | list[int]) -> list[list[Any]]:
        """The selected points (indices, or "3,5,8" as the page sends them) as rows of `SELECTION_COLUMNS`."""
        if isinstance(points, str):
            try:
                points = [int(p) for p in points.split(",") if p.strip()]
            except ValueError:
                raise InputError("A selection is a comma-separated list of point numbers.") from None
        bad = [p for p in points if not 0 <= p < len(self.entries)]
        if bad:
            raise InputError(f"Point {bad[0]} is not on the map (it has {len(self.entries)} points).")
        return [[p, self.entries[p].kind, self.entries[p].text, self.entries[p].group] for p in points]

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
    thumbnails: dict[str, str] = field(default_factory=dict)  # image path -> data: URI


def thumbnail_uri(path: str, side: int = THUMB_SIDE) -> str:
    """A small PNG of an image file as a data: URI (for the map's hover panel)."""
    with Image.open(path) as image:
        small = image.convert("RGB")
        small.thumbnail((side, side))
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


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
        return MapView(mode, projection.method, status, projection.coords, entries, query_coords, labels, point_modes,
                       embeddings, self.map_thumbnails(entries))

    def map_thumbnails(self, entries: list[GalleryEntry]) -> list[str]:
        """Each entry's hover thumbnail (made once per image file; "" for texts)."""
        cache = self.map_state.thumbnails
        for entry in entries:
            if entry.image_path and entry.image_path not in cache:
                cache[entry.image_path] = thumbnail_uri(entry.image_path)
        return [cache.get(e.image_path, "") if e.image_path else "" for e in entries]

    def export_map_csv(self, view: MapView) -> Path:
        """The map's coordinates (corpus points and the session's queries) as CSV."""
        return write_csv(self.downloads, f"lame-map-{view.mode}-{view.method}", view.rows())
