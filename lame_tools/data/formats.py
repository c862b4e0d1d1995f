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

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from lame_tools.errors import InputError
from lame_tools.inputs import load_image

META_TASKS = ("classification", "vqa", "retrieval", "grounding")
IMAGE_PLACEHOLDER = "<|image_1|>"


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


def _shapes_image(value: object, what: str, scenes: dict) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if value not in scenes:
        raise InputError(f"{what} image {value!r} does not exist.")
    return (value,)


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

    def render_image(ref: str) -> Image.Image:
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
                render_image,
                f"shapes/{split}",
                lambda value, what: _shapes_image(value, what, scenes),
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
    text = "" if text is None else str(text).replace(IMAGE_PLACEHOLDER, "").strip()
    inst = "" if inst is None else str(inst).replace(IMAGE_PLACEHOLDER, "").strip()
    images = resolve(image, what)
    if not text and not images:
        raise InputError(f"{what} has neither text nor an image.")
    return EmbedInput(inst, text, images)


# ---- files ----------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
DEFAULT_NUM_FRAMES = 8  # MMEB-v2 samples 8 frames per video


def read_records(path: Path) -> list[dict]:
    """Rows of a JSONL file, or of a parquet file when pyarrow is installed.

    Raises:
        InputError: unreadable file, a line that is not a JSON object, or parquet without pyarrow.
    """
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError(
                f"Reading {str(path)!r} needs pyarrow (pip install pyarrow), or convert it to JSONL."
            ) from None
        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 - any parquet failure is the file's fault
            raise InputError(f"{str(path)!r} is not a readable parquet file ({type(exc).__name__}).") from None
    if path.suffix == ".tsv":
        return _read_tsv(path)
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{str(path)!r} could not be read ({type(exc).__name__}).") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise InputError(f"{str(path)!r} line {number} is not valid JSON.") from None
        if not isinstance(row, dict):
            raise InputError(f"{str(path)!r} line {number} is not a JSON object.")
        rows.append(row)
    return rows


def _read_tsv(path: Path) -> list[dict]:
    """BEIR qrels: a header line (query-id, corpus-id, score) then tab-separated rows."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{str(path)!r} could not be read ({type(exc).__name__}).") from None
    if not lines:
        raise InputError(f"{str(path)!r} is empty.")
    header = lines[0].split("\t")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(header):
            raise InputError(f"{str(path)!r} line {number} has {len(cells)} columns but the header has {len(header)}.")
        rows.append(dict(zip(header, cells)))
    return rows


def _record_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".jsonl", ".parquet", ".tsv"))


class ImageStore:
    """Resolves the image references of benchmark files: paths relative to a list of roots, frame
    folders (videos), and images embedded in parquet rows (Hugging Face `{"bytes", "path"}` structs).

    References handed to the harness are absolute paths or `embedded:<n>` keys; `load` decodes one.
    """

    def __init__(self, roots: list[Path], num_frames: int = DEFAULT_NUM_FRAMES) -> None:
        self.roots = [Path(r) for r in roots]
        self.num_frames = num_frames
        self.embedded: dict[str, bytes] = {}
        self._found: dict[str, Path | None] = {}

    def _find(self, path: str) -> Path | None:
        if path not in self._found:
            candidate = Path(path)
            options = [candidate] if candidate.is_absolute() else [root / candidate for root in self.roots]
            self._found[path] = next((o for o in options if o.exists()), None)
        return self._found[path]

    def frames(self, folder: Path, what: str) -> tuple[str, ...]:
        """`num_frames` frames sampled uniformly (first and last included) from a folder of frames."""
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{what} frame folder {str(folder)!r} holds no image files.")
        count = min(self.num_frames, len(files))
        picks = sorted({round(i * (len(files) - 1) / max(count - 1, 1)) for i in range(count)})
        return tuple(str(files[i]) for i in picks)

    def resolve(self, value: object, what: str) -> tuple[str, ...]:
        """Image references for one field value: "" / None -> none; a path; a frame folder; a list of
        paths (frames); a `{"bytes": ...}` struct.

        Raises:
            InputError: a path or folder that does not exist (naming `what`: file and row).
        """
        if value is None or (isinstance(value, str) and not value.strip()):
            return ()
        if isinstance(value, dict):
            if value.get("bytes"):
                key = f"embedded:{len(self.embedded)}"
                self.embedded[key] = bytes(value["bytes"])
                return (key,)
            return self.resolve(value.get("path"), what)
        if isinstance(value, (list, tuple)):
            return tuple(ref for item in value for ref in self.resolve(item, what))
        if not isinstance(value, str):
            raise InputError(f"{what} image field holds {type(value).__name__}, not a path.")
        found = self._find(value)
        if found is None:
            raise InputError(f"{what} image {value!r} does not exist under {', '.join(str(r) for r in self.roots)}.")
        return self.frames(found, what) if found.is_dir() else (str(found),)

    def load(self, ref: str) -> Image.Image:
        source = self.embedded[ref] if ref in self.embedded else ref
        return load_image(source, name=f"benchmark image {ref if ref in self.embedded else Path(ref).name}")


# ---- MMEB-v2 ----------------------------------------------------------------------------------

# Task -> meta-task, as MMEB-v2 groups them (image 36, video 18, visual documents 24).
MMEB_V2_META = {
    "image": {
        "classification": "ImageNet-1K N24News HatefulMemes VOC2007 SUN397 Place365 ImageNet-A ImageNet-R ObjectNet Country211",
        "vqa": "OK-VQA A-OKVQA DocVQA InfographicsVQA ChartQA Visual7W ScienceQA VizWiz GQA TextVQA",
        "retrieval": "VisDial CIRR VisualNews_t2i VisualNews_i2t MSCOCO_t2i MSCOCO_i2t NIGHTS WebQA FashionIQ Wiki-SS-NQ OVEN EDIS",
        "grounding": "MSCOCO RefCOCO RefCOCO-Matching Visual7W-Pointing",
    },
    "video": {
        "classification": "K700 Kinetics-700 SmthSmthV2 HMDB51 UCF101 Breakfast",
        "vqa": "MVBench Video-MME NExTQA EgoSchema ActivityNetQA",
        "retrieval": "DiDeMo MSR-VTT MSVD VATEX YouCook2",
        "moment_retrieval": "QVHighlight Charades-STA MomentSeeker",
    },
    "visdoc": {
        "vidore_v1": "ViDoRe_arxivqa ViDoRe_docvqa ViDoRe_infovqa ViDoRe_tabfquad ViDoRe_tatdqa ViDoRe_shiftproject "
        "ViDoRe_syntheticDocQA_artificial_intelligence ViDoRe_syntheticDocQA_energy "
        "ViDoRe_syntheticDocQA_government_reports ViDoRe_syntheticDocQA_healthcare_industry",
        "vidore_v2": "ViDoRe_esg_reports_human_labeled_v2 ViDoRe_biomedical_lectures_v2_multilingual "
        "ViDoRe_economics_reports_v2_multilingual ViDoRe_esg_reports_v2_multilingual",
        "visrag": "VisRAG_ArxivQA VisRAG_ChartQA VisRAG_MP-DocVQA VisRAG_SlideVQA VisRAG_InfoVQA VisRAG_PlotQA",
        "ood": "ViDoSeek-page ViDoSeek-doc MMLongBench-page MMLongBench-doc",
    },
}
# The visual-document instructions of VLM2Vec-V2's evaluation (query side, document side).
VISDOC_QUERY_INSTRUCTION = "Find a document image that matches the given query:"
VISDOC_DOC_INSTRUCTION = "Understand the content of the provided document image."


def mmeb_meta_task(group: str, name: str) -> str:
    for meta, names in MMEB_V2_META.get(group, {}).items():
        if name in names.split():
            return meta
    return "other"


def _task_files(folder: Path) -> dict[str, Path]:
    """Task name -> a row file (`X.jsonl`, `X.parquet`) or a folder of row files (`X/*.parquet`)."""
    tasks: dict[str, Path] = {}
    if not folder.is_dir():
        return tasks
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix in (".jsonl", ".parquet"):
            tasks[entry.stem] = entry
        elif entry.is_dir() and any(p.suffix in (".jsonl", ".parquet") for p in entry.iterdir() if p.is_file()):
            tasks[entry.name] = entry
    return tasks


def _rows_of(path: Path, limit: int | None) -> tuple[list[dict], str]:
    files = [path] if path.is_file() else [p for p in _record_files(path) if p.suffix != ".tsv"]
    rows: list[dict] = []
    for file in files:
        rows.extend(read_records(file))
        if limit is not None and len(rows) >= limit:
            break
    return (rows if limit is None else rows[:limit]), str(files[0] if len(files) == 1 else path)


def candidate_task_from_file(
    name: str, path: Path, roots: list[Path], group: str, limit: int | None, num_frames: int
) -> CandidateTask:
    """Read one MMEB-style task file (JSONL or parquet rows); images / frame folders resolve under `roots`."""
    rows, source = _rows_of(path, limit)
    store = ImageStore(roots, num_frames)
    return candidate_task_from_rows(
        name, rows, store.load, source, store.resolve, meta_task=mmeb_meta_task(group, name), group=group
    )


def mmeb_v2_tasks(
    data: Path,
    limit: int | None = None,
    num_frames: int = DEFAULT_NUM_FRAMES,
    query_instruction: str | None = None,
    doc_instruction: str | None = None,
) -> list[TaskSource]:
    """The MMEB-v2 tasks found under `data` (the layout the README documents):

    - `image-tasks/<Task>.jsonl|.parquet`, `image-tasks/<Task>/*.parquet` or the same under
      `image-query/` (VLM2Vec's local layout): MMEB rows; image paths relative to
      `image-tasks/MMEB/`, `image-tasks/` or `data`.
    - `video-tasks/<Task>.jsonl|...`: MMEB rows whose image fields name frame folders (or
      `qry_video_path` / `tgt_video_path`), relative to `video-tasks/frames/`, `video-tasks/` or `data`.
    - `visdoc-tasks/<Task>/`: BEIR form (see `corpus_task_from_folder`), nDCG@5; queries and pages
      get VLM2Vec-V2's ViDoRe instructions unless `query_instruction` / `doc_instruction` are given.

    Raises:
        InputError: `data` is not a folder, or holds none of these.
    """
    data = Path(data)
    if not data.is_dir():
        raise InputError(f"The MMEB-v2 data folder {str(data)!r} does not exist.")
    sources: list[TaskSource] = []
    for group, folders, roots in (
        ("image", ("image-tasks", "image-query"), [data / "image-tasks" / "MMEB", data / "image-tasks", data]),
        ("video", ("video-tasks",), [data / "video-tasks" / "frames", data / "video-tasks", data]),
    ):
        found = {name: path for folder in folders for name, path in _task_files(data / folder).items()}
        for name, path in found.items():

            def load(name: str = name, path: Path = path, group: str = group, roots: list[Path] = roots) -> Task:
                return candidate_task_from_file(name, path, roots, group, limit, num_frames)

            sources.append(TaskSource(name, load, {"group": group, "meta_task": mmeb_meta_task(group, name)}))
    visdoc = data / "visdoc-tasks"
    if visdoc.is_dir():
        for folder in sorted(p for p in visdoc.iterdir() if p.is_dir()):

            def load_doc(folder: Path = folder) -> Task:
                return corpus_task_from_folder(
                    folder,
                    "visdoc",
                    mmeb_meta_task("visdoc", folder.name),
                    "ndcg@5",
                    limit,
                    VISDOC_QUERY_INSTRUCTION if query_instruction is None else query_instruction,
                    VISDOC_DOC_INSTRUCTION if doc_instruction is None else doc_instruction,
                )

            sources.append(TaskSource(folder.name, load_doc, {"group": "visdoc"}))
    if not sources:
        raise InputError(
            f"No MMEB-v2 tasks under {str(data)!r}: expected image-tasks/, video-tasks/ or visdoc-tasks/ (see README)."
        )
    return sources


# ---- BEIR form (visual documents, MRMR) ----------------------------------------------------------

_ID_FIELDS = ("_id", "id", "query-id", "query_id", "corpus-id", "corpus_id")
_TEXT_FIELDS = ("text", "query", "title")
_IMAGE_FIELDS = ("image", "image_path", "img_path", "image 1", "image 2", "image 3", "image 4", "image 5", "vision")


def _part_files(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """`<name>.jsonl` / `<name>.parquet` / `<name>.tsv`, or every record file in a `<name>/` folder."""
    for name in names:
        for suffix in (".jsonl", ".parquet", ".tsv"):
            if (folder / f"{name}{suffix}").is_file():
                return [folder / f"{name}{suffix}"]
        if (folder / name).is_dir() and _record_files(folder / name):
            return _record_files(folder / name)
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
