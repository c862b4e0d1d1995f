"""The `index` verb: `index build` embeds a folder of images and / or a texts file into a saved
index, sharded across the processes of `torchrun` / `accelerate launch` and resumable."""

from __future__ import annotations

import argparse
from pathlib import Path


def _build(args: argparse.Namespace) -> int:
    from lame_tools.index_build import build_index

    if args.images is None and args.texts is None:
        from lame_tools.errors import InputError

        raise InputError("Give --images DIR and / or --texts FILE to index.")
    build_index(
        args.model,
        args.out,
        images=args.images,
        texts=args.texts,
        instruction=args.instruction,
        mode=args.mode,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        backend=args.backend,
        device=args.device,
        resume=not args.no_resume,
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from lame_tools.cli.common import add_model_argument
    from lame_tools.constants import EMBED_MODES

    index = subparsers.add_parser("index", help="embed a folder of images / a texts file into a saved index")
    verbs = index.add_subparsers(dest="index_verb", required=True)
    build = verbs.add_parser("build", help="embed and save (sharded under torchrun / accelerate launch; resumable)")
    add_model_argument(build)
    build.add_argument("--images", type=Path, default=None, help="folder of images (searched recursively)")
    build.add_argument("--texts", type=Path, default=None, help="file of texts, one a line")
    build.add_argument("--instruction", default=None, help="task instruction prepended to every input")
    build.add_argument("--mode", choices=EMBED_MODES, default=None, help="default: the mode the model was trained for")
    build.add_argument(
        "--backend",
        choices=("numpy", "exact", "hnsw", "ivf"),
        default="numpy",
        help="numpy: exact EmbeddingIndex files; exact / hnsw / ivf: a FAISS index",
    )
    build.add_argument("--batch-size", type=int, default=32)
    build.add_argument("--shard-size", type=int, default=1024, help="inputs per resumable shard file")
    build.add_argument("--no-resume", action="store_true", help="embed every shard again")
    build.add_argument("--out", type=Path, required=True, help="output folder")
    build.set_defaults(func=_build)
