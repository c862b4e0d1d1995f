"""Figures of the researcher's bench: similarity attribution, attention flow, deletion check, K sweep, the map.

Like `lame_tools.viz`, nothing here runs a model: every function takes arrays (or a result object
of `lame_tools.probe`) and returns a plotly Figure. Signed scores use a diverging scale centred on
zero: red raises the cosine, blue lowers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lame_tools.viz import WEBGL_THRESHOLD, token_strip

SIGNED = "RdBu_r"


def signed_heatmap(image: np.ndarray, grid: np.ndarray, bound: float, opacity: float = 0.6,
                   showscale: bool = True) -> list[Any]:
    """(the image, a signed heatmap spanning it) as two traces."""
    height, width = image.shape[:2]
    grid = np.asarray(grid, dtype=np.float32)
    return [
        go.Image(z=image, hoverinfo="skip"),
        go.Heatmap(z=grid, x0=width / grid.shape[1] / 2 - 0.5, dx=width / grid.shape[1],
                   y0=height / grid.shape[0] / 2 - 0.5, dy=height / grid.shape[0], colorscale=SIGNED, zmin=-bound,
                   zmax=bound, opacity=opacity, showscale=showscale, colorbar={"title": "attribution"},
                   hovertemplate="patch row %{y:.0f} px, col %{x:.0f} px<br>attribution %{z:.4f}<extra></extra>"),
    ]


def signed_overlay(image: np.ndarray, grid: np.ndarray, title: str = "") -> go.Figure:
    """The image with a signed attribution map [grid_h, grid_w] over it."""
    fig = go.Figure(signed_heatmap(image, grid, float(np.abs(grid).max()) or 1.0))
    height, width = image.shape[:2]
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5])
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x")
    fig.update_layout(title=title, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def attribution_figure(attribution: Any, title: str = "") -> go.Figure:
    """Query and item side by side: patch overlays on a shared signed scale, text tokens as bars below."""
    sides = [("query", attribution.query), ("item", attribution.item)]
    values = [np.abs(s.text_scores).max(initial=0) for _, s in sides]
    values += [np.abs(s.image_scores).max() for _, s in sides if s.image_scores is not None]
    bound = float(max(values)) or 1.0
    fig = make_subplots(rows=2, cols=2, row_heights=[0.62, 0.38], vertical_spacing=0.12,
                        subplot_titles=[f"{n}: image patches" for n, _ in sides] + [f"{n}: text tokens" for n, _ in sides])
    for col, (name, side) in enumerate(sides, start=1):
        if side.image_scores is not None and side.image is not None:
            for trace in signed_heatmap(side.image, side.image_scores, bound, showscale=col == 1):
                fig.add_trace(trace, 1, col)
            fig.update_yaxes(autorange="reversed", scaleanchor=f"x{col if col > 1 else ''}", row=1, col=col)
        labels = [f"{i}:{t}" for i, t in enumerate(side.text_tokens)]
        colours = ["#c0392b" if v >= 0 else "#2c7fb8" for v in side.text_scores]
        fig.add_trace(go.Bar(x=labels, y=side.text_scores, marker_color=colours, name=f"{name} tokens",
                             hovertemplate="%{x}: %{y:.4f}<extra></extra>"), 2, col)
    fig.update_xaxes(visible=False, row=1)
    fig.update_yaxes(visible=False, row=1)
    fig.update_layout(title=title, showlegend=False, height=640, margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


def flow_bars(tokens: Sequence[str], through: np.ndarray, direct: np.ndarray, title: str = "") -> go.Figure:
    """Attention flow into [EMBED] per input position, stacked: through the reason tokens and direct."""
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    fig = go.Figure([go.Bar(x=labels, y=through, name="through reason tokens", marker_color="#2a9d8f"),
                     go.Bar(x=labels, y=direct, name="direct", marker_color="#8d99ae")])
    fig.update_layout(barmode="stack", title=title, yaxis={"title": "rollout weight"},
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def deletion_bars(top_drop: float, random_drops: np.ndarray, title: str = "") -> go.Figure:
    """The cosine's drop when the top-attributed patches are deleted, against each random draw."""
    random_drops = np.asarray(random_drops, dtype=np.float64)
    fig = go.Figure([go.Bar(x=["top-attributed"], y=[top_drop], marker_color="#c0392b", name="top"),
                     go.Box(x=["random"] * len(random_drops), y=random_drops, name="random", boxpoints="all",
                            marker_color="#8d99ae")])
    fig.update_layout(title=title, yaxis={"title": "drop in cosine"}, showlegend=False,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def k_sweep_figure(ks: Sequence[int], cosine_to_full: Sequence[float], top_scores: Sequence[float],
                   top_labels: Sequence[str], readouts: Sequence[str], title: str = "",
                   kept_label: str = "reason tokens kept (K)") -> go.Figure:
    """K in the loop: per K, the embedding's cosine to the full-K one and its top result's score,
    each point labelled with the top result; the read-out in the hover."""
    hover = [f"K={k}<br>top: {t}<br>read-out: {r or '(none)'}" for k, t, r in zip(ks, top_labels, readouts)]
    fig = go.Figure([
        go.Scatter(x=list(ks), y=list(cosine_to_full), mode="lines+markers", name="cosine to the K-token embedding",
                   text=hover, hovertemplate="%{text}<br>%{y:.3f}<extra></extra>"),
        go.Scatter(x=list(ks), y=list(top_scores), mode="lines+markers+text", name="top result's score",
                   text=list(top_labels), textposition="top center", hovertext=hover,
                   hovertemplate="%{hovertext}<br>%{y:.3f}<extra></extra>"),
    ])
    fig.update_xaxes(title=kept_label, autorange="reversed", dtick=1)
    fig.update_layout(title=title, yaxis={"title": "cosine"}, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def map_scatter(coords: np.ndarray, labels: Sequence[str], hover: Sequence[str], thumbnails: Sequence[str],
                highlight: np.ndarray | None = None, highlight_labels: Sequence[str] | None = None,
                title: str = "") -> go.Figure:
    """The explorable map: one trace per label, each point's customdata = [its corpus index, its
    thumbnail data URI ("" for texts)], so the page's hover panel and click handler find the entry.
    WebGL past `WEBGL_THRESHOLD` points; lasso selection is the default drag."""
    coords = np.asarray(coords, dtype=np.float32)
    trace = go.Scattergl if len(coords) > WEBGL_THRESHOLD else go.Scatter
    labels = np.asarray(labels).astype(str)
    hover = np.asarray(hover).astype(str)
    fig = go.Figure()
    for value in sorted(set(labels.tolist())):
        index = np.flatnonzero(labels == value)
        custom = [[int(i), thumbnails[i]] for i in index]
        fig.add_trace(trace(x=coords[index, 0], y=coords[index, 1], mode="markers", name=value, text=hover[index],
                            customdata=custom, hovertemplate="%{text}<extra></extra>",
                            marker={"size": 7, "opacity": 0.8}))
    if highlight is not None and len(highlight):
        names = list(highlight_labels or [f"query {i}" for i in range(len(highlight))])
        fig.add_trace(go.Scatter(x=highlight[:, 0], y=highlight[:, 1], mode="markers+text", name="new", text=names,
                                 textposition="top center", customdata=[[-1, ""]] * len(names),
                                 marker={"symbol": "star", "size": 16, "color": "black"}))
    fig.update_layout(title=title, dragmode="lasso", hovermode="closest", legend={"itemsizing": "constant"},
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


__all__ = ["attribution_figure", "deletion_bars", "flow_bars", "k_sweep_figure", "map_scatter", "signed_overlay",
           "token_strip"]
