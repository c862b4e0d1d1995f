"""Does the model look at the object the question names? For colour_of / shape_of queries of the
balanced split, the attention (each layer and head) of `[EMBED]`, of each reason token and of the
question's word that names the object (`<word>`: "square" in "what colour is the square ?"; one-pass
modes) on the visual token whose cell holds the named object's centre, against the tokens of the
scene's other objects: how often the named object gets the most of it (chance: one over the number
of objects) and its share of the attention on all the objects' tokens, over all queries and apart
on held-out and seen colour-shape pairs. With `--reference` (the model's `eval` JSON) both are also
given separately for the queries the model answers right and wrong.

A head that finds the named object while the answer is wrong points at the read-out; no head that
finds it points at the look-up (binding).

    .venv/bin/python scripts/binding_attention.py assets/models/discriminative-shapes --split test \
        --reference assets/results/eval_balanced_discriminative-shapes_discriminative.json \
        --out assets/results/binding_attention_discriminative-shapes.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.data.render import render  # noqa: E402
from lame_tools.data.shapes import BALANCED_SIZES, balanced_examples  # noqa: E402
from lame_tools.intervals import wilson_share  # noqa: E402
from lame_tools.lookup_loss import attention_rows, naming_word_positions  # noqa: E402
from lame_tools.model import LameModel  # noqa: E402
from lame_tools.probe.attention import reason_attention_items  # noqa: E402
from lame_tools.probe.hooks import num_layers  # noqa: E402
from lame_tools.scene_head import cell_of  # noqa: E402

SUBTASKS = ("colour_of", "shape_of")


def centre_cell(obj, grid: tuple[int, int]) -> tuple[int, int]:
    """(row, column) of the merged-grid cell that holds the object's centre (`scene_head.cell_of`)."""
    return divmod(cell_of(obj.x, obj.y, *grid), grid[1])


def object_attention(image_attention: np.ndarray, scene, answer) -> tuple[np.ndarray, int]:
    """Attention [layer, head, token, objects] of each probed token on each object's centre cell
    (cells shared by two objects count for each), and the index of the named object."""
    grid = image_attention.shape[-2:]
    cells = [centre_cell(o, grid) for o in scene.objects]
    return np.stack([image_attention[..., r, c] for r, c in cells], -1), scene.objects.index(answer)


def word_attention(model, items, examples) -> list[np.ndarray]:
    """Attention [layer, head, grid_h * grid_w] of each query's naming word on its visual tokens."""
    mode = model.config.default_mode
    batch = model.prepare(items, mode)
    words = naming_word_positions(batch["input_ids"], model.processor.tokenizer, examples)
    with torch.no_grad(), contextlib.ExitStack() as stack:
        per_layer = [stack.enter_context(attention_rows(model, layer, batch["attention_mask"], words))
                     for layer in range(num_layers(model))]
        model.embed_pass(batch, model.num_reason_tokens if mode == "latent" else 0)
    rows = torch.stack([layer[0] for layer in per_layer], 1)  # [item, layer, head, seq]
    image = batch["input_ids"] == model.processor.image_token_id
    return [rows[i][..., image[i]].numpy() for i in range(len(items))]


def measure(model, subtask: str, split: str, per_subtask: int, batch_size: int = 16) -> tuple[list[dict], list[str]]:
    """One row per query: attention [layer, head, token, objects], the named object's index, whether
    its pair is held out; and the probed tokens' names (the naming word last, in one-pass modes)."""
    examples = [e for _, e in balanced_examples(0, split, per_subtask, subtasks=(subtask,))]
    with_word = model.config.default_mode in ("latent", "discriminative")
    rows, tokens = [], []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        items = model.make_items([render(e.scene) for e in chunk], [e.query_text for e in chunk],
                                 [e.instruction for e in chunk])
        words = word_attention(model, items, chunk) if with_word else None
        for offset, (example, att) in enumerate(zip(chunk, reason_attention_items(model, items))):
            tokens = att.query_tokens + (["<word>"] if with_word else [])
            grid = att.image_attention
            if with_word:
                grid = np.concatenate([grid, words[offset].reshape(*grid.shape[:2], 1, *grid.shape[-2:])], 2)
            mass, named = object_attention(grid, example.scene, example.answer_object)
            rows.append({"index": start + offset, "objects": len(example.scene.objects), "mass": mass,
                         "named": named, "held_out": example.held_out_pair})
    return rows, tokens


def _top_rate(entry: dict) -> float:
    return entry["all"]["top"]["share"]


def summarize(rows: list[dict], hits: list[float] | None, tokens: list[str]) -> dict:
    """Per layer, head and probed token: the named object's top rate (with chance) and mean share,
    over queries of two objects or more, apart on held-out and seen pairs, and by the model's hit when
    `hits` (per query, the eval's order) is given. "best" is the best head of `[EMBED]`, "best_any"
    of any token."""
    rows = [r for r in rows if r["objects"] > 1]
    layers, heads = rows[0]["mass"].shape[:2]
    groups = {"all": rows, "held_out": [r for r in rows if r.get("held_out")],
              "seen": [r for r in rows if not r.get("held_out")]}
    if hits is not None:
        groups["right"] = [r for r in rows if hits[r["index"]] == 1.0]
        groups["wrong"] = [r for r in rows if hits[r["index"]] == 0.0]
    chance = float(np.mean([1 / r["objects"] for r in rows]))
    out = {"queries": len(rows), "chance_top": chance, "heads": []}
    for layer in range(layers):
        for head in range(heads):
            for q, token in enumerate(tokens):
                entry = {"layer": layer, "head": head, "token": token}
                for name, group in groups.items():
                    if not group:
                        continue
                    mass = [r["mass"][layer, head, q] for r in group]
                    top = sum(int(np.argmax(m) == r["named"]) for m, r in zip(mass, group))
                    share = [m[r["named"]] / max(m.sum(), 1e-12) for m, r in zip(mass, group)]
                    entry[name] = {"top": wilson_share(top, len(group)), "share": float(np.mean(share))}
                out["heads"].append(entry)
    out["best"] = max((e for e in out["heads"] if e["token"] == "[EMBED]"), key=_top_rate)
    out["best_any"] = max(out["heads"], key=_top_rate)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--per-subtask", type=int, default=None, help="default: the balanced split's size")
    parser.add_argument("--reference", type=Path, default=None, help="the model's eval JSON: split by right / wrong")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    per_subtask = args.per_subtask or BALANCED_SIZES[args.split]
    model = LameModel.from_pretrained(args.model).eval()
    reference = json.loads(args.reference.read_text()) if args.reference else None
    report = {"model": str(args.model), "split": args.split, "per_subtask": per_subtask,
              "mode": model.config.default_mode, "subtasks": {}}
    for subtask in SUBTASKS:
        hits = reference["tasks"][subtask]["per_query"] if reference else None
        if hits is not None and len(hits) != per_subtask:
            print(f"{args.reference} scores {len(hits)} {subtask} queries, not {per_subtask}: use the same split size",
                  file=sys.stderr)
            return 1
        rows, tokens = measure(model, subtask, args.split, per_subtask)
        block = summarize(rows, hits, tokens)
        report["subtasks"][subtask] = block
        for label, entry in (("[EMBED]", block["best"]), ("any token", block["best_any"])):
            parts = "".join(f", {g} {100 * entry[g]['top']['share']:.0f}%" for g in ("held_out", "seen", "right", "wrong")
                            if entry.get(g))
            print(f"{subtask}: best head of {label}: {entry['token']} L{entry['layer']}H{entry['head']} puts the most "
                  f"on the named object in {100 * entry['all']['top']['share']:.0f}% of {block['queries']} queries of "
                  f"2+ objects (chance {100 * block['chance_top']:.0f}%{parts}), share {entry['all']['share']:.2f}",
                  flush=True)
    report["checked_against"] = str(args.reference) if reference else None
    atomic_write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
