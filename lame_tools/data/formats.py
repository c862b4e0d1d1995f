"""Evaluation tasks and the readers that build them from benchmark files (and from the Shapes world).

Two task shapes cover every benchmark we read:

- `CandidateTask` (MMEB image and video tasks, Shapes): each query has its own candidate list, the
  first candidate is the positive; the metric is Hit@1.
- `CorpusTask` (BEIR form: MMEB-v2 visual documents, MRMR): queries are ranked against one shared
  corpus and scored against graded qrels; the metric is nDCG@k (or Hit@1).

An `EmbedInput` is one thing to embed: instruction + text + zero or more image references. Several
images are the sampled frames of a video; the harness embeds each frame with the same text and
instruction and averages the normalised frame embeddings. Readers never load images: they resolve
paths and check they exist; `Task.load_image(ref)` decodes one when the harness needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from lame_tools.errors import InputError

META_TASKS = ("classification", "vqa", "retrieval", "grounding")


@dataclass(frozen=True)
class EmbedInput:
    """One thing to embed; hashable, so equal inputs are embedded once (the harness caches by content)."""

    instruction: str = ""
    text: str = ""
    images: tuple[str, ...] = ()  # image references understood by the task's `load_image`


@dataclass
class CandidateTask:
    """Per-query candidate lists, first candidate positive; scored by Hit@1."""

    name: str
    meta_task: str
    group: str  # "shapes", "image", "video": the column group of the results table
    queries: list[EmbedInput]
    candidates: list[list[EmbedInput]]
    load_image: Callable[[str], Image.Image]
    metric: str = "hit@1"
    source: str = ""  # the file the task was read from, for messages


@dataclass
class CorpusTask:
    """BEIR form: queries ranked over a whole corpus, scored against qrels (query id -> doc id -> gain)."""

    name: str
    meta_task: str
    group: str  # "visdoc", "mrmr"
    query_ids: list[str]
    queries: list[EmbedInput]
    doc_ids: list[str]
    corpus: list[EmbedInput]
    qrels: dict[str, dict[str, int]]
    load_image: Callable[[str], Image.Image]
    metric: str = "ndcg@5"
    source: str = ""


Task = CandidateTask | CorpusTask


@dataclass
class TaskSource:
    """A task known by name before it is read, so a resumed run can skip finished tasks cheaply."""

    name: str
    load: Callable[[], Task]
    info: dict = field(default_factory=dict)


# ---- Shapes ---------------------------------------------------------------------------------------


def shapes_tasks(seed: int = 0, split: str = "test", limit: int | None = None) -> list[TaskSource]:
    """The Shapes split as MMEB-style candidate tasks, one per subtask, with images rendered in memory.

    The rows come from `shapes.mmeb_rows`, the same function `shapes export` writes to disk, so the
    in-memory benchmark and the exported files are the same data.
    """
    from lame_tools.data.shapes import mmeb_rows, render

    rows_by_subtask, images = mmeb_rows(seed, split, limit)
    scenes = dict(images)
    rendered: dict[str, Image.Image] = {}

    def load_image(ref: str) -> Image.Image:
        if ref not in rendered:
            rendered[ref] = render(scenes[ref])
        return rendered[ref]

    sources = []
    for subtask in sorted(rows_by_subtask):
        rows = rows_by_subtask[subtask]

        def load(subtask: str = subtask, rows: list[dict] = rows) -> CandidateTask:
            return candidate_task_from_rows(
                subtask,
                rows,
                load_image,
                f"shapes/{split}",
                scenes.__contains__,
                meta_task=rows[0]["task"],
                group="shapes",
            )

        sources.append(TaskSource(subtask, load, {"meta_task": rows[0]["task"], "group": "shapes"}))
    return sources


# ---- MMEB rows --------------------------------------------------------------------------------------


def _as_list(value: object) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)  # lists, tuples, numpy arrays from parquet


def _row_input(inst: object, text: object, path: object, what: str, check_image: Callable[[str], bool]) -> EmbedInput:
    text = "" if text is None else str(text)
    path = "" if path is None else str(path)
    if path and not check_image(path):
        raise InputError(f"{what} image {path!r} does not exist.")
    if not text.strip() and not path:
        raise InputError(f"{what} has neither text nor an image.")
    return EmbedInput(str(inst or ""), text, (path,) if path else ())


def candidate_task_from_rows(
    name: str,
    rows: list[dict],
    load_image: Callable[[str], Image.Image],
    source: str,
    check_image: Callable[[str], bool],
    meta_task: str = "",
    group: str = "image",
) -> CandidateTask:
    """Turn MMEB rows (`qry_inst`, `qry_text`, `qry_img_path`, `tgt_inst`, `tgt_text`, `tgt_img_path`)
    into a `CandidateTask`.

    `qry_inst` / `tgt_inst` may be absent (MMEB v1 puts the instruction inside `qry_text`); an empty
    image path means "no image". Candidate `i` is (`tgt_text[i]`, `tgt_img_path[i]`); a missing or
    empty list on one side pads with "" to the other's length.

    Raises:
        InputError: a row without `qry_text`/`tgt_text`/`tgt_img_path` fields, a row with no
            candidates, text and image lists of different lengths, an input with neither text nor
            image, or an image path that does not exist. The message names the file and row.
    """
    queries: list[EmbedInput] = []
    candidates: list[list[EmbedInput]] = []
    for number, row in enumerate(rows, start=1):
        where = f"{source} row {number}"
        if not isinstance(row, dict):
            raise InputError(f"{where} is not a JSON object.")
        missing = [c for c in ("qry_text", "qry_img_path") if c not in row]
        if "tgt_text" not in row and "tgt_img_path" not in row:
            missing.append("tgt_text/tgt_img_path")
        if missing:
            raise InputError(f"{where} has no {', '.join(missing)} field.")
        texts, paths = _as_list(row.get("tgt_text")), _as_list(row.get("tgt_img_path"))
        if texts and paths and len(texts) != len(paths):
            raise InputError(f"{where} has {len(texts)} tgt_text but {len(paths)} tgt_img_path entries.")
        n = max(len(texts), len(paths))
        if n == 0:
            raise InputError(f"{where} has an empty candidate list.")
        texts = texts or [""] * n
        paths = paths or [""] * n
        queries.append(
            _row_input(
                row.get("qry_inst"), row.get("qry_text"), row.get("qry_img_path"), f"{where}: the query", check_image
            )
        )
        tgt_inst = row.get("tgt_inst", "")
        candidates.append(
            [
                _row_input(tgt_inst, t, p, f"{where}: candidate {i + 1}", check_image)
                for i, (t, p) in enumerate(zip(texts, paths))
            ]
        )
    if not queries:
        raise InputError(f"{source} has no rows.")
    return CandidateTask(name, meta_task, group, queries, candidates, load_image, "hit@1", source)
