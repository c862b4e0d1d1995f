"""Safe decoding of user inputs: images from paths, bytes or PIL objects, and text.

Anything a user uploads passes through here before it reaches a model. Failures raise `InputError`
with one sentence; obvious fixes are applied silently (mode conversion) or with a warning
(downscaling a large image, truncating long text).
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lame_tools.errors import InputError

MAX_FILE_BYTES = 25 * 1024 * 1024
# Images above this many pixels are refused before decoding (a 20000x20000 PNG is 400M pixels and
# would need gigabytes); anything smaller but larger than MAX_SIDE is downscaled after decoding.
MAX_DECODE_PIXELS = 40_000_000
MAX_SIDE = 2048
MAX_TEXT_CHARS = 4000
EXIF_ORIENTATION = 0x0112  # the EXIF tag of how a camera held the picture
# Characters that print as nothing: zero-width space / non-joiner / joiner, word joiner, BOM, soft hyphen.
ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")


@dataclass
class Item:
    """One input to embed: an image, a text, or both, with an optional task instruction."""

    image: Image.Image | None = None
    text: str | None = None
    instruction: str | None = None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, flattening alpha onto white and rescaling 16/32-bit data."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = np.zeros_like(array) if high <= low else (array - low) / (high - low) * 255.0
        image = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image if image.mode == "RGB" else image.convert("RGB")  # no copy of an RGB image


def _read_source(source: object, name: str) -> tuple[bytes, str]:
    """The bytes of a path or bytes source, and `name` with the file's name added once ("image 'a.png'")."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"The {name} file {path.name!r} does not exist.")
        size = path.stat().st_size
        if size == 0:
            raise InputError(f"The {name} file {path.name!r} is empty (0 bytes).")
        if size > MAX_FILE_BYTES:
            raise InputError(f"The {name} file {path.name!r} is larger than {MAX_FILE_BYTES // 2**20} MB.")
        return path.read_bytes(), f"{name} {path.name!r}"
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise InputError(f"The {name} is empty (0 bytes).")
        return bytes(source), name
    raise InputError(f"The {name} must be a file path, bytes or an image, not {type(source).__name__}.")


def _open(data: bytes, name: str) -> Image.Image:
    """Open (not yet decode) encoded image bytes; `name` already says which file."""
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise InputError(
            f"The {name} is too large to decode; images above {MAX_DECODE_PIXELS // 1_000_000} megapixels are refused."
        ) from None
    except UnidentifiedImageError:
        raise InputError(f"The {name} is not an image file Pillow can read.") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's fault
        raise InputError(f"The {name} could not be opened ({type(exc).__name__}).") from None


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF Orientation tag says (unchanged when the tag is absent or unreadable)."""
    try:
        if image.getexif().get(EXIF_ORIENTATION, 1) == 1:
            return image  # upright already: no copy
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block is no reason to refuse the pixels
        return image


def load_image(source: object, name: str = "image") -> Image.Image:
    """Decode `source` (a path, bytes, a PIL image or an HxWx{1,3,4} uint8 array) into an RGB image.

    The EXIF orientation tag is applied (a phone photo comes out the way a viewer shows it).

    Raises:
        InputError: the file is missing, empty, not an image, corrupt, or too large to decode.
    """
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or source.size == 0:
            raise InputError(f"The {name} array must be HxW or HxWxC with at least one pixel.")
        image = Image.fromarray(source.astype(np.uint8) if source.dtype != np.uint8 else source)
    else:
        data, name = _read_source(source, name)
        image = _open(data, name)
    width, height = image.size
    if width * height > MAX_DECODE_PIXELS:
        raise InputError(
            f"The {name} is {width}x{height} pixels; images above {MAX_DECODE_PIXELS // 1_000_000} megapixels are refused."
        )
    if width < 1 or height < 1:
        raise InputError(f"The {name} has no pixels.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            image = _to_rgb(_upright(image))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"The {name} is corrupt or truncated and could not be decoded ({type(exc).__name__}).") from None
    if max(image.size) > MAX_SIDE:
        scale = MAX_SIDE / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)
    if max(image.size) / min(image.size) > 50:
        raise InputError(f"The {name} is {width}x{height}; aspect ratios above 50:1 are not supported.")
    return image


def clean_text_noted(text: object, name: str = "text", allow_empty: bool = False) -> tuple[str, str | None]:
    """`clean_text` without the warning: (the cleaned text, the sentence saying it was cut, or None).

    For callers that show the note themselves: the warnings machinery is process-global, so a server
    whose handlers and background work share threads cannot rely on catching a warning in one of them."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(f"The {name} must be a string, not {type(text).__name__}.")
    cleaned = " ".join(ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text)).split())
    if not cleaned and not allow_empty:
        raise InputError(f"The {name} is empty.")
    if len(cleaned) <= MAX_TEXT_CHARS:
        return cleaned, None
    note = f"The {name} has {len(cleaned)} characters; only the first {MAX_TEXT_CHARS} are used."
    cut = cleaned[: MAX_TEXT_CHARS + 1]
    # drop the word the cut went through (unless the text is one long word)
    return (cut.rsplit(" ", 1)[0] if " " in cut[:MAX_TEXT_CHARS] else cut[:MAX_TEXT_CHARS]), note


def clean_text(text: object, name: str = "text", allow_empty: bool = False) -> str:
    """Normalise the text (NFKC, zero-width characters removed, whitespace runs made one space); refuse
    empty text unless allowed; cut very long text at a word boundary, with a warning."""
    cleaned, note = clean_text_noted(text, name, allow_empty)
    if note:
        warnings.warn(note, stacklevel=2)
    return cleaned


def make_items(
    images: Iterable[Any] | None = None,
    texts: Iterable[str | None] | None = None,
    instruction: str | list[str | None] | None = None,
) -> list[Item]:
    """Validate and align user inputs into items (images decoded safely, text cleaned).

    Raises:
        InputError: mismatched lengths, an item with neither image nor text, or a bad image/text.
    """
    images = list(images) if images is not None else None
    texts = list(texts) if texts is not None else None
    if images is None and texts is None:
        raise InputError("Give at least one image or one text to embed.")
    n = len(images if images is not None else texts)
    if images is not None and texts is not None and len(images) != len(texts):
        raise InputError(f"Got {len(images)} images but {len(texts)} texts; pair them one to one or pass None entries.")
    images = images if images is not None else [None] * n
    texts = texts if texts is not None else [None] * n
    instructions = instruction if isinstance(instruction, list) else [instruction] * n
    if len(instructions) != n:
        raise InputError(f"Got {len(instructions)} instructions for {n} inputs.")
    items = []
    for i, (image, text, inst) in enumerate(zip(images, texts, instructions)):
        decoded = load_image(image, name=f"image {i + 1}") if image is not None else None
        cleaned = clean_text(text, name=f"text {i + 1}", allow_empty=decoded is not None)
        items.append(Item(decoded, cleaned or None, clean_text(inst, allow_empty=True) or None))
    return items
