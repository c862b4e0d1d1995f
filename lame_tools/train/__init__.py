"""Two-stage information-bottleneck training of LaME (and its baselines) on accelerate, resumable.

Stages (one run goes through the stages its preset lists; the global step counts across them):
    stage 0  the shared backbone, run once; every other preset starts from it (`init_from`). Our
             stand-in for Qwen2-VL-Instruct. The default (`--preset stage0`) is a locked-text
             warm-up: a stage-1 run on captions in which only the vision tower trains, against the
             fixed (random) language model and head, so the tiny model learns to see without the
             text side collapsing. `--preset stage0-lm` is next-token pretraining on captions,
             answers and rationales given the image (the `kind="stage0"` loop); on this budget it
             learned the format but not to see (see README).
    stage 1  bottleneck warm-up: backbone frozen; the reason / [EMBED] input embeddings, the
             projection head, the temperature and the latent decoder train.
    stage 2  joint: everything trains; InfoNCE + lambda * decoder reconstruction (LaME),
             InfoNCE only (discriminative), or InfoNCE + the LM loss on "[THINK] rationale [EMBED]" (CoT).

Data are drawn on the fly: the global batch of step s is a pure function of (run seed, s), so the
data position of a run is its step, and a run resumed from a checkpoint sees exactly the batches it
would have seen. Each process takes an equal slice of the global batch; the losses gather
embeddings across processes with gradients intact and gradients are averaged by hand, so one
process and N processes follow the same loss curve for the same global batch.

Modules: `config` (TrainConfig, presets, `build_config`), `data` (batches), `build` (model,
parameter groups, stages, optimizer, schedule), `step` (losses, `train_step`), `loop` (`train`).
Entry points: `train(config, out_dir)` and `python -m lame_tools train --preset NAME --out DIR [--resume]`.
"""

from lame_tools.train.build import (
    build_model,
    decoder_sizes_for,
    lr_factor,
    make_optimizer,
    make_scheduler,
    parameter_groups,
    set_stage,
    trainable_in_stage,
)
from lame_tools.train.config import (
    DEFAULT_STAGE0_DIR,
    PRESETS,
    TrainConfig,
    build_config,
    get_train_preset,
    list_presets,
    parse_override,
)
from lame_tools.train.data import (
    TrainBatch,
    batch_indices,
    make_batch,
    of_their_kind,
    prerender,
    scene_image,
    stage0_rows,
)
from lame_tools.train.loop import TrainResult, quick_validation, train, training_info
from lame_tools.train.step import (
    StepOutput,
    average_gradients,
    decoder_targets,
    embedding_loss,
    lm_rows_loss,
    stage0_loss,
    train_step,
)

__all__ = [
    "DEFAULT_STAGE0_DIR",
    "PRESETS",
    "StepOutput",
    "TrainBatch",
    "TrainConfig",
    "TrainResult",
    "average_gradients",
    "batch_indices",
    "build_config",
    "build_model",
    "decoder_sizes_for",
    "decoder_targets",
    "embedding_loss",
    "get_train_preset",
    "list_presets",
    "lm_rows_loss",
    "lr_factor",
    "make_batch",
    "make_optimizer",
    "make_scheduler",
    "of_their_kind",
    "parameter_groups",
    "parse_override",
    "prerender",
    "quick_validation",
    "scene_image",
    "set_stage",
    "stage0_loss",
    "stage0_rows",
    "train",
    "train_step",
    "trainable_in_stage",
    "training_info",
]
