"""Training configuration: `TrainConfig`, the named presets, and building a config from plain values
(a preset, `KEY=VALUE` overrides, the command line's named options)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lame_tools.constants import SEQUENTIAL_MODE
from lame_tools.data.tasks import SUBTASKS
from lame_tools.errors import LameError

DEFAULT_STAGE0_DIR = Path("runs/stage0/model")
SCENE_STAGE0_DIR = Path("runs/see/stage0-scene/model")
# what the latent decoder can reconstruct (`TrainConfig.decoder_target`)
DECODER_TARGETS = ("target", "rationale", "steps")
# where a hard negative comes from (`TrainConfig.hard_negative_from`)
HARD_NEGATIVE_SOURCES = ("candidates", "anchor")


def _named_subtasks(field_name: str, value: str) -> list[str]:
    """The comma-separated subtask names of a config field, each checked against `SUBTASKS`."""
    names = [k for k in value.split(",") if k]
    unknown = [k for k in names if k not in SUBTASKS]
    if unknown:
        raise LameError(f"{field_name} names unknown subtasks {unknown}; known: {', '.join(SUBTASKS)}.")
    return names


@dataclass
class TrainConfig:
    """One training run. Presets (`PRESETS`) fill these; the CLI can override any field.

    Attributes:
        kind: "stage0" (next-token pretraining of the backbone), "contrastive" (LaME / discriminative) or
            "cot" (explicit rationale then [EMBED]).
        size: tiny backbone preset (`lame_tools.config.TINY_PRESETS`: "tiny", "fine", ...); ignored with `base`.
        num_reason_tokens: K (0 = discriminative).
        with_decoder: build and train the latent decoder.
        lambda_decoder: weight of the decoder loss in stage 2 (stage 1 trains the decoder at weight 1
            on a frozen backbone).
        cot_lm_weight: weight of the rationale LM loss (cot kind).
        cot_own_rationales: cot kind, stage 2: the share of each step's queries whose embedding is read
            after the model's own greedy rationale (generated without gradients) instead of the gold
            one, as at test time; the LM loss stays on the gold rationales. 0 = gold only.
        cot_own_subtasks: comma-separated subtasks to which `cot_own_rationales` applies (e.g.
            "i2t,t2i": the retrieval queries learn to embed after the model's own rationale while the
            reasoning ones keep reading gold ones); empty = every subtask.
        decoder_target: what the decoder reconstructs: "target" (the target's text; the caption for
            text->image), "rationale" (the chain of thought; an ablation that uses CoT annotation) or
            "steps" (the chain of thought without its opening objects list: `Example.steps`).
        decoder_relation_weight: with `decoder_target` rationale or steps, the weight of the relation
            word of the look step ("then look left :") in the decoder's per-sequence mean cross-entropy
            (a weighted mean; every other token weighs 1; our departure): the read-out of the rationale
            recipe names a relation's axis but flips a coin on its direction (README, "Where the
            relational answers go wrong"). 1 = plain mean.
        stage1_steps / stage2_steps / stage0_steps: steps per stage.
        batch_size: global batch (split across processes).
        lr_backbone / lr_latent / lr_decoder: peak learning rates per parameter group.
        lr_vision: peak learning rate of the vision tower and scene head (0: `lr_backbone`).
        warmup_steps: linear warm-up at the start of each stage, then cosine to `min_lr_ratio`.
        clip_encoder / clip_decoder: separate gradient-norm clips for the encoder side (backbone,
            latent embeddings, head, temperature) and the decoder.
        learnable_temperature: train `logit_scale`; else it stays at its initial value.
        hard_negatives: add one hard negative (a wrong candidate of the example) per text target.
        hard_negative_from: "candidates" (a wrong candidate drawn at random) or "anchor": for a
            relational example, the answer naming the object its question names (the anchor), which
            one pass answers in a fifth to a third of relational test queries; a wrong candidate where
            the example has no anchor or the anchor's answer is the right one.
        homogeneous_batches: draw each step's batch from one task kind (see `batch_indices`).
        task_kinds: comma list of task kinds to train on ("" = all four).
        stage1_trainable: parameter groups trained in stage 1 (see `parameter_groups`): the paper's
            bottleneck warm-up is "latent,decoder" on a frozen backbone; "vision" alone is a locked-text
            warm-up (the language model, head and latent rows stay fixed, the vision tower learns to
            meet the text embeddings), for a backbone that has not learned to see yet.
        init_from: a model folder whose backbone initialises this run (the stage-0 output).
        init_parts: what `init_from` gives: "all" (the whole backbone and scene head; the sizes must
            match) or "vision" (the vision tower and scene head only; the language model keeps its
            random init, so a run can change the language model's depth over the same stage 0) or
            "model" (every weight: backbone, scene head, reason / `[EMBED]` rows, head, temperature
            and decoder; a run that continues a trained model with the same settings).
        base: a Qwen2-VL-family folder to wrap instead of the tiny backbone (`LameModel.from_backbone`);
            its latent decoder is sized from the base's hidden size.
        world_seed: the Shapes world seed (splits); seed: this run's seed (init and data order).
        save_every: steps between resume checkpoints; eval_every: steps between quick validations.
        ema_decay: keep an exponential moving average of the weights (`torch.optim.swa_utils`,
            each step `ema = decay * ema + (1 - decay) * weights`, from this run's first step) and
            save it as the final model instead of the last step's weights; it is part of each
            checkpoint, so a resumed run averages exactly as an unbroken one. 0 = off.
        render_cache: a folder of pre-rendered train scenes (`prerender`); the images are the same
            as `render`'s (PNG is lossless), only cheaper to get. Missing files are rendered and added.
        image_pixels: the tiny model's image size in pixels (0: 112 x 112, or the `init_from`
            backbone's own size); ignored with `base`.
        subtasks: comma list of subtasks (`lame_tools.data.shapes.SUBTASKS`) to train on instead of the
            task-kind cycle: each batch is one subtask (drawn per step), its scenes drawn from the train
            scenes that can pose it. "" = the task-kind cycle of `task_kinds`.
        latent_steps: "parallel" (LaME: the K reason tokens in one pass) or "sequential" (the
            sequential-latent baseline: K one-position steps, each fed the previous state; Coconut / PLUME).
        render_variation: the share of training images drawn with a random rendering style
            (`random_style`: tints, gradients, shades, canvas, resampling, JPEG, noise) instead of the
            default renderer.
        scene_head_weight: weight of the dense scene-graph loss (`lame_tools.scene_head`: each visual
            token's shape and colour) on the training images, in every stage in which the vision tower
            trains; > 0 gives the model a scene head (kept from `init_from` when it has one).
        shape_only_images: with the scene loss, this many more train scenes per step drawn with grey or
            off-palette objects (`RenderStyle.fill`) go through the vision tower for the head's shape
            loss alone (not the contrastive one): shape without colour, so the tower cannot guess
            shape from colour (each colour shows only three shapes in training).
        reason_layer: the language-model layer whose reason states the latent decoder reads
            (`LameConfig.reason_layer`; 0 = the last; parallel latent steps only).
        embed_reads: "all" (the paper) or "reasons": `[EMBED]` attends only to the reason tokens
            (`LameConfig.embed_reads`, our departure: an upper bound of how much they can be used).
        reason_reads: "all" (the paper) or "reasons": the reason tokens attend only to the reason
            tokens before them, never to the input (`LameConfig.reason_reads`, our departure: a control
            in which they can only be positions for `[EMBED]` to attend to, the same for every query).
            Parallel latent steps only; not with `embed_reads=reasons` or `direct_route_dropout`.
        embed_pool: "embed" (the paper) or "mean": the embedding head reads the mean of `[EMBED]`'s and
            the K latent states (`LameConfig.embed_pool`, our departure).
        direct_route_dropout: with `embed_reads` "all", the share of training steps (drawn per step from
            the seed, so a resumed run draws the same) in which `[EMBED]` reads only the reason tokens, as
            with "reasons": its direct route to the prompt is cut on those steps, so the reason tokens
            must carry what the embedding needs, while the saved model reads "all" (our departure).
        cot_swap_rationales: cot kind, stage 2: the share of each step's queries (of the subtasks in
            `cot_swap_subtasks`; every subtask when empty) whose embedding is read after another row's
            gold rationale, another scene's, while the LM loss stays on each row's own: the embedding
            learns that a rationale can be wrong and the image is the evidence (meant for perception
            subtasks, where the generated rationale carries the colour shortcut). 0 = never.
        cot_swap_subtasks: comma-separated subtasks to which `cot_swap_rationales` applies.
        object_curriculum: named subtasks only: "N:STEP,..." with N rising and STEP rising, e.g.
            "2:400,3:700": until global step 400 the drawn scenes hold at most 2 objects, until 700 at
            most 3, then any number (a binding curriculum: with two objects, tying a named shape to
            its colour is the whole task, not one choice among four). "" = no curriculum.
        object_curriculum_subtasks: the subtasks the cap applies to (empty: all of them; a cap below
            2 leaves the relational subtasks without a scene that can pose them).
        lookup_weight: weight of the look-up loss (`lame_tools.lookup_loss`): -log of the attention
            of `[EMBED]`, at layer `lookup_layer` and head `lookup_head`, on the visual token of the
            object the question names (queries of `lookup_subtasks`). One-pass modes only. 0 = off.
        lookup_layer / lookup_head: where that attention is read (0-based).
        lookup_from: whose attention: "embed" (`[EMBED]`) or "word" (the question's word that names
            the object; colour_of / shape_of only).
        lookup_subtasks: comma-separated subtasks whose queries name their object (`answer_object`).
        relation_lookup_weight: weight of the relation look-up (`lame_tools.lookup_loss`, our departure):
            -log of the attention, at layer `relation_lookup_layer` and head `relation_lookup_head`, on
            the visual token of the object that answers a relational query (relation_two_step,
            relation_attribute, refer), read from the mean of the K reason tokens' rows
            (`relation_lookup_from=reasons`, latent mode) or from `[EMBED]`'s (`embed`, one-pass modes
            with `embed_reads=all`). 0 = off.
        scene_words: the tiny model's visual tokens also carry the words its scene head predicts
            (`lame_tools.scene_words`; needs `scene_head_weight` > 0, so the head trains with them).
        scene_words_only: with `scene_words`, the language model reads the words alone, not the raw
            visual token beside them (`LameConfig.scene_words_only`).
        visual_positions: the tiny model's visual tokens also carry a learned map of their cell's
            position (`lame_tools.visual_positions`), trained with the language model.
        rename_words: the share of training examples whose shape and colour words are relabelled by a
            random permutation in everything the language model reads of them, texts and scene words
            (`lame_tools.renaming`; needs `scene_words_only`; a CoT run's rationales, gold, swapped
            or its own, are relabelled alike). 0 = never.
        self_distill: weight of the self-distillation loss (one-pass modes; our departure, after CODI,
            arXiv 2502.21074): each query is also read in the CoT layout after its gold rationale
            (`[THINK] rationale [EMBED]`, the same weights: the teacher), that pass trains with the
            contrastive loss at weight `self_distill_teacher`, and the one pass's `[EMBED]` states are
            pulled, layer by layer, toward the teacher's (`state_distill_loss`; no gradient reaches the
            teacher through it), so that one pass must do what the written rationale did. 0 = off.
        self_distill_teacher: weight of the teacher pass's contrastive loss (with `self_distill`).
        scene_head_context: the scene head's neighbourhood (`LameConfig.scene_head_context`: 1 = each
            merged token alone, 3 = a 3 x 3 convolution over the merged grid first). A run from a
            per-token head's model starts its convolution at zero.
        scene_border_margin: with the scene loss, an object whose centre lies within this fraction of a
            cell of a border between cells is not tied to its centre's cell: the cells around the
            border must hold it exactly once between them (`scene_head_loss`; our departure, for
            counting by cells). 0 = every object in its centre's cell.
        prompt_format: the tiny model's prompt layout (`LameConfig.prompt_format`): "plain"
            (instruction, image, question) or "plain-text-first" (instruction, question, image).
    """

    kind: str = "contrastive"
    size: str = "tiny"
    num_reason_tokens: int = 8
    embed_dim: int = 128
    with_decoder: bool = True
    lambda_decoder: float = 0.5
    cot_lm_weight: float = 1.0
    cot_own_rationales: float = 0.0
    cot_own_subtasks: str = ""
    decoder_target: str = "target"
    decoder_relation_weight: float = 1.0
    stage0_steps: int = 0
    stage1_steps: int = 100
    stage2_steps: int = 500
    batch_size: int = 32
    lr_backbone: float = 3e-4
    lr_latent: float = 1e-3
    lr_decoder: float = 1e-3
    lr_vision: float = 0.0
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    clip_encoder: float = 1.0
    clip_decoder: float = 1.0
    learnable_temperature: bool = True
    temperature: float = 0.05
    hard_negatives: bool = False
    hard_negative_from: str = "candidates"
    homogeneous_batches: bool = True
    task_kinds: str = ""
    stage1_trainable: str = "latent,decoder"
    init_from: str | None = str(DEFAULT_STAGE0_DIR)
    init_parts: str = "all"
    base: str | None = None
    bf16: bool = False
    gradient_checkpointing: bool = False
    world_seed: int = 0
    seed: int = 0
    save_every: int = 100
    keep_checkpoints: int = 2
    ema_decay: float = 0.0
    eval_every: int = 0
    eval_examples: int = 96
    log_every: int = 10
    threads: int = 0
    render_cache: str | None = None
    image_pixels: int = 0
    subtasks: str = ""
    render_variation: float = 0.0
    latent_steps: str = "parallel"
    scene_head_weight: float = 0.0
    shape_only_images: int = 0
    reason_layer: int = 0
    embed_reads: str = "all"
    reason_reads: str = "all"
    embed_pool: str = "embed"
    direct_route_dropout: float = 0.0
    cot_swap_rationales: float = 0.0
    cot_swap_subtasks: str = ""
    object_curriculum: str = ""
    object_curriculum_subtasks: str = ""
    lookup_weight: float = 0.0
    lookup_layer: int = 1
    lookup_head: int = 0
    lookup_subtasks: str = "colour_of,shape_of"
    lookup_from: str = "embed"
    relation_lookup_weight: float = 0.0
    relation_lookup_layer: int = 3
    relation_lookup_head: int = 1
    relation_lookup_from: str = "reasons"
    prompt_format: str = "plain"
    scene_words: bool = False
    scene_words_only: bool = False
    visual_positions: bool = False
    rename_words: float = 0.0
    self_distill: float = 0.0
    self_distill_teacher: float = 1.0
    scene_border_margin: float = 0.0
    scene_head_context: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def default_mode(self) -> str:
        if self.kind == "cot":
            return "cot"
        if self.num_reason_tokens == 0:
            return "discriminative"
        if self.latent_steps not in ("parallel", "sequential"):
            raise LameError(f"latent_steps must be parallel or sequential, not {self.latent_steps!r}.")
        return SEQUENTIAL_MODE if self.latent_steps == "sequential" else "latent"

    def direct_route_cut_share(self) -> float:
        """`direct_route_dropout`, checked: the share of steps that cut `[EMBED]`'s direct route."""
        if not 0.0 <= self.direct_route_dropout <= 1.0:
            raise LameError(f"direct_route_dropout is a share of steps in [0, 1], not {self.direct_route_dropout}.")
        if self.direct_route_dropout and (self.default_mode != "latent" or self.embed_reads != "all"
                                          or self.reason_reads != "all"):
            raise LameError("direct_route_dropout needs parallel reason tokens (num_reason_tokens > 0, "
                            "latent_steps=parallel, not cot), embed_reads=all and reason_reads=all.")
        return self.direct_route_dropout

    def self_distill_weights(self) -> tuple[float, float]:
        """(`self_distill`, `self_distill_teacher`), checked: (0, 0) when off."""
        if self.self_distill < 0 or self.self_distill_teacher < 0:
            raise LameError("self_distill and self_distill_teacher are loss weights >= 0, not "
                            f"{self.self_distill} and {self.self_distill_teacher}.")
        if not self.self_distill:
            return 0.0, 0.0
        if self.default_mode not in ("latent", "discriminative"):
            raise LameError("self_distill needs a one-pass mode (latent with parallel reason tokens, or "
                            f"discriminative), not {self.default_mode}.")
        return self.self_distill, self.self_distill_teacher

    @property
    def kind_list(self) -> list[str] | None:
        """The task kinds named in `task_kinds`, or None for all of them."""
        return [k for k in self.task_kinds.split(",") if k] or None

    @property
    def cot_own_subtask_list(self) -> list[str]:
        """The subtasks named in `cot_own_subtasks` (empty: `cot_own_rationales` applies to all)."""
        return _named_subtasks("cot_own_subtasks", self.cot_own_subtasks)

    @property
    def cot_swap_subtask_list(self) -> list[str]:
        """The subtasks named in `cot_swap_subtasks` (empty: `cot_swap_rationales` applies to all)."""
        return _named_subtasks("cot_swap_subtasks", self.cot_swap_subtasks)

    @property
    def lookup_subtask_list(self) -> list[str]:
        """The subtasks of `lookup_subtasks`, checked, with the look-up loss's other conditions."""
        if self.lookup_weight < 0:
            raise LameError(f"lookup_weight is a loss weight >= 0, not {self.lookup_weight}.")
        if self.lookup_from not in ("embed", "word"):
            raise LameError(f"lookup_from is embed or word, not {self.lookup_from!r}.")
        modes = ("latent", "discriminative", *((SEQUENTIAL_MODE, "cot") if self.lookup_from == "word" else ()))
        if self.lookup_weight and self.default_mode not in modes:
            raise LameError("lookup_weight needs a mode whose prompt pass holds the reader: latent or "
                            "discriminative, or sequential or cot with lookup_from=word (their [EMBED] comes "
                            "after the prompt pass).")
        # the loss reads its rows under the padding mask: right for a word of the prompt whatever
        # embed_reads says (it restricts [EMBED]'s row only), not for [EMBED] when it is restricted
        if self.lookup_weight and self.lookup_from == "embed" and self.embed_reads != "all":
            raise LameError("lookup_from=embed needs embed_reads=all; with embed_reads=reasons use "
                            "lookup_from=word (the question's word that names the object reads it).")
        names = _named_subtasks("lookup_subtasks", self.lookup_subtasks)
        if self.lookup_from == "word" and not set(names) <= {"colour_of", "shape_of"}:
            raise LameError("lookup_from=word reads the word that names the object: lookup_subtasks of "
                            "colour_of and shape_of only.")
        return names

    @property
    def subtask_list(self) -> list[str] | None:
        """The subtasks named in `subtasks`, or None for the task-kind cycle."""
        return [k for k in self.subtasks.split(",") if k] or None

    def object_stages(self) -> list[tuple[int, int]]:
        """`object_curriculum` parsed and checked: [(max objects, until global step), ...]."""
        stages = []
        for part in (p.strip() for p in (self.object_curriculum or "").split(",") if p.strip()):
            cap, _, until = part.partition(":")
            if not (cap.strip().isdigit() and until.strip().isdigit()):
                raise LameError(f"object_curriculum takes N:STEP pairs such as 2:400,3:700, not {part!r}.")
            stages.append((int(cap), int(until)))
        caps, untils = [c for c, _ in stages], [u for _, u in stages]
        if stages and (min(caps) < 1 or caps != sorted(set(caps)) or untils != sorted(set(untils))):
            raise LameError(f"object_curriculum needs caps >= 1 and caps and steps both rising, not {self.object_curriculum!r}.")
        return stages

    def max_objects(self, step: int, subtask: str) -> int | None:
        """The most objects a drawn scene of `subtask` may hold at global step `step` (None: no cap)."""
        covered = _named_subtasks("object_curriculum_subtasks", self.object_curriculum_subtasks or "")
        if covered and subtask not in covered:
            return None
        return next((cap for cap, until in self.object_stages() if step < until), None)

    @property
    def total_steps(self) -> int:
        return self.stage0_steps + self.stage1_steps + self.stage2_steps

    def stage_of(self, step: int) -> int:
        """The stage (0, 1 or 2) that global step `step` (0-based) belongs to."""
        if step < self.stage0_steps:
            return 0
        if step < self.stage0_steps + self.stage1_steps:
            return 1
        return 2

    def stage_bounds(self, stage: int) -> tuple[int, int]:
        start = {0: 0, 1: self.stage0_steps, 2: self.stage0_steps + self.stage1_steps}[stage]
        length = {0: self.stage0_steps, 1: self.stage1_steps, 2: self.stage2_steps}[stage]
        return start, length

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _preset(**overrides: Any) -> TrainConfig:
    return dataclasses.replace(TrainConfig(), **overrides)


def _micro(**overrides: Any) -> TrainConfig:
    base = dict(
        size="micro", embed_dim=32, batch_size=8, stage1_steps=3, stage2_steps=5, warmup_steps=2,
        save_every=2, init_from=None, log_every=1, eval_examples=16,
    )
    base.update(overrides)
    return _preset(**base)


# the four models on the scene stage 0, trained on every subtask (one per batch), reasoning ones included
PRESETS_SEE: dict[str, TrainConfig] = {
    f"see-{name}": _preset(size="fine", init_from=str(SCENE_STAGE0_DIR), scene_head_weight=0.5, shape_only_images=8,
                           render_variation=0.5, stage2_steps=1000, subtasks=",".join(SUBTASKS), **fields)
    for name, fields in (
        ("lame", dict(num_reason_tokens=8)),
        # the shipped LaME since 2026-12-03: K = 16 (the K ablation, queues see_9, see_14-16; README)
        ("lame-k16", dict(num_reason_tokens=16)),
        ("discriminative", dict(num_reason_tokens=0, with_decoder=False)),
        ("cot", dict(kind="cot", num_reason_tokens=0, with_decoder=False)),
        ("sequential", dict(num_reason_tokens=8, latent_steps="sequential")),
        # the shipped sequential-latent baseline since 2026-12-04: K = 16, matched to the shipped LaME
        ("sequential-k16", dict(num_reason_tokens=16, latent_steps="sequential")),
        # the decoder reconstructs the rationale from layer 2's reason states, the ones [EMBED]'s
        # last layer reads (queue see_5; README, "Where the decoder reads")
        ("lame-rationale-l2", dict(num_reason_tokens=8, decoder_target="rationale", reason_layer=2)),
        # explicit CoT that embeds retrieval queries after its own greedy rationale, as at test time
        # (queue see_13; README, "Explicit CoT on its own rationales")
        ("cot-ownret", dict(kind="cot", num_reason_tokens=0, with_decoder=False, cot_own_rationales=1.0,
                            cot_own_subtasks="i2t,t2i")),
    )
}


# The binding pipeline (README, "Binding at 0.9"; queues see_39, see_40): three runs, each continuing
# the previous one's model (`--init-from runs/see/<previous>/model`). 1: the see-* recipe with the
# language model reading renamed scene words alone; 2: the word look-up on colour_of / shape_of (600
# steps, every weight continued); 3: every subtask with the look-up kept, colour_of and shape_of
# drawn 3 times and count 4 times as often as the others (600 steps).
BINDING_PHASES = ("bind", "bind-lookup", "bind-mixed")
_WEIGHTED_SUBTASKS = ",".join([*sorted(SUBTASKS), *["colour_of", "shape_of"] * 2, *["count"] * 3])


def _binding_pipelines() -> dict[str, TrainConfig]:
    words = dict(scene_words=True, scene_words_only=True, rename_words=1.0)
    look_up = dict(lookup_weight=1.0, lookup_from="word", lookup_layer=0, lookup_head=0, init_parts="model",
                   stage1_steps=0, stage2_steps=600, warmup_steps=50)
    out = {}
    # the CoT pipeline starts from the shipped CoT recipe (own rationales on retrieval); its look-up
    # reads the question's naming word, before [THINK]
    for name, recipe in (("discriminative", "see-discriminative"), ("lame-k16", "see-lame-k16"),
                         ("sequential-k16", "see-sequential-k16"), ("cot", "see-cot-ownret")):
        base = PRESETS_SEE[recipe]
        phase = [f"see-{name}-{p}" for p in BINDING_PHASES]
        out[phase[0]] = dataclasses.replace(base, **words)
        out[phase[1]] = dataclasses.replace(base, **words, **look_up, subtasks="colour_of,shape_of",
                                            init_from=f"runs/see/{phase[0]}/model")
        out[phase[2]] = dataclasses.replace(base, **words, **look_up, subtasks=_WEIGHTED_SUBTASKS,
                                            init_from=f"runs/see/{phase[1]}/model")
    # The 6-layer binding pipelines (queues see_53, see_61, see_65, see_67; README, "the 6-layer
    # models"): the same three phases on a 6-layer language model over the same stage 0, whose first
    # phase takes the vision tower alone. LaME's is the rationale recipe: `[EMBED]` reads only the 16
    # reason tokens and the latent decoder writes the gold rationale from them.
    for name, source, fields in (
        ("deep-discriminative", "discriminative", {}),
        ("deep-lame-k16-readsrat", "lame-k16", dict(embed_reads="reasons", decoder_target="rationale")),
        ("deep-cot", "cot", {}),
        ("deep-sequential-k16", "sequential-k16", {}),
    ):
        for i, p in enumerate(BINDING_PHASES):
            start = dict(init_parts="vision") if i == 0 else dict(init_from=f"runs/see/see-{name}-{BINDING_PHASES[i - 1]}/model")
            out[f"see-{name}-{p}"] = dataclasses.replace(out[f"see-{source}-{p}"], size="fine-deep", **fields, **start)
    # LaME's last phase with the rationale self-distilled into its one pass (queue see_46)
    out["see-lame-k16-bind-distill"] = dataclasses.replace(out["see-lame-k16-bind-mixed"], self_distill=1.0)
    # LaME's last phase with the embedding read from the mean of [EMBED] and the reason tokens (see_49)
    out["see-lame-k16-bind-pool"] = dataclasses.replace(out["see-lame-k16-bind-mixed"], embed_pool="mean")
    # the discriminative last phase with straddling objects held exactly once by the cells around
    # their border (queue see_47; count)
    out["see-discriminative-bind-border"] = dataclasses.replace(out["see-discriminative-bind-mixed"],
                                                               scene_border_margin=0.15)
    return out


PRESETS: dict[str, TrainConfig] = {
    # the shared backbone: a locked-text warm-up of the vision tower on captions (see lame_tools.train)
    "stage0": _preset(num_reason_tokens=0, with_decoder=False, stage1_trainable="vision", task_kinds="retrieval",
                      stage1_steps=600, stage2_steps=0, lr_backbone=1e-3, init_from=None),
    # next-token pretraining of the backbone on captions / answers / rationales (tried; see README)
    "stage0-lm": _preset(kind="stage0", num_reason_tokens=0, with_decoder=False, stage0_steps=600, batch_size=64,
                         homogeneous_batches=False, stage1_steps=0, stage2_steps=0, lr_backbone=2e-3, init_from=None,
                         save_every=200),
    # the backbone that sees: 7 px patches ("fine"), the vision tower taught by the scene graphs
    # (dense shape / colour labels per visual token; shape also on grey / off-palette objects) and the
    # locked-text contrastive loss together, with rendering variation
    "stage0-scene": _preset(size="fine", num_reason_tokens=0, with_decoder=False, stage1_trainable="vision",
                            stage1_steps=2500, stage2_steps=0, lr_backbone=2e-3, init_from=None,
                            scene_head_weight=1.0, shape_only_images=16, render_variation=0.5, save_every=200),
    **PRESETS_SEE,
    **_binding_pipelines(),
    "lame": _preset(num_reason_tokens=8),
    "discriminative": _preset(num_reason_tokens=0, with_decoder=False),
    "cot": _preset(kind="cot", num_reason_tokens=0, with_decoder=False),
    "lame-nodecoder": _preset(num_reason_tokens=8, with_decoder=False),
    # the sequential-latent baseline, trained like LaME (same K, decoder, budget)
    "sequential": _preset(num_reason_tokens=8, latent_steps="sequential"),
    "lame-rationale": _preset(num_reason_tokens=8, decoder_target="rationale"),
    **{f"lame-k{k}": _preset(num_reason_tokens=k, with_decoder=k > 0) for k in (0, 1, 2, 4, 8, 16)},
    # for tests: builds in milliseconds, a few steps
    "micro-stage0": _micro(kind="stage0", num_reason_tokens=0, with_decoder=False, stage0_steps=4,
                           stage1_steps=0, stage2_steps=0),
    "micro-lame": _micro(num_reason_tokens=4),
    "micro-sequential": _micro(num_reason_tokens=4, latent_steps="sequential"),
    "micro-discriminative": _micro(num_reason_tokens=0, with_decoder=False),
    "micro-cot": _micro(kind="cot", num_reason_tokens=0, with_decoder=False),
    "micro-scene": _micro(num_reason_tokens=0, with_decoder=False, scene_head_weight=1.0, render_variation=0.5),
}


def check_relation_lookup(config: TrainConfig) -> None:
    """Refuse a relation look-up the model cannot read (`TrainConfig.relation_lookup_weight`)."""
    if config.relation_lookup_weight < 0:
        raise LameError(f"relation_lookup_weight is a loss weight >= 0, not {config.relation_lookup_weight}.")
    if not config.relation_lookup_weight:
        return
    if config.relation_lookup_from == "reasons":
        if config.default_mode != "latent":
            raise LameError("relation_lookup_from=reasons needs parallel reason tokens (num_reason_tokens > 0, "
                            "latent_steps=parallel, not cot).")
    elif config.relation_lookup_from == "embed":
        if config.default_mode not in ("latent", "discriminative") or config.embed_reads != "all":
            raise LameError("relation_lookup_from=embed needs a one-pass mode (latent or discriminative) "
                            "with embed_reads=all.")
    else:
        raise LameError(f"relation_lookup_from is reasons or embed, not {config.relation_lookup_from!r}.")


def list_presets() -> list[str]:
    return sorted(PRESETS)


def get_train_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise LameError(f"Unknown training preset {name!r}; known: {', '.join(list_presets())}.")
    return dataclasses.replace(PRESETS[name])


def parse_override(text: str) -> tuple[str, Any]:
    """`"KEY=VALUE"` -> (field name, value of the field's type); "none", "null" or "" unset a text field."""
    if "=" not in text:
        raise LameError(f"--set wants KEY=VALUE, got {text!r}.")
    key, value = text.split("=", 1)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    if key not in fields:
        raise LameError(f"Unknown training setting {key!r}; known: {', '.join(sorted(fields))}.")
    default = getattr(TrainConfig(), key)
    if isinstance(default, bool):
        return key, value.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return key, int(value)
    if isinstance(default, float):
        return key, float(value)
    if value.lower() in ("none", "null", ""):
        return key, None
    return key, value


def build_config(
    preset: str = "lame",
    overrides: Iterable[str] = (),
    *,
    seed: int | None = None,
    batch_size: int | None = None,
    init_from: str | Path | None = None,
    base: str | Path | None = None,
    threads: int | None = None,
    steps_scale: float = 1.0,
    bf16: bool = False,
    gradient_checkpointing: bool = False,
) -> TrainConfig:
    """The config of a run: `preset`, then the `KEY=VALUE` `overrides`, then the named values given
    (those win over an override of the same field). `steps_scale` multiplies each stage's steps
    unless an override sets them; `bf16` and `gradient_checkpointing` only switch on."""
    config = get_train_preset(preset)
    values: dict[str, Any] = dict(parse_override(s) for s in overrides or ())
    named = {"seed": seed, "batch_size": batch_size, "init_from": init_from, "base": base, "threads": threads}
    for name, value in named.items():
        if value is not None:
            values[name] = str(value) if name in ("init_from", "base") else value
    if steps_scale != 1.0:
        for name in ("stage0_steps", "stage1_steps", "stage2_steps"):
            values.setdefault(name, int(round(getattr(config, name) * steps_scale)))
    if bf16:
        values["bf16"] = True
    if gradient_checkpointing:
        values["gradient_checkpointing"] = True
    config = dataclasses.replace(config, **values)
    config.cot_own_subtask_list  # noqa: B018 - refuse unknown subtask names now, not in stage 2
    config.cot_swap_subtask_list  # noqa: B018
    config.max_objects(0, "count")  # refuses a bad object_curriculum now
    config.lookup_subtask_list  # noqa: B018
    check_relation_lookup(config)
    if config.scene_words and config.scene_head_weight <= 0:
        raise LameError("scene_words needs the scene head: set scene_head_weight > 0.")
    if config.scene_words_only and not config.scene_words:
        raise LameError("scene_words_only needs scene_words=true.")
    if not 0.0 <= config.rename_words <= 1.0:
        raise LameError(f"rename_words is a share of training examples in [0, 1], not {config.rename_words}.")
    if config.rename_words and not config.scene_words_only:
        raise LameError("rename_words needs scene_words_only=true (the language model must read the words "
                        "alone for a relabelling to be a symmetry).")
    if config.hard_negative_from not in HARD_NEGATIVE_SOURCES:
        raise LameError(f"hard_negative_from is one of {', '.join(HARD_NEGATIVE_SOURCES)}, "
                        f"not {config.hard_negative_from!r}.")
    if config.decoder_target not in DECODER_TARGETS:
        raise LameError(f"decoder_target is one of {', '.join(DECODER_TARGETS)}, not {config.decoder_target!r}.")
    if config.decoder_relation_weight <= 0:
        raise LameError(f"decoder_relation_weight is a token weight > 0, not {config.decoder_relation_weight}.")
    if config.decoder_relation_weight != 1.0 and config.decoder_target not in ("rationale", "steps"):
        raise LameError("decoder_relation_weight weighs the look step of a rationale: it needs "
                        "decoder_target=rationale or steps.")
    if config.prompt_format not in ("plain", "plain-text-first"):
        raise LameError(f"prompt_format of a tiny model is plain or plain-text-first, not {config.prompt_format!r}.")
    if not 0.0 <= config.ema_decay < 1.0:
        raise LameError(f"ema_decay is the average's decay per step in [0, 1) (0 = off), not {config.ema_decay}.")
    for name in ("cot_own_rationales", "cot_swap_rationales"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise LameError(f"{name} is a share of each step's queries in [0, 1], not {getattr(config, name)}.")
    return config
