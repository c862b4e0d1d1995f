"""Figure export for papers: HTML (offline), PNG and SVG through the system Chromium, and the data as CSV / NPZ.

PNG and SVG go through kaleido driving the machine's own Chromium (`chromium_path`:
$LAME_CHROMIUM, else /usr/bin/chromium, else one on PATH). kaleido is handed that path, so it never
looks for (or downloads) a browser of its own, and MathJax is switched off so the page it renders
fetches nothing (plotly.js comes from the plotly package). Without a Chromium, PNG/SVG export fails
with one sentence and HTML still works. `lame_tools.viz` re-exports everything here.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from lame_tools.atomic import atomic_write, atomic_write_text
from lame_tools.errors import InputError


def save_figure(fig: go.Figure, path: str | os.PathLike) -> Path:
    """Write a figure as self-contained HTML (plotly.js inlined, so it opens offline)."""
    return atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))


IMAGE_FORMATS = ("png", "svg")
FIGURE_FORMATS = ("html", *IMAGE_FORMATS)
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    """The Chromium kaleido drives: $LAME_CHROMIUM, else /usr/bin/chromium, else one on PATH; None if none."""
    for candidate in (os.environ.get("LAME_CHROMIUM"), *CHROMIUM_CANDIDATES):
        found = candidate and (candidate if os.path.isfile(candidate) else shutil.which(candidate))
        if found and os.access(found, os.X_OK):
            return found
    return None


def kaleido_options() -> dict[str, object]:
    """kaleido's options: the system Chromium and no MathJax (nothing fetched).

    Raises:
        InputError: no Chromium on this machine, or kaleido not installed.
    """
    browser = chromium_path()
    if browser is None:
        raise InputError("PNG and SVG export needs Chromium (none at /usr/bin/chromium or on PATH; set "
                         "LAME_CHROMIUM to one); HTML export works without it.")
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise InputError("PNG and SVG export needs kaleido: pip install kaleido==1.5.0.") from None
    return {"path": browser, "mathjax": False}


def image_options(fig: go.Figure, fmt: str, width: int | None, height: int | None, scale: float) -> dict[str, object]:
    if fmt not in IMAGE_FORMATS:
        raise InputError(f"Figures render as {' or '.join(IMAGE_FORMATS)} images, not {fmt!r}.")
    return {"format": fmt, "width": width or fig.layout.width or 900, "height": height or fig.layout.height or 600,
            "scale": scale}


def figure_bytes(fig: go.Figure, fmt: str = "png", width: int | None = None, height: int | None = None,
                 scale: float = 2.0) -> bytes:
    """A figure rendered as PNG or SVG by kaleido in the system Chromium (never a downloaded one).

    Raises:
        InputError: an unknown format, kaleido missing, or no Chromium on this machine.
    """
    import kaleido

    opts = image_options(fig, fmt, width, height, scale)
    return kaleido.calc_fig_sync(fig.to_dict(), opts=opts, kopts=kaleido_options())


def write_images(jobs: Sequence[tuple[go.Figure, str, Path]], width: int | None = None, height: int | None = None,
                 scale: float = 2.0) -> list[Path]:
    """Render (figure, format, path) jobs in ONE Chromium session (starting it costs seconds); each file
    is written into a temporary folder beside its target and then renamed into place."""
    if not jobs:
        return []
    kopts = kaleido_options()
    import kaleido

    specs, moves = [], []
    staging = Path(tempfile.mkdtemp(prefix=".lame-figures-", dir=Path(jobs[0][2]).parent))
    try:
        for n, (fig, fmt, path) in enumerate(jobs):
            temporary = staging / f"{n}.{fmt}"
            specs.append({"fig": fig.to_dict(), "path": temporary, "opts": image_options(fig, fmt, width, height, scale)})
            moves.append((temporary, Path(path)))
        kaleido.write_fig_from_object_sync(specs, kopts=kopts, cancel_on_error=True)
        for temporary, path in moves:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [path for _, path in moves]


def export_figure(fig: go.Figure, stem: str | os.PathLike, formats: Sequence[str] = FIGURE_FORMATS,
                  width: int | None = None, height: int | None = None) -> list[Path]:
    """Write `stem`.html / .png / .svg (the formats asked for); returns the paths written."""
    return export_figures({stem: fig}, formats, width, height)


def export_figures(figures: Mapping[str | os.PathLike, go.Figure], formats: Sequence[str] = FIGURE_FORMATS,
                   width: int | None = None, height: int | None = None) -> list[Path]:
    """`export_figure` for several figures (stem -> figure), their images rendered in one session."""
    unknown = [f for f in formats if f not in FIGURE_FORMATS]
    if unknown:
        raise InputError(f"Export formats are {', '.join(FIGURE_FORMATS)}, not {unknown[0]!r}.")
    paths, jobs = [], []
    for stem, fig in figures.items():
        stem = Path(stem)
        for fmt in formats:
            path = stem.with_name(stem.name + "." + fmt)
            paths.append(path)
            if fmt == "html":
                save_figure(fig, path)
            else:
                jobs.append((fig, fmt, path))
    write_images(jobs, width, height)
    return paths


def rows_to_csv(rows: Sequence[Mapping[str, object]]) -> str:
    """CSV text of a list of dicts (the first row's keys are the columns)."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def save_data(path: str | os.PathLike, data: Sequence[Mapping[str, object]] | Mapping[str, np.ndarray]) -> Path:
    """The data behind a figure: rows (a list of dicts) as `.csv`, or named arrays (a dict) as `.npz`."""
    path = Path(path)
    if path.suffix not in (".csv", ".npz") or (path.suffix == ".npz") != isinstance(data, Mapping):
        raise InputError("Data export writes rows (a list of dicts) as .csv or named arrays (a dict) as .npz.")
    if isinstance(data, Mapping):
        arrays = {k: np.asarray(v) for k, v in data.items()}
        return atomic_write(path, lambda f: np.savez(f, **arrays))
    return atomic_write_text(path, rows_to_csv(list(data)))
