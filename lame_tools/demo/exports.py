"""Download files for the app: CSV for tables, NPZ for arrays, JSON for records.

Each call writes a new, uniquely named file into the app's own output folder (atomically), so two
sessions never overwrite each other's downloads.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lame_tools.atomic import atomic_write, atomic_write_json, atomic_write_text


def unique_path(folder: str | Path, stem: str, suffix: str) -> Path:
    """A new file name in `folder`: `stem` made file-safe, a random tag, then `suffix`."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)[:60] or "download"
    return Path(folder) / f"{safe}-{uuid.uuid4().hex[:8]}{suffix}"


def write_csv(folder: str | Path, stem: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Rows of dicts as a CSV with a header (columns: `columns`, else the first row's keys)."""
    columns = list(columns or (rows[0].keys() if rows else []))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(unique_path(folder, stem, ".csv"), buffer.getvalue())


def write_npz(folder: str | Path, stem: str, arrays: Mapping[str, Any]) -> Path:
    """Named arrays as a compressed NPZ (strings become unicode arrays; readable without pickle)."""
    clean = {name: np.asarray(value) for name, value in arrays.items()}
    for name, value in clean.items():
        if value.dtype == object:
            raise ValueError(f"array {name!r} has dtype object, which np.load cannot read without pickle")
    return atomic_write(unique_path(folder, stem, ".npz"), lambda f: np.savez_compressed(f, **clean))


def write_text(folder: str | Path, stem: str, suffix: str, text: str) -> Path:
    """Ready-made text (e.g. a probe's own CSV) as a download with the given suffix (".csv")."""
    return atomic_write_text(unique_path(folder, stem, suffix), text)


def write_json(folder: str | Path, stem: str, record: Any) -> Path:
    """A JSON record (sorted keys, indented)."""
    return atomic_write_json(unique_path(folder, stem, ".json"), record)
