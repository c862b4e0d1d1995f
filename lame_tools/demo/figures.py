"""The app's figures, drawn from the services' views with `lame_tools.viz` (plotly; no model call)."""

from __future__ import annotations

from typing import Any

from lame_tools import viz, viz_probe
from lame_tools.demo.bench import AttributionView, KSweepView
from lame_tools.demo.maps import MapView
from lame_tools.demo.probes import AblationView, AttentionView, ProbeView
from lame_tools.demo.race_board import RaceBoard


def attention_figures(view: AttentionView) -> tuple[Any, Any, Any]:
    """(the overlay on the image or None without one, attention on the text, every layer and head)."""
    attention, choice = view.attention, view.choice
    overlay = None
    if choice.image_grid is not None:
        overlay = viz.attention_overlay(attention.image, choice.image_grid, title=view.overlay_title)
    strip = viz.token_strip(attention.text_tokens, choice.text_rows, title=view.strip_title,
                            query_labels=attention.query_tokens)
    grid = viz.head_grid(choice.per_head, title=view.grid_title)
    return overlay, strip, grid


def map_figure(view: MapView, colour_by: str) -> Any:
    """The corpus points coloured by `colour_by` (each with its index and hover thumbnail), the session's
    queries as stars; lasso selection by default."""
    thumbnails = view.thumbnails or [""] * len(view.entries)
    return viz_probe.map_scatter(view.coords, view.labels(colour_by), view.hover, thumbnails, view.query_coords,
                                 view.query_labels, title=view.title)


def attribution_figures(view: AttributionView) -> tuple[Any, Any, Any]:
    """(both sides' attribution, the attention flow into [EMBED] or None, the deletion check)."""
    result = view.result
    flow = result.flow.plot() if result.flow is not None else None
    deletion = view.deletion.plot() if view.deletion is not None else None
    return result.plot(title=view.title), flow, deletion


def k_sweep_figure(view: KSweepView) -> Any:
    """K in the loop: the embedding's cosine to the K-token one and the top result's score per K."""
    return view.sweep.plot(title=view.title)


def race_figure(board: RaceBoard) -> Any:
    """Each lane's measured elapsed ms so far."""
    return viz.race_chart(board.elapsed_ms, board.done, board.tokens, title="elapsed ms (measured)")


def ablation_figure(view: AblationView) -> Any:
    """Per condition: the mean cosine to the unablated embedding and the mean rank change."""
    rows = view.rows
    return viz.ablation_bars([r["condition"] for r in rows], [r["mean_cosine"] for r in rows],
                             [r["mean_rank_change"] for r in rows], title=view.title)


def probe_figure(view: ProbeView) -> Any:
    """Held-out probe accuracy per layer and token, with the control, the majority class and the baseline."""
    main = view.main
    return viz.probe_accuracy(main.layers, main.accuracy, main.query_tokens, main.control, main.majority,
                              view.baseline, title=view.title)
