"""The benchmarks the harness reads, as lists of tasks known by name before they are read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lame_tools.data.formats import TaskSource
from lame_tools.errors import InputError

BENCHMARKS = ("shapes", "mmeb-v2", "mrmr")


def benchmark_sources(
    benchmark: str,
    data: Path | None,
    split: str = "test",
    seed: int = 0,
    limit: int | None = None,
    num_frames: int = 8,
    query_instruction: str | None = None,
    doc_instruction: str | None = None,
    per_subtask: int | None = None,
    style: str | None = None,
) -> list[TaskSource]:
    """The tasks of a benchmark, by name, not yet read (Shapes: `per_subtask` for the balanced split,
    `style` for a rendering variant; see `formats.shapes_tasks`).

    Raises:
        InputError: an unknown benchmark, a `limit` below 1, or a file benchmark without `data`.
    """
    from lame_tools.data import formats

    if limit is not None and limit < 1:
        raise InputError("--limit must be at least 1.")
    if benchmark == "shapes":
        if per_subtask is not None and per_subtask < 1:
            raise InputError("--per-subtask must be at least 1.")
        return formats.shapes_tasks(seed, split, limit, per_subtask, style)
    if data is None:
        raise InputError(f"The {benchmark} benchmark needs --data DIR (see the README for where to download it).")
    if benchmark == "mmeb-v2":
        return formats.mmeb_v2_tasks(data, limit, num_frames, query_instruction, doc_instruction)
    if benchmark == "mrmr":
        return formats.mrmr_tasks(data, limit, query_instruction, doc_instruction)
    raise InputError(f"Unknown benchmark {benchmark!r}; expected one of {', '.join(BENCHMARKS)}.")


def select_tasks(sources: list[TaskSource], names: Sequence[str] | None) -> list[TaskSource]:
    """The sources named in `names` (all of them when `names` is empty), in benchmark order.

    Raises:
        InputError: a name the benchmark does not have.
    """
    if not names:
        return sources
    known = {s.name for s in sources}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"Unknown task {unknown[0]!r}; this benchmark has: {', '.join(sorted(known))}.")
    return [s for s in sources if s.name in set(names)]
