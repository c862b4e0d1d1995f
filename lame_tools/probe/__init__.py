"""Probing LaME's reason tokens: hooks, attention, read-out, ablation, linear probes (and the CLI)."""

from __future__ import annotations

from lame_tools.probe.attention import ReasonAttention, reason_attention, reason_attention_items, upsample_to_image
from lame_tools.probe.hooks import (
    ActivationCache,
    HookContext,
    PreparedBatch,
    hook_point_names,
    hooks,
    prepare_batch,
    recompute_attention_rows,
    run_with_cache,
    run_with_hooks,
)

__all__ = [
    "ActivationCache",
    "HookContext",
    "PreparedBatch",
    "ReasonAttention",
    "hook_point_names",
    "hooks",
    "prepare_batch",
    "reason_attention",
    "reason_attention_items",
    "recompute_attention_rows",
    "run_with_cache",
    "run_with_hooks",
    "upsample_to_image",
]
