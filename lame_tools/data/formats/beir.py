"""BEIR-form tasks (queries, corpus, graded qrels): MMEB-v2's visual documents and MRMR."""

from __future__ import annotations

from pathlib import Path

from lame_tools.data.formats.records import ImageStore, read_records, record_files
from lame_tools.data.formats.tasks import CorpusTask, EmbedInput, Task, TaskSource
from lame_tools.errors import InputError

_ID_FIELDS = ("_id", "id", "query-id", "query_id", "corpus-id", "corpus_id")
_TEXT_FIELDS = ("text", "query", "title")
_IMAGE_FIELDS = ("image", "image_path", "img_path", "image 1", "image 2", "image 3", "image 4", "image 5", "vision")


def _part_files(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """`<name>.jsonl` / `<name>.parquet` / `<name>.tsv`, or every record file in a `<name>/` folder."""
    for name in names:
        for suffix in (".jsonl", ".parquet", ".tsv"):
            if (folder / f"{name}{suffix}").is_file():
                return [folder / f"{name}{suffix}"]
        if (folder / name).is_dir() and record_files(folder / name):
            return record_files(folder / name)
    return []


def _first(row: dict, fields: tuple[str, ...]) -> object:
    return next((row[f] for f in fields if f in row and row[f] is not None), None)


def _beir_inputs(
    files: list[Path], instruction: str, store: ImageStore, what: str, limit: int | None = None, id_images: bool = False
) -> tuple[list[str], list[EmbedInput]]:
    """Ids and inputs of a queries or corpus part; `id_images`: fall back to `images/<id>.png` (corpus only)."""
    ids: list[str] = []
    inputs: list[EmbedInput] = []
    seen: set[str] = set()
    for file in files:
        for number, row in enumerate(read_records(file), start=1):
            where = f"{file} row {number}"
            row_id = _first(row, _ID_FIELDS)
            if row_id is None:
                raise InputError(f"{where} has no id field (one of {', '.join(_ID_FIELDS[:4])}).")
            row_id = str(row_id)
            if row_id in seen:
                raise InputError(f"{where} repeats the {what} id {row_id!r}.")
            seen.add(row_id)
            text = _first(row, _TEXT_FIELDS)
            text = "" if text is None else str(text)
            images = tuple(ref for f in _IMAGE_FIELDS if f in row for ref in store.resolve(row[f], f"{where}:"))
            if id_images and not images:  # VLM2Vec's <image_root>/<corpus-id>.png
                page = next(
                    (root / f"{row_id}.png" for root in store.roots if (root / f"{row_id}.png").is_file()), None
                )
                images = (str(page),) if page else ()
            if not text.strip() and not images:
                raise InputError(f"{where} has neither text nor an image.")
            ids.append(row_id)
            inputs.append(EmbedInput(instruction, text, images))
            if limit is not None and len(ids) >= limit:
                return ids, inputs
    return ids, inputs


def corpus_task_from_folder(
    folder: Path,
    group: str,
    meta_task: str,
    metric: str,
    limit: int | None = None,
    query_instruction: str = "",
    doc_instruction: str = "",
) -> CorpusTask:
    """Read a BEIR-form task folder: queries, corpus and qrels.

    Accepted files (first found wins): `queries.jsonl` / `query.jsonl` / `queries/*.parquet` ...;
    `corpus.jsonl` / `corpus/*.parquet`; `qrels/test.tsv` (BEIR: header `query-id corpus-id score`),
    `qrels.jsonl` or `qrels/*.parquet`. Ids come from `_id`, `id`, `query-id`/`query_id`,
    `corpus-id`/`corpus_id`; text from `text` or `query`; images from `image` / `image_path` /
    `image 1..5` (paths relative to the folder or its `images/`, or embedded parquet images), else
    `images/<corpus-id>.png` if it exists. Every query is ranked against the whole corpus.

    Raises:
        InputError: a missing part, a row without id / content, a qrel naming an unknown document,
            or a bad image path; the message names the file and row.
    """
    folder = Path(folder)
    store = ImageStore([folder / "images", folder])
    parts = {}
    for part, names in (("queries", ("queries", "query")), ("corpus", ("corpus",)), ("qrels", ("qrels",))):
        parts[part] = _part_files(folder, names)
        if not parts[part]:
            raise InputError(
                f"The task folder {str(folder)!r} has no {part} file ({names[0]}.jsonl, {names[0]}/*.parquet...)."
            )
    query_ids, queries = _beir_inputs(parts["queries"], query_instruction, store, "query", limit)
    doc_ids, corpus = _beir_inputs(parts["corpus"], doc_instruction, store, "document", id_images=True)
    if not query_ids or not doc_ids:
        raise InputError(f"The task folder {str(folder)!r} has no {'queries' if not query_ids else 'documents'}.")
    known_docs = set(doc_ids)
    qrels: dict[str, dict[str, int]] = {}
    for file in parts["qrels"]:
        for number, row in enumerate(read_records(file), start=1):
            where = f"{file} row {number}"
            qid, did = (
                _first(row, ("query-id", "query_id", "qid")),
                _first(row, ("corpus-id", "corpus_id", "doc_id", "docid")),
            )
            score = _first(row, ("score", "relevance", "label"))
            if qid is None or did is None or score is None:
                raise InputError(f"{where} needs query-id, corpus-id and score fields.")
            if str(did) not in known_docs:
                raise InputError(f"{where} names the document {str(did)!r}, which is not in the corpus.")
            try:
                grade = int(float(score))
            except (TypeError, ValueError):
                raise InputError(f"{where} has a score that is not a number: {score!r}.") from None
            qrels.setdefault(str(qid), {})[str(did)] = grade
    return CorpusTask(
        folder.name, meta_task, group, query_ids, queries, doc_ids, corpus, qrels, store.load, metric, str(folder)
    )


# ---- MRMR -------------------------------------------------------------------------------------

MRMR_HIT_TASKS = ("negation",)  # MRMR scores Negation (contradiction retrieval) by Hit@1, the rest by nDCG@10


def mrmr_meta_task(name: str) -> str:
    lowered = name.lower()
    if "knowledge" in lowered:
        return "knowledge"
    if "theorem" in lowered:
        return "theorem"
    return (
        "contradiction"
        if any(k in lowered for k in ("negation", "vehicle", "design", "traffic", "contradiction"))
        else "other"
    )


def mrmr_tasks(
    data: Path, limit: int | None = None, query_instruction: str | None = None, doc_instruction: str | None = None
) -> list[TaskSource]:
    """MRMR tasks: every sub-folder of `data` in BEIR form (`corpus`, `query`, `qrels`, as its
    Hugging Face repositories publish them, parquet or JSONL). nDCG@10, Hit@1 for Negation."""
    data = Path(data)
    if not data.is_dir():
        raise InputError(f"The MRMR data folder {str(data)!r} does not exist.")
    sources = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        metric = "hit@1" if any(k in folder.name.lower() for k in MRMR_HIT_TASKS) else "ndcg@10"

        def load(folder: Path = folder, metric: str = metric) -> Task:
            return corpus_task_from_folder(
                folder,
                "mrmr",
                mrmr_meta_task(folder.name),
                metric,
                limit,
                query_instruction or "",
                doc_instruction or "",
            )

        sources.append(TaskSource(folder.name, load, {"group": "mrmr", "metric": metric}))
    if not sources:
        raise InputError(f"No MRMR task folders under {str(data)!r} (see README).")
    return sources
