"""Where does `[EMBED]` put its attention? Per layer, the share of `[EMBED]`'s attention (mean of
heads) on the image, on the K reason tokens, on the prompt's words (instruction and question) and
on the first key of the sequence (where one-pass transformers often park attention they do not
need), for balanced-split queries of every text subtask, apart on the reasoning and perception
subtasks.

The question it answers: when swapping the reason tokens with another query's costs nothing but
dropping them costs a lot, does `[EMBED]` still attend to them, and how much? A large share that is
the same across queries is what attention sinks / register tokens look like (Darcet et al., arXiv
2309.16588); a one-pass model without reason tokens shows where it parks the same share instead.

    .venv/bin/python scripts/embed_attention_mass.py runs/see/see-deep-lame-k16-nodec-bind-mixed/model \
        runs/see/see-deep-discriminative-bind-mixed/model --split test --per-subtask 50 --out mass.json

Writes one JSON (`--out`): per model, per group (reasoning, perception) and layer, the mean share on
each region with its standard deviation over queries, and prints a markdown table (the last layer
and the mean of layers).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools import load_model  # noqa: E402
from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.constants import EMBED_TOKEN, reason_tokens  # noqa: E402
from lame_tools.data.render import render  # noqa: E402
from lame_tools.data.shapes import PERCEPTION_SUBTASKS, REASONING_SUBTASKS, balanced_examples  # noqa: E402
from lame_tools.errors import LameError  # noqa: E402
from lame_tools.probe.attention import reason_attention_items  # noqa: E402

REGIONS = ("image", "reason", "prompt", "first", "embed")


def regions(att) -> dict[str, np.ndarray]:
    """`[EMBED]`'s attention share per region, [layer] each (mean of heads), for one query."""
    q = att.query_tokens.index(EMBED_TOKEN)
    text = att.text_attention[:, :, q].mean(1)  # [layer, T]
    reasons = set(reason_tokens(len(att.query_tokens) - 1))
    is_reason = np.array([t in reasons for t in att.text_tokens])
    is_embed = np.array([t == EMBED_TOKEN for t in att.text_tokens])
    first = np.zeros(len(att.text_tokens), dtype=bool)
    first[0] = True  # the first real key (text-first or instruction-first alike)
    prompt = ~(is_reason | is_embed | first)
    return {
        "image": att.image_mass[:, :, q].mean(1),
        "reason": text[:, is_reason].sum(-1),
        "prompt": text[:, prompt].sum(-1),
        "first": text[:, first].sum(-1),
        "embed": text[:, is_embed].sum(-1),
    }


def measure(model, split: str, per_subtask: int, subtasks: tuple[str, ...], batch_size: int = 16) -> list[dict]:
    """Per query: subtask and `regions`."""
    rows = []
    for subtask in subtasks:
        examples = [e for _, e in balanced_examples(0, split, per_subtask, subtasks=(subtask,))]
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            items = model.make_items([render(e.scene) for e in chunk], [e.query_text for e in chunk],
                                     [e.instruction for e in chunk])
            with torch.no_grad():
                for att in reason_attention_items(model, items):
                    rows.append({"subtask": subtask, **regions(att)})
    return rows


def summarize(rows: list[dict], subtasks: tuple[str, ...]) -> dict:
    """Per region: mean share and its SD over queries, [layer] each."""
    chosen = [r for r in rows if r["subtask"] in subtasks]
    out = {"queries": len(chosen)}
    for region in REGIONS:
        values = np.stack([r[region] for r in chosen])  # [query, layer]
        out[region] = {"mean": values.mean(0).round(4).tolist(), "sd": values.std(0).round(4).tolist()}
    return out


def label_of(folder: str) -> str:
    """A run's name for its `model` folder (runs/see/RUN/model), else the folder's own name."""
    path = Path(folder)
    return path.parent.name if path.name == "model" else path.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model folders (each probed in its default mode)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--per-subtask", type=int, default=50)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    groups = {"reasoning": tuple(REASONING_SUBTASKS), "perception": tuple(s for s in PERCEPTION_SUBTASKS if s != "t2i")}
    result = {"split": args.split, "per_subtask": args.per_subtask, "regions": list(REGIONS), "models": {}}
    print("| model | group | layer | image | reason tokens | prompt | first key | [EMBED] |")
    print("|---|---|---|---|---|---|---|---|")
    for folder in args.models:
        try:
            model = load_model(folder, device="cpu")
        except LameError as error:
            print(error, file=sys.stderr)
            return 2
        rows = measure(model, args.split, args.per_subtask, tuple(s for g in groups.values() for s in g))
        entry = {"mode": model.config.default_mode, "num_reason_tokens": model.num_reason_tokens,
                 "reason_reads": model.config.reason_reads}
        for name, subtasks in groups.items():
            entry[name] = summary = summarize(rows, subtasks)
            for label, pick in (("last", lambda v: v[-1]), ("mean", lambda v: float(np.mean(v)))):
                cells = " | ".join(f"{pick(summary[r]['mean']):.3f}" for r in REGIONS)
                print(f"| {label_of(folder)} | {name} | {label} | {cells} |")
        result["models"][str(folder)] = entry
    atomic_write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
