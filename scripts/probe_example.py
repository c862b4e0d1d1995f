"""The README's probing example: what the reason tokens of the shipped model look at, what they carry
and what they say, on two-step relational questions ("what is left of the red square ?").

    .venv/bin/python scripts/probe_example.py --out probe-example      # about 5 minutes on 2 CPU cores

Prints small tables and writes DIR/probe_example.json:
  0. embedding spread: within each subtask, the mean cosine between query embeddings (a collapse check);
  1. attention on objects: for each probed token (last layer, mean of heads), the attention on the
     anchor object's cells, the answer object's cells and the other objects' cells, each divided by
     what a uniform map would give those cells (1.0 = no preference), plus the total on the image;
  2. linear probes (held-out accuracy) of the answer's colour and shape and of the object count from
     reason states, against the shuffled-label control and the K = 0 model's [EMBED] states;
  3. decoder read-outs of a few queries beside their targets;
  4. ablation: zeroing each reason token (and all of them), swapping all 8 streams with another
     query's, dropping all 8: cosine to the original embedding and Hit@1 over the candidates;
  5. the UMAP map's timings: first call (embed + fit) against the second, and placing a new point.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools import SHIPPED_MODELS, load_model  # noqa: E402
from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.data.shapes import Example, object_boxes  # noqa: E402
from lame_tools.probe import (  # noqa: E402
    ablate,
    linear_probe,
    readout_items,
    reason_attention_items,
    region_mass,
    relational_examples,
)


def attention_on_objects(model, examples: list[Example], batch_size: int = 16) -> dict[str, Any]:
    """Per token (last layer, mean of heads) and per (layer, head) (mean of tokens): attention on the
    anchor / answer / other objects' cells relative to uniform (within the image). A token that never
    attends to the image (`[EMBED]` of a model with `embed_reads=reasons`) has no "where on the
    image": its ratios are None and it is left out of the heads' means."""
    per_token: dict[str, dict[str, list[float]]] = {}
    per_head: dict[str, list[np.ndarray]] = {"anchor": [], "answer": [], "other": []}
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        items = [e.query_item() for e in chunk]
        for example, att in zip(chunk, reason_attention_items(model, items, mode="latent")):
            looks = att.image_attention.sum(axis=(0, 1, 3, 4)) > 0  # [Q]: the tokens that see the image
            last = att.image_attention[-1].mean(0)  # [Q, gh, gw], last layer, mean of heads
            with np.errstate(invalid="ignore", divide="ignore"):  # a token that never looks: left out below
                last = last / last.sum((-1, -2), keepdims=True)  # where on the image, whatever the image's share
            boxes = object_boxes(example.scene)
            mass, share = region_mass(last, boxes)  # [Q, n_objects], [n_objects]
            anchor, answer = example.object_index(example.anchor), example.object_index(example.answer_object)
            others = [i for i in range(len(boxes)) if i not in (anchor, answer)]
            seeing = att.image_attention[:, :, looks]
            heads = seeing / seeing.sum((-1, -2), keepdims=True)  # [L, H, Q', gh, gw]
            head_mass, _ = region_mass(heads.mean(2), boxes)  # [L, H, n_objects], mean of tokens
            per_head["anchor"].append(head_mass[..., anchor] / share[anchor])
            per_head["answer"].append(head_mass[..., answer] / share[answer])
            if others:
                per_head["other"].append(np.mean([head_mass[..., i] / share[i] for i in others], 0))
            for q, token in enumerate(att.query_tokens):
                row = per_token.setdefault(token, {"anchor": [], "answer": [], "other": [], "image": []})
                row["image"].append(float(att.image_mass[-1, :, q].mean()))
                if not looks[q]:
                    continue
                row["anchor"].append(mass[q, anchor] / share[anchor])
                row["answer"].append(mass[q, answer] / share[answer])
                if others:
                    row["other"].append(float(np.mean([mass[q, i] / share[i] for i in others])))
    heads = {role: np.mean(v, 0) for role, v in per_head.items() if v}  # [L, H]
    return {
        "by_token_last_layer": {
            token: {k: round(float(np.mean(v)), 3) if v else None for k, v in row.items()}
            for token, row in per_token.items()
        },
        "by_layer_head": {role: v.round(3).tolist() for role, v in heads.items()},
    }


def embedding_spread(model, n: int = 200) -> dict[str, float]:
    """Mean off-diagonal cosine of the query embeddings of each subtask among the first `n` test examples:
    a collapsed subtask (every query on one point) shows 1.0, whatever the probes say."""
    from lame_tools.project import embed_examples, shapes_corpus

    examples, labels = shapes_corpus("test", n)
    embeddings = embed_examples(model, examples)
    spread = {}
    for subtask in sorted(set(labels["subtask"].tolist())):
        e = embeddings[labels["subtask"] == subtask]
        if len(e) > 1:
            sims = e @ e.T
            spread[subtask] = round(float((sims.sum() - np.trace(sims)) / (len(e) * (len(e) - 1))), 4)
    return spread


def projection_timing(model, n: int) -> dict[str, float]:
    """Time the map: first call (embed the corpus + UMAP fit, numba compiling), second call, transforms."""
    import tempfile

    from lame_tools.project import clear_memory_cache, project_shapes

    with tempfile.TemporaryDirectory() as cache_dir:
        clear_memory_cache()
        t0 = time.perf_counter()
        projection = project_shapes(model, n=n, cache_dir=cache_dir)
        t1 = time.perf_counter()
        again = project_shapes(model, n=n, cache_dir=cache_dir)
        t2 = time.perf_counter()
        query = model.encode(
            texts=["a red circle and a blue square"], instruction="find the image that matches the caption ."
        )
        t3 = time.perf_counter()
        again.transform(query)
        t4 = time.perf_counter()
        again.transform(query)
        t5 = time.perf_counter()
        clear_memory_cache()
        t6 = time.perf_counter()
        loaded = project_shapes(model, n=n, cache_dir=cache_dir)
        t7 = time.perf_counter()
        assert projection.source == "fit" and again.source == "memory" and loaded.source == "disk"
    return {
        "first_call_s": round(t1 - t0, 3),
        "second_call_ms": round((t2 - t1) * 1000, 3),
        "first_transform_s": round(t4 - t3, 3),
        "second_transform_ms": round((t5 - t4) * 1000, 2),
        "disk_load_ms": round((t7 - t6) * 1000, 2),
    }


def print_attention(attention: dict[str, Any], n: int) -> None:
    print(
        f"\n1. attention on objects ({n} relational test queries; last layer, mean of heads; "
        "x uniform; image = share of all attention)"
    )
    print(f"{'token':<12} {'anchor':>7} {'answer':>7} {'other':>7} {'image':>7}")
    for token, row in attention["by_token_last_layer"].items():
        cells = [f"{v:>7.2f}" if v is not None else f"{'-':>7}" for v in (row["anchor"], row["answer"], row.get("other"))]
        print(f"{token:<12} {' '.join(cells)} {row['image']:>7.2f}")
    by_head = attention["by_layer_head"]
    print("   per layer and head (mean of the tokens that see the image), anchor / answer / other:")
    for layer, row in enumerate(by_head["anchor"]):
        cells = [
            f"H{h} {a:.2f}/{by_head['answer'][layer][h]:.2f}/{by_head['other'][layer][h]:.2f}"
            for h, a in enumerate(row)
        ]
        print(f"   layer {layer}: " + "  ".join(cells))


def linear_probes(model, baseline, n: int) -> dict[str, Any]:
    """Section 2: the answer's colour and shape and the object count, against controls and K = 0."""
    probes = {}
    print(f"\n2. linear probes ({n} train-split queries, 30% held out)")
    print(
        f"{'attribute':<14} {'best reason/[EMBED] (layer, token)':<40} {'control':>8} {'majority':>9} {'K=0 [EMBED] best':>17}"
    )
    for attribute in ("answer_colour", "answer_shape", "n_objects"):
        lame = linear_probe(model, attribute, n=n)
        base = linear_probe(baseline, attribute, n=n, mode="discriminative")
        layer, token, acc = lame.best()
        probes[attribute] = {
            "best": {"layer": layer, "token": token, "accuracy": round(acc, 3)},
            "embed_by_layer": lame.accuracy[:, -1].round(3).tolist(),
            "reason_best_by_layer": lame.accuracy[:, :-1].max(1).round(3).tolist()
            if lame.accuracy.shape[1] > 1
            else [],
            "control_max": round(float(lame.control.max()), 3),
            "majority": round(lame.majority, 3),
            "k0_embed_by_layer": base.accuracy[:, -1].round(3).tolist(),
            "k0_control_max": round(float(base.control.max()), 3),
            "n_train": lame.n_train,
            "n_test": lame.n_test,
        }
        print(
            f"{attribute:<14} {f'{acc:.3f} (layer {layer}, {token})':<40} {lame.control.max():>8.3f} {lame.majority:>9.3f} "
            f"{base.accuracy[:, -1].max():>17.3f}"
        )
    return probes


def readouts(model, sample: list[Example]) -> list[dict[str, str]]:
    """Section 3: the decoder's read-out of a few queries beside their targets."""
    result = readout_items(model, [e.query_item() for e in sample], max_new_tokens=16)
    rows = [{"query": e.query_text, "target": e.target_text, "readout": t} for e, t in zip(sample, result.texts)]
    print("\n3. decoder read-out")
    for row in rows:
        print(f"  {row['query']:<40} target {row['target']!r:<22} read-out {row['readout']!r}")
    return rows


def ablations(model, examples: list[Example]) -> list[dict[str, Any]]:
    """Section 4: zero each token and all, swap all streams with the next query's, drop all."""
    each = ablate(model, examples, tokens="each", how="zero")
    every = ablate(model, examples, tokens="all", how="zero")
    swapped = ablate(model, examples, tokens="all", how="swap")  # donor: the next query
    dropped = ablate(model, examples, tokens="all", how="drop")
    rows = each.summary() + every.summary() + swapped.summary() + dropped.summary()
    print(f"\n4. ablation of reason tokens ({each.cosine.shape[1]} relational test queries, 16 candidates)")
    for row in rows:
        print(
            f"  {row['condition']:<58} cosine {row['mean_cosine']:.4f}  hit@1 {row['hit1_before']:.3f} -> {row['hit1_after']:.3f}"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED_MODELS["latent"])
    parser.add_argument("--baseline", type=Path, default=SHIPPED_MODELS["discriminative"], help="the K = 0 model")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-attention", type=int, default=96)
    parser.add_argument("--n-probe", type=int, default=300)
    parser.add_argument("--n-ablate", type=int, default=64)
    parser.add_argument("--n-map", type=int, default=400)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    model = load_model(args.model, device="cpu")
    baseline = load_model(args.baseline, device="cpu")
    report: dict[str, Any] = {
        "model": str(args.model),
        "baseline": str(args.baseline),
        "model_training": model.training_info,
        "baseline_training": baseline.training_info,
    }

    report["embedding_spread"] = embedding_spread(model)
    print("\n0. embedding spread: mean pairwise cosine of query embeddings within a subtask (1.0 = all the same point)")
    print("   " + "  ".join(f"{k} {v:.3f}" for k, v in report["embedding_spread"].items()))

    test = relational_examples(max(args.n_attention, args.n_ablate), "test")
    report["attention_on_objects"] = attention_on_objects(model, test[: args.n_attention])
    print_attention(report["attention_on_objects"], args.n_attention)
    report["linear_probes"] = linear_probes(model, baseline, args.n_probe)
    if model.decoder is not None:
        report["readout"] = readouts(model, test[:4])
    report["ablation"] = ablations(model, test[: args.n_ablate])

    report["projection_timing"] = projection_timing(model, args.n_map)
    t = report["projection_timing"]
    print(
        f"\n5. UMAP map of {args.n_map} test queries (fresh cache dir): first call {t['first_call_s']:.1f} s "
        f"(embed + fit), second call {t['second_call_ms']:.2f} ms; placing a new query: first "
        f"{t['first_transform_s']:.2f} s, second {t['second_transform_ms']:.1f} ms; fresh reload from disk "
        f"{t['disk_load_ms']:.1f} ms"
    )

    report["seconds"] = round(time.perf_counter() - start, 1)
    atomic_write_json(args.out / "probe_example.json", report)
    print(f"\nwrote {args.out / 'probe_example.json'} in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
