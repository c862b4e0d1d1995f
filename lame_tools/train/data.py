"""Training data, drawn on the fly: the global batch of step s is a pure function of (run seed, s),
so a run's data position is its step. Each process takes an equal slice (`rank::world`)."""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from lame_tools.atomic import atomic_write
from lame_tools.data.shapes import (
    INSTRUCTIONS,
    SPLIT_SIZES,
    TARGET_INSTRUCTION,
    TASK_KINDS,
    Example,
    make_example,
    make_subtask_example,
    random_style,
    render,
)
from lame_tools.data.tasks import relational_answer
from lame_tools.errors import LameError
from lame_tools.inputs import Item
from lame_tools.losses import text_keys
from lame_tools.renaming import draw_renaming, rename_text
from lame_tools.train.config import TrainConfig


@dataclass
class TrainBatch:
    """One process's slice of a global batch, ready for the model."""

    examples: list[Example]
    queries: list[Item]
    targets: list[Item]
    target_keys: torch.Tensor  # [n] int64: equal keys = same target (false negatives masked)
    decoder_texts: list[str]
    hard_negatives: list[Item]
    hard_negative_keys: torch.Tensor
    hard_negative_valid: torch.Tensor
    # per example, its relabelling of shape / colour words (`lame_tools.renaming`), None: not renamed
    renamings: list[dict[str, str] | None] | None = None

    def renaming(self, row: int) -> dict[str, str] | None:
        """The renaming of example `row` (None: not renamed)."""
        return None if self.renamings is None else self.renamings[row]

    def image_renamings(self, side: str, rows: Sequence[int] | None = None) -> list[dict[str, str] | None]:
        """The renamings of the images of one side ("query" or "target") of the examples `rows` (all
        when None), in forward order."""
        if self.renamings is None:
            return []
        has = "query_has_image" if side == "query" else "target_has_image"
        chosen = range(len(self.examples)) if rows is None else rows
        return [self.renamings[i] for i in chosen if getattr(self.examples[i], has)]


def batch_indices(
    seed: int,
    step: int,
    batch_size: int,
    pool: int = SPLIT_SIZES["train"],
    homogeneous: bool = False,
    kinds: list[str] | None = None,
    world_seed: int | None = None,
) -> list[int]:
    """The train-split indices of the global batch of `step`: a pure function of (seed, step).

    With `homogeneous`, the whole batch comes from one task kind (drawn per step): example `i` of the
    world is asked as kind TASK_KINDS[i % 4], so the in-batch negatives are answers of the same kind
    (other colours, other counts, other captions), as the candidates at evaluation are. Mixed batches
    let the loss fall by telling task kinds apart without looking at the image. `kinds` restricts the
    draw to some task kinds (e.g. ["retrieval"]: captions only).

    A scene that cannot hold its kind's question gets another kind's (`make_example` falls back, e.g.
    grounding -> vqa). With `world_seed`, a draw of chosen kinds (homogeneous or `kinds`) replaces each
    such index by the next one of its kind that holds it (`of_their_kind`).
    """
    rng = random.Random(f"train/{seed}/{step}")
    allowed = [TASK_KINDS.index(k) for k in kinds] if kinds else list(range(len(TASK_KINDS)))
    if homogeneous or len(allowed) == 1:
        kind = allowed[rng.randrange(len(allowed))]
        drawn = rng.sample(range(kind, pool, len(TASK_KINDS)), batch_size)
    elif len(allowed) < len(TASK_KINDS):
        drawn = rng.sample([i for i in range(pool) if i % len(TASK_KINDS) in allowed], batch_size)
    else:
        return rng.sample(range(pool), batch_size)
    return drawn if world_seed is None else of_their_kind(drawn, world_seed, pool)


def of_their_kind(indices: list[int], world_seed: int, pool: int = SPLIT_SIZES["train"]) -> list[int]:
    """`indices` with each one whose example is not of kind TASK_KINDS[i % 4] replaced by the next
    index of the same kind (i + 4, i + 8 ..., wrapping around the pool) that is, and is not drawn yet."""
    n = len(TASK_KINDS)
    taken = set(indices)
    out = []
    for index in indices:
        candidate = index
        for _ in range(pool // n + 1):
            if make_example(world_seed, "train", candidate).task == TASK_KINDS[candidate % n] and (
                candidate == index or candidate not in taken
            ):
                break
            candidate = candidate + n if candidate + n < pool else candidate % n
        else:
            raise LameError(f"No train example of kind {TASK_KINDS[index % n]!r} is left to draw.")
        taken.add(candidate)
        out.append(candidate)
    return out


def step_indices(config: TrainConfig, step: int, rank: int = 0, world: int = 1) -> list[int]:
    """This process's slice of the global batch indices of `step`."""
    indices = batch_indices(config.seed, step, config.batch_size, homogeneous=config.homogeneous_batches,
                            kinds=config.kind_list, world_seed=config.world_seed)
    return indices[rank::world]


def subtask_draws(config: TrainConfig, step: int) -> list[tuple[int, Example]]:
    """The global batch of `step` when training on named subtasks (`config.subtasks`): (train scene
    index, example) pairs, a pure function of (seed, step). With `homogeneous_batches` the whole batch
    is one subtask, drawn per step; scenes that cannot pose it, or that hold more objects than
    `object_curriculum` allows at this step, are skipped, and no scene repeats."""
    subtasks = config.subtask_list or []
    rng = random.Random(f"train/{config.seed}/{step}/subtasks")
    fixed = subtasks[rng.randrange(len(subtasks))] if config.homogeneous_batches else None
    caps = {name: config.max_objects(step, name) for name in set(subtasks)}  # object_curriculum at this step
    drawn: list[tuple[int, Example]] = []
    taken: set[int] = set()
    for _ in range(100 * config.batch_size):
        if len(drawn) == config.batch_size:
            return drawn
        subtask = fixed or subtasks[rng.randrange(len(subtasks))]
        index = rng.randrange(SPLIT_SIZES["train"])
        if index in taken:
            continue
        example = make_subtask_example(config.world_seed, "train", index, subtask)
        cap = caps[subtask]
        if example is not None and (cap is None or len(example.scene.objects) <= cap):
            taken.add(index)
            drawn.append((index, example))
    raise LameError(f"Could not draw {config.batch_size} train examples of {subtasks} for step {step}.")


def step_examples(config: TrainConfig, step: int, rank: int = 0, world: int = 1) -> list[tuple[int, Example]]:
    """This process's slice of the global batch of `step` as (train scene index, example) pairs."""
    if config.subtask_list:
        return subtask_draws(config, step)[rank::world]
    return [(i, make_example(config.world_seed, "train", i)) for i in step_indices(config, step, rank, world)]


def training_image(config: TrainConfig, example: Example, index: int, step: int):
    """The image of train scene `index` at `step`: in a random rendering style for a
    `render_variation` share of draws (a pure function of seed, step and index), else the default one."""
    if config.render_variation > 0:
        rng = random.Random(f"style/{config.seed}/{step}/{index}")
        if rng.random() < config.render_variation:
            return render(example.scene, random_style(rng))
    return scene_image(config, example, index)


def shape_only_images(config: TrainConfig, step: int, rank: int = 0, world: int = 1) -> tuple[list, list]:
    """(scenes, images): this process's slice of the `shape_only_images` train scenes of `step`, each
    drawn in a random rendering style with grey or off-palette objects (no named colour shows), for the
    scene head's shape loss alone. A pure function of (seed, step)."""
    rng = random.Random(f"shape-only/{config.seed}/{step}")
    indices = [rng.randrange(SPLIT_SIZES["train"]) for _ in range(config.shape_only_images)][rank::world]
    scenes, images = [], []
    for index in indices:
        scene = make_example(config.world_seed, "train", index).scene
        style = dataclasses.replace(random_style(rng), fill=rng.choice(("grey", "off-palette")),
                                    name="shape-only")
        scenes.append(scene)
        images.append(render(scene, style))
    return scenes, images


def cache_path(cache: str | os.PathLike, world_seed: int, index: int) -> Path:
    """Where the render cache keeps train scene `index` of world `world_seed`."""
    return Path(cache) / f"seed{world_seed}" / f"{index:06d}.png"


def _save_png(path: Path, image) -> None:
    atomic_write(path, lambda f: image.save(f, format="PNG", compress_level=1))


def scene_image(config: TrainConfig, example: Example, index: int):
    """The rendered train scene `index` (from `render_cache` when it holds it)."""
    if not config.render_cache:
        return render(example.scene)
    path = cache_path(config.render_cache, config.world_seed, index)
    if path.is_file():
        from PIL import Image

        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except OSError:
            pass  # a damaged cache file: draw the scene again
    image = render(example.scene)
    _save_png(path, image)
    return image


def _prerender_one(args: tuple[str, int, int]) -> None:
    cache, world_seed, index = args
    path = cache_path(cache, world_seed, index)
    if not path.is_file():
        _save_png(path, render(make_example(world_seed, "train", index).scene))


def prerender(cache: str | os.PathLike, world_seed: int = 0, limit: int | None = None, workers: int = 1) -> Path:
    """Render the train split once into `cache` (PNG), so many runs share the drawing cost."""
    n = SPLIT_SIZES["train"] if limit is None else min(limit, SPLIT_SIZES["train"])
    jobs = [(str(cache), world_seed, i) for i in range(n)]
    if workers > 1:
        from multiprocessing import Pool

        with Pool(workers) as pool:
            for _ in pool.imap_unordered(_prerender_one, jobs, chunksize=64):
                pass
    else:
        for job in jobs:
            _prerender_one(job)
    return Path(cache)


def target_key(example: Example, index: int) -> str:
    """Equal keys = the same target: the text of a text target, the scene of an image target."""
    return f"text:{example.target_text}" if not example.target_has_image else f"image:{index}"


def _hard_negative(example: Example, rng: random.Random, source: str = "candidates") -> tuple[Item, str, bool]:
    """(item, key, valid): with `source` "anchor", a relational example's answer about its anchor
    (`TrainConfig.hard_negative_from`) where that is wrong; else a wrong candidate of a text target,
    else a placeholder marked invalid."""
    if source == "anchor" and example.anchor is not None:
        wrong = relational_answer(example.subtask, example.anchor)
        if wrong != example.target_text:
            return Item(None, wrong, TARGET_INSTRUCTION), f"text:{wrong}", True
    negatives = [c for c in example.candidates[1:] if c != example.target_text]
    if negatives and not example.target_has_image:
        choice = rng.choice(negatives)
        return Item(None, choice, TARGET_INSTRUCTION), f"text:{choice}", True
    return Item(None, "a", TARGET_INSTRUCTION), "none", False


def decoder_text(target: str, example) -> str:
    """What the latent decoder reconstructs for `example` (`TrainConfig.decoder_target`)."""
    if target == "rationale":
        return example.rationale
    if target == "steps":
        return example.steps
    return example.target_text or example.scene.caption()


def make_batch(config: TrainConfig, step: int, rank: int = 0, world: int = 1) -> TrainBatch:
    """This process's slice of the global batch of `step` (queries, targets, keys, decoder texts),
    each example's texts relabelled when `rename_words` draws it (`lame_tools.renaming`)."""
    rng = random.Random(f"hard/{config.seed}/{step}/{rank}")
    examples, queries, targets, keys, dec, hard, renamings = [], [], [], [], [], [], []
    for index, ex in step_examples(config, step, rank, world):
        image = training_image(config, ex, index, step) if (ex.query_has_image or ex.target_has_image) else None
        renaming = draw_renaming(config.seed, step, index, config.rename_words)
        named = partial(rename_text, renaming=renaming)
        examples.append(ex)
        renamings.append(renaming)
        query, target = ex.query_item(image), ex.target_item(image)
        queries.append(dataclasses.replace(query, text=named(query.text)))
        targets.append(dataclasses.replace(target, text=named(target.text)))
        keys.append(named(target_key(ex, index)))
        dec.append(named(decoder_text(config.decoder_target, ex)))
        item, key, valid = _hard_negative(ex, rng, config.hard_negative_from)
        hard.append((dataclasses.replace(item, text=named(item.text)), named(key), valid))
    return TrainBatch(
        examples, queries, targets, text_keys(keys), dec, [h[0] for h in hard], text_keys([h[1] for h in hard]),
        torch.tensor([h[2] for h in hard], dtype=torch.bool), renamings if any(renamings) else None,
    )


def stage0_rows(config: TrainConfig, step: int, rank: int = 0, world: int = 1) -> tuple[list[Item], list[str]]:
    """Stage-0 LM rows: (prompt item, text to generate). Half the rows answer through the rationale,
    half answer directly; text->image examples become image->caption rows."""
    items, continuations = [], []
    for index in step_indices(config, step, rank, world):
        ex = make_example(config.world_seed, "train", index)
        image = scene_image(config, ex, index)
        if ex.target_has_image:  # t2i: the LM learns the reverse direction (describe the image)
            item = Item(image, None, INSTRUCTIONS["i2t"])
            answer = ex.scene.caption()
        else:
            item = ex.query_item(image)
            answer = ex.target_text
        items.append(item)
        continuations.append(ex.rationale if index % 2 == 0 else answer)
    return items, continuations
