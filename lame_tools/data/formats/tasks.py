"""The two task shapes of every benchmark (`CandidateTask`, `CorpusTask`), the inputs they hold,
MMEB rows turned into a candidate task, and the Shapes split as tasks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from lame_tools.constants import MMEB_IMAGE_TOKEN
from lame_tools.errors import InputError


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
    # per query, the groups it belongs to beyond its task (e.g. "held_out" / "seen" on the balanced
    # Shapes split); scores are also reported per group
    query_groups: list[str] | None = None


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


def _shapes_image(value: object, what: str, scenes: dict) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if value not in scenes:
        raise InputError(f"{what} image {value!r} does not exist.")
    return (value,)


# ---- Shapes ---------------------------------------------------------------------------------------


def shapes_tasks(
    seed: int = 0,
    split: str = "test",
    limit: int | None = None,
    per_subtask: int | None = None,
    style: str | None = None,
) -> list[TaskSource]:
    """The Shapes split as MMEB-style candidate tasks, one per subtask, with images rendered in memory.

    The rows come from `shapes.mmeb_rows`, the same function `shapes export` writes to disk, so the
    in-memory benchmark and the exported files are the same data. `per_subtask` gives the balanced
    split (that many queries per subtask; queries then carry held-out / seen groups); `style` names a
    rendering variant of `ROBUSTNESS_VARIANTS` (the same scene graphs, drawn another way).

    Raises:
        InputError: an unknown style.
    """
    from lame_tools.data.shapes import ROBUSTNESS_VARIANTS, mmeb_rows, render

    if style is not None and style not in ROBUSTNESS_VARIANTS:
        raise InputError(f"Unknown rendering style {style!r}; known: {', '.join(sorted(ROBUSTNESS_VARIANTS))}.")
    render_style = ROBUSTNESS_VARIANTS[style] if style is not None else None
    rows_by_subtask, images = mmeb_rows(seed, split, limit, per_subtask)
    scenes = dict(images)
    rendered: dict[str, Image.Image] = {}

    def render_image(ref: str) -> Image.Image:
        if ref not in rendered:
            rendered[ref] = render(scenes[ref], render_style)
        return rendered[ref]

    sources = []
    for subtask in sorted(rows_by_subtask):
        rows = rows_by_subtask[subtask]

        def load(subtask: str = subtask, rows: list[dict] = rows) -> CandidateTask:
            task = candidate_task_from_rows(
                subtask,
                rows,
                render_image,
                f"shapes/{split}",
                lambda value, what: _shapes_image(value, what, scenes),
                meta_task=rows[0]["task"],
                group="shapes",
            )
            if "held_out" in rows[0] and subtask in ("colour_of", "shape_of"):  # the answer is one object's pair
                task.query_groups = ["held_out" if r["held_out"] else "seen" for r in rows]
            return task

        sources.append(TaskSource(subtask, load, {"meta_task": rows[0]["task"], "group": "shapes"}))
    return sources


# ---- MMEB rows --------------------------------------------------------------------------------------


def _as_list(value: object) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)  # lists, tuples, numpy arrays from parquet


def candidate_task_from_rows(
    name: str,
    rows: list[dict],
    load_image: Callable[[str], Image.Image],
    source: str,
    resolve: Callable[[object, str], tuple[str, ...]],
    meta_task: str = "",
    group: str = "image",
) -> CandidateTask:
    """Turn MMEB rows (`qry_inst`, `qry_text`, `qry_img_path`, `tgt_inst`, `tgt_text`, `tgt_img_path`)
    into a `CandidateTask`.

    `qry_inst` / `tgt_inst` may be absent (MMEB v1 puts the instruction inside `qry_text`); an empty
    image path means "no image". Candidate `i` is (`tgt_text[i]`, `tgt_img_path[i]`); a missing or
    empty list on one side pads with "" to the other's length. Video rows may name frame folders in
    the image fields or in `qry_video_path` / `tgt_video_path`. `resolve(value, what)` turns an
    image field into image references (and raises for a path that does not exist).

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
        query_image_field = "qry_video_path" if "qry_video_path" in row else "qry_img_path"
        target_image_field = "tgt_video_path" if "tgt_video_path" in row else "tgt_img_path"
        missing = [c for c in ("qry_text", query_image_field) if c not in row]
        if "tgt_text" not in row and target_image_field not in row:
            missing.append(f"tgt_text/{target_image_field}")
        if missing:
            raise InputError(f"{where} has no {', '.join(missing)} field.")
        texts, paths = _as_list(row.get("tgt_text")), _as_list(row.get(target_image_field))
        if texts and paths and len(texts) != len(paths):
            raise InputError(f"{where} has {len(texts)} tgt_text but {len(paths)} {target_image_field} entries.")
        n = max(len(texts), len(paths))
        if n == 0:
            raise InputError(f"{where} has an empty candidate list.")
        texts = texts or [""] * n
        paths = paths or [""] * n
        queries.append(
            _row_input(
                row.get("qry_inst"), row.get("qry_text"), row.get(query_image_field), f"{where}: the query", resolve
            )
        )
        tgt_inst = row.get("tgt_inst", "")
        candidates.append(
            [
                _row_input(tgt_inst, t, p, f"{where}: candidate {i + 1}", resolve)
                for i, (t, p) in enumerate(zip(texts, paths))
            ]
        )
    if not queries:
        raise InputError(f"{source} has no rows.")
    return CandidateTask(name, meta_task, group, queries, candidates, load_image, "hit@1", source)


def _row_input(
    inst: object, text: object, image: object, what: str, resolve: Callable[[object, str], tuple[str, ...]]
) -> EmbedInput:
    # MMEB v1 rows carry Phi-3-V's image placeholder inside the text; the image travels separately here.
    text = "" if text is None else str(text).replace(MMEB_IMAGE_TOKEN, "").strip()
    inst = "" if inst is None else str(inst).replace(MMEB_IMAGE_TOKEN, "").strip()
    images = resolve(image, what)
    if not text and not images:
        raise InputError(f"{what} has neither text nor an image.")
    return EmbedInput(inst, text, images)
