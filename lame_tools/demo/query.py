"""Queries and search: checking a query, the example queries, search results and their views.

`QueryActions` is the part of `DemoService` that reads queries and searches the corpus; it needs
the service's `models`, `gallery` and `downloads`. The views (`SearchResult.table`,
`SearchResult.summary_markdown`, ...) are what the Retrieve tab shows, ready-made.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lame_tools.constants import MODES
from lame_tools.data.shapes import INSTRUCTIONS, gallery_file_name, make_example
from lame_tools.demo.exports import write_csv, write_npz
from lame_tools.demo.gallery import Gallery, SearchHit, search_many
from lame_tools.demo.models import ModeModels
from lame_tools.errors import InputError
from lame_tools.inputs import clean_text_noted, load_image

AUTO = "auto"
# The instructions of the Shapes tasks, by the name the app shows.
TASK_INSTRUCTIONS = {
    "find the image for a caption": INSTRUCTIONS["t2i"],
    "caption the image": INSTRUCTIONS["i2t"],
    "answer a question about the image": INSTRUCTIONS["colour_of"],
    "count the objects": INSTRUCTIONS["count"],
    "find the object named": INSTRUCTIONS["refer"],
}
TARGET_CHOICES = (AUTO, "images", "texts")
MODE_LABELS = {"latent": "latent (LaME, one pass)", "discriminative": "discriminative (K=0)", "cot": "explicit CoT"}
MAX_K = 50
# The embedding map places at most this many of a session's latest searches.
MAX_SESSION_QUERIES = 50
# The results table's columns (`SearchResult.table`).
RESULT_COLUMNS = ("rank", "score", "kind", "text", "group", "source")
# How many clickable examples of each Shapes subtask the app offers (the relational ones: `n_per_task`).
EXAMPLE_SUBTASKS = {"t2i": 2, "i2t": 1, "count": 1, "colour_of": 1, "refer": 1}


def task_choices() -> list[str]:
    """The task picker's choices: "auto", then each Shapes task by its shown name."""
    return [AUTO, *TASK_INSTRUCTIONS]


def mode_choices() -> list[tuple[str, str]]:
    """(label, mode) for every mode, for a mode picker."""
    return [(MODE_LABELS[mode], mode) for mode in MODES]


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


def words_markdown(words: list[str]) -> str:
    """The known-word list as one wrapped Markdown paragraph."""
    return ", ".join(f"`{w}`" for w in words if re.fullmatch(r"[a-z]+", w))


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

    def table(self) -> list[list[Any]]:
        """The results table: one row per hit, the columns of `RESULT_COLUMNS`."""
        return [[row[column] for column in RESULT_COLUMNS] for row in self.rows()]

    def gallery_items(self) -> list[tuple[str, str]]:
        """(PNG path, caption "#rank  score  text") of each image hit, for an image gallery."""
        return [
            (hit.entry.image_path, f"#{hit.rank}  {hit.score:.3f}  {hit.entry.text}")
            for hit in self.hits
            if hit.entry.kind == "image"
        ]

    @property
    def shows_images(self) -> bool:
        """True when the search was for images (the app shows its image gallery)."""
        return self.query.target_kind == "image"

    def summary_markdown(self) -> str:
        """One paragraph: how many hits of which kind, for which query, mode and instruction, and the timing."""
        summary = (
            f"**{len(self.hits)} {self.query.target_kind}s** for `{self.query.label}` in **{self.mode}** mode "
            f"(instruction: *{self.query.instruction}*); encode {self.encode_ms:.0f} ms, search {self.search_ms:.1f} ms."
        )
        if self.notes:
            summary += "\n\n" + "\n".join(f"- note: {n}" for n in self.notes)
        return summary

    def session_query(self) -> dict[str, Any]:
        """What the embedding map needs to place this query: its embedding, label and mode (JSON-able)."""
        return {"embedding": self.embedding.astype(np.float32).tolist(), "label": self.query.label, "mode": self.mode}


def remember_query(session_queries: list[dict[str, Any]] | None, result: SearchResult) -> list[dict[str, Any]]:
    """A session's queries with `result` added, keeping the latest `MAX_SESSION_QUERIES`."""
    kept = list(session_queries or [])[-(MAX_SESSION_QUERIES - 1):]
    return kept + [result.session_query()]


def choose_instruction(task: str | None, has_image: bool, has_text: bool) -> tuple[str, str | None]:
    """(the instruction of a task name, the sentence saying a long custom one was cut, or None); "auto":
    answer (image + text), caption (image) or find an image (text)."""
    task = (task or AUTO).strip()
    if task != AUTO:
        known = TASK_INSTRUCTIONS.get(task)
        return (known, None) if known else clean_text_noted(task, name="instruction")
    if has_image and has_text:
        return TASK_INSTRUCTIONS["answer a question about the image"], None
    if has_image:
        return TASK_INSTRUCTIONS["caption the image"], None
    return TASK_INSTRUCTIONS["find the image for a caption"], None


def choose_target(target: str | None, has_image: bool) -> str:
    """"image" or "text"; "auto": a text-only query searches images, any other searches texts."""
    target = (target or AUTO).strip().lower()
    if target == AUTO:
        target = "text" if has_image else "image"
    target = {"images": "image", "texts": "text"}.get(target, target)
    if target not in ("image", "text"):
        raise InputError(f"Search for images or texts, not {target!r}.")
    return target


class QueryActions:
    """Word checks, example queries, query checks, encoding and search (part of `DemoService`)."""

    models: ModeModels
    gallery: Gallery
    downloads: Path

    # ---- the model's words ----------------------------------------------------------------------

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

    # ---- examples ------------------------------------------------------------------------------

    def example_queries(self, n_per_task: int = 2) -> list[dict[str, Any]]:
        """Clickable examples whose answers are in the corpus: (image path, text, task, target kind).

        They are the corpus's own Shapes examples (its split and seed); a corpus that is not a
        Shapes split has none.
        """
        source = self.gallery.shapes
        if source is None:
            return []
        images = {Path(e.image_path).name: e.image_path for e in self.gallery.entries if e.kind == "image"}
        wanted = dict(EXAMPLE_SUBTASKS, relation_two_step=n_per_task)
        examples = []
        for i in range(len(images)):
            ex = make_example(source.seed, source.split, i)
            if wanted.get(ex.subtask, 0) <= 0:
                continue
            wanted[ex.subtask] -= 1
            path = images.get(gallery_file_name(source.split, source.seed, i))
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

    def example_rows(self, fields: tuple[str, ...], with_image: bool = False) -> list[list[Any]]:
        """The example queries as rows of `fields` (for `gr.Examples`); only those with an image if asked."""
        return [[e[name] for name in fields] for e in self.example_queries() if e["image"] or not with_image]

    # ---- queries -------------------------------------------------------------------------------

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
        decoded = load_image(image, name="query image") if image is not None and image != "" else None
        cleaned, cut_note = clean_text_noted(text, name="query text", allow_empty=True)
        cleaned = cleaned or None
        if decoded is None and not cleaned:
            raise InputError("Give a query: type a text, upload an image, or both.")
        instruction, instruction_note = choose_instruction(task, decoded is not None, bool(cleaned))
        notes = [note for note in (cut_note, instruction_note) if note]
        target_kind = choose_target(target, decoded is not None)
        self.check_words(cleaned, "query")
        self.check_words(instruction, "instruction")
        return Query(decoded, cleaned, instruction, target_kind, notes)

    def encode_query(self, query: Query, mode: str) -> np.ndarray:
        """[D] embedding of a query in `mode` with the model that runs that mode."""
        model = self.models.model_for(mode)
        # notes asked of the processor, not caught as warnings: a warnings catch is process-global and
        # the app's background threads (corpus, maps, race) enter and leave their own meanwhile
        for note in (model.processor.truncation_note(t) for t in (query.instruction, query.text)):
            if note and note not in query.notes:
                query.notes.append(note)
        return model.encode(
            images=[query.image] if query.image is not None else None,
            texts=[query.text] if query.text else None,
            instruction=query.instruction,
            mode=mode,
        )[0]

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

    @staticmethod
    def session_query(result: SearchResult) -> dict[str, Any]:
        """What the embedding map needs to place a session's query: its embedding, label and mode."""
        return result.session_query()

    @staticmethod
    def remember_query(session_queries: list[dict[str, Any]] | None, result: SearchResult) -> list[dict[str, Any]]:
        """The session's queries with this search's added (the latest `MAX_SESSION_QUERIES` kept)."""
        return remember_query(session_queries, result)

    # ---- downloads -----------------------------------------------------------------------------

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

    def export_results(self, result: SearchResult | None) -> list[str]:
        """Both downloads of a search (CSV, NPZ) as paths; refuses when there was no search yet."""
        if result is None:
            raise InputError("Run a search first; then its results can be downloaded.")
        return [str(self.export_results_csv(result)), str(self.export_results_npz(result))]

