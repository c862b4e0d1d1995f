"""`probe attribute` and `probe k-sweep`: the researcher's bench on the command line (registered by
`lame_tools.cli.probe`). Each writes its rows as CSV, a JSON summary and its figure as HTML (and
PNG / SVG with `--formats`, through the system Chromium) into `--out DIR`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lame_tools.atomic import atomic_write_json
from lame_tools.errors import InputError


def query_and_item(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(query Item, target Item, a label): a Shapes test example (--example N), else --image/--text and
    --item-text/--item-image."""
    from lame_tools.data.shapes import TARGET_INSTRUCTION, make_example
    from lame_tools.inputs import Item, load_image, make_items

    if args.example is not None:
        example = make_example(args.seed, args.split, args.example)
        return example.query_item(), example.target_item(), f"{args.split} example {args.example}"
    if args.image is None and not args.text:
        raise InputError("Give --example N, or a query with --image, --text or both.")
    query = make_items([args.image] if args.image else None, [args.text], args.instruction)[0]
    item_image = load_image(args.item_image, name="item image") if getattr(args, "item_image", None) else None
    item_text = getattr(args, "item_text", None)
    if item_image is None and not item_text:
        item = None
    else:
        item = Item(item_image, item_text or None, TARGET_INSTRUCTION)
    return query, item, "query"


def write_figure(fig: Any, stem: Path, formats: str) -> list[str]:
    from lame_tools.viz import export_figure

    return [str(p) for p in export_figure(fig, stem, [f.strip() for f in formats.split(",") if f.strip()])]


def attribute_verb(args: argparse.Namespace, model: Any) -> int:
    from lame_tools.probe.attribution import attribute, deletion_check
    from lame_tools.viz import save_data

    query, item, label = query_and_item(args)
    if item is None:
        raise InputError("Give the item: --example N, or --item-text and/or --item-image.")
    result = attribute(model, query, item, method=args.method, steps=args.steps)
    out = Path(args.out)
    save_data(out / "attribution.csv", result.rows())
    summary: dict[str, Any] = {
        "query": label, "method": result.method, "steps": args.steps, "cosine": round(result.score, 6),
        "query_total": round(result.query.total, 6), "query_baseline_cosine": round(result.query_baseline_score, 6),
        "item_total": round(result.item.total, 6), "item_baseline_cosine": round(result.item_baseline_score, 6),
    }
    if result.flow is not None:
        save_data(out / "flow.csv", result.flow.rows())
        summary["reason_share"] = round(result.flow.reason_share, 6)
    if query.image is not None:
        check = deletion_check(model, query, item, result, fraction=args.fraction, trials=args.trials)
        save_data(out / "deletion.csv", check.rows())
        summary["deletion"] = {"n_deleted": check.n_deleted, "top_drop": round(check.top_drop, 6),
                               "random_drop_mean": round(check.random_drop, 6), "faithful": check.faithful}
    summary["figures"] = write_figure(result.plot(), out / "attribution", args.formats)
    atomic_write_json(out / "attribution.json", summary)
    print(json.dumps(summary))
    return 0


def k_sweep_verb(args: argparse.Namespace, model: Any) -> int:
    from lame_tools.data.shapes import TARGET_INSTRUCTION, make_example
    from lame_tools.probe.k_sweep import k_sweep
    from lame_tools.viz import save_data

    query, _, label = query_and_item(args)
    texts = sorted({c for i in range(args.corpus_n) for c in make_example(args.seed, args.split, i).candidates})
    corpus = model.encode(texts=texts, instruction=TARGET_INSTRUCTION, batch_size=64)
    sweep = k_sweep(model, query, corpus, texts, top_k=args.top_k, how=args.how)
    out = Path(args.out)
    save_data(out / "k_sweep.csv", sweep.rows())
    summary = {"query": label, "corpus_texts": len(texts), "rows": sweep.rows(),
               "figures": write_figure(sweep.plot(), out / "k_sweep", args.formats)}
    atomic_write_json(out / "k_sweep.json", summary)
    print(json.dumps(summary))
    return 0


def register_bench(verbs: argparse._SubParsersAction, query_args, common, load) -> None:
    """Add `attribute` and `k-sweep` to the probe verbs (`load(args)` loads the model)."""
    from lame_tools.probe.attribution import METHODS
    from lame_tools.probe.k_sweep import SWEEP_REMOVALS

    def shared(p: argparse.ArgumentParser) -> None:
        query_args(p)
        common(p)
        p.add_argument("--example", type=int, default=None, help="a Shapes example as the query (and item)")
        p.add_argument("--split", default="test")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--formats", default="html", help="figure formats: html,png,svg (PNG/SVG need Chromium)")

    p = verbs.add_parser("attribute", help="why a query is close to an item: attribution per patch and token")
    shared(p)
    p.add_argument("--item-text", default=None)
    p.add_argument("--item-image", default=None)
    p.add_argument("--method", default=METHODS[0], choices=METHODS)
    p.add_argument("--steps", type=int, default=32, help="integrated-gradients steps")
    p.add_argument("--fraction", type=float, default=0.25, help="share of patches the deletion check removes")
    p.add_argument("--trials", type=int, default=16, help="random deletions to compare with")
    p.set_defaults(func=lambda args: attribute_verb(args, load(args)))

    p = verbs.add_parser("k-sweep", help="K in the loop: embedding, top result and read-out as reason tokens go")
    shared(p)
    p.add_argument("--corpus-n", type=int, default=60, help="Shapes examples whose candidate texts form the corpus")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--how", default="mask", choices=list(SWEEP_REMOVALS),
                   help="mask: hide the other tokens from [EMBED], positions kept; drop: remove them (positions shift)")
    p.set_defaults(func=lambda args: k_sweep_verb(args, load(args)))
