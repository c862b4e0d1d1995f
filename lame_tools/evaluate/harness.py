"""The evaluation harness: Shapes, MMEB-v2 and MRMR through one code path, resumable per task.

The harness embeds each distinct input of a task once (cache by content), then scores it with the
metrics of `lame_tools.evaluate.metrics`, ranking by `lame_tools.ranking.top_k_pessimistic`:

- Duplicates: in MMEB candidate lists the "id" is the candidate's content (instruction, text,
  image), so a negative identical to the positive merges into it: no embedding model can tell them
  apart.
- Ties: when scores are exactly equal, relevant items are ranked AFTER non-relevant ones (the
  pessimistic order), then by corpus / candidate position. A model that gives every candidate the
  same score (for example a collapsed one) therefore scores 0, not 1, on lists whose positive comes
  first. (pytrec_eval breaks ties by document id instead; with real float scores ties only arise
  from identical inputs, so this changes nothing but degenerate cases.)

In cot mode (a LaME model, Shapes) the rationale each query's embedding pass generated is kept and
scored field by field against the scene graph (`lame_tools.evaluate.rationales`); the task result
holds the texts and scores, the summary a "rationales" block. Other modes' results are unchanged.

`run_benchmark` (the `eval` verb) writes one JSON per finished task into `<out>.tasks/` and the
summary to `<out>`, all atomically; a rerun with the same arguments skips finished tasks, so a
killed run resumes, and gives the same JSON as a run never killed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lame_tools.atomic import atomic_write_json
from lame_tools.data.formats import CandidateTask, CorpusTask, EmbedInput, Task, TaskSource
from lame_tools.data.tasks import Example
from lame_tools.errors import InputError
from lame_tools.evaluate.metrics import hit_at_k, mean_or_none, metric, parse_metric
from lame_tools.evaluate.rationales import score_task_rationales, shapes_examples
from lame_tools.evaluate.report import query_intervals, summarize_tasks
from lame_tools.evaluate.sources import benchmark_sources, select_tasks
from lame_tools.fingerprint import folder_fingerprint
from lame_tools.index import EmbeddingIndex
from lame_tools.ranking import top_k_pessimistic
from lame_tools.sharding import barrier, gather_rows, process_group, split

# The lane a baseline kind runs in when no mode is asked for (see `lame_tools.adapters.load_lane`).
BASELINE_LANES = {"qwen2-vl-base": "latent", "ume-r1": "discriminative", "vlm2vec": "discriminative"}

# ---- embedding ------------------------------------------------------------------------------------


def embed_inputs(
    model: Any,
    inputs: Sequence[EmbedInput],
    load_image: Any,
    mode: str | None = None,
    batch_size: int = 32,
    show_progress_bar: bool = False,
    desc: str = "embed",
) -> np.ndarray:
    """Embed `inputs` in order; an input with several images (video frames) gets the normalised mean
    of its per-frame embeddings. Images are decoded a chunk at a time, so memory stays bounded.

    `model` is a `LameModel` (anything with its `encode`), or an `EmbeddingAdapter` of
    `lame_tools.adapters` (UME-R1, VLM2Vec-V2 ...: anything with `embed`), which runs in its own mode.
    """
    return _embed_inputs(model, inputs, load_image, mode, batch_size, show_progress_bar, desc)[0]


def _embed_inputs(
    model: Any,
    inputs: Sequence[EmbedInput],
    load_image: Any,
    mode: str | None = None,
    batch_size: int = 32,
    show_progress_bar: bool = False,
    desc: str = "embed",
    rationales: bool = False,
) -> tuple[np.ndarray, list[str] | None]:
    """`embed_inputs`, and with `rationales` (a LaME model in cot mode) also the rationale the
    embedding pass generated for each input (its first image's, for several), decoded; else None."""
    items: list[tuple[int, str | None, str, str]] = []  # (input position, image ref, text, instruction)
    for position, item in enumerate(inputs):
        for ref in item.images or (None,):
            items.append((position, ref, item.text, item.instruction))
    # Text-only inputs first, then image inputs, each by text length: batches of similar length waste
    # little on padding (a stable sort, so the order, and the numbers, are the same on every run).
    items.sort(key=lambda item: (item[1] is not None, len(item[2]) + len(item[3])))
    # Under a launcher each process embeds a contiguous run of chunks; the rows are gathered back in
    # order, so every chunk is the same batch as in one process and gives the same numbers.
    group = process_group()
    chunk = max(batch_size * 4, 64)
    starts = list(range(0, len(items), chunk))
    mine = [starts[i] for i in split(len(starts), group.world)[group.rank]]
    local, local_ids = [], []
    total = sum(len(items[s : s + chunk]) for s in mine)
    with tqdm(
        total=total, disable=not (show_progress_bar and group.is_main), desc=desc, unit="input", leave=False
    ) as bar:
        for start in mine:
            part = items[start : start + chunk]
            images = [load_image(ref) if ref is not None else None for _, ref, _, _ in part]
            texts = [text or None for _, _, text, _ in part]
            instructions = [inst or None for _, _, _, inst in part]
            if rationales:
                embedded, ids = model.encode(images=images, texts=texts, instruction=instructions,
                                             batch_size=batch_size, mode="cot", return_rationales=True)
                local_ids.extend(ids)
            else:
                embedded = _encode(model, images, texts, instructions, batch_size, mode)
            local.append(embedded.astype(np.float32))
            bar.update(len(part))
    rows = gather_rows(np.concatenate(local) if local else np.zeros((0, 0), np.float32), group)
    decoded = None
    if rationales:
        ids = _gather_ids(local_ids, group)
        decoded = [""] * len(inputs)
        for (position, *_), row in reversed(list(zip(items, ids))):  # an input's first image last: it stays
            decoded[position] = model.processor.decode(row)
    if not items:
        return np.zeros((0, 0), np.float32), decoded
    sums = np.zeros((len(inputs), rows.shape[1]), dtype=np.float64)
    np.add.at(sums, [position for position, _, _, _ in items], rows.astype(np.float64))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32), decoded


def _encode(model: Any, images: list, texts: list, instructions: list, batch_size: int, mode: str | None) -> np.ndarray:
    if hasattr(model, "encode"):
        return model.encode(images=images, texts=texts, instruction=instructions, batch_size=batch_size, mode=mode)
    if batch_size < 1:
        raise InputError("batch_size must be at least 1.")
    chunks = [
        model.embed(images[i : i + batch_size], texts[i : i + batch_size], instructions[i : i + batch_size]).numpy()
        for i in range(0, len(texts), batch_size)
    ]
    return np.concatenate(chunks).astype(np.float32)


def _gather_ids(local: list[list[int]], group: Any) -> list[list[int]]:
    """Every rank's rationale ids in rank order (`gather_rows` of rows [length, id_0, ..., 0 ...], all
    as wide as the longest rationale of any rank)."""
    width = int(gather_rows(np.array([[max(map(len, local), default=0)]], np.int64), group).max())
    packed = np.zeros((len(local), width + 1), np.int64)
    for row, rationale in enumerate(local):
        packed[row, 0] = len(rationale)
        packed[row, 1 : 1 + len(rationale)] = rationale
    rows = gather_rows(packed, group).astype(np.int64)
    return [row[1 : 1 + row[0]].tolist() for row in rows]


def _keeps_rationales(model: Any, mode: str | None) -> bool:
    """Whether an evaluation of `model` in `mode` scores rationales: a LaME model in cot mode (an
    adapter's cot lane generates no rationale of the Shapes format)."""
    return hasattr(model, "forward_cot") and model_mode(model, mode) == "cot"


def _score_candidate_task(task: CandidateTask, embeddings: np.ndarray, position: dict[EmbedInput, int]) -> dict:
    hits = []
    for query, candidates in zip(task.queries, task.candidates):
        distinct = list(dict.fromkeys(candidates))  # duplicates merge (see module docstring)
        scores = embeddings[[position[c] for c in distinct]] @ embeddings[position[query]]
        gains = np.zeros(len(distinct))
        gains[0] = 1.0  # the first candidate is the positive
        top = top_k_pessimistic(scores, gains, 1)
        hits.append(hit_at_k([distinct[i] for i in top], {distinct[0]: 1}, 1))
    value, n = mean_or_none(hits)
    result = {"metric": "hit@1", "score": value, "hit@1": value, "n": n}
    result.update(query_intervals(hits, task.query_groups))
    return result


def _score_corpus_task(task: CorpusTask, query_embeddings: np.ndarray, doc_embeddings: np.ndarray) -> dict:
    kind, k = parse_metric(task.metric)
    names = list(dict.fromkeys([task.metric, f"ndcg@{k}", f"recall@{k}", "hit@1"]))
    depth = max(k, 1)
    index = EmbeddingIndex(dim=doc_embeddings.shape[1])
    index.add(doc_embeddings, normalize=True)
    doc_position = {doc: i for i, doc in enumerate(task.doc_ids)}
    values: dict[str, list[float | None]] = {name: [] for name in names}
    unjudged = 0
    for start in range(0, len(task.query_ids), 256):
        block = index.scores(query_embeddings[start : start + 256])  # [b, N]
        for row, qid in enumerate(task.query_ids[start : start + 256]):
            qrels = task.qrels.get(qid, {})
            if not any(g > 0 for g in qrels.values()):
                unjudged += 1
                continue
            gains = np.zeros(len(task.doc_ids))
            for doc, grade in qrels.items():
                if doc in doc_position:
                    gains[doc_position[doc]] = grade
            ranking = [task.doc_ids[i] for i in top_k_pessimistic(block[row], gains, depth)]
            for name in names:
                values[name].append(metric(name, ranking, qrels))
    result: dict[str, Any] = {"metric": task.metric}
    for name in names:
        result[name], n = mean_or_none(values[name])
    result["score"] = result[task.metric]
    result["n"] = n
    result["n_unjudged"] = unjudged
    return result


def evaluate_task(
    model: Any,
    task: Task,
    mode: str | None = None,
    batch_size: int = 32,
    show_progress_bar: bool = False,
    examples: Sequence[Example] | None = None,
) -> dict:
    """Embed and score one task; returns {"metric", "score", <metric>: value, "n", "meta_task", "group"}.

    Every distinct input (same instruction, text and images) is embedded once. With `examples` (a
    candidate task's Shapes example per query) and a LaME model in cot mode, the result also holds
    "rationales": the rationale generated for each query and its field scores against the example
    (`lame_tools.evaluate.rationales.score_task_rationales`), taken from the embedding pass itself.
    """
    if isinstance(task, CandidateTask):
        distinct = list(dict.fromkeys([*task.queries, *(c for row in task.candidates for c in row)]))
        collect = examples is not None and _keeps_rationales(model, mode)
        embeddings, texts = _embed_inputs(
            model, distinct, task.load_image, mode, batch_size, show_progress_bar, task.name, rationales=collect
        )
        position = {item: i for i, item in enumerate(distinct)}
        result = _score_candidate_task(task, embeddings, position)
        if texts is not None:
            result["rationales"] = score_task_rationales([texts[position[q]] for q in task.queries], examples)
    else:
        distinct = list(dict.fromkeys([*task.queries, *task.corpus]))
        embeddings = embed_inputs(model, distinct, task.load_image, mode, batch_size, show_progress_bar, task.name)
        position = {item: i for i, item in enumerate(distinct)}
        result = _score_corpus_task(
            task, embeddings[[position[q] for q in task.queries]], embeddings[[position[d] for d in task.corpus]]
        )
    result["meta_task"] = task.meta_task
    result["group"] = task.group
    result["n_embedded"] = len(distinct)
    return result


# ---- Shapes --------------------------------------------------------------------------------------


def evaluate_shapes(
    model: Any,
    split: str = "test",
    mode: str | None = None,
    seed: int = 0,
    limit: int | None = None,
    batch_size: int = 32,
    show_progress_bar: bool = False,
    tasks: Sequence[str] | None = None,
    per_subtask: int | None = None,
    style: str | None = None,
) -> dict:
    """Evaluate `model` on a Shapes split, MMEB style (per query a candidate list, first positive, Hit@1);
    `per_subtask`: the balanced split; `style`: a rendering variant of the same scenes.

    Queries are embedded with their instruction, candidates with `TARGET_INSTRUCTION` (t2i
    candidates are images). In cot mode (a LaME model) each query's generated rationale is scored
    against its example, and the summary gains "rationales" (`summarize_tasks`).

    Returns:
        {"benchmark": "shapes", "split", "seed", "limit", "mode", "overall": mean Hit@1 over subtasks,
         "meta_tasks": {classification/vqa/retrieval/grounding: mean}, "tasks": {subtask: {"hit@1",
         "score", "n", "meta_task", ...}}}
    """
    sources = benchmark_sources("shapes", None, split, seed, limit, per_subtask=per_subtask, style=style)
    sources = select_tasks(sources, tasks)
    examples = shapes_examples(seed, split, limit, per_subtask) if _keeps_rationales(model, mode) else {}
    results = {
        s.name: evaluate_task(model, s.load(), mode, batch_size, show_progress_bar, examples.get(s.name))
        for s in sources
    }
    return {
        "benchmark": "shapes",
        "split": split,
        "seed": seed,
        "limit": limit,
        **({"per_subtask": per_subtask} if per_subtask is not None else {}),
        **({"style": style} if style is not None else {}),
        "mode": model_mode(model, mode),
        **summarize_tasks(results),
        "tasks": results,
    }


def model_mode(model: Any, mode: str | None) -> str:
    """The mode a run used: the one asked for, an adapter's own, or the LaME model's default."""
    if isinstance(getattr(model, "mode", None), str):  # an EmbeddingAdapter runs in its own mode
        return model.mode
    return mode or model.config.default_mode


# ---- resumable runs -------------------------------------------------------------------------------


def task_file(out: Path, name: str) -> Path:
    """Where a run writing `out` keeps the result of task `name`: `<out>.tasks/<name>.json`."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return out.with_name(out.name + ".tasks") / f"{safe}.json"


def finished_task(path: Path, fingerprint: dict) -> dict | None:
    """The result stored in a task file by a run with the same fingerprint, else None."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stored["result"] if stored.get("fingerprint") == fingerprint else None


def _load_model(model_dir: Path, kind: str, mode: str | None, device: str | None, **lane_options: Any) -> Any:
    """A LaME model (`kind` "lame"), else a baseline's lane through `lame_tools.adapters.load_lane`."""
    if kind == "lame":
        from lame_tools.model import LameModel

        return LameModel.from_pretrained(model_dir, device=device)
    from lame_tools.adapters import load_lane

    return load_lane(mode or BASELINE_LANES.get(kind, "discriminative"), model_dir, kind, device=device, **lane_options)


def _run_task(
    model: Any, source: TaskSource, path: Path, fingerprint: dict, log: Callable, examples: Any = None, **options: Any
) -> dict:
    """Evaluate one task, write its result, the run's fingerprint and its timing to `path`, and log a
    line (under a launcher: every process evaluates, the main one writes and logs)."""
    task = source.load()
    start = time.perf_counter()
    result = evaluate_task(model, task, examples=examples, **options)
    elapsed = time.perf_counter() - start
    queries = len(task.queries)
    rate = queries / max(elapsed, 1e-9)
    timing = {"seconds": elapsed, "queries": queries, "queries_per_s": rate}
    if not process_group().is_main:
        return result
    atomic_write_json(path, {"fingerprint": fingerprint, "result": result, "timing": timing})
    log(
        f"{source.name}: {result['metric']} {100 * (result['score'] or 0):.1f} ({queries} queries, {rate:.1f} queries/s)"
    )
    return result


def _run_mode(model: Any, model_dir: Path, kind: str, mode: str | None) -> str:
    """The mode of a run; when every task was finished earlier (no model loaded), read without the weights."""
    if model is not None:
        return model_mode(model, mode)
    if kind == "lame":
        from lame_tools.config import LameConfig
        from lame_tools.model import CONFIG_FILE

        return mode or LameConfig.load(Path(model_dir) / CONFIG_FILE).default_mode
    return mode or BASELINE_LANES.get(kind, "discriminative")


def run_fingerprint(
    model_dir: Path, kind: str, benchmark: str, data: Path | None, instructions: list, **options: Any
) -> dict:
    """What a finished task's file must carry to be reused: model files, benchmark, data, split,
    seed, limit, mode, batch size, frames (MMEB-v2), instructions, balanced split and style."""
    per_subtask, style = options.pop("per_subtask", None), options.pop("style", None)
    return {
        "model": folder_fingerprint(Path(model_dir)) if Path(model_dir).is_dir() else str(model_dir),
        "kind": kind,
        "benchmark": benchmark,
        "data": str(Path(data).resolve()) if data else None,
        "split": options["split"],
        "seed": options["seed"],
        "limit": options["limit"],
        "mode": options["mode"],
        "batch_size": options["batch_size"],
        "num_frames": options["num_frames"] if benchmark == "mmeb-v2" else None,
        "instructions": instructions,
        **({"per_subtask": per_subtask} if per_subtask is not None else {}),
        **({"style": style} if style is not None else {}),
    }


def _finished_before(sources: Sequence[TaskSource], out: Path, fingerprint: dict, resume: bool, group: Any) -> dict:
    """The stored result of each finished task (None: to run). Under a launcher (`torchrun` /
    `accelerate launch`) every process reads them before any process writes, so all agree."""
    finished = {s.name: finished_task(task_file(out, s.name), fingerprint) if resume else None for s in sources}
    barrier(group)
    return finished


def _run_tasks(
    model_dir: Path, sources: list[TaskSource], finished: dict, out: Path, fingerprint: dict, log: Any,
    load: dict[str, Any], options: dict[str, Any], shapes: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, dict]]:
    """Each task's result: the stored one when an earlier run finished it, else run now (the model is
    loaded on the first task that needs it). `shapes` (seed, split, limit, per_subtask of a Shapes
    run): a cot run scores rationales, and reruns a task stored without them. Returns (the model or
    None, results by task)."""
    model, examples = None, None
    results: dict[str, dict] = {}
    for source in sources:
        stored = finished[source.name]
        if stored is not None and shapes is not None and "rationales" not in stored and load["kind"] == "lame":
            stored = None if _run_mode(model, model_dir, load["kind"], load["mode"]) == "cot" else stored
        if stored is not None:
            results[source.name] = stored
            log(f"{source.name}: finished earlier, skipped")
            continue
        if model is None:
            model = _load_model(
                model_dir, load["kind"], load["mode"], load["device"],
                allow_hub=load["allow_hub"], trust_remote_code=load["trust_remote_code"],
            )
        if examples is None:
            examples = shapes_examples(**shapes) if shapes is not None and _keeps_rationales(model, load["mode"]) else {}
        results[source.name] = _run_task(
            model, source, task_file(out, source.name), fingerprint, log, examples.get(source.name), **options
        )
    return model, results


def run_benchmark(
    model_dir: Path,
    benchmark: str,
    out: Path,
    data: Path | None = None,
    tasks: Sequence[str] | None = None,
    split: str = "test",
    seed: int = 0,
    limit: int | None = None,
    mode: str | None = None,
    batch_size: int = 32,
    device: str | None = None,
    resume: bool = True,
    show_progress_bar: bool = True,
    log: Any = print,
    num_frames: int = 8,
    query_instruction: str | None = None,
    doc_instruction: str | None = None,
    kind: str = "lame",
    allow_hub: bool = False,
    trust_remote_code: bool = False,
    per_subtask: int | None = None,
    style: str | None = None,
) -> dict:
    """Evaluate a model folder on a benchmark, one task at a time, resumably; write `out` atomically.
    Shapes only: `per_subtask` evaluates the balanced split, `style` a rendering variant.

    `kind` "lame" reads a LaME folder; "qwen2-vl-base", "ume-r1" and "vlm2vec" load a baseline
    through `lame_tools.adapters.load_lane` (`mode` then picks its lane: "cot" = UME-R1's generative
    embedding); a hub id is used only with `allow_hub`. A LaME model in cot mode on Shapes also
    scores each query's generated rationale (see `evaluate_task`).

    Each finished task is written to `<out>.tasks/<task>.json` with a fingerprint of the run (model
    files, benchmark, data, split, seed, limit, mode, batch size); a rerun skips tasks whose file
    carries the same fingerprint. The summary JSON holds no timings, so a resumed run writes the
    same bytes as an uninterrupted one; throughput is printed and kept in the per-task files. Under
    `torchrun --nproc_per_node N` (or `accelerate launch --num_processes N`) the processes share each
    task's inputs and the main process writes the same files as one process would.
    """
    instructions = [query_instruction, doc_instruction]
    sources = benchmark_sources(
        benchmark, data, split, seed, limit, num_frames, *instructions, per_subtask=per_subtask, style=style
    )
    sources = select_tasks(sources, tasks)
    fingerprint = run_fingerprint(
        model_dir, kind, benchmark, data, instructions, split=split, seed=seed, limit=limit, mode=mode,
        batch_size=batch_size, num_frames=num_frames, per_subtask=per_subtask, style=style,
    )
    group = process_group()
    finished = _finished_before(sources, out, fingerprint, resume, group)
    if not group.is_main:
        log, show_progress_bar = (lambda *_: None), False
    if device is None and group.distributed:
        device = group.device
    load = {"kind": kind, "mode": mode, "device": device, "allow_hub": allow_hub, "trust_remote_code": trust_remote_code}
    options = {"mode": mode, "batch_size": batch_size, "show_progress_bar": show_progress_bar}
    shapes = {"seed": seed, "split": split, "limit": limit, "per_subtask": per_subtask} if benchmark == "shapes" else None
    model, results = _run_tasks(model_dir, sources, finished, out, fingerprint, log, load, options, shapes)
    summary = {
        "benchmark": benchmark,
        "model": str(model_dir),
        "data": str(data) if data else None,
        "split": split if benchmark == "shapes" else None,
        "seed": seed if benchmark == "shapes" else None,
        "limit": limit,
        **({"per_subtask": per_subtask} if per_subtask is not None else {}),
        **({"style": style} if style is not None else {}),
        "mode": _run_mode(model, model_dir, kind, mode),
        **summarize_tasks(results),
        "tasks": results,
    }
    if group.is_main:
        atomic_write_json(out, summary)
    barrier(group)
    return summary
