"""The few Gradio pieces the app needs beyond stock components (the only module here importing gradio).

`SafeImage` is `gr.Image` with one change: the server never decodes the upload itself. Stock
`gr.Image` opens every upload with Pillow before the handler runs, so a corrupt file, a text file
named .png or a 20000x20000 image fails inside Gradio with a generic error. `SafeImage` hands the
handler the uploaded file's path (or the bytes of a data URL), and the handler decodes it with
`lame_tools.inputs.load_image`, which refuses such files with one clear sentence.
"""

from __future__ import annotations

import base64
from typing import Any

import gradio as gr

from gradio.events import Dependency

class SafeImage(gr.Image):
    """An image input whose value reaches the handler undecoded: a file path, or bytes, or None."""

    # A template component renders with its parent's front-end (`gr.Image`).
    is_template = True

    def preprocess(self, payload: Any) -> str | bytes | None:  # type: ignore[override]
        """The uploaded file's path (or a data URL's bytes); decoding is the handler's job."""
        if payload is None:
            return None
        url = getattr(payload, "url", None)
        if url and url.startswith("data:"):
            try:
                return base64.b64decode(url.split(",", 1)[1], validate=False)
            except (ValueError, IndexError):
                raise gr.Error("The image data URL could not be decoded.") from None
        path = getattr(payload, "path", None)
        if not path:
            raise gr.Error("The image upload did not arrive; try again.")
        return str(path)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component