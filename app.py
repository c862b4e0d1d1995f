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
from typing import Any

import gradio as gr

from lame_tools import viz
from lame_tools.demo.gradio_parts import safe_image
from lame_tools.demo.race_board import RaceBoard, recorded_markdown
from lame_tools.demo.service import ALL_MODES, AUTO, MAX_K, MODE_LABELS, TASK_INSTRUCTIONS, DemoService, words_markdown
from lame_tools.errors import LameError
from lame_tools.probe.linear import ATTRIBUTES as PROBE_ATTRIBUTES

GPU_DURATION_S = 60
GPU_CONCURRENCY_ID = "gpu"  # one id for every event that runs a model: they share the device
MAX_UPLOAD = "10mb"
CSS = "#results-gallery {min-height: 260px}"


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


def build_app(service: DemoService, concurrency: int = 1) -> gr.Blocks:
    """Lay out the six tabs and wire their events to `service`.

    Args:
        service: models, corpus and actions (`DemoService.create`).
        concurrency: how many model events run at once (one id for all of them).
    """
    device = "cuda" if spaces is not None else None
    model_events = {"concurrency_id": GPU_CONCURRENCY_ID, "concurrency_limit": concurrency}
    examples = service.example_queries()
    n_layers, n_heads, probed_tokens = service.attention_axes()
    task_choices = [AUTO, *TASK_INSTRUCTIONS]
    mode_choices = [(label, mode) for mode, label in MODE_LABELS.items()]

    # ---- handlers (each: docstring, stable api_name, user errors as gr.Error) -------------------

    @on_gpu
    @user_errors
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
        return images, table, summary, queries, result

    @user_errors
    def download_results(last_result):
        """Write the last search's results as CSV and NPZ (query and result embeddings, scores, texts)."""
        if last_result is None:
            raise gr.Error("Run a search first; then its results can be downloaded.")
        return [str(service.export_results_csv(last_result)), str(service.export_results_npz(last_result))]

    @on_gpu
    @user_errors
    def add_to_corpus(files, texts, user_gallery):
        """Add uploaded images and texts (one per line) to your own corpus for this session."""
        service.warm_up(device)
        gallery, summary = service.add_to_gallery(user_gallery, files, texts)
        return gallery, summary, None, ""

    def attention_figures(attention, readout_text, layer, head, token):
        """Figures for one (layer, head, token) choice of a computed attention (no model call)."""
        choice = service.attention_choice(attention, layer, head, token)
        where = f"{'mean of layers' if layer == 'mean' else layer}, {'mean of heads' if head == 'mean' else head}"
        if choice.image_grid is not None:
            figure = viz.attention_overlay(attention.image, choice.image_grid, title=f"{token} on the image ({where})")
            overlay = figure
        else:
            overlay = None
        strip = viz.token_strip(attention.text_tokens, choice.text_rows, title=f"attention on the text ({where})",
                                query_labels=attention.query_tokens)
        grid = viz.head_grid(choice.per_head, title=f"{token}: every layer and head")
        if choice.image_grid is not None:
            facts = f"**{token}** puts {choice.image_mass:.0%} of its attention on the image ({where})."
        else:
            facts = f"Text-only query: **{token}**'s attention on the text tokens is shown ({where})."
        if readout_text is not None:
            facts += f"\n\n**Latent decoder read-out** of the {len(attention.query_tokens) - 1} reason states: *{readout_text or '(empty)'}*"
        return overlay, strip, grid, facts

    @on_gpu
    @user_errors
    def attention(image, text, task, layer, head, token):
        """Attention of each reason token (and [EMBED]) over the image and the text, every layer and head
        (latent mode), plus the decoder read-out of the reason states; figures for the chosen layer/head/token."""
        service.warm_up(device)
        _query, result, readout_text = service.attention(image, text, task)
        figures = attention_figures(result, readout_text, layer, head, token)
        files = [str(service.export_attention_npz(result, readout_text))]
        png = service.export_attention_png(result, service.attention_choice(result, layer, head, token))
        if png is not None:
            files.append(str(png))
        return (*figures, files, result, readout_text)

    @user_errors
    def attention_view(attention_state, readout_text, layer, head, token):
        """Redraw the attention figures for another layer, head or token (no new model pass)."""
        if attention_state is None:
            raise gr.Error("Compute the attention of a query first.")
        return attention_figures(attention_state, readout_text, layer, head, token)

    @on_gpu
    @user_errors
    def embedding_map(mode, colour_by, session_queries):
        """The corpus in 2-D (UMAP fitted once, PCA while it fits) with your queries of this mode as stars."""
        service.warm_up(device)
        view = service.embedding_map(mode, session_queries)
        if colour_by == "mode":
            labels = view.point_modes
        else:
            labels = [getattr(e, colour_by) if colour_by in ("kind", "group", "source") else e.kind for e in view.entries]
        hover = [f"{e.kind}: {e.text}" for e in view.entries]
        fig = viz.projection_scatter(view.coords, labels, hover, view.query_coords, view.query_labels,
                                     title=f"{len(view.entries)} corpus items, {view.mode} mode, {view.method.upper()}")
        status = f"Map: **{view.status}**. {len(view.query_labels)} of your queries in {view.mode} mode are drawn as stars."
        return fig, status, str(service.export_map_csv(view))

    @on_gpu
    @user_errors
    def race(image, text, task, with_discriminative):
        """Race explicit CoT against latent (and K=0) inference on the same query, streamed live.

        Yields (chart, CoT text, latent lane, live numbers, hardware) as the lanes run; every number
        is measured on this machine by `lame_tools.timing.race`, nothing is simulated.
        """
        service.warm_up(device)
        board, record = RaceBoard(), None
        for event in service.race(image, text, task, bool(with_discriminative)):
            board.update(event)
            if board.finished:
                record = str(service.export_race_json(board.events))
            chart = viz.race_chart(board.elapsed_ms, board.done, board.tokens, title="elapsed ms (measured)")
            yield chart, board.cot_text, board.latent, board.numbers, board.hardware, record

    @on_gpu
    @user_errors
    def ablation(how, n):
        """Ablate each reason token (zero / drop / swap) on Shapes test queries: embedding change and rank change."""
        service.warm_up(device)
        result = service.ablation(how, int(n))
        rows = result.summary()
        fig = viz.ablation_bars([r["condition"] for r in rows], [r["mean_cosine"] for r in rows],
                                [r["mean_rank_change"] for r in rows], title=f"{how} each reason token, {result.cosine.shape[1]} queries")
        table = [[r["condition"], round(r["mean_cosine"], 4), round(r["mean_rank_change"], 3), round(r["hit1_before"], 3), round(r["hit1_after"], 3)] for r in rows]
        csv_path = str(service.export_text(f"lame-ablation-{how}", result.to_csv()))
        return fig, table, csv_path

    @on_gpu
    @user_errors
    def linear_probe(attribute, n):
        """Linear probes from reason states to a scene attribute, per layer and token, with a shuffled-label
        control and the K=0 model's [EMBED] as baseline."""
        service.warm_up(device)
        results = service.linear_probe(attribute, int(n))
        main = results[0]
        baseline = results[1].accuracy[:, -1] if len(results) > 1 else None
        fig = viz.probe_accuracy(main.layers, main.accuracy, main.query_tokens, main.control, main.majority, baseline,
                                 title=f"{attribute}: held-out accuracy ({main.n_train} train / {main.n_test} test)")
        layer, token, acc = main.best()
        summary = (f"Best: **{token} at layer {layer}: {acc:.2f}** held-out accuracy; shuffled-label control "
                   f"{float(main.control.max()):.2f}; majority class {main.majority:.2f}.")
        if baseline is not None:
            summary += f" K=0 model's [EMBED], best layer: {float(baseline.max()):.2f}."
        csv_path = str(service.export_text(f"lame-probe-{attribute}", "".join(r.to_csv() for r in results)))
        return fig, summary, csv_path

    def reset_corpus():
        """Forget the images and texts you added in this session."""
        return None, "Your additions were removed; the corpus is the shipped Shapes set again."

    def known_words() -> list[str]:
        """The words the loaded model knows (empty for a tokenizer that reads any word)."""
        return service.known_words() if service.has_closed_vocabulary() else []

    def model_info() -> list[dict[str, Any]]:
        """Which checkpoint runs each mode, with K, sizes and how it was trained."""
        return service.model_facts()

    def reveal():
        """Show a component that stays hidden until it has something (a download)."""
        return gr.update(visible=True)

    def reveal_gallery(result):
        """Show the image gallery only when the last search returned images."""
        return gr.update(visible=bool(result is not None and result.query.target_kind == "image"))

    def reveal_if_image(attention_state):
        """Show the image overlay only for a query with an image; show the download."""
        has_image = attention_state is not None and attention_state.image_attention is not None
        return gr.update(visible=has_image), gr.update(visible=True)

    quiet = {"api_name": False, "show_progress": "hidden", "queue": False}

    # ---- layout -------------------------------------------------------------------------------

    with gr.Blocks(title="LaME: latent reasoning embeddings") as demo:
        user_gallery = gr.State(None)
        attention_state = gr.State(None)
        readout_state = gr.State(None)
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
                        q_image = safe_image(label="query image (optional)", height=220, elem_id="q-image")
                        q_text = gr.Textbox(label="query text", placeholder="a red circle and a blue square", lines=2, elem_id="q-text")
                        with gr.Row():
                            q_task = gr.Dropdown(task_choices, value=AUTO, label="task (instruction)", elem_id="q-task")
                            q_target = gr.Radio(["auto", "images", "texts"], value="auto", label="search for", elem_id="q-target")
                        with gr.Row():
                            q_mode = gr.Radio(
                                mode_choices, value="latent", label="mode", elem_id="q-mode",
                                info="CoT writes a rationale for every corpus item too: its corpus is embedded in the background after start-up",
                            )
                            q_k = gr.Slider(1, MAX_K, value=8, step=1, label="top-k", elem_id="q-k")
                        search_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
                    with gr.Column(scale=3, min_width=300):
                        r_summary = gr.Markdown("Run a search to see results.", elem_id="r-summary")
                        r_gallery = gr.Gallery(label="image results", columns=4, height=300, elem_id="results-gallery", visible=True)
                        r_table = gr.Dataframe(
                            headers=["rank", "score", "kind", "text", "group", "source"],
                            label="results", wrap=True, elem_id="results-table", interactive=False,
                        )
                        with gr.Row():
                            download_btn = gr.Button("Download results (CSV, NPZ)", size="sm", elem_id="download-btn")
                        r_files = gr.File(label="downloads", file_count="multiple", elem_id="r-files", visible=False)
                gr.Examples(
                    [[e["image"], e["text"], e["task"], e["target"]] for e in examples],
                    [q_image, q_text, q_task, q_target],
                    label="Example queries: click one, then Search (their answers are in the corpus)",
                    examples_per_page=10,
                )
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

            with gr.Tab("Attention", id="attention", elem_id="tab-attention"):
                gr.Markdown(
                    "Where the reason tokens look, in **latent mode**: each `[REASON_k]` (and `[EMBED]`) row of "
                    "attention over the image patches (after Qwen2-VL's 2x2 merge) and over the text tokens, by "
                    "layer and head, recomputed from hooked queries and keys in a separate pass (never on the timed path)."
                )
                with gr.Row():
                    with gr.Column(scale=2, min_width=300):
                        a_image = safe_image(label="image (optional)", height=200, elem_id="a-image")
                        a_text = gr.Textbox(label="text", lines=2, elem_id="a-text")
                        a_task = gr.Dropdown(task_choices, value=AUTO, label="task (instruction)")
                        with gr.Row():
                            a_layer = gr.Dropdown(["mean", *[f"L{i}" for i in range(n_layers)]], value="mean", label="layer", elem_id="a-layer")
                            a_head = gr.Dropdown(["mean", *[f"H{i}" for i in range(n_heads)]], value="mean", label="head", elem_id="a-head")
                            a_token = gr.Dropdown(probed_tokens, value=probed_tokens[0], label="token", elem_id="a-token")
                        attention_btn = gr.Button("Show attention", variant="primary", elem_id="attention-btn")
                    with gr.Column(scale=3, min_width=300):
                        a_facts = gr.Markdown("Pick a query and press *Show attention*.", elem_id="a-facts")
                        a_overlay = gr.Plot(label="attention on the image", elem_id="a-overlay")
                        a_strip = gr.Plot(label="attention on the text", elem_id="a-strip")
                gr.Examples(
                    [[e["image"], e["text"], e["task"]] for e in examples if e["image"]],
                    [a_image, a_text, a_task], label="Examples: click one, then Show attention",
                )
                a_grid = gr.Plot(label="every layer and head", elem_id="a-grid")
                a_file = gr.File(label="download (NPZ: every layer, head and token; PNG: the overlay shown)", file_count="multiple",
                                 elem_id="a-file", visible=False)

            with gr.Tab("Embedding map", id="map", elem_id="tab-map"):
                gr.Markdown(
                    "The corpus in 2-D: UMAP fitted once per model and corpus (cached to disk), PCA while it fits. "
                    "Your searches in the Retrieve tab are placed on the map with UMAP's `transform` (stars)."
                )
                with gr.Row():
                    map_modes = mode_choices + ([("all modes, one map", ALL_MODES)] if service.models.single else [])
                    m_mode = gr.Radio(map_modes, value="latent", label="mode", elem_id="m-mode")
                    m_colour = gr.Radio(["group", "kind", "mode", "source"], value="group", label="colour by", elem_id="m-colour")
                    map_btn = gr.Button("Draw map", variant="primary", elem_id="map-btn")
                m_status = gr.Markdown(elem_id="m-status")
                m_plot = gr.Plot(label="embedding map", elem_id="m-plot")
                m_file = gr.File(label="download coordinates (CSV)", elem_id="m-file", visible=False)

            with gr.Tab("Race", id="race", elem_id="tab-race"):
                gr.Markdown(
                    "The same query through **explicit CoT** (generate a rationale, then embed) and **latent** "
                    "reasoning (one pass), timed live on this machine by `lame_tools.timing.race`: the CoT text grows "
                    "token by token while its clock runs. Lanes run one after another, and no other model request "
                    "runs meanwhile, so neither steals the other's cores."
                )
                with gr.Row():
                    with gr.Column(scale=2, min_width=300):
                        race_image = safe_image(label="image (optional)", height=200, elem_id="race-image")
                        race_text = gr.Textbox(label="text", lines=2, elem_id="race-text")
                        race_task = gr.Dropdown(task_choices, value=AUTO, label="task (instruction)")
                        race_disc = gr.Checkbox(value=True, label="also run the discriminative (K=0) lane")
                        race_btn = gr.Button("Start the race", variant="primary", elem_id="race-btn")
                    with gr.Column(scale=3, min_width=300):
                        race_chart = gr.Plot(label="elapsed ms", elem_id="race-chart")
                        race_numbers = gr.Markdown(elem_id="race-numbers")
                        race_latent = gr.Markdown(elem_id="race-latent")
                        race_cot = gr.Textbox(label="CoT lane: the rationale as it is written", lines=3, elem_id="race-cot")
                        race_hw = gr.Markdown(elem_id="race-hw")
                        race_file = gr.File(label="download the measured events (JSON)", elem_id="race-file", visible=False)
                gr.Examples(
                    [[e["image"], e["text"], e["task"]] for e in examples],
                    [race_image, race_text, race_task], label="Examples: click one, then Start the race",
                )
                gr.Markdown(recorded_markdown(service.recorded_benchmarks()), elem_id="race-recorded")

            with gr.Tab("Probe", id="probe", elem_id="tab-probe"):
                gr.Markdown(
                    "What the reason tokens carry, for the loaded latent model. **Ablation**: zero, drop or swap one "
                    "reason token, re-embed Shapes test queries, and measure how far the embedding moves and how the "
                    "correct answer's rank changes. **Linear probes**: read scene attributes from the reason states "
                    "layer by layer (held-out accuracy, with a shuffled-label control and the K=0 model as baseline)."
                )
                with gr.Row():
                    with gr.Column(min_width=300):
                        p_how = gr.Radio(["zero", "drop", "swap"], value="zero", label="ablation", elem_id="p-how")
                        p_n = gr.Slider(8, 64, value=24, step=8, label="queries", elem_id="p-n")
                        ablation_btn = gr.Button("Run ablation", variant="primary", elem_id="ablation-btn")
                        p_bars = gr.Plot(label="ablation", elem_id="p-bars")
                        p_table = gr.Dataframe(headers=["condition", "mean cosine", "mean rank change", "Hit@1 before", "Hit@1 after"],
                                               interactive=False, elem_id="p-table")
                        p_file = gr.File(label="download (CSV)", elem_id="p-file", visible=False)
                    with gr.Column(min_width=300):
                        lp_attribute = gr.Dropdown(list(PROBE_ATTRIBUTES), value="answer_colour", label="attribute", elem_id="lp-attribute")
                        lp_n = gr.Slider(40, 400, value=200, step=20, label="examples", elem_id="lp-n")
                        probe_btn = gr.Button("Fit linear probes", variant="primary", elem_id="probe-btn")
                        lp_summary = gr.Markdown(elem_id="lp-summary")
                        lp_plot = gr.Plot(label="probe accuracy", elem_id="lp-plot")
                        lp_file = gr.File(label="download (CSV)", elem_id="lp-file", visible=False)

            with gr.Tab("About", id="about", elem_id="tab-about"):
                gr.Markdown(service.about_markdown())
                with gr.Accordion("the loaded models as JSON", open=False):
                    info_json = gr.JSON(label="loaded models", value=service.model_facts())
                    gr.Button("refresh", size="sm").click(model_info, None, info_json, api_name="model_info")

        search_btn.click(
            search,
            [q_image, q_text, q_task, q_target, q_mode, q_k, user_gallery, session_queries],
            [r_gallery, r_table, r_summary, session_queries, last_result],
            api_name="search",
            **model_events,
        ).success(reveal_gallery, last_result, r_gallery, **quiet)
        q_text.submit(
            search,
            [q_image, q_text, q_task, q_target, q_mode, q_k, user_gallery, session_queries],
            [r_gallery, r_table, r_summary, session_queries, last_result],
            api_name=False,
            **model_events,
        ).success(reveal_gallery, last_result, r_gallery, **quiet)
        add_btn.click(add_to_corpus, [add_files, add_texts, user_gallery], [user_gallery, add_status, add_files, add_texts], api_name="add_to_corpus", **model_events)
        attention_btn.click(
            attention,
            [a_image, a_text, a_task, a_layer, a_head, a_token],
            [a_overlay, a_strip, a_grid, a_facts, a_file, attention_state, readout_state],
            api_name="attention",
            **model_events,
        ).success(reveal_if_image, attention_state, [a_overlay, a_file], **quiet)
        for control in (a_layer, a_head, a_token):
            control.change(
                attention_view,
                [attention_state, readout_state, a_layer, a_head, a_token],
                [a_overlay, a_strip, a_grid, a_facts],
                api_name=False,
                show_progress="hidden",
            )
        gr.Button(visible=False).click(
            attention_view, [attention_state, readout_state, a_layer, a_head, a_token], [a_overlay, a_strip, a_grid, a_facts],
            api_name="attention_view",
        )
        map_btn.click(embedding_map, [m_mode, m_colour, session_queries], [m_plot, m_status, m_file], api_name="embedding_map", **model_events).success(
            reveal, None, m_file, **quiet
        )
        race_btn.click(
            race,
            [race_image, race_text, race_task, race_disc],
            [race_chart, race_cot, race_latent, race_numbers, race_hw, race_file],
            api_name="race",
            **model_events,
        ).success(reveal, None, race_file, **quiet)
        ablation_btn.click(ablation, [p_how, p_n], [p_bars, p_table, p_file], api_name="ablation", **model_events).success(
            reveal, None, p_file, **quiet
        )
        probe_btn.click(linear_probe, [lp_attribute, lp_n], [lp_plot, lp_summary, lp_file], api_name="linear_probe", **model_events).success(
            reveal, None, lp_file, **quiet
        )
        download_btn.click(download_results, last_result, r_files, api_name="download_results").success(reveal, None, r_files, **quiet)
        reset_btn.click(reset_corpus, None, [user_gallery, add_status], api_name="reset_corpus")
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
        )
    except LameError as exc:
        raise SystemExit(f"error: {exc}") from None
    serve(service, concurrency=args.concurrency, max_queue=args.max_queue, prepare=spaces is None)


if __name__ == "__main__":
    main()
