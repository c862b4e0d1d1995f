"""Benchmark: the numpy `EmbeddingIndex` against the FAISS index (exact, HNSW, IVF) on large corpora.

    .venv/bin/python scripts/bench_index.py                       # 100k x 128, 1M x 128, 100k x 1536
    .venv/bin/python scripts/bench_index.py --sizes 100000x128 --queries 50

Per corpus size and backend: build time, memory (resident-set growth while building), p50 / p95
latency of one query at a time (top 10), and recall@10 against exact search. The vectors are
unit-norm points around 1,000 random centres (clustered like real embeddings; uniformly random
vectors have no neighbours to find and make every approximate index look bad). HNSW is built on
the 100k corpora only unless --hnsw-all (its 1M build takes minutes on two cores). Writes
assets/benchmarks/index_<hardware>.json with the hardware and the load average it ran under.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lame_tools.faiss_index import FaissIndex  # noqa: E402
from lame_tools.index import EmbeddingIndex  # noqa: E402
from lame_tools.timing import hardware_info, summarize  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def clustered(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        block = centres[rng.integers(0, len(centres), m)] + 0.5 / np.sqrt(dim) * rng.standard_normal(
            (m, dim), np.float32
        )
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def measure(name: str, build, queries: np.ndarray, truth: np.ndarray | None) -> tuple[dict, np.ndarray]:
    gc.collect()
    before, start = rss_mb(), time.perf_counter()
    index = build()
    build_s, memory = time.perf_counter() - start, rss_mb() - before
    latencies, found = [], []
    for query in queries:
        t0 = time.perf_counter()
        _, ids = index.search(query, 10)
        latencies.append((time.perf_counter() - t0) * 1000)
        found.append(ids[0])
    found = np.asarray(found)
    recall = 1.0 if truth is None else float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
    stats = summarize(latencies)
    row = {
        "backend": name,
        "build_s": build_s,
        "memory_mb": memory,
        "query_ms_p50": stats["median"],
        "query_ms_p95": float(np.percentile(latencies, 95)),
        "recall_at_10": recall,
        "queries": len(queries),
    }
    print(
        f"  {name:12s} build {build_s:7.2f} s  mem {memory:7.0f} MB  p50 {row['query_ms_p50']:7.3f} ms  "
        f"p95 {row['query_ms_p95']:7.3f} ms  recall@10 {recall:.3f}",
        flush=True,
    )
    del index
    return row, found


def bench_size(n: int, dim: int, n_queries: int, hnsw: bool) -> dict:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, dim)).astype(np.float32) / np.sqrt(dim)
    data = clustered(n, dim, rng, centres)
    queries = clustered(n_queries, dim, rng, centres)
    print(f"{n} x {dim}", flush=True)

    def numpy_index():
        index = EmbeddingIndex(dim)
        index.add(data)
        return index

    def faiss_index(kind):
        def build():
            index = FaissIndex(dim, kind=kind)
            index.add(data)
            return index

        return build

    rows = []
    row, truth = measure("numpy exact", numpy_index, queries, None)
    rows.append(row)
    for kind in ("exact", *(("hnsw",) if hnsw else ()), "ivf"):
        rows.append(measure(f"faiss {kind}", faiss_index(kind), queries, truth)[0])
    return {"n": n, "dim": dim, "results": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["100000x128", "1000000x128", "100000x1536"])
    parser.add_argument("--queries", type=int, default=100, help="single queries timed per backend")
    parser.add_argument("--hnsw-all", action="store_true", help="build HNSW on every size (slow at 1M)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import faiss

    load_before = os.getloadavg()
    started = time.perf_counter()
    cases = []
    for size in args.sizes:
        n, dim = (int(v) for v in size.lower().split("x"))
        cases.append(bench_size(n, dim, args.queries, args.hnsw_all or n <= 200_000))
    hardware = hardware_info()
    report = {
        "benchmark": "index",
        "date": time.strftime("%Y-%m-%d"),
        "hardware": hardware,
        "faiss": faiss.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "seconds": time.perf_counter() - started,
        "data": "unit-norm points around 1,000 random centres; queries from the same distribution; top 10",
        "cases": cases,
    }
    slug = "cpu" if "gpu" not in hardware else hardware["gpu"].lower().replace(" ", "-")
    out = args.out or Path(__file__).resolve().parent.parent / "assets" / "benchmarks" / f"index_{slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"wrote {out} ({report['seconds']:.0f} s, load average {load_before[0]:.2f} -> {report['load_average_after'][0]:.2f})"
    )


if __name__ == "__main__":
    main()
