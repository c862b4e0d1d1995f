"""Plotly figures for probing results and the latency race, drawn from plain arrays only.

Nothing here runs a model: every function takes numpy arrays, lists and dicts (the outputs of
`lame_tools.probe`, `lame_tools.project`, `lame_tools.timing`) and returns a `plotly.graph_objects.Figure`.
Exports: `save_figure` writes self-contained HTML (plotly.js inlined: works offline);
`export_figure` writes HTML, PNG and SVG (paper figures): PNG/SVG go through kaleido driving the
system's Chromium (`chromium_path`: $LAME_CHROMIUM, else /usr/bin/chromium, else one on PATH; kaleido
is never allowed to download a browser, and MathJax is off so nothing is fetched), and without a
Chromium they fail with one sentence. `save_data` writes the data behind a figure as CSV or NPZ.
The attention overlay also has a Pillow PNG renderer that needs no browser (`overlay_png`).
Figures of the researcher's bench (attribution, flow, K sweep) live in `lame_tools.viz_probe`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from lame_tools.atomic import atomic_write
from lame_tools.constants import MODES
from lame_tools.viz_export import (
    chromium_path,
    export_figure,
    export_figures,
    figure_bytes,
    rows_to_csv,
    save_data,
    save_figure,
)

EXPORTS = (chromium_path, export_figure, export_figures, figure_bytes, rows_to_csv, save_data, save_figure)  # re-exported

WEBGL_THRESHOLD = 1000
LANE_COLOURS = {"latent": "#2a9d8f", "discriminative": "#8d99ae", "cot": "#e76f51"}
HEAT = "Inferno"


def upsample_to_image(grid: np.ndarray, image: np.ndarray | Image.Image) -> np.ndarray:
    """Nearest-neighbour upsampling of a [grid_h, grid_w] map to the image's [height, width]
    (each merged patch cell covers its share of the image)."""
    height, width = (image.height, image.width) if isinstance(image, Image.Image) else image.shape[:2]
    rows = np.minimum((np.arange(height) * grid.shape[0]) // height, grid.shape[0] - 1)
    cols = np.minimum((np.arange(width) * grid.shape[1]) // width, grid.shape[1] - 1)
    return grid[rows][:, cols]


def attention_overlay(
    image: np.ndarray, grid: np.ndarray, title: str = "", opacity: float = 0.55, zmax: float | None = None
) -> go.Figure:
    """The image with an attention map [grid_h, grid_w] laid over it (cells span the image).

    Args:
        image: uint8 [height, width, 3].
        grid: non-negative weights on the merged patch grid (e.g. `ReasonAttention.image_attention[l, h, q]`).
    """
    height, width = image.shape[:2]
    grid = np.asarray(grid, dtype=np.float32)
    fig = go.Figure(go.Image(z=image, hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=grid,
            x0=width / grid.shape[1] / 2 - 0.5,
            dx=width / grid.shape[1],
            y0=height / grid.shape[0] / 2 - 0.5,
            dy=height / grid.shape[0],
            colorscale=HEAT,
            opacity=opacity,
            zmin=0,
            zmax=zmax if zmax is not None else float(grid.max()) or 1.0,
            colorbar={"title": "attention"},
            hovertemplate="row %{y:.0f} px, col %{x:.0f} px<br>attention %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(title=title, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5])
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x")
    return fig


def attention_overlay_tokens(
    image: np.ndarray, grids: np.ndarray, token_names: Sequence[str], title: str = "", opacity: float = 0.55
) -> go.Figure:
    """One overlay figure with a button per probed token: grids [Q, grid_h, grid_w], one map per token."""
    grids = np.asarray(grids, dtype=np.float32)
    fig = attention_overlay(image, grids[-1], title, opacity, zmax=float(grids.max()) or 1.0)
    fig.data[1].name = token_names[-1]
    for q in range(len(token_names) - 1):
        extra = go.Heatmap(fig.data[1].to_plotly_json())
        extra.update(z=grids[q], name=token_names[q], visible=False, showscale=False)
        fig.add_trace(extra)
    order = [len(token_names) - 1, *range(len(token_names) - 1)]  # trace 1 is the last token
    buttons = []
    for trace_index, q in enumerate(order, start=1):
        visible = [True] + [i == trace_index for i in range(1, len(order) + 1)]
        buttons.append({"label": token_names[q], "method": "update", "args": [{"visible": visible}]})
    buttons = sorted(buttons, key=lambda b: list(token_names).index(b["label"]))
    fig.update_layout(
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "buttons": buttons,
                "x": 0,
                "y": -0.02,
                "xanchor": "left",
                "yanchor": "top",
                "showactive": True,
            }
        ]
    )
    return fig


def overlay_png(
    image: np.ndarray,
    grid: np.ndarray,
    path: str | os.PathLike,
    alpha: float = 0.55,
    min_side: int = 336,
    relative: bool = True,
) -> Path:
    """Render the attention overlay as a PNG with Pillow (no browser needed).

    `relative` stretches the map's own min..max over the colour scale (near-uniform maps still show
    where they peak); otherwise 0..max.
    """
    scale = max(1, -(-min_side // min(image.shape[:2])))  # small scenes are enlarged so the cells are visible
    if scale > 1:
        image = np.asarray(
            Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.LANCZOS)
        )
    weights = upsample_to_image(np.asarray(grid, dtype=np.float32), image)
    low = float(weights.min()) if relative else 0.0
    weights = (weights - low) / ((float(weights.max()) - low) or 1.0)
    # a small colour map: navy (low) -> red -> yellow (high), visible on the light scene backgrounds
    stops = np.array([[0.05, 0.05, 0.35], [0.85, 0.1, 0.1], [1.0, 0.85, 0.0]], dtype=np.float32)
    position = weights * 2
    lower = np.minimum(position.astype(int), 1)
    frac = (position - lower)[..., None]
    heat = stops[lower] * (1 - frac) + stops[lower + 1] * frac
    blended = (1 - alpha) * image.astype(np.float32) / 255 + alpha * heat
    picture = Image.fromarray((np.clip(blended, 0, 1) * 255).astype(np.uint8))

    def write(f) -> None:
        picture.save(f, format="PNG")

    return atomic_write(path, write)


def token_strip(
    tokens: Sequence[str],
    weights: np.ndarray,
    title: str = "",
    query_labels: Sequence[str] | None = None,
    signed: bool = False,
) -> go.Figure:
    """Attention on text tokens as a highlighted strip: weights [T] (one row) or [Q, T] (one row per query).
    `signed`: scores of either sign (attribution) on a diverging blue-white-red scale centred on 0."""
    z = np.atleast_2d(np.asarray(weights, dtype=np.float32))
    bound = float(np.abs(z).max()) or 1.0
    scale = {"colorscale": "RdBu_r", "zmin": -bound, "zmax": bound} if signed else {"colorscale": "Blues", "zmin": 0}
    labels = list(query_labels) if query_labels is not None else [f"query {i}" for i in range(z.shape[0])]
    text = np.array([list(tokens)] * z.shape[0])
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(len(tokens))),
            y=labels,
            text=text,
            texttemplate="%{text}",
            hovertemplate="%{y} -> %{text}: %{z:.3f}<extra></extra>",
            colorbar={"title": "attribution" if signed else "attention"},
            **scale,
        )
    )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=120 + 28 * z.shape[0], margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def head_grid(maps: np.ndarray, title: str = "", layer_labels: Sequence[str] | None = None) -> go.Figure:
    """A grid of small heatmaps, one per (layer, head): maps [layer, head, h, w] (image) or [layer, head, T] (text)."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == 3:
        maps = maps[:, :, None, :]
    n_layers, n_heads = maps.shape[:2]
    labels = list(layer_labels) if layer_labels is not None else [f"L{i}" for i in range(n_layers)]
    fig = make_subplots(
        rows=n_layers,
        cols=n_heads,
        subplot_titles=[f"{labels[i]} H{j}" for i in range(n_layers) for j in range(n_heads)],
        horizontal_spacing=0.02,
        vertical_spacing=0.04,
    )
    zmax = float(maps.max()) or 1.0
    for i in range(n_layers):
        for j in range(n_heads):
            fig.add_trace(
                go.Heatmap(
                    z=maps[i, j],
                    colorscale=HEAT,
                    zmin=0,
                    zmax=zmax,
                    showscale=(i == 0 and j == 0),
                    hovertemplate=f"{labels[i]} H{j}: %{{z:.3f}}<extra></extra>",
                ),
                row=i + 1,
                col=j + 1,
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(title=title, height=max(300, 130 * n_layers), margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


def ablation_bars(
    conditions: Sequence[str], mean_cosine: Sequence[float], mean_rank_change: Sequence[float], title: str = ""
) -> go.Figure:
    """Per ablation condition: 1 - cosine to the original embedding, and the mean change of the target's rank."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=["embedding change (1 - cosine)", "target rank change (+ = worse)"]
    )
    fig.add_trace(
        go.Bar(
            x=list(conditions),
            y=1 - np.asarray(mean_cosine, dtype=np.float64),
            marker_color="#264653",
            name="1 - cosine",
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Bar(x=list(conditions), y=list(mean_rank_change), marker_color="#e76f51", name="rank change"), 1, 2
    )
    fig.update_layout(title=title, showlegend=False, margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


def probe_accuracy(
    layers: Sequence[int],
    accuracy: np.ndarray,
    query_tokens: Sequence[str],
    control: np.ndarray | None = None,
    majority: float | None = None,
    baseline: np.ndarray | None = None,
    title: str = "",
) -> go.Figure:
    """Held-out probe accuracy by layer: one line per probed token, the shuffled-label control,
    the majority floor and (optionally) the K = 0 model's [EMBED] baseline [layer]."""
    accuracy = np.asarray(accuracy, dtype=np.float32)
    x = [f"layer {i}" for i in layers]
    fig = go.Figure()
    for q, token in enumerate(query_tokens):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=accuracy[:, q],
                mode="lines+markers",
                name=token,
                line={"width": 3 if token == "[EMBED]" else 1.5},
            )
        )
    if control is not None:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.asarray(control).max(1),
                mode="lines",
                name="shuffled labels (best token)",
                line={"dash": "dot", "color": "grey"},
            )
        )
    if baseline is not None:
        fig.add_trace(
            go.Scatter(
                x=x[: len(baseline)],
                y=np.asarray(baseline),
                mode="lines+markers",
                name="K=0 [EMBED]",
                line={"dash": "dash", "color": "black", "width": 3},
            )
        )
    if majority is not None:
        fig.add_hline(y=majority, line_dash="dash", line_color="firebrick", annotation_text="majority class")
    fig.update_layout(
        title=title,
        yaxis={"title": "held-out accuracy", "range": [0, 1.02]},
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def projection_scatter(
    coords: np.ndarray,
    labels: Sequence[str] | np.ndarray | None = None,
    hover: Sequence[str] | None = None,
    highlight: np.ndarray | None = None,
    highlight_labels: Sequence[str] | None = None,
    title: str = "",
) -> go.Figure:
    """Corpus points [N, 2] coloured by label; new points [M, 2] drawn as stars. WebGL past 1,000 points."""
    coords = np.asarray(coords, dtype=np.float32)
    trace = go.Scattergl if len(coords) > WEBGL_THRESHOLD else go.Scatter
    labels = np.asarray(labels if labels is not None else ["corpus"] * len(coords)).astype(str)
    hover_text = np.asarray(hover if hover is not None else labels).astype(str)
    fig = go.Figure()
    for value in sorted(set(labels.tolist())):
        mask = labels == value
        fig.add_trace(
            trace(
                x=coords[mask, 0],
                y=coords[mask, 1],
                mode="markers",
                name=value,
                text=hover_text[mask],
                hovertemplate="%{text}<extra></extra>",
                marker={"size": 6, "opacity": 0.75},
            )
        )
    if highlight is not None and len(highlight):
        highlight = np.asarray(highlight, dtype=np.float32)
        names = (
            list(highlight_labels) if highlight_labels is not None else [f"query {i}" for i in range(len(highlight))]
        )
        fig.add_trace(
            go.Scatter(
                x=highlight[:, 0],
                y=highlight[:, 1],
                mode="markers+text",
                name="new",
                text=names,
                textposition="top center",
                marker={"symbol": "star", "size": 16, "color": "black", "line": {"width": 1, "color": "white"}},
            )
        )
    fig.update_layout(title=title, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"itemsizing": "constant"})
    return fig


def race_chart(
    elapsed_ms: Mapping[str, float],
    done: Mapping[str, bool] | None = None,
    tokens: Mapping[str, int] | None = None,
    title: str = "",
    log_x: bool | None = None,
) -> go.Figure:
    """The latency race: one horizontal bar per lane with its elapsed ms so far.

    Args:
        elapsed_ms: lane -> elapsed milliseconds (running or final), e.g. from `timing.race` events.
        done: lane -> finished (unfinished lanes are drawn faded, with an ellipsis).
        tokens: lane -> generated tokens so far (shown for generative lanes).
        log_x: log-scaled time axis; default when the slowest lane is over 20x the fastest.
    """
    lanes = [lane for lane in MODES if lane in elapsed_ms] + [lane for lane in elapsed_ms if lane not in MODES]
    done = done or {}
    tokens = tokens or {}
    values = [max(float(elapsed_ms[lane]), 1e-3) for lane in lanes]
    texts = []
    for lane, value in zip(lanes, values):
        label = f"{value:,.1f} ms"
        if tokens.get(lane):
            label += f" · {tokens[lane]} tokens"
        texts.append(label + ("" if done.get(lane, True) else " …"))
    fig = go.Figure(
        go.Bar(
            x=values,
            y=lanes,
            orientation="h",
            text=texts,
            textposition="auto",
            marker={
                "color": [LANE_COLOURS.get(lane, "#457b9d") for lane in lanes],
                "opacity": [1.0 if done.get(lane, True) else 0.55 for lane in lanes],
            },
            hovertemplate="%{y}: %{x:.1f} ms<extra></extra>",
        )
    )
    if log_x is None:
        log_x = len(values) > 1 and max(values) / min(values) > 20
    fig.update_xaxes(title="elapsed ms" + (" (log scale)" if log_x else ""), type="log" if log_x else "linear")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title=title, height=110 + 60 * len(lanes), margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=False
    )
    return fig
