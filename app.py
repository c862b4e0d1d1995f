"""LaME demo: retrieval, reason-token attention, embedding map, latency race, probes (layout and wiring only).

Run:  python app.py [--model DIR_OR_ID] [--allow-hub] [--trust-remote-code]
Host and port come from Gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT when set.
Everything the handlers compute lives in `lame_tools` (`lame_tools.demo` for the app's services);
this file only lays out components and connects them. On a ZeroGPU Space, handlers that run a
model are wrapped with `spaces.GPU` and share one concurrency id; elsewhere they run as they are.
"""

from __future__ import annotations

try:  # ZeroGPU on Hugging Face Spaces; `spaces` must be imported before torch.
    import spaces
except ImportError:
    spaces = None

import argparse
import os
from collections.abc import Callable
from typing import Any

import gradio as gr

from lame_tools.demo.gradio_parts import SafeImage
from lame_tools.demo.service import AUTO, MAX_K, MODE_LABELS, TASK_INSTRUCTIONS, DemoService, words_markdown
from lame_tools.errors import LameError

GPU_DURATION_S = 60
GPU_CONCURRENCY_ID = "gpu"  # one id for every event that runs a model: they share the device
MAX_UPLOAD = "10mb"
CSS = """
#results-gallery {min-height: 260px}
.lame-note {font-size: 0.9em; opacity: 0.85}
"""


def on_gpu(fn: Callable) -> Callable:
    """`spaces.GPU` where the `spaces` package exists (ZeroGPU), else the function unchanged."""
    if spaces is None:
        return fn
    return spaces.GPU(duration=GPU_DURATION_S)(fn)


def user_errors(fn: Callable) -> Callable:
    """Turn `LameError` (a user's mistake, one sentence) into `gr.Error`; anything else is a bug and propagates."""
    import functools
    import inspect

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def wrapped_gen(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except LameError as exc:
                raise gr.Error(str(exc), print_exception=False) from None

        return wrapped_gen

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except LameError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    return wrapped


def build_app(service: DemoService, concurrency: int = 1) -> gr.Blocks:
    """Lay out the six tabs and wire their events to `service`.

    Args:
        service: models, corpus and actions (`DemoService.create`).
        concurrency: how many model events run at once (one id for all of them).
    """
    device = "cuda" if spaces is not None else None
    model_events = {"concurrency_id": GPU_CONCURRENCY_ID, "concurrency_limit": concurrency}
    examples = service.example_queries()
    task_choices = [AUTO, *TASK_INSTRUCTIONS]
    mode_choices = [(label, mode) for mode, label in MODE_LABELS.items()]

    # ---- handlers (each: docstring, stable api_name, user errors as gr.Error) -------------------

    @user_errors
    @on_gpu
    def search(image, text, task, target, mode, k, user_gallery, session_queries):
        """Search the corpus (and your additions) with an image, a text or both; top-k with cosine scores.

        Returns the image hits (gallery), the table of all hits, a summary, the session's queries
        (for the embedding map) and the last result (for the download button).
        """
        service.warm_up(device)
        result = service.search(image, text, task, target, mode, int(k), user_gallery)
        rows = result.rows()
        images = [(h.entry.image_path, f"#{h.rank}  {h.score:.3f}  {h.entry.text}") for h in result.hits if h.entry.kind == "image"]
        table = [[r["rank"], r["score"], r["kind"], r["text"], r["group"], r["source"]] for r in rows]
        summary = (
            f"**{len(rows)} {result.query.target_kind}s** for `{result.query.label}` in **{result.mode}** mode "
            f"(instruction: *{result.query.instruction}*); encode {result.encode_ms:.0f} ms, search {result.search_ms:.1f} ms."
        )
        if result.notes:
            summary += "\n\n" + "\n".join(f"- note: {n}" for n in result.notes)
        queries = list(session_queries or [])[-49:] + [service.session_query(result)]
        return gr.update(value=images, visible=bool(images)), table, summary, queries, result

    @user_errors
    def download_results(last_result):
        """Write the last search's results as CSV and NPZ (query and result embeddings, scores, texts)."""
        if last_result is None:
            raise gr.Error("Run a search first; then its results can be downloaded.")
        return [str(service.export_results_csv(last_result)), str(service.export_results_npz(last_result))]

    @user_errors
    @on_gpu
    def add_to_corpus(files, texts, user_gallery):
        """Add uploaded images and texts (one per line) to your own corpus for this session."""
        service.warm_up(device)
        gallery, summary = service.add_to_gallery(user_gallery, files, texts)
        return gallery, summary, None, ""

    def reset_corpus():
        """Forget the images and texts you added in this session."""
        return None, "Your additions were removed; the corpus is the shipped Shapes set again."

    def known_words() -> list[str]:
        """The words the loaded model knows (empty for a tokenizer that reads any word)."""
        return service.known_words() if service.has_closed_vocabulary() else []

    def model_info() -> list[dict[str, Any]]:
        """Which checkpoint runs each mode, with K, sizes and how it was trained."""
        return service.model_facts()

    # ---- layout -------------------------------------------------------------------------------

    with gr.Blocks(title="LaME: latent reasoning embeddings") as demo:
        user_gallery = gr.State(None)
        session_queries = gr.State([])
        last_result = gr.State(None)
        gr.Markdown(
            "# LaME: multimodal embeddings that reason in one pass\n"
            "K latent `[REASON]` tokens and one `[EMBED]` token after the input, one forward pass: no "
            "chain of thought is written. This demo runs a tiny LaME trained on a procedural Shapes "
            "world, on this machine. "
            + ("It only knows the Shapes world's words (see the list in the Retrieve tab)." if service.has_closed_vocabulary() else "")
        )
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Retrieve", id="retrieve", elem_id="tab-retrieve"):
                with gr.Row():
                    with gr.Column(scale=2, min_width=300):
                        q_image = SafeImage(label="query image (optional)", type="filepath", height=220, elem_id="q-image")
                        q_text = gr.Textbox(label="query text", placeholder="a red circle and a blue square", lines=2, elem_id="q-text")
                        with gr.Row():
                            q_task = gr.Dropdown(task_choices, value=AUTO, label="task (instruction)", elem_id="q-task")
                            q_target = gr.Radio(["auto", "images", "texts"], value="auto", label="search for", elem_id="q-target")
                        with gr.Row():
                            q_mode = gr.Radio(mode_choices, value="latent", label="mode", elem_id="q-mode")
                            q_k = gr.Slider(1, MAX_K, value=8, step=1, label="top-k", elem_id="q-k")
                        search_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
                        gr.Examples(
                            [[e["image"], e["text"], e["task"], e["target"]] for e in examples],
                            [q_image, q_text, q_task, q_target],
                            label="Example queries (their answers are in the corpus)",
                            examples_per_page=10,
                        )
                    with gr.Column(scale=3, min_width=300):
                        r_summary = gr.Markdown("Run a search to see results.", elem_id="r-summary")
                        r_gallery = gr.Gallery(label="image results", columns=4, height=300, elem_id="results-gallery", visible=True)
                        r_table = gr.Dataframe(
                            headers=["rank", "score", "kind", "text", "group", "source"],
                            label="results", wrap=True, elem_id="results-table", interactive=False,
                        )
                        with gr.Row():
                            download_btn = gr.Button("Download results (CSV, NPZ)", size="sm", elem_id="download-btn")
                        r_files = gr.File(label="downloads", file_count="multiple", elem_id="r-files", height=80)
                with gr.Accordion("Add your own images and texts to the corpus", open=False):
                    with gr.Row():
                        add_files = gr.File(label="images", file_count="multiple", file_types=["image"], elem_id="add-files")
                        add_texts = gr.Textbox(label="texts, one per line", lines=4, elem_id="add-texts")
                    with gr.Row():
                        add_btn = gr.Button("Add to corpus", elem_id="add-btn")
                        reset_btn = gr.Button("Remove my additions", elem_id="reset-btn")
                    add_status = gr.Markdown(
                        f"The corpus: {service.gallery.count('image')} Shapes scenes and {service.gallery.count('text')} texts."
                    )
                if service.has_closed_vocabulary():
                    with gr.Accordion("Words the model knows", open=False, elem_id="known-words"):
                        gr.Markdown(words_markdown(service.known_words()))
                        words_json = gr.JSON(visible=False)
                        gr.Button("list as JSON", size="sm", visible=False).click(known_words, None, words_json, api_name="known_words")
                else:
                    gr.Button(visible=False).click(known_words, None, gr.JSON(visible=False), api_name="known_words")

            with gr.Tab("About", id="about", elem_id="tab-about"):
                gr.Markdown(service.about_markdown())
                info_json = gr.JSON(label="loaded models", value=service.model_facts())
                gr.Button("refresh", size="sm").click(model_info, None, info_json, api_name="model_info")

        search_btn.click(
            search,
            [q_image, q_text, q_task, q_target, q_mode, q_k, user_gallery, session_queries],
            [r_gallery, r_table, r_summary, session_queries, last_result],
            api_name="search",
            **model_events,
        )
        q_text.submit(
            search,
            [q_image, q_text, q_task, q_target, q_mode, q_k, user_gallery, session_queries],
            [r_gallery, r_table, r_summary, session_queries, last_result],
            api_name=False,
            **model_events,
        )
        add_btn.click(add_to_corpus, [add_files, add_texts, user_gallery], [user_gallery, add_status, add_files, add_texts], api_name="add_to_corpus", **model_events)
        download_btn.click(download_results, last_result, r_files, api_name="download_results")
        reset_btn.click(reset_corpus, None, [user_gallery, add_status], api_name="reset_corpus")
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="LaME folder or Qwen2-VL-family folder / hub id (default: the shipped models)")
    parser.add_argument("--allow-hub", action="store_true", help="allow --model to be a Hugging Face hub id (downloads it)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the checkpoint's own Python code (off by default)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when present)")
    parser.add_argument("--gallery-size", type=int, default=int(os.environ.get("LAME_GALLERY_SIZE", "200")), help="Shapes scenes in the corpus")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("LAME_CONCURRENCY", "1")), help="model events run at once")
    parser.add_argument("--max-queue", type=int, default=int(os.environ.get("LAME_MAX_QUEUE", "64")), help="queued events before new ones are refused")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Load the models and corpus, then serve (host/port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)."""
    args = parse_args(argv)
    try:
        service = DemoService.create(
            args.model,
            allow_hub=args.allow_hub,
            trust_remote_code=args.trust_remote_code,
            device=args.device,
            gallery_size=args.gallery_size,
            precompute=spaces is None,
        )
    except LameError as exc:
        raise SystemExit(f"error: {exc}") from None
    demo = build_app(service, concurrency=args.concurrency)
    demo.queue(max_size=args.max_queue, default_concurrency_limit=args.concurrency)
    demo.launch(
        max_file_size=MAX_UPLOAD,
        allowed_paths=[str(service.workdir)],
        css=CSS,
        theme=gr.themes.Soft(),
    )


if __name__ == "__main__":
    main()
