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

from lame_tools.data.formats.beir import MRMR_HIT_TASKS, corpus_task_from_folder, mrmr_meta_task, mrmr_tasks
from lame_tools.data.formats.mmeb import (
    MMEB_V2_META,
    VISDOC_DOC_INSTRUCTION,
    VISDOC_QUERY_INSTRUCTION,
    candidate_task_from_file,
    mmeb_meta_task,
    mmeb_v2_tasks,
)
from lame_tools.data.formats.records import DEFAULT_NUM_FRAMES, IMAGE_SUFFIXES, ImageStore, read_records, record_files
from lame_tools.data.formats.tasks import (
    CandidateTask,
    CorpusTask,
    EmbedInput,
    Task,
    TaskSource,
    candidate_task_from_rows,
    shapes_tasks,
)

__all__ = [
    "DEFAULT_NUM_FRAMES",
    "IMAGE_SUFFIXES",
    "MMEB_V2_META",
    "MRMR_HIT_TASKS",
    "VISDOC_DOC_INSTRUCTION",
    "VISDOC_QUERY_INSTRUCTION",
    "CandidateTask",
    "CorpusTask",
    "EmbedInput",
    "ImageStore",
    "Task",
    "TaskSource",
    "candidate_task_from_file",
    "candidate_task_from_rows",
    "corpus_task_from_folder",
    "mmeb_meta_task",
    "mmeb_v2_tasks",
    "mrmr_meta_task",
    "mrmr_tasks",
    "read_records",
    "record_files",
    "shapes_tasks",
]
