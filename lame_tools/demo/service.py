"""`DemoService`: one method per app action, independent of Gradio.

The app calls these methods and only lays out their results. User mistakes (a bad upload, empty
text, words the model does not know) raise `LameError` subclasses carrying one sentence; the app
shows that sentence with `gr.Error`. Anything else is a bug and is not swallowed here.
"""

from __future__ import annotations

import re
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
from lame_tools.demo.exports import write_csv, write_npz
from lame_tools.demo.gallery import Gallery, GalleryEntry, SearchHit, search_many, shapes_gallery
from lame_tools.demo.models import ModeModels, load_demo_models
from lame_tools.errors import InputError
from lame_tools.inputs import clean_text, load_image
from lame_tools.model import LameModel

AUTO = "auto"
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

    def __init__(self, models: ModeModels, gallery: Gallery, workdir: Path) -> None:
        self.models = models
        self.gallery = gallery
        self.workdir = Path(workdir)
        self.downloads = self.workdir / "downloads"
        self.downloads.mkdir(parents=True, exist_ok=True)
        self._warm = False
        self._warm_lock = threading.Lock()

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
    ) -> DemoService:
        """Load the models, build the corpus and (unless `precompute` is False) embed it in latent mode."""
        workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="lame-demo-"))
        models = load_demo_models(model, allow_hub=allow_hub, trust_remote_code=trust_remote_code, device=device)
        gallery = shapes_gallery(workdir / "gallery", n_images=gallery_size)
        service = cls(models, gallery, workdir)
        if precompute:
            for kind in ("image", "text"):
                gallery.index(models.default, "latent", kind)
        return service

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
        notes = "".join(f"\n- {n}" for n in self.models.notes)
        return ABOUT + "\n## Loaded now\n\n" + "\n".join(lines) + "\n\n" + corpus + notes + "\n"

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


def _short(info: dict[str, Any]) -> str:
    """A one-line summary of a training.json (its note, preset and headline score where present)."""
    if not info:
        return "no training record"
    parts = []
    for key in ("note", "preset", "stage", "steps", "seed"):
        if key in info and not isinstance(info[key], (dict, list)):
            parts.append(f"{key}: {info[key]}")
    scores = info.get("scores") or info.get("eval") or {}
    if isinstance(scores, dict) and "overall" in scores and isinstance(scores["overall"], (int, float)):
        parts.append(f"overall: {scores['overall']:.3f}")
    return "; ".join(parts) or "see training.json"


def torch_no_grad():
    import torch

    return torch.no_grad()


def words_markdown(words: list[str]) -> str:
    """The known-word list as one wrapped Markdown paragraph."""
    return ", ".join(f"`{w}`" for w in words if re.fullmatch(r"[a-z]+", w))
