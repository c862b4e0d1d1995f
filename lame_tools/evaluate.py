"""Retrieval metrics and the evaluation harness: Shapes, MMEB-v2 and MRMR through one code path.

Metrics follow BEIR / pytrec_eval definitions, per query, then averaged over the queries that have
at least one relevant item:

- `hit_at_k`: 1 if a relevant item is in the top k, else 0 (MMEB's Hit@1 for k = 1).
- `recall_at_k`: relevant items in the top k / all relevant items of the query.
- `ndcg_at_k`: DCG@k / IDCG@k with LINEAR gain (gain = the qrel grade) and discount 1 / log2(rank + 1),
  IDCG from the query's own qrels sorted by grade (trec_eval's `ndcg_cut`, which BEIR reports).

Edge cases, decided explicitly:

- Missing qrels: a query with no item of grade > 0 gets `None` and is left out of the mean (as
  pytrec_eval evaluates only judged queries); the task result counts such queries in `n_unjudged`.
  Grades <= 0 count as not relevant.
- Duplicates: an id that appears twice in a ranking counts once, at its first (best) position; the
  later copies are dropped before cutting at k. In MMEB candidate lists the "id" is the candidate's
  content (instruction, text, image), so a negative identical to the positive merges into it:
  no embedding model can tell them apart.
- Ties: when scores are exactly equal, relevant items are ranked AFTER non-relevant ones (the
  pessimistic order), then by corpus / candidate position. A model that gives every candidate the
  same score (for example a collapsed one) therefore scores 0, not 1, on lists whose positive comes
  first. (pytrec_eval breaks ties by document id instead; with real float scores ties only arise
  from identical inputs, so this changes nothing but degenerate cases.)

The harness embeds each distinct input of a task once (cache by content), then scores. The CLI
`python -m lame_tools eval` writes one JSON per finished task into `<out>.tasks/` and the summary
to `<out>`, all atomically; a rerun with the same arguments skips finished tasks, so a killed run
resumes, and gives the same JSON as a run never killed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lame_tools.atomic import atomic_write_json
from lame_tools.data.formats import CandidateTask, CorpusTask, EmbedInput, Task, TaskSource
from lame_tools.errors import InputError
from lame_tools.index import EmbeddingIndex
from lame_tools.ranking import top_k_pessimistic

BENCHMARKS = ("shapes", "mmeb-v2", "mrmr")
MODEL_KINDS = ("lame", "qwen2-vl-base", "ume-r1", "vlm2vec")
BASELINE_LANES = {"qwen2-vl-base": "latent", "ume-r1": "discriminative", "vlm2vec": "discriminative"}
META_ABBREVIATIONS = {
    "classification": "CLS",
    "vqa": "QA",
    "retrieval": "RET",
    "grounding": "GD",
    "moment_retrieval": "MRET",
    "vidore_v1": "VDRv1",
    "vidore_v2": "VDRv2",
    "visrag": "VR",
    "ood": "OOD",
    "knowledge": "Knowledge",
    "theorem": "Theorem",
    "contradiction": "Contradiction",
}
META_ORDER = tuple(META_ABBREVIATIONS)

# ---- metrics (per query) --------------------------------------------------------------------------


def _dedupe(ranking: Sequence[Hashable]) -> list[Hashable]:
    return list(dict.fromkeys(ranking))


def _relevant(qrels: Mapping[Hashable, float]) -> dict[Hashable, float]:
    return {doc: gain for doc, gain in qrels.items() if gain > 0}


def hit_at_k(ranking: Sequence[Hashable], qrels: Mapping[Hashable, float], k: int) -> float | None:
    """1.0 if one of the first k (distinct) ids is relevant, else 0.0; None when nothing is relevant."""
    relevant = _relevant(qrels)
    if not relevant:
        return None
    return float(any(doc in relevant for doc in _dedupe(ranking)[:k]))


def recall_at_k(ranking: Sequence[Hashable], qrels: Mapping[Hashable, float], k: int) -> float | None:
    """Share of the relevant ids found in the first k (distinct) ids; None when nothing is relevant."""
    relevant = _relevant(qrels)
    if not relevant:
        return None
    return sum(1 for doc in _dedupe(ranking)[:k] if doc in relevant) / len(relevant)


def ndcg_at_k(ranking: Sequence[Hashable], qrels: Mapping[Hashable, float], k: int) -> float | None:
    """nDCG@k with linear gain (the qrel grade) and log2 discount; None when nothing is relevant."""
    relevant = _relevant(qrels)
    if not relevant:
        return None
    dcg = sum(relevant.get(doc, 0.0) / math.log2(rank + 2) for rank, doc in enumerate(_dedupe(ranking)[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg


METRICS = {"hit": hit_at_k, "recall": recall_at_k, "ndcg": ndcg_at_k}


def parse_metric(name: str) -> tuple[str, int]:
    """'ndcg@10' -> ('ndcg', 10)."""
    kind, _, k = name.partition("@")
    if kind not in METRICS or not k.isdigit() or int(k) < 1:
        raise InputError(f"Unknown metric {name!r}; expected hit@k, recall@k or ndcg@k.")
    return kind, int(k)


def metric(name: str, ranking: Sequence[Hashable], qrels: Mapping[Hashable, float]) -> float | None:
    """Compute a metric by name ('hit@1', 'ndcg@5', ...)."""
    kind, k = parse_metric(name)
    return METRICS[kind](ranking, qrels, k)


def mean_or_none(values: Sequence[float | None]) -> tuple[float | None, int]:
    """Mean of the non-None values and how many there were."""
    kept = [v for v in values if v is not None]
    return (float(np.mean(kept)) if kept else None), len(kept)


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
    items: list[tuple[int, str | None, str, str]] = []  # (input position, image ref, text, instruction)
    for position, item in enumerate(inputs):
        for ref in item.images or (None,):
            items.append((position, ref, item.text, item.instruction))
    # Text-only inputs first, then image inputs, each by text length: batches of similar length waste
    # little on padding (a stable sort, so the order, and the numbers, are the same on every run).
    items.sort(key=lambda item: (item[1] is not None, len(item[2]) + len(item[3])))
    sums: np.ndarray | None = None
    chunk = max(batch_size * 4, 64)
    with tqdm(total=len(items), disable=not show_progress_bar, desc=desc, unit="input", leave=False) as bar:
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            images = [load_image(ref) if ref is not None else None for _, ref, _, _ in part]
            texts = [text or None for _, _, text, _ in part]
            instructions = [inst or None for _, _, _, inst in part]
            embeddings = _encode(model, images, texts, instructions, batch_size, mode)
            if sums is None:
                sums = np.zeros((len(inputs), embeddings.shape[1]), dtype=np.float64)
            np.add.at(sums, [position for position, _, _, _ in part], embeddings.astype(np.float64))
            bar.update(len(part))
    if sums is None:
        return np.zeros((0, 0), np.float32)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


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


# ---- one task -------------------------------------------------------------------------------------


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
    return {"metric": "hit@1", "score": value, "hit@1": value, "n": n}


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
    model: Any, task: Task, mode: str | None = None, batch_size: int = 32, show_progress_bar: bool = False
) -> dict:
    """Embed and score one task; returns {"metric", "score", <metric>: value, "n", "meta_task", "group"}.

    Every distinct input (same instruction, text and images) is embedded once.
    """
    if isinstance(task, CandidateTask):
        distinct = list(dict.fromkeys([*task.queries, *(c for row in task.candidates for c in row)]))
        embeddings = embed_inputs(model, distinct, task.load_image, mode, batch_size, show_progress_bar, task.name)
        result = _score_candidate_task(task, embeddings, {item: i for i, item in enumerate(distinct)})
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


# ---- summaries ------------------------------------------------------------------------------------


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarize(task_results: Mapping[str, dict]) -> dict:
    """`overall` (mean score over tasks), `meta_tasks` (mean per meta-task) and, when the tasks span
    several groups (MMEB-v2's image / video / visdoc), `groups` {group: {"overall", "meta_tasks"}}."""
    scored = {name: r for name, r in task_results.items() if r.get("score") is not None}

    def block(results: list[dict]) -> dict:
        metas = sorted(
            {r["meta_task"] for r in results}, key=lambda m: (META_ORDER.index(m) if m in META_ORDER else 99, m)
        )
        return {
            "overall": _mean([r["score"] for r in results]),
            "meta_tasks": {m: _mean([r["score"] for r in results if r["meta_task"] == m]) for m in metas},
        }

    summary = block(list(scored.values()))
    groups = sorted({r["group"] for r in scored.values()})
    if len(groups) > 1:
        summary["groups"] = {g: block([r for r in scored.values() if r["group"] == g]) for g in groups}
    return summary


def format_table(results: dict) -> str:
    """The per-task table, then per-meta-task means (per group where there are several) and overall."""

    def pct(value: float | None) -> str:
        return "  -  " if value is None else f"{100 * value:5.1f}"

    lines = [f"{'task':<24} {'meta-task':<15} {'metric':<8} {'n':>6} {'score':>6}"]
    for name, r in results["tasks"].items():
        lines.append(f"{name:<24} {r['meta_task']:<15} {r['metric']:<8} {r['n']:>6} {pct(r['score']):>6}")
    blocks = [(g, b) for g, b in results.get("groups", {}).items()] or [("", results)]
    for group, b in blocks:
        cells = " | ".join(f"{META_ABBREVIATIONS.get(m, m)} {pct(v)}" for m, v in b["meta_tasks"].items())
        lines.append(f"{(group + ': ') if group else ''}{cells} | overall {pct(b['overall'])}")
    if results.get("groups"):
        lines.append(f"all: overall {pct(results['overall'])}")
    return "\n".join(lines)


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
) -> dict:
    """Evaluate `model` on a Shapes split, MMEB style (per query a candidate list, first positive, Hit@1).

    Queries are embedded with their instruction, candidates with `TARGET_INSTRUCTION` (t2i
    candidates are images).

    Returns:
        {"benchmark": "shapes", "split", "seed", "limit", "mode", "overall": mean Hit@1 over subtasks,
         "meta_tasks": {classification/vqa/retrieval/grounding: mean}, "tasks": {subtask: {"hit@1",
         "score", "n", "meta_task", ...}}}
    """
    sources = _select(benchmark_sources("shapes", None, split, seed, limit), tasks)
    results = {s.name: evaluate_task(model, s.load(), mode, batch_size, show_progress_bar) for s in sources}
    return {
        "benchmark": "shapes",
        "split": split,
        "seed": seed,
        "limit": limit,
        "mode": _model_mode(model, mode),
        **summarize(results),
        "tasks": results,
    }


def _model_mode(model: Any, mode: str | None) -> str:
    """The mode a run used: the one asked for, an adapter's own, or the LaME model's default."""
    if isinstance(getattr(model, "mode", None), str):  # an EmbeddingAdapter runs in its own mode
        return model.mode
    return mode or model.config.default_mode


def _select(sources: list[TaskSource], names: Sequence[str] | None) -> list[TaskSource]:
    if not names:
        return sources
    known = {s.name for s in sources}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"Unknown task {unknown[0]!r}; this benchmark has: {', '.join(sorted(known))}.")
    return [s for s in sources if s.name in set(names)]


# ---- resumable runs (the CLI) ------------------------------------------------------------------


def benchmark_sources(
    benchmark: str,
    data: Path | None,
    split: str = "test",
    seed: int = 0,
    limit: int | None = None,
    num_frames: int = 8,
    query_instruction: str | None = None,
    doc_instruction: str | None = None,
) -> list[TaskSource]:
    """The tasks of a benchmark, by name, not yet read."""
    from lame_tools.data import formats

    if limit is not None and limit < 1:
        raise InputError("--limit must be at least 1.")
    if benchmark == "shapes":
        return formats.shapes_tasks(seed, split, limit)
    if data is None:
        raise InputError(f"The {benchmark} benchmark needs --data DIR (see the README for where to download it).")
    if benchmark == "mmeb-v2":
        return formats.mmeb_v2_tasks(data, limit, num_frames, query_instruction, doc_instruction)
    if benchmark == "mrmr":
        return formats.mrmr_tasks(data, limit, query_instruction, doc_instruction)
    raise InputError(f"Unknown benchmark {benchmark!r}; expected one of {', '.join(BENCHMARKS)}.")


def _model_fingerprint(model_dir: Path) -> str:
    """Cheap identity of a model folder (path, file sizes and modification times)."""
    parts = [str(model_dir.resolve())]
    for path in sorted(model_dir.glob("*")):
        if path.is_file():
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _task_file(out: Path, name: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return out.with_name(out.name + ".tasks") / f"{safe}.json"


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
) -> dict:
    """Evaluate a model folder on a benchmark, one task at a time, resumably; write `out` atomically.

    `kind` "lame" reads a LaME folder; "qwen2-vl-base", "ume-r1" and "vlm2vec" load a baseline
    through `lame_tools.adapters.load_lane` (`mode` then picks its lane: "cot" = UME-R1's generative
    embedding); a hub id is used only with `allow_hub`.

    Each finished task is written to `<out>.tasks/<task>.json` with a fingerprint of the run (model
    files, benchmark, data, split, seed, limit, mode, batch size); a rerun skips tasks whose file
    carries the same fingerprint. The summary JSON holds no timings, so a resumed run writes the
    same bytes as an uninterrupted one; throughput is printed and kept in the per-task files.
    """
    from lame_tools.config import LameConfig
    from lame_tools.model import CONFIG_FILE, LameModel

    sources = _select(
        benchmark_sources(benchmark, data, split, seed, limit, num_frames, query_instruction, doc_instruction), tasks
    )
    fingerprint = {
        "model": _model_fingerprint(Path(model_dir)) if Path(model_dir).is_dir() else str(model_dir),
        "kind": kind,
        "benchmark": benchmark,
        "data": str(Path(data).resolve()) if data else None,
        "split": split,
        "seed": seed,
        "limit": limit,
        "mode": mode,
        "batch_size": batch_size,
        "num_frames": num_frames if benchmark == "mmeb-v2" else None,
        "instructions": [query_instruction, doc_instruction],
    }
    model = None
    results: dict[str, dict] = {}
    for source in sources:
        path = _task_file(out, source.name)
        if resume and path.is_file():
            try:
                stored = json.loads(path.read_text())
            except (OSError, ValueError):
                stored = {}
            if stored.get("fingerprint") == fingerprint:
                results[source.name] = stored["result"]
                log(f"{source.name}: finished earlier, skipped")
                continue
        if model is None and kind == "lame":
            model = LameModel.from_pretrained(model_dir, device=device)
        elif model is None:
            from lame_tools.adapters import load_lane

            lane = mode or BASELINE_LANES.get(kind, "discriminative")
            model = load_lane(
                lane, model_dir, kind, device=device, allow_hub=allow_hub, trust_remote_code=trust_remote_code
            )
        task = source.load()
        start = time.perf_counter()
        result = evaluate_task(model, task, mode, batch_size, show_progress_bar)
        elapsed = time.perf_counter() - start
        queries = len(task.queries)
        atomic_write_json(
            path,
            {
                "fingerprint": fingerprint,
                "result": result,
                "timing": {"seconds": elapsed, "queries": queries, "queries_per_s": queries / max(elapsed, 1e-9)},
            },
        )
        results[source.name] = result
        log(
            f"{source.name}: {result['metric']} {100 * (result['score'] or 0):.1f} ({queries} queries, {queries / max(elapsed, 1e-9):.1f} queries/s)"
        )
    if model is not None:
        resolved_mode = _model_mode(model, mode)
    elif kind == "lame":  # every task was finished earlier: read the default mode without loading the weights
        resolved_mode = mode or LameConfig.load(Path(model_dir) / CONFIG_FILE).default_mode
    else:
        resolved_mode = mode or BASELINE_LANES.get(kind, "discriminative")
    summary = {
        "benchmark": benchmark,
        "model": str(model_dir),
        "data": str(data) if data else None,
        "split": split if benchmark == "shapes" else None,
        "seed": seed if benchmark == "shapes" else None,
        "limit": limit,
        "mode": resolved_mode,
        **summarize(results),
        "tasks": results,
    }
    atomic_write_json(out, summary)
    return summary


def bench_eval_throughput(
    models: Mapping[str, Path],
    split: str = "test",
    seed: int = 0,
    limit: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
    mode: str | None = None,
    log: Any = print,
) -> dict:
    """Evaluation throughput on a Shapes split: queries per second (and distinct inputs embedded per
    second) for each model folder, after a small warm-up run; the scores come with it.

    Returns:
        {"hardware", "split", "limit", "batch_size", "models": {name: {"queries_per_s", "inputs_per_s",
         "seconds", "queries", "inputs", "mode", "overall", "meta_tasks", "tasks"}}}
    """
    from lame_tools.model import LameModel
    from lame_tools.timing import hardware_info, synchronize

    report: dict[str, Any] = {"split": split, "seed": seed, "limit": limit, "batch_size": batch_size, "models": {}}
    for name, folder in models.items():
        model = LameModel.from_pretrained(folder, device=device)
        evaluate_shapes(model, split, mode, seed, limit=8, batch_size=batch_size)  # warm-up
        synchronize(model.device)
        start = time.perf_counter()
        result = evaluate_shapes(model, split, mode, seed, limit, batch_size)
        synchronize(model.device)
        seconds = time.perf_counter() - start
        queries = sum(t["n"] for t in result["tasks"].values())
        inputs = sum(t["n_embedded"] for t in result["tasks"].values())
        report["models"][name] = {
            "folder": str(folder),
            "mode": result["mode"],
            "seconds": seconds,
            "queries": queries,
            "inputs": inputs,
            "queries_per_s": queries / seconds,
            "inputs_per_s": inputs / seconds,
            "overall": result["overall"],
            "meta_tasks": result["meta_tasks"],
            "tasks": {k: {"hit@1": v["hit@1"], "n": v["n"]} for k, v in result["tasks"].items()},
        }
        log(
            f"{name}: {queries} queries in {seconds:.1f} s = {queries / seconds:.1f} queries/s ({result['mode']} mode, overall Hit@1 {100 * result['overall']:.1f})"
        )
        report["hardware"] = hardware_info(model.device)
    return report


def format_shapes_table(report: dict) -> str:
    """A markdown table of a throughput report: per meta-task Hit@1, overall, and queries/s."""
    metas = ("classification", "vqa", "retrieval", "grounding")
    lines = [
        "| model | mode | " + " | ".join(META_ABBREVIATIONS[m] for m in metas) + " | overall | queries/s |",
        "|---|---|" + "---|" * (len(metas) + 2),
    ]
    for name, r in report["models"].items():
        cells = " | ".join(f"{100 * r['meta_tasks'][m]:.1f}" if m in r["meta_tasks"] else "-" for m in metas)
        lines.append(f"| {name} | {r['mode']} | {cells} | {100 * r['overall']:.1f} | {r['queries_per_s']:.1f} |")
    return "\n".join(lines)


def _eval_throughput_command(args: argparse.Namespace) -> int:
    from lame_tools import SHIPPED_MODELS

    models: dict[str, Path] = {}
    for entry in args.models:
        folder = SHIPPED_MODELS.get(entry, Path(entry))
        models[entry if entry in SHIPPED_MODELS else Path(entry).name] = Path(folder)
    report = bench_eval_throughput(models, args.split, args.seed, args.limit, args.batch_size, args.device, args.mode)
    print(format_shapes_table(report))
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


def _eval_command(args: argparse.Namespace) -> int:
    summary = run_benchmark(
        args.model,
        args.benchmark,
        args.out,
        data=args.data,
        tasks=args.tasks,
        split=args.split,
        seed=args.seed,
        limit=args.limit,
        mode=args.mode,
        batch_size=args.batch_size,
        device=args.device,
        resume=not args.no_resume,
        show_progress_bar=not args.no_progress,
        num_frames=args.num_frames,
        query_instruction=args.query_instruction,
        doc_instruction=args.doc_instruction,
        kind=args.kind,
        allow_hub=args.allow_hub,
        trust_remote_code=args.trust_remote_code,
    )
    print(format_table(summary))
    print(f"wrote {args.out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    from lame_tools.cli.common import add_model_argument
    from lame_tools.config import MODES
    from lame_tools.data.shapes import SPLITS

    parser = subparsers.add_parser("eval", help="evaluate a model on Shapes, MMEB-v2 or MRMR (resumable)")
    add_model_argument(parser)
    parser.add_argument("--benchmark", choices=BENCHMARKS, default="shapes")
    parser.add_argument(
        "--kind",
        choices=MODEL_KINDS,
        default="lame",
        help="lame: a LaME folder; qwen2-vl-base / ume-r1 / vlm2vec: a baseline checkpoint (see lame_tools.adapters)",
    )
    parser.add_argument("--allow-hub", action="store_true", help="let --model be a Hugging Face hub id (downloads)")
    parser.add_argument("--trust-remote-code", action="store_true", help="passed to transformers for baselines")
    parser.add_argument("--data", type=Path, default=None, help="benchmark folder (MMEB-v2, MRMR; see README)")
    parser.add_argument("--tasks", nargs="+", default=None, help="only these tasks (default: all found)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="Shapes split")
    parser.add_argument("--seed", type=int, default=0, help="Shapes world seed")
    parser.add_argument(
        "--limit", type=int, default=None, help="Shapes: first N examples; files: first N queries per task"
    )
    parser.add_argument("--mode", choices=MODES, default=None, help="default: the mode the model was trained for")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-frames", type=int, default=8, help="frames sampled per video (MMEB-v2 video tasks)")
    parser.add_argument(
        "--query-instruction",
        default=None,
        help="BEIR-form tasks: instruction for queries (visdoc default: VLM2Vec-V2's)",
    )
    parser.add_argument("--doc-instruction", default=None, help="BEIR-form tasks: instruction for corpus documents")
    parser.add_argument("--out", type=Path, required=True, help="summary JSON (per-task files go to <out>.tasks/)")
    parser.add_argument("--no-resume", action="store_true", help="recompute tasks finished by an earlier run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=_eval_command)

    bench = subparsers.add_parser("eval-throughput", help="evaluation throughput (queries/s) on a Shapes split")
    bench.add_argument(
        "--models", nargs="+", default=["latent", "discriminative", "cot"], help="shipped model names or folders"
    )
    bench.add_argument("--split", choices=SPLITS, default="test")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--limit", type=int, default=None, help="first N examples (default: the whole split)")
    bench.add_argument("--mode", choices=MODES, default=None, help="default: each model's own mode")
    bench.add_argument("--batch-size", type=int, default=32)
    bench.add_argument("--device", default=None)
    bench.add_argument("--out", type=Path, required=True)
    bench.set_defaults(func=_eval_throughput_command)
