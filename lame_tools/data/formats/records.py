"""Reading benchmark files: JSONL / parquet / TSV rows, and the image references they name
(paths under a list of roots, video frame folders, images embedded in parquet rows)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from lame_tools.errors import InputError
from lame_tools.inputs import load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
DEFAULT_NUM_FRAMES = 8  # MMEB-v2 samples 8 frames per video


def read_records(path: Path) -> list[dict]:
    """Rows of a JSONL file, or of a parquet file when pyarrow is installed.

    Raises:
        InputError: unreadable file, a line that is not a JSON object, or parquet without pyarrow.
    """
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError(
                f"Reading {str(path)!r} needs pyarrow (pip install pyarrow), or convert it to JSONL."
            ) from None
        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 - any parquet failure is the file's fault
            raise InputError(f"{str(path)!r} is not a readable parquet file ({type(exc).__name__}).") from None
    if path.suffix == ".tsv":
        return _read_tsv(path)
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{str(path)!r} could not be read ({type(exc).__name__}).") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise InputError(f"{str(path)!r} line {number} is not valid JSON.") from None
        if not isinstance(row, dict):
            raise InputError(f"{str(path)!r} line {number} is not a JSON object.")
        rows.append(row)
    return rows


def _read_tsv(path: Path) -> list[dict]:
    """BEIR qrels: a header line (query-id, corpus-id, score) then tab-separated rows."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{str(path)!r} could not be read ({type(exc).__name__}).") from None
    if not lines:
        raise InputError(f"{str(path)!r} is empty.")
    header = lines[0].split("\t")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(header):
            raise InputError(f"{str(path)!r} line {number} has {len(cells)} columns but the header has {len(header)}.")
        rows.append(dict(zip(header, cells)))
    return rows


def record_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".jsonl", ".parquet", ".tsv"))


class ImageStore:
    """Resolves the image references of benchmark files: paths relative to a list of roots, frame
    folders (videos), and images embedded in parquet rows (Hugging Face `{"bytes", "path"}` structs).

    References handed to the harness are absolute paths or `embedded:<n>` keys; `load` decodes one.
    """

    def __init__(self, roots: list[Path], num_frames: int = DEFAULT_NUM_FRAMES) -> None:
        self.roots = [Path(r) for r in roots]
        self.num_frames = num_frames
        self.embedded: dict[str, bytes] = {}
        self._found: dict[str, Path | None] = {}

    def _find(self, path: str) -> Path | None:
        if path not in self._found:
            candidate = Path(path)
            options = [candidate] if candidate.is_absolute() else [root / candidate for root in self.roots]
            self._found[path] = next((o for o in options if o.exists()), None)
        return self._found[path]

    def frames(self, folder: Path, what: str) -> tuple[str, ...]:
        """`num_frames` frames sampled uniformly (first and last included) from a folder of frames."""
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{what} frame folder {str(folder)!r} holds no image files.")
        count = min(self.num_frames, len(files))
        picks = sorted({round(i * (len(files) - 1) / max(count - 1, 1)) for i in range(count)})
        return tuple(str(files[i]) for i in picks)

    def resolve(self, value: object, what: str) -> tuple[str, ...]:
        """Image references for one field value: "" / None -> none; a path; a frame folder; a list of
        paths (frames); a `{"bytes": ...}` struct.

        Raises:
            InputError: a path or folder that does not exist (naming `what`: file and row).
        """
        if value is None or (isinstance(value, str) and not value.strip()):
            return ()
        if isinstance(value, dict):
            if value.get("bytes"):
                key = f"embedded:{len(self.embedded)}"
                self.embedded[key] = bytes(value["bytes"])
                return (key,)
            return self.resolve(value.get("path"), what)
        if isinstance(value, (list, tuple)):
            return tuple(ref for item in value for ref in self.resolve(item, what))
        if not isinstance(value, str):
            raise InputError(f"{what} image field holds {type(value).__name__}, not a path.")
        found = self._find(value)
        if found is None:
            raise InputError(f"{what} image {value!r} does not exist under {', '.join(str(r) for r in self.roots)}.")
        return self.frames(found, what) if found.is_dir() else (str(found),)

    def load(self, ref: str) -> Image.Image:
        source = self.embedded[ref] if ref in self.embedded else ref
        return load_image(source, name=f"benchmark image {ref if ref in self.embedded else Path(ref).name}")
