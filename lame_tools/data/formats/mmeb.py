"""MMEB-v2: image and video tasks (MMEB rows), visual-document tasks (BEIR form), by meta-task."""

from __future__ import annotations

from pathlib import Path

from lame_tools.data.formats.beir import corpus_task_from_folder
from lame_tools.data.formats.records import DEFAULT_NUM_FRAMES, ImageStore, read_records, record_files
from lame_tools.data.formats.tasks import CandidateTask, Task, TaskSource, candidate_task_from_rows
from lame_tools.errors import InputError

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
    files = [path] if path.is_file() else [p for p in record_files(path) if p.suffix != ".tsv"]
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
