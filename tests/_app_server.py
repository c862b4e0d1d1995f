"""Helpers shared by the app's integration and browser tests: load `app.py` (or a script), launch it,
bad files.

(Not a test module: pytest puts `tests/` on sys.path, so the test files import this by name.)
"""

from __future__ import annotations

import importlib.util
import io
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from unittest import mock

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def import_file(path: Path, module_name: str) -> ModuleType:
    """Import a Python file (app.py, a script under scripts/) as a fresh module named `module_name`."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # as `import` does (dataclasses look their module up there)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def load_app(module_name: str = "lame_app") -> ModuleType:
    """Import `app.py` as a fresh module (so each import sees the current `spaces` in sys.modules)."""
    return import_file(ROOT / "app.py", module_name)


@contextmanager
def running_app(workdir: Path, gallery_size: int = 40, max_queue: int = 64, fit_map: bool = True) -> Iterator[tuple[str, object]]:
    """The real app (shipped models, a small corpus) on 127.0.0.1 and a free port; closed afterwards.
    UMAP fits are cached inside `workdir`, not in the user's ~/.cache."""
    from lame_tools.demo.service import DemoService

    app = load_app()
    with mock.patch.dict(os.environ, {"LAME_CACHE_DIR": str(workdir / "cache")}):
        service = DemoService.create(gallery_size=gallery_size, workdir=workdir, device="cpu", fit_map=fit_map,
                                     background_modes=())
        demo = app.serve(service, concurrency=1, max_queue=max_queue, server_name="127.0.0.1", server_port=None,
                         prevent_thread_lock=True, quiet=True)
        try:
            yield demo.local_url, service
        finally:
            demo.close()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit greyscale PNG of width x height (all black; about 50 KB), built without Pillow."""
    row = b"\x00" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def bad_files(folder: Path) -> dict[str, Path]:
    """The foundation issue's bad uploads, as files: name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(good, format="PNG")
    files = {
        "corrupt.png": good.getvalue()[:60] + b"\x00garbage" * 40,
        "zero.png": b"",
        "text.png": b"this is a text file, not an image\n",
        "huge.png": huge_png(),
    }
    paths = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    return paths


def odd_images(folder: Path) -> dict[str, Path]:
    """Images that must be handled, not refused: RGBA, greyscale, 16-bit greyscale."""
    folder.mkdir(parents=True, exist_ok=True)
    images = {
        "rgba.png": Image.new("RGBA", (60, 40), (255, 0, 0, 100)),
        "grey.png": Image.new("L", (60, 40), 120),
        "grey16.png": Image.fromarray((np.arange(60 * 40).reshape(40, 60) * 25).astype(np.uint16)),
    }
    paths = {}
    for name, image in images.items():
        image.save(folder / name)
        paths[name] = folder / name
    return paths
