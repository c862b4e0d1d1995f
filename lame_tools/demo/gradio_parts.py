"""The few Gradio pieces the app needs beyond stock components (the only module here importing gradio).

`safe_image` makes a `gr.Image` whose server side never decodes the upload itself. Stock `gr.Image`
opens every upload with Pillow before the handler runs, so a corrupt file, a text file named .png
or a 20000x20000 image fails inside Gradio with a generic error. This one hands the handler the
uploaded file's path (or the bytes of a data URL), and the handler decodes it with
`lame_tools.inputs.load_image`, which refuses such files with one clear sentence.

(The component's `preprocess` is replaced on the instance, not in a subclass: Gradio writes a
`.pyi` stub next to every module that subclasses a component.)
"""

from __future__ import annotations

import base64
import types
from typing import Any

import gradio as gr


def _undecoded(self: gr.Image, payload: Any) -> str | bytes | None:
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


def safe_image(**kwargs: Any) -> gr.Image:
    """A `gr.Image` input (type "filepath") whose value reaches the handler undecoded."""
    kwargs.setdefault("type", "filepath")
    image = gr.Image(**kwargs)
    image.preprocess = types.MethodType(_undecoded, image)  # type: ignore[method-assign]
    return image
