"""Benchmark: a 10,000-image folder gallery (`app.py --gallery DIR`): embedding time, and search p50 /
p95 while it embeds in the background and once it is done.

    .venv/bin/python scripts/bench_gallery.py                    # 10,000 Shapes scenes as PNG files
    .venv/bin/python scripts/bench_gallery.py --n 2000 --queries 30

The images are written once to --folder (reused by later runs); the embedding cache goes to a fresh
temporary folder, so every run embeds from scratch. A search is what the Retrieve tab does for a
text query: encode the query, then top-10 over the gallery (`search_many`). Writes
assets/benchmarks/gallery_folder_<hardware>.json with the hardware and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lame_tools.data.shapes import make_example, render  # noqa: E402
from lame_tools.demo.gallery import FolderGallery, search_many  # noqa: E402
from lame_tools.model import LameModel  # noqa: E402
from lame_tools.timing import hardware_info, summarize  # noqa: E402

QUERIES = ["a red circle", "a blue square and a green triangle", "three objects", "a yellow star", "two circles"]


def write_images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"scene-{i:05d}.png"
        if not path.is_file():
            render(make_example(7, "test", i).scene).save(path)


def timed_searches(
    gallery: FolderGallery, model: LameModel, n: int, stop: threading.Event | None = None
) -> list[float]:
    times = []
    for i in range(n):
        if stop is not None and stop.is_set():
            break
        start = time.perf_counter()
        query = model.encode(texts=[QUERIES[i % len(QUERIES)]], mode="latent")
        search_many([gallery], query, model, "latent", "image", 10)
        times.append((time.perf_counter() - start) * 1000)
        if stop is not None:
            time.sleep(0.2)  # a user's pace, not a flood
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "lame-bench-gallery")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    folder = args.folder / f"n{args.n}"
    t0 = time.perf_counter()
    write_images(folder, args.n)
    write_s = time.perf_counter() - t0
    model = LameModel.from_pretrained(Path(__file__).resolve().parent.parent / "assets" / "models" / "lame-shapes")
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        gallery = FolderGallery(folder, cache_dir=cache)
        list_s = time.perf_counter() - t0
        done = threading.Event()

        def embed() -> None:
            gallery.index(model, "latent", "image")
            done.set()

        t0 = time.perf_counter()
        worker = threading.Thread(target=embed)
        worker.start()
        time.sleep(1.0)
        during = timed_searches(gallery, model, args.queries, stop=done)
        worker.join()
        embed_s = time.perf_counter() - t0
        after = timed_searches(gallery, model, args.queries)
    report = {
        "benchmark": "gallery_folder",
        "date": time.strftime("%Y-%m-%d"),
        "hardware": hardware_info(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "images": args.n,
        "write_pngs_s": write_s,
        "list_and_hash_s": list_s,
        "embed_s": embed_s,
        "embed_images_per_s": args.n / embed_s,
        "search_ms_during_embedding": summarize(during) if during else None,
        "search_ms": summarize(after),
        "search_ms_p95": float(np.percentile(after, 95)),
        "search": "encode one text query + top-10 over the folder's images (search_many), one at a time",
    }
    out = args.out or Path(__file__).resolve().parent.parent / "assets" / "benchmarks" / "gallery_folder_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "hardware"}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
