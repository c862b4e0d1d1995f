"""The basic verbs: `embed` (files in, .npy out) and `shapes export` (the world as MMEB rows + PNGs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lame_tools.atomic import atomic_save_npy
from lame_tools.errors import InputError


def _embed(args: argparse.Namespace) -> int:
    from lame_tools.model import LameModel

    images = args.image or []
    texts = args.text or []
    if not images and not texts:
        raise InputError("Give --image and/or --text to embed.")
    if images and texts and len(images) != len(texts) and len(texts) != 1 and len(images) != 1:
        raise InputError(f"Got {len(images)} --image and {len(texts)} --text; give equal numbers, or one of either.")
    n = max(len(images), len(texts))
    image_list = (images * n if len(images) == 1 else images) if images else None
    text_list = (texts * n if len(texts) == 1 else texts) if texts else None
    model = LameModel.from_pretrained(args.model, device=args.device)
    embeddings = model.encode(
        images=image_list, texts=text_list, instruction=args.instruction, batch_size=args.batch_size, mode=args.mode
    )
    atomic_save_npy(args.out, embeddings)
    print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings ({args.mode or model.config.default_mode} mode) to {args.out}")
    return 0


def _shapes_export(args: argparse.Namespace) -> int:
    from lame_tools.data.shapes import export_mmeb

    out = export_mmeb(args.seed, args.split, args.out, limit=args.limit, per_subtask=args.per_subtask)
    which = f"balanced {args.split} split ({args.per_subtask} per subtask)" if args.per_subtask else f"{args.split} split"
    print(f"wrote the {which} (seed {args.seed}) as MMEB-style JSONL + PNG to {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from lame_tools.cli.common import add_model_argument
    from lame_tools.constants import EMBED_MODES
    from lame_tools.data.shapes import SPLITS

    embed = subparsers.add_parser("embed", help="embed images and/or texts to a .npy file")
    add_model_argument(embed)
    embed.add_argument("--image", action="append", help="image file (repeatable)")
    embed.add_argument("--text", action="append", help="text (repeatable; paired with --image in order)")
    embed.add_argument("--instruction", default=None, help="task instruction prepended to every input")
    embed.add_argument("--mode", choices=EMBED_MODES, default=None, help="default: the mode the model was trained for")
    embed.add_argument("--batch-size", type=int, default=32)
    embed.add_argument("--out", type=Path, required=True, help="output .npy file")
    embed.set_defaults(func=_embed)

    shapes = subparsers.add_parser("shapes", help="the Shapes world")
    shapes_verbs = shapes.add_subparsers(dest="shapes_verb", required=True)
    export = shapes_verbs.add_parser("export", help="write a split as MMEB-style JSONL + PNG files")
    export.add_argument("--split", choices=SPLITS, default="test")
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("--limit", type=int, default=None, help="only the first N examples")
    export.add_argument("--per-subtask", type=int, default=None, help="the balanced split: N queries per subtask")
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(func=_shapes_export)
