"""`python -m lame_tools probe attention|readout|ablate|linear|project|attribute|k-sweep ...`: probes that write files.

(`attribute` and `k-sweep` live in `lame_tools.cli.probe_bench`.)

Every verb writes its data (NPZ / CSV / JSON) and its figures (self-contained HTML; the attention
overlay also as PNG) into `--out DIR`, and prints a short summary. Default model: the shipped one.
The probing itself lives in `lame_tools.probe`, the figures in `lame_tools.viz`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from lame_tools.atomic import atomic_write, atomic_write_json, atomic_write_text
from lame_tools.constants import MODES, reason_token
from lame_tools.errors import InputError
from lame_tools.probe.ablation import ABLATIONS


def _load(args: argparse.Namespace):
    from lame_tools import load_model

    return load_model(args.model, device=args.device)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _csv(rows: list[list[Any]], header: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _image_attention_files(att: Any, layer: int, out: Path) -> dict[str, Any]:
    """The image side of `probe attention`: the per-cell CSV, the overlays and the head grid; returns
    the summary's image fields (grid, top patch per probed token)."""
    from lame_tools import viz

    grid = att.image_attention
    n_layers, n_heads, n_query = grid.shape[:3]
    rows = [
        [li, h, att.query_tokens[q], r, c, f"{grid[li, h, q, r, c]:.6f}"]
        for li in range(n_layers)
        for h in range(n_heads)
        for q in range(n_query)
        for r in range(grid.shape[3])
        for c in range(grid.shape[4])
    ]
    atomic_write_text(
        out / "image_attention.csv", _csv(rows, ["layer", "head", "query", "grid_row", "grid_col", "weight"])
    )
    mean = grid[layer].mean(0)  # [Q, gh, gw]
    summary = {
        "grid": list(att.grid),
        "top_patch": {
            tok: [int(v) for v in np.unravel_index(int(mean[q].argmax()), mean[q].shape)]
            for q, tok in enumerate(att.query_tokens)
        },
    }
    viz.save_figure(
        viz.attention_overlay_tokens(att.image, mean, att.query_tokens, f"image attention, layer {layer}, mean of heads"),
        out / "overlay.html",
    )
    for q, token in enumerate(att.query_tokens):
        viz.overlay_png(att.image, mean[q], out / f"overlay_{token.strip('[]').lower()}.png")
    viz.save_figure(viz.head_grid(grid[:, :, -1], "[EMBED] -> image, every layer and head"), out / "heads_embed.html")
    return summary


def _attention(args: argparse.Namespace) -> int:
    from lame_tools import viz
    from lame_tools.probe.attention import reason_attention

    if args.image is None and not args.text:
        raise InputError("Give --image, --text or both.")
    model = _load(args)
    att = reason_attention(model, image=args.image, text=args.text, instruction=args.instruction, mode=args.mode)
    out = Path(args.out)
    _save_npz(out / "attention.npz", att.to_npz_dict())
    n_layers, n_heads, n_query = att.text_attention.shape[:3]
    layer = args.layer if args.layer is not None else n_layers - 1
    if not 0 <= layer < n_layers:
        raise InputError(f"--layer must be in 0..{n_layers - 1}.")
    rows = [
        [li, h, att.query_tokens[q], t, att.text_tokens[t], f"{att.text_attention[li, h, q, t]:.6f}"]
        for li in range(n_layers)
        for h in range(n_heads)
        for q in range(n_query)
        for t in range(len(att.text_tokens))
    ]
    atomic_write_text(
        out / "text_attention.csv", _csv(rows, ["layer", "head", "query", "key_index", "key_token", "weight"])
    )
    summary: dict[str, Any] = {
        "query_tokens": att.query_tokens,
        "layer_shown": layer,
        "mode": att.mode,
        "image_mass_mean_over_heads": att.image_mass[layer].mean(0).round(4).tolist(),
    }
    text_mean = att.text_attention[layer].mean(0)  # [Q, T]
    viz.save_figure(
        viz.token_strip(att.text_tokens, text_mean, f"text attention, layer {layer}, mean of heads", att.query_tokens),
        out / "text_attention.html",
    )
    if att.image_attention is not None:
        summary.update(_image_attention_files(att, layer, out))
    atomic_write_json(out / "summary.json", summary)
    print(json.dumps(summary))
    print(f"wrote {out}")
    return 0


def _readout(args: argparse.Namespace) -> int:
    from lame_tools.probe.readout import readout, readout_per_token

    model = _load(args)
    result = readout(
        model,
        image=args.image,
        text=args.text,
        instruction=args.instruction,
        max_new_tokens=args.max_new_tokens,
        num_beams=args.beams,
    )
    data: dict[str, Any] = {
        "text": result.texts[0],
        "tokens": result.tokens[0],
        "token_probs": [round(float(p), 4) for p in result.token_probs[0]],
        "beams": args.beams,
    }
    if args.per_token:
        items = model.make_items([args.image] if args.image else None, [args.text], args.instruction)
        data["per_token"] = {
            reason_token(k): r.texts[0] for k, r in enumerate(readout_per_token(model, items, args.max_new_tokens))
        }
    atomic_write_json(Path(args.out) / "readout.json", data)
    print(json.dumps(data))
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from lame_tools import viz
    from lame_tools.data.shapes import make_example
    from lame_tools.probe.ablation import ablate

    model = _load(args)
    examples = [make_example(args.seed, args.split, i) for i in range(args.n)]
    tokens: Any = args.tokens
    if tokens not in ("each", "all"):
        tokens = [[int(x) for x in part.split("+")] for part in tokens.split(",")]
    result = ablate(model, examples, tokens=tokens, how=args.how)
    out = Path(args.out)
    atomic_write_text(out / "ablation.csv", result.to_csv())
    summary = result.summary()
    atomic_write_json(
        out / "summary.json", {"how": args.how, "n_queries": int(result.cosine.shape[1]), "conditions": summary}
    )
    viz.save_figure(
        viz.ablation_bars(
            [s["condition"] for s in summary],
            [s["mean_cosine"] for s in summary],
            [s["mean_rank_change"] for s in summary],
            f"ablation ({args.how})",
        ),
        out / "ablation.html",
    )
    for s in summary:
        print(
            f"{s['condition']:<40} cosine {s['mean_cosine']:.4f}  rank change {s['mean_rank_change']:+.2f}  "
            f"hit@1 {s['hit1_before']:.3f} -> {s['hit1_after']:.3f}"
        )
    return 0


def _linear(args: argparse.Namespace) -> int:
    from lame_tools import SHIPPED_MODELS, load_model, viz
    from lame_tools.probe.linear import linear_probe

    model = _load(args)
    out = Path(args.out)
    result = linear_probe(model, args.attribute, n=args.n, split=args.split, seed=args.seed)
    text = result.to_csv()
    summary: dict[str, Any] = {
        "attribute": args.attribute,
        "best": result.best(),
        "majority": result.majority,
        "control_max": float(result.control.max()),
        "n_train": result.n_train,
        "n_test": result.n_test,
    }
    baseline = None
    baseline_dir = None if args.no_baseline else (args.baseline_model or SHIPPED_MODELS["discriminative"])
    if baseline_dir is not None and Path(baseline_dir).is_dir():
        base = linear_probe(
            load_model(baseline_dir, device=args.device),
            args.attribute,
            n=args.n,
            split=args.split,
            seed=args.seed,
            mode="discriminative",
        )
        baseline = base.accuracy[:, -1]
        summary["baseline_k0_embed"] = {
            "model": str(baseline_dir),
            "by_layer": baseline.round(4).tolist(),
            "control_max": float(base.control.max()),
        }
        text += base.to_csv().split("\n", 1)[1].replace(f"{args.attribute},", f"{args.attribute} (K=0 baseline),")
    atomic_write_text(out / "probe.csv", text)
    atomic_write_json(out / "summary.json", summary)
    viz.save_figure(
        viz.probe_accuracy(
            result.layers,
            result.accuracy,
            result.query_tokens,
            result.control,
            result.majority,
            baseline,
            f"linear probes: {args.attribute}",
        ),
        out / "probe_accuracy.html",
    )
    print(json.dumps(summary))
    return 0


def _project(args: argparse.Namespace) -> int:
    import time

    from lame_tools import viz
    from lame_tools.project import project_shapes

    model = _load(args)
    out = Path(args.out)
    start = time.perf_counter()
    projection = project_shapes(model, split=args.split, n=args.n, method=args.method, cache_dir=args.cache_dir)
    fit_s = time.perf_counter() - start
    new = None
    if args.image or args.text:
        start = time.perf_counter()
        embedding = model.encode(
            images=[args.image] if args.image else None, texts=[args.text], instruction=args.instruction
        )
        new = projection.transform(embedding)
        transform_s = time.perf_counter() - start
    labels = projection.labels.get(args.colour_by, np.array(["corpus"] * len(projection.coords)))
    arrays = {"coords": projection.coords, **{f"label_{k}": v for k, v in projection.labels.items()}}
    if new is not None:
        arrays["new_coords"] = new
    _save_npz(out / "projection.npz", arrays)
    rows = [
        [i, f"{x:.5f}", f"{y:.5f}", *(str(v[i]) for v in projection.labels.values())]
        for i, (x, y) in enumerate(projection.coords)
    ]
    atomic_write_text(out / "projection.csv", _csv(rows, ["index", "x", "y", *projection.labels]))
    fig = viz.projection_scatter(
        projection.coords,
        labels,
        highlight=new,
        highlight_labels=[args.text or "image"] if new is not None else None,
        title=f"{projection.method.upper()} of {args.n} {args.split} queries, coloured by {args.colour_by}",
    )
    viz.save_figure(fig, out / "projection.html")
    summary = {
        "method": projection.method,
        "source": projection.source,
        "fit_or_load_s": round(fit_s, 3),
        "key": projection.key,
    }
    if new is not None:
        summary["new_point"] = new[0].round(4).tolist()
        summary["embed_and_transform_s"] = round(transform_s, 3)
    atomic_write_json(out / "summary.json", summary)
    print(json.dumps(summary))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `probe` and its sub-commands."""
    from lame_tools.cli.common import add_model_argument

    probe = subparsers.add_parser(
        "probe", help="probe reason tokens: attention, read-out, ablation, linear probes, projections"
    )
    verbs = probe.add_subparsers(dest="probe_verb", required=True)

    def query_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--image", default=None, help="query image file")
        p.add_argument("--text", default=None, help="query text")
        p.add_argument("--instruction", default=None, help="task instruction (default: none)")

    def common(p: argparse.ArgumentParser) -> None:
        add_model_argument(p)
        p.add_argument("--out", required=True, type=Path, help="folder to write data and figures into")

    p = verbs.add_parser("attention", help="reason-token attention over image patches and text, per layer and head")
    query_args(p)
    common(p)
    p.add_argument("--mode", default=None, choices=MODES)
    p.add_argument("--layer", type=int, default=None, help="layer drawn in the figures (default: last)")
    p.set_defaults(func=_attention)

    p = verbs.add_parser("readout", help="decode what the latent decoder reads from the K reason states")
    query_args(p)
    common(p)
    p.add_argument("--beams", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--per-token", action="store_true", help="also read out each reason token alone")
    p.set_defaults(func=_readout)

    p = verbs.add_parser("ablate", help="drop / zero / swap / mask reason tokens and measure cosine and rank changes")
    common(p)
    p.add_argument("--how", default="zero", choices=list(ABLATIONS))
    p.add_argument("--tokens", default="each", help="each | all | comma list of indices or sets, e.g. 0,1+2")
    p.add_argument("--n", type=int, default=64, help="Shapes queries")
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_ablate)

    p = verbs.add_parser("linear", help="linear probes from reason states to Shapes attributes, with controls")
    common(p)
    p.add_argument(
        "--attribute",
        default="answer_colour",
        help="n_objects | colours_present | answer_colour | answer_shape | asked_colour | asked_shape | question_shape | question_colour | question_relation | has_<colour>",
    )
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--split", default="train")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--baseline-model",
        type=Path,
        default=None,
        help="K=0 model for the [EMBED] baseline (default: shipped discriminative)",
    )
    p.add_argument("--no-baseline", action="store_true")
    p.set_defaults(func=_linear)

    p = verbs.add_parser("project", help="UMAP/PCA map of a Shapes corpus (fitted once, cached); place a new query")
    query_args(p)
    common(p)
    p.add_argument("--method", default="umap", choices=["umap", "pca"])
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--split", default="test")
    p.add_argument("--colour-by", default="subtask", choices=["task", "subtask", "n_objects", "answer"])
    p.add_argument("--cache-dir", type=Path, default=None)
    p.set_defaults(func=_project)

    from lame_tools.cli.probe_bench import register_bench

    register_bench(verbs, query_args, common, _load)
