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
import functools
import inspect
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from lame_tools.demo import figures
from lame_tools.demo.bench import KSWEEP_COLUMNS, TOKEN_COLUMNS
from lame_tools.demo.gradio_parts import guard_inputs, safe_image
from lame_tools.demo.maps import COLOUR_BY, MAP_EVENTS_JS, NEIGHBOUR_COLUMNS, SELECTION_COLUMNS
from lame_tools.demo.probes import ABLATION_COLUMNS, ABLATION_HOWS, has_image_attention
from lame_tools.demo.query import (
    AUTO,
    MAX_K,
    RESULT_COLUMNS,
    TARGET_CHOICES,
    mode_choices,
    task_choices,
    words_markdown,
)
from lame_tools.demo.race_board import recorded_markdown
from lame_tools.demo.service import DemoService
from lame_tools.errors import LameError
from lame_tools.probe.attribution import METHODS as ATTRIBUTION_METHODS
from lame_tools.probe.linear import ATTRIBUTES as PROBE_ATTRIBUTES

GPU_DURATION_S = 60
GPU_CONCURRENCY_ID = "gpu"  # one id for every event that runs a model: they share the device
MAX_UPLOAD = "10mb"
CSS = "#results-gallery {min-height: 260px}"
# Gradio deletes its cached uploads and outputs older than an hour, every hour (and all of them on exit).
UPLOAD_CACHE_CLEANUP = (3600, 3600)
# Adding to the corpus decodes and shrinks images but runs no model (embedding happens at search time),
# so it has its own queue: a large upload never holds the model slot other users' searches wait for.
UPLOAD_EVENTS = {"concurrency_id": "uploads", "concurrency_limit": 1}


def on_gpu(fn: Callable) -> Callable:
    """`spaces.GPU` where the `spaces` package exists (ZeroGPU), else the function unchanged.

    Applied outside `user_errors`, so a user's mistake leaves the GPU worker as a `gr.Error`, which
    ZeroGPU hands back to Gradio as it is.
    """
    if spaces is None:
        return fn
    return spaces.GPU(duration=GPU_DURATION_S)(fn)


def user_errors(fn: Callable) -> Callable:
    """Turn `LameError` (a user's mistake, one sentence) into `gr.Error`; anything else is a bug and propagates."""
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


QUIET = {"api_name": False, "show_progress": "hidden", "queue": False}  # UI-only follow-ups: no API, no queue


@dataclass
class Page:
    """What every tab builder shares: the service, the device for model calls, and the session's state."""

    service: DemoService
    device: str | None
    model_events: dict[str, Any]
    user_gallery: gr.State
    session_queries: gr.State
    last_result: gr.State


@dataclass
class QueryInputs:
    """The query column's inputs: image, text, task (and, in the Retrieve tab, what to search for)."""

    image: gr.Image
    text: gr.Textbox
    task: gr.Dropdown
    target: gr.Radio | None = None

    def components(self) -> list[Any]:
        return [self.image, self.text, self.task] + ([self.target] if self.target is not None else [])


def query_inputs(prefix: str, image_label: str, text_label: str, height: int, *, with_target: bool = False,
                 placeholder: str | None = None) -> QueryInputs:
    """The image + text + task inputs several tabs repeat (elem ids `<prefix>-image`, `-text`, `-task`)."""
    image = safe_image(label=image_label, height=height, elem_id=f"{prefix}-image")
    text = gr.Textbox(label=text_label, placeholder=placeholder, lines=2, elem_id=f"{prefix}-text")
    if not with_target:
        return QueryInputs(image, text, gr.Dropdown(task_choices(), value=AUTO, label="task (instruction)", elem_id=f"{prefix}-task"))
    with gr.Row():
        task = gr.Dropdown(task_choices(), value=AUTO, label="task (instruction)", elem_id=f"{prefix}-task")
        target = gr.Radio(list(TARGET_CHOICES), value=AUTO, label="search for", elem_id=f"{prefix}-target")
    return QueryInputs(image, text, task, target)


def reveal():
    """Show a component that stays hidden until it has something (a download)."""
    return gr.update(visible=True)


def header(service: DemoService) -> None:
    gr.Markdown(
        "# LaME: multimodal embeddings that reason in one pass\n"
        "K latent `[REASON]` tokens and one `[EMBED]` token after the input, one forward pass: no "
        "chain of thought is written. This demo runs a tiny LaME trained on a procedural Shapes "
        "world, on this machine. "
        + ("It only knows the Shapes world's words (see the list in the Retrieve tab)." if service.has_closed_vocabulary() else "")
    )


def retrieve_tab(page: Page) -> None:
    """Search the corpus; the example queries, your own additions and the known words below."""
    service = page.service

    @on_gpu
    @user_errors
    def search(image, text, task, target, mode, k, user_gallery, session_queries):
        """Search the corpus (and your additions) with an image, a text or both; top-k with cosine scores.

        Returns the image hits (gallery), the table of all hits, a summary, the session's queries
        (for the embedding map) and the last result (for the download button).
        """
        service.warm_up(page.device)
        result = service.search(image, text, task, target, mode, int(k), user_gallery)
        queries = service.remember_query(session_queries, result)
        return result.gallery_items(), result.table(), result.summary_markdown(), queries, result

    @user_errors
    def download_results(last_result):
        """Write the last search's results as CSV and NPZ (query and result embeddings, scores and texts)."""
        return service.export_results(last_result)

    def reveal_gallery(result):
        """Show the image gallery only when the last search returned images."""
        return gr.update(visible=bool(result is not None and result.shows_images))

    with gr.Tab("Retrieve", id="retrieve", elem_id="tab-retrieve"):
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                query = query_inputs("q", "query image (optional)", "query text", 220, with_target=True,
                                     placeholder="a red circle and a blue square")
                with gr.Row():
                    mode = gr.Radio(
                        mode_choices(), value="latent", label="mode", elem_id="q-mode",
                        info="CoT writes a rationale for every corpus item too: its corpus is embedded in the background after start-up",
                    )
                    k = gr.Slider(1, MAX_K, value=8, step=1, label="top-k", elem_id="q-k")
                search_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
                if service.gallery.shapes is None:  # a folder gallery: its size, progress and skipped files, live
                    corpus_status = gr.Markdown(service.gallery_status(), elem_id="corpus-status")
                    gr.Timer(5).tick(service.gallery_status, None, corpus_status, **QUIET)
            with gr.Column(scale=3, min_width=300):
                summary = gr.Markdown("Run a search to see results.", elem_id="r-summary")
                gallery = gr.Gallery(label="image results", columns=4, height=300, elem_id="results-gallery", visible=True)
                table = gr.Dataframe(headers=list(RESULT_COLUMNS), label="results", wrap=True, elem_id="results-table",
                                     interactive=False)
                with gr.Row():
                    download_btn = gr.Button("Download results (CSV, NPZ)", size="sm", elem_id="download-btn")
                files = gr.File(label="downloads", file_count="multiple", elem_id="r-files", visible=False)
        gr.Examples(
            service.example_rows(("image", "text", "task", "target")), query.components(),
            label="Example queries: click one, then Search (their answers are in the corpus)", examples_per_page=10,
        )
        corpus_additions(page)
        known_words_panel(service)

    inputs = [*query.components(), mode, k, page.user_gallery, page.session_queries]
    outputs = [gallery, table, summary, page.session_queries, page.last_result]
    for trigger, api_name in ((search_btn.click, "search"), (query.text.submit, False)):
        trigger(search, inputs, outputs, api_name=api_name, **page.model_events).success(
            reveal_gallery, page.last_result, gallery, **QUIET
        )
    download_btn.click(download_results, page.last_result, files, api_name="download_results").success(
        reveal, None, files, **QUIET
    )


def corpus_additions(page: Page) -> None:
    """The accordion that adds a session's own images and texts to the corpus (and removes them)."""
    service = page.service

    @user_errors
    def add_to_corpus(files, texts, user_gallery):
        """Add uploaded images and texts (one per line) to your own corpus for this session."""
        gallery, summary = service.add_to_gallery(user_gallery, files, texts)
        return gallery, summary, None, ""

    def reset_corpus(user_gallery):
        """Forget the images and texts you added in this session (their stored files are deleted)."""
        return service.reset_gallery(user_gallery)

    with gr.Accordion("Add your own images and texts to the corpus", open=False):
        with gr.Row():
            add_files = gr.File(label="images", file_count="multiple", file_types=["image"], elem_id="add-files")
            add_texts = gr.Textbox(label="texts, one per line", lines=4, elem_id="add-texts")
        with gr.Row():
            add_btn = gr.Button("Add to corpus", elem_id="add-btn")
            reset_btn = gr.Button("Remove my additions", elem_id="reset-btn")
        add_status = gr.Markdown(service.corpus_summary())
    add_btn.click(add_to_corpus, [add_files, add_texts, page.user_gallery], [page.user_gallery, add_status, add_files, add_texts],
                  api_name="add_to_corpus", **UPLOAD_EVENTS)
    reset_btn.click(reset_corpus, page.user_gallery, [page.user_gallery, add_status], api_name="reset_corpus")


def known_words_panel(service: DemoService) -> None:
    """The words a closed-vocabulary model knows (shown and as the `known_words` endpoint)."""

    def known_words() -> list[str]:
        """The words the loaded model knows (empty for a tokenizer that reads any word)."""
        return service.known_words() if service.has_closed_vocabulary() else []

    if service.has_closed_vocabulary():
        with gr.Accordion("Words the model knows", open=False, elem_id="known-words"):
            gr.Markdown(words_markdown(service.known_words()))
            words_json = gr.JSON(visible=False)
            gr.Button("list as JSON", size="sm", visible=False).click(known_words, None, words_json, api_name="known_words")
    else:
        gr.Button(visible=False).click(known_words, None, gr.JSON(visible=False), api_name="known_words")


def attention_tab(page: Page) -> None:
    """Reason-token attention over the image and the text, by layer, head and token."""
    service = page.service
    layers, heads, tokens = service.attention_pickers()

    def figures_of(view):
        return (*figures.attention_figures(view), view.facts)

    @on_gpu
    @user_errors
    def attention(image, text, task, layer, head, token):
        """Attention of each reason token (and [EMBED]) over the image and the text, every layer and head
        (latent mode), plus the decoder read-out of the reason states; figures for the chosen layer/head/token."""
        service.warm_up(page.device)
        _query, result, readout_text = service.attention(image, text, task)
        view = service.attention_view(result, readout_text, layer, head, token)
        return (*figures_of(view), service.export_attention_files(view), result, readout_text)

    @user_errors
    def attention_view(attention_state, readout_text, layer, head, token):
        """Redraw the attention figures for another layer, head or token (no new model pass)."""
        return figures_of(service.attention_view(attention_state, readout_text, layer, head, token))

    def reveal_if_image(attention_state):
        """Show the image overlay only for a query with an image; show the download."""
        return gr.update(visible=has_image_attention(attention_state)), gr.update(visible=True)

    with gr.Tab("Attention", id="attention", elem_id="tab-attention"):
        attention_state, readout_state = gr.State(None), gr.State(None)
        gr.Markdown(
            "Where the reason tokens look, in **latent mode**: each `[REASON_k]` (and `[EMBED]`) row of "
            "attention over the merged image patches (the visual tokens the language model reads) and over the text tokens, by "
            "layer and head, recomputed from hooked queries and keys in a separate pass (never on the timed path)."
        )
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                query = query_inputs("a", "image (optional)", "text", 200)
                with gr.Row():
                    layer = gr.Dropdown(layers, value=layers[0], label="layer", elem_id="a-layer")
                    head = gr.Dropdown(heads, value=heads[0], label="head", elem_id="a-head")
                    token = gr.Dropdown(tokens, value=tokens[0], label="token", elem_id="a-token")
                attention_btn = gr.Button("Show attention", variant="primary", elem_id="attention-btn")
            with gr.Column(scale=3, min_width=300):
                facts = gr.Markdown("Pick a query and press *Show attention*.", elem_id="a-facts")
                overlay = gr.Plot(label="attention on the image", elem_id="a-overlay")
                strip = gr.Plot(label="attention on the text", elem_id="a-strip")
        gr.Examples(service.example_rows(("image", "text", "task"), with_image=True), query.components(),
                    label="Examples: click one, then Show attention")
        grid = gr.Plot(label="every layer and head", elem_id="a-grid")
        files = gr.File(label="download (NPZ: every layer, head and token; PNG: the overlay shown)", file_count="multiple",
                        elem_id="a-file", visible=False)
        redraw = gr.Button(visible=False)  # the `attention_view` endpoint
        bench_section(page, query)

    drawn = [overlay, strip, grid, facts]
    attention_btn.click(
        attention, [*query.components(), layer, head, token], [*drawn, files, attention_state, readout_state],
        api_name="attention", **page.model_events,
    ).success(reveal_if_image, attention_state, [overlay, files], **QUIET)
    view_inputs = [attention_state, readout_state, layer, head, token]
    for control in (layer, head, token):
        control.change(attention_view, view_inputs, drawn, api_name=False, show_progress="hidden")
    redraw.click(attention_view, view_inputs, drawn, api_name="attention_view")


def bench_section(page: Page, query: QueryInputs) -> None:
    """Inside the Attention tab: why the query is close to an item (attribution, attention flow, the
    deletion check) and K in the loop, with every figure exportable as PNG, SVG and HTML."""
    service = page.service

    @on_gpu
    @user_errors
    def attribution(image, text, task, item_text, item_image, method):
        """Attribute cos(query, item) to both sides' image patches and text tokens (latent mode); the item
        is the given text/image, else the query's top result; attention flow and the deletion check."""
        service.warm_up(page.device)
        view = service.attribution_view(image, text, task, item_text, item_image, method)
        return (*figures.attribution_figures(view), view.facts, view.token_table(), view)

    @on_gpu
    @user_errors
    def k_sweep(image, text, task, how):
        """For one query: its embedding, top result and read-out with K, K-1, ..., 0 reason tokens
        (the others hidden from [EMBED] with positions kept, or dropped)."""
        service.warm_up(page.device)
        view = service.k_sweep_view(image, text, task, how)
        return figures.k_sweep_figure(view), view.table(), view

    @user_errors
    def export(view):
        """The last attribution's or K sweep's figures as HTML, PNG and SVG, with their data as CSV."""
        return service.export_bench_figures(view)

    with gr.Accordion("Why is it close? Similarity attribution and K in the loop", open=True, elem_id="bench"):
        bench_state = gr.State(None)
        gr.Markdown(
            "Which image patches and text tokens of the query (above) and of one item raise (red) or lower "
            "(blue) their cosine: integrated gradients on the input embeddings. Leave the item empty to use "
            "the query's top result. *K in the loop* takes the reason tokens away one by one: hidden from "
            "`[EMBED]` with every position kept, or dropped (then `[EMBED]` also moves closer to the prompt, "
            "and the change mixes the tokens' content with that shift)."
        )
        with gr.Row():
            item_text = gr.Textbox(label="item text (empty: the query's top result)", elem_id="b-item-text")
            item_image = safe_image(label="item image (optional)", height=120, elem_id="b-item-image")
            method = gr.Radio(list(ATTRIBUTION_METHODS), value=ATTRIBUTION_METHODS[0], label="method",
                              elem_id="b-method")
        with gr.Row():
            attribute_btn = gr.Button("Attribute the similarity", variant="primary", elem_id="attribute-btn")
            sweep_btn = gr.Button("K in the loop", elem_id="ksweep-btn")
            sweep_how = gr.Radio([("hide from [EMBED] (positions kept)", "mask"), ("drop (positions shift)", "drop")],
                                 value="mask", label="K in the loop: take tokens away by", elem_id="b-ksweep-how")
            export_btn = gr.Button("Export figures (PNG, SVG, HTML + CSV)", elem_id="b-export-btn")
        bench_facts = gr.Markdown(elem_id="b-facts")
        attribution_plot = gr.Plot(label="attribution", elem_id="b-attribution")
        with gr.Row():
            flow_plot = gr.Plot(label="attention flow into [EMBED]", elem_id="b-flow")
            deletion_plot = gr.Plot(label="deletion check", elem_id="b-deletion")
        tokens_table = gr.Dataframe(headers=list(TOKEN_COLUMNS), label="text tokens by |attribution|",
                                    elem_id="b-tokens", interactive=False)
        sweep_plot = gr.Plot(label="K in the loop", elem_id="b-ksweep")
        sweep_table = gr.Dataframe(headers=list(KSWEEP_COLUMNS), elem_id="b-ksweep-table", interactive=False)
        export_files = gr.File(file_count="multiple", label="figures and data", elem_id="b-files", visible=False)
    attribute_btn.click(attribution, [*query.components(), item_text, item_image, method],
                        [attribution_plot, flow_plot, deletion_plot, bench_facts, tokens_table, bench_state],
                        api_name="attribution", **page.model_events)
    sweep_btn.click(k_sweep, [*query.components(), sweep_how], [sweep_plot, sweep_table, bench_state], api_name="k_sweep",
                    **page.model_events)
    export_btn.click(export, bench_state, export_files, api_name=False).success(reveal, None, export_files, **QUIET)


def map_tab(page: Page) -> None:
    """The corpus in 2-D, drawn when the tab opens: thumbnails on hover, a click lists the point's
    nearest neighbours in the full embedding space, a lasso/box selection lists what it holds."""
    service = page.service

    @on_gpu
    @user_errors
    def embedding_map(mode, colour_by, session_queries):
        """The corpus in 2-D (UMAP fitted once, PCA while it fits) with your queries of this mode as stars."""
        service.warm_up(page.device)
        view = service.embedding_map(mode, session_queries)
        return figures.map_figure(view, colour_by), view.status_markdown, str(service.export_map_csv(view)), view

    @user_errors
    def clicked_neighbours(view, point, k):
        """The clicked point's nearest neighbours in the full embedding space (the point itself left out)."""
        if view is None or str(point).strip() in ("", "-1"):
            return gr.update(), gr.update()
        point = int(point)
        entry = view.entries[point] if 0 <= point < len(view.entries) else None
        title = f"**Nearest to point {point}** ({entry.kind}: {entry.text}), in the full space:" if entry else ""
        return view.neighbours(point, int(k)), title

    @user_errors
    def map_neighbours(mode, point, k):
        """Nearest neighbours of corpus point `point` of the `mode` map in the full embedding space."""
        return service.embedding_map(mode).neighbours(int(point), int(k))

    @user_errors
    def map_selection(view, points):
        """The points of a lasso or box selection ("3,5,8"), listed."""
        return view.selection(points) if view is not None else []

    with gr.Tab("Embedding map", id="map", elem_id="tab-map") as tab:
        map_state = gr.State(None)
        gr.Markdown(
            "The corpus in 2-D: UMAP fitted once per model and corpus (cached to disk), PCA while it fits. "
            "Your searches in the Retrieve tab are placed on the map with UMAP's `transform` (stars). "
            "Hover a point for its thumbnail, click it for its nearest neighbours in the **full** embedding "
            "space, drag a lasso (or pick box select) to list a group."
        )
        with gr.Row():
            mode = gr.Radio(service.map_mode_choices(), value="latent", label="mode", elem_id="m-mode")
            colour = gr.Radio(list(COLOUR_BY), value="group", label="colour by", elem_id="m-colour")
            n_neighbours = gr.Slider(1, 20, value=8, step=1, label="neighbours", elem_id="m-k")
            map_btn = gr.Button("Draw map", variant="primary", elem_id="map-btn")
        status = gr.Markdown(elem_id="m-status")
        with gr.Row():
            plot = gr.Plot(label="embedding map", elem_id="m-plot", scale=3)
            with gr.Column(scale=1, min_width=220):
                gr.HTML("<p>Hover over a point to see it here.</p>", elem_id="m-hover", js_on_load=None)
                neighbour_title = gr.Markdown("Click a point to list its nearest neighbours.", elem_id="m-nn-title")
                neighbours = gr.Dataframe(headers=list(NEIGHBOUR_COLUMNS), elem_id="m-neighbours", interactive=False)
        selection = gr.Dataframe(headers=list(SELECTION_COLUMNS), label="selected points", elem_id="m-selection",
                                 interactive=False)
        clicked = gr.Textbox(visible="hidden", elem_id="m-clicked")
        selected = gr.Textbox(visible="hidden", elem_id="m-selected")
        point_number = gr.Number(visible=False, precision=0)
        file = gr.File(label="download coordinates (CSV)", elem_id="m-file", visible=False)
        api_btn = gr.Button(visible=False)  # the `map_neighbours` endpoint
    inputs, outputs = [mode, colour, page.session_queries], [plot, status, file, map_state]
    map_btn.click(embedding_map, inputs, outputs, api_name="embedding_map",
                  **page.model_events).success(reveal, None, file, **QUIET)
    for trigger in (tab.select, colour.change, mode.change):  # drawn when the tab opens (the fit is cached)
        trigger(embedding_map, inputs, outputs, api_name=False, **page.model_events).success(reveal, None, file, **QUIET)
    plot.change(None, None, None, js=MAP_EVENTS_JS, **QUIET)
    clicked.change(clicked_neighbours, [map_state, clicked, n_neighbours], [neighbours, neighbour_title], **QUIET)
    selected.change(map_selection, [map_state, selected], selection, **QUIET)
    api_btn.click(map_neighbours, [mode, point_number, n_neighbours], neighbours, api_name="map_neighbours")


def race_tab(page: Page) -> None:
    """Explicit CoT against latent (and K=0, and sequential-latent) inference on one query, timed live;
    each lane's answer from the corpus; the recorded benchmarks and the cost/quality frontier below."""
    import lame_tools
    from lame_tools.demo.frontier import frontier_figure, frontier_markdown, frontier_points

    service = page.service
    records = service.recorded_benchmarks()

    @on_gpu
    @user_errors
    def race(image, text, task, with_discriminative, with_sequential=True, repeats=3):
        """Race explicit CoT against latent (and K=0, and sequential-latent) inference on the same query.

        Yields (chart, CoT text, latent lane, live numbers and each lane's top result, hardware and
        protocol, JSON download) as the lanes run; every number is measured on this machine by
        `lame_tools.timing.race`, nothing is simulated.
        """
        service.warm_up(page.device)
        for board, record in service.race_boards(image, text, task, bool(with_discriminative), bool(with_sequential),
                                                 int(repeats or 3)):
            numbers = "\n\n".join(part for part in (board.numbers, board.lane_lines()) if part)
            hardware = "\n\n".join(part for part in (board.hardware, board.recorded_note(records)) if part)
            yield figures.race_figure(board), board.cot_text, board.latent, numbers, hardware, record

    with gr.Tab("Race", id="race", elem_id="tab-race"):
        gr.Markdown(
            "The same query through **explicit CoT** (generate a rationale, then embed), **latent** reasoning "
            "(one pass), the **discriminative** K=0 pass and the **sequential-latent** baseline (K one-position "
            "steps), timed live on this machine by `lame_tools.timing.race`. Each lane runs once to warm up, then "
            "several timed times, one run at a time in rotating order, in a worker the page only reads from "
            "between runs; the race first waits for the app's start-up work, and says what else ran. Each lane's "
            "top result in the corpus is shown beside its time (right or wrong for the corpus's own examples)."
        )
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                query = query_inputs("race", "image (optional)", "text", 200)
                with_disc = gr.Checkbox(value=True, label="also run the discriminative (K=0) lane")
                with_seq = gr.Checkbox(value=True, label="also run the sequential-latent lane", elem_id="race-seq")
                repeats = gr.Slider(1, 9, value=3, step=1, label="timed runs per lane", elem_id="race-repeats")
                race_btn = gr.Button("Start the race", variant="primary", elem_id="race-btn")
            with gr.Column(scale=3, min_width=300):
                chart = gr.Plot(label="elapsed ms (median of the timed runs)", elem_id="race-chart")
                numbers = gr.Markdown(elem_id="race-numbers")
                latent = gr.Markdown(elem_id="race-latent")
                cot = gr.Textbox(label="CoT lane: the rationale (first timed run)", lines=3, elem_id="race-cot")
                hardware = gr.Markdown(elem_id="race-hw")
                file = gr.File(label="download the measured events (JSON)", elem_id="race-file", visible=False)
        gr.Examples(service.example_rows(("image", "text", "task")), query.components(),
                    label="Examples: click one, then Start the race")
        gr.Markdown(recorded_markdown(records), elem_id="race-recorded")
        points, label = frontier_points(lame_tools.ASSETS_DIR / "results", lame_tools.ASSETS_DIR / "benchmarks")
        gr.Plot(frontier_figure(points, label), label="cost / quality frontier (recorded)", elem_id="race-frontier")
        gr.Markdown(frontier_markdown(points, label), elem_id="race-frontier-table")
    race_btn.click(race, [*query.components(), with_disc, with_seq, repeats], [chart, cot, latent, numbers, hardware, file],
                   api_name="race", **page.model_events).success(reveal, None, file, **QUIET)


def probe_tab(page: Page) -> None:
    """Ablation of each reason token, and linear probes of scene attributes."""
    service = page.service

    @on_gpu
    @user_errors
    def ablation(how, n):
        """Ablate each reason token (zero / drop / swap) on Shapes test queries: embedding change and rank change."""
        service.warm_up(page.device)
        view = service.ablation_view(how, int(n))
        return figures.ablation_figure(view), view.table(), view.csv_path

    @on_gpu
    @user_errors
    def linear_probe(attribute, n):
        """Linear probes from reason states to a scene attribute, per layer and token, with a shuffled-label
        control and the K=0 model's [EMBED] as baseline."""
        service.warm_up(page.device)
        view = service.linear_probe_view(attribute, int(n))
        return figures.probe_figure(view), view.summary, view.csv_path

    with gr.Tab("Probe", id="probe", elem_id="tab-probe"):
        gr.Markdown(
            "What the reason tokens carry, for the loaded latent model. **Ablation**: zero, drop or swap one "
            "reason token, or mask it (hide it from `[EMBED]`, every position kept: dropping also moves "
            "`[EMBED]`), re-embed Shapes test queries, and measure how far the embedding moves and how the "
            "correct answer's rank changes. **Linear probes**: read scene attributes from the reason states "
            "layer by layer (held-out accuracy, with a shuffled-label control and the K=0 model as baseline)."
        )
        with gr.Row():
            with gr.Column(min_width=300):
                how = gr.Radio(list(ABLATION_HOWS), value="zero", label="ablation", elem_id="p-how")
                n_queries = gr.Slider(8, 64, value=24, step=8, label="queries", elem_id="p-n")
                ablation_btn = gr.Button("Run ablation", variant="primary", elem_id="ablation-btn")
                bars = gr.Plot(label="ablation", elem_id="p-bars")
                table = gr.Dataframe(headers=list(ABLATION_COLUMNS), interactive=False, elem_id="p-table")
                ablation_file = gr.File(label="download (CSV)", elem_id="p-file", visible=False)
            with gr.Column(min_width=300):
                attribute = gr.Dropdown(list(PROBE_ATTRIBUTES), value="answer_colour", label="attribute", elem_id="lp-attribute")
                n_examples = gr.Slider(40, 400, value=200, step=20, label="examples", elem_id="lp-n")
                probe_btn = gr.Button("Fit linear probes", variant="primary", elem_id="probe-btn")
                summary = gr.Markdown(elem_id="lp-summary")
                plot = gr.Plot(label="probe accuracy", elem_id="lp-plot")
                probe_file = gr.File(label="download (CSV)", elem_id="lp-file", visible=False)
    ablation_btn.click(ablation, [how, n_queries], [bars, table, ablation_file], api_name="ablation",
                       **page.model_events).success(reveal, None, ablation_file, **QUIET)
    probe_btn.click(linear_probe, [attribute, n_examples], [plot, summary, probe_file], api_name="linear_probe",
                    **page.model_events).success(reveal, None, probe_file, **QUIET)


def about_tab(page: Page) -> None:
    """What LaME is and which checkpoints are loaded (also as the `model_info` endpoint)."""
    service = page.service

    def model_info() -> list[dict[str, Any]]:
        """Which checkpoint runs each mode, with K, sizes and how it was trained."""
        return service.model_facts()

    with gr.Tab("About", id="about", elem_id="tab-about"):
        gr.Markdown(service.about_markdown())
        with gr.Accordion("the loaded models as JSON", open=False):
            info_json = gr.JSON(label="loaded models", value=service.model_facts())
            gr.Button("refresh", size="sm").click(model_info, None, info_json, api_name="model_info")


TABS = (retrieve_tab, attention_tab, map_tab, race_tab, probe_tab, about_tab)


def build_app(service: DemoService, concurrency: int = 1) -> gr.Blocks:
    """Lay out the six tabs (`TABS`) and wire their events to `service`.

    Args:
        service: models, corpus and actions (`DemoService.create`).
        concurrency: how many model events run at once (one id for all of them).
    """
    device = "cuda" if spaces is not None else None
    model_events = {"concurrency_id": GPU_CONCURRENCY_ID, "concurrency_limit": concurrency}
    with gr.Blocks(title="LaME: latent reasoning embeddings", delete_cache=UPLOAD_CACHE_CLEANUP) as demo:
        page = Page(service, device, model_events, gr.State(None), gr.State([]), gr.State(None))
        header(service)
        with gr.Tabs(elem_id="tabs"):
            for tab in TABS:
                tab(page)
        guard_inputs(demo.blocks.values())  # malformed API values: one sentence, no traceback
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="On a Space (no command line), LAME_MODEL, LAME_ALLOW_HUB=1 and LAME_TRUST_REMOTE_CODE=1 set the same options.",
    )
    parser.add_argument("--model", default=os.environ.get("LAME_MODEL") or None,
                        help="LaME folder, or Qwen2-VL-family folder / hub id (default: the shipped models)")
    parser.add_argument("--allow-hub", action="store_true", default=os.environ.get("LAME_ALLOW_HUB") == "1",
                        help="allow --model to be a Hugging Face hub id (downloads it)")
    parser.add_argument("--trust-remote-code", action="store_true", default=os.environ.get("LAME_TRUST_REMOTE_CODE") == "1",
                        help="allow the checkpoint's own Python code (off unless asked for)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when present)")
    parser.add_argument("--gallery-size", type=int, default=int(os.environ.get("LAME_GALLERY_SIZE", "200")), help="Shapes scenes in the corpus")
    parser.add_argument("--gallery", default=os.environ.get("LAME_GALLERY") or None,
                        help="a folder of images to serve as the corpus instead of the Shapes scenes")
    parser.add_argument("--gallery-texts", default=None, help="with --gallery: a file of texts, one a line")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("LAME_CONCURRENCY", "1")), help="model events run at once")
    parser.add_argument("--max-queue", type=int, default=int(os.environ.get("LAME_MAX_QUEUE", "64")), help="queued events before new ones are refused")
    return parser.parse_args(argv)


def serve(
    service: DemoService, concurrency: int = 1, max_queue: int = 64, prepare: bool = False, **launch_kwargs: Any
) -> gr.Blocks:
    """Build the app, bound its queue and launch it with the app's limits (uploads, served folders, theme).

    Args:
        prepare: once the server is up, embed the corpus (every mode) and fit the map in the
            background (`DemoService.prepare_in_background`), so that start-up does not wait for it.
        launch_kwargs: passed to `Blocks.launch` (tests pass prevent_thread_lock=True, quiet=True);
            host and port default to Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT.
    """
    demo = build_app(service, concurrency=concurrency)
    demo.queue(max_size=max_queue, default_concurrency_limit=concurrency)
    block = not launch_kwargs.pop("prevent_thread_lock", False)
    demo.launch(
        max_file_size=MAX_UPLOAD,
        allowed_paths=service.served_folders(),
        css=CSS,
        theme=gr.themes.Soft(),
        prevent_thread_lock=True,
        **launch_kwargs,
    )
    if prepare:
        service.prepare_in_background()
    if block:
        demo.block_thread()
    return demo


def main(argv: list[str] | None = None) -> None:
    """Load the models and list the corpus, serve, then embed the corpus in the background (not on ZeroGPU,
    where there is no GPU outside a call: the first search embeds it there)."""
    args = parse_args(argv)
    # SIGTERM (a process manager stopping the app) exits normally, so the work folder is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        service = DemoService.create(
            args.model,
            allow_hub=args.allow_hub,
            trust_remote_code=args.trust_remote_code,
            device=args.device,
            gallery_size=args.gallery_size,
            precompute=False,
            gallery_dir=args.gallery,
            gallery_texts=args.gallery_texts,
        )
    except LameError as exc:
        raise SystemExit(f"error: {exc}") from None
    serve(service, concurrency=args.concurrency, max_queue=args.max_queue, prepare=spaces is None)


if __name__ == "__main__":
    main()
