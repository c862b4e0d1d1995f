"""The few Gradio pieces the app needs beyond stock components (the only module here importing gradio).

`safe_image` makes a `gr.Image` whose server side never decodes the upload itself. Stock `gr.Image`
opens every upload with Pillow before the handler runs, so a corrupt file, a text file named .png
or a 20000x20000 image fails inside Gradio with a generic error. This one hands the handler the
uploaded file's path (or the bytes of a data URL), and the handler decodes it with
`lame_tools.inputs.load_image`, which refuses such files with one clear sentence.

`guard_inputs` makes malformed API calls (a plain string where a file is expected, k="seven", a
value outside a dropdown's choices) answer with one sentence naming the input, as `gr.Error` with
`print_exception=False` (no traceback in the server log), where Gradio would answer a bare "Error"
and log a traceback. A number sent as a string ("7") is read as the number.

(The component's `preprocess` is replaced on the instance, not in a subclass: Gradio writes a
`.pyi` stub next to every module that subclasses a component.)
"""

from __future__ import annotations

import base64
import functools
import types
from collections.abc import Iterable
from typing import Any

import gradio as gr
from pydantic import ValidationError


def _undecoded(self: gr.Image, payload: Any) -> str | bytes | None:
    """The uploaded file's path (or a data URL's bytes); decoding is the handler's job."""
    if payload is None:
        return None
    url = getattr(payload, "url", None)
    if url and url.startswith("data:"):
        try:
            return base64.b64decode(url.split(",", 1)[1], validate=False)
        except (ValueError, IndexError):
            raise gr.Error("The image data URL could not be decoded.", print_exception=False) from None
    path = getattr(payload, "path", None)
    if not path:
        raise gr.Error("The image upload did not arrive; try again.", print_exception=False)
    return str(path)


def safe_image(**kwargs: Any) -> gr.Image:
    """A `gr.Image` input (type "filepath") whose value reaches the handler undecoded."""
    kwargs.setdefault("type", "filepath")
    image = gr.Image(**kwargs)
    image.preprocess = types.MethodType(_undecoded, image)  # type: ignore[method-assign]
    return image


def _label(component: gr.components.Component) -> str:
    return str(getattr(component, "label", None) or getattr(component, "elem_id", None) or type(component).__name__.lower())


def _refusal(message: str) -> gr.Error:
    return gr.Error(message, print_exception=False)


def _checked_data_model(model: type, label: str) -> type:
    """`model` (the component's payload model) whose validation refuses a malformed payload in one sentence."""
    files = issubclass(model, (gr.data_classes.FileData, gr.data_classes.ListFiles, gr.data_classes.ImageData))

    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any):
        try:
            return model.model_validate(obj, *args, **kwargs)
        except ValidationError:
            got = "text" if isinstance(obj, str) else type(obj).__name__
            if files:
                raise _refusal(f"The {label} input must be an uploaded file, not {got} (gradio_client: handle_file(path)).") from None
            raise _refusal(f"The {label} input does not have the form this input takes ({got} given).") from None

    return type(model.__name__, (model,), {"model_validate": classmethod(model_validate), "__module__": model.__module__})


def _checked_preprocess(component: gr.components.Component) -> None:
    """Wrap the component's `preprocess`: numbers sent as strings are read, failures become one sentence."""
    original, label = component.preprocess, _label(component)
    numeric = isinstance(component, (gr.Slider, gr.Number))

    @functools.wraps(original)
    def preprocess(payload: Any) -> Any:
        if numeric and isinstance(payload, str):
            try:
                payload = float(payload)
            except ValueError:
                raise _refusal(f"The {label} input must be a number, not {payload[:40]!r}.") from None
        try:
            return original(payload)
        except gr.Error as exc:
            exc.print_exception = False
            raise
        except Exception as exc:  # noqa: BLE001 - anything a payload can break in Gradio's own preprocessing
            raise _refusal(f"The {label} input could not be read ({type(exc).__name__}).") from None

    component.preprocess = preprocess  # type: ignore[method-assign]


def guard_inputs(components: Iterable[Any]) -> None:
    """Make each input component refuse a malformed API value with one sentence (see the module doc).

    Applied once to every block of the app (`guard_inputs(demo.blocks.values())`); states, layouts and
    components already guarded are skipped.
    """
    for component in components:
        if not isinstance(component, gr.components.Component) or isinstance(component, gr.State):
            continue
        if getattr(component, "lame_guarded", False):
            continue
        model = getattr(component, "data_model", None)
        if model is not None:
            component.data_model = _checked_data_model(model, _label(component))
        _checked_preprocess(component)
        component.lame_guarded = True
