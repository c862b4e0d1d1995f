"""Probing LaME's reason tokens: what they look at, what they say, what they carry.

    hooks      named hook points on the native Qwen2-VL layers, `run_with_cache`, `run_with_hooks`
    attention  reason-token / [EMBED] attention per layer and head over image patches and text
    readout    what the latent decoder reads from the K reason states
    ablation   drop / zero / swap reason tokens; cosine and target-rank changes
    linear     logistic probes from reason states to Shapes attributes, with controls
    attribution  why a query is close to an item: integrated gradients / gradient x input on the input
               embeddings per patch and token, attention flow through the reason tokens, a deletion check
    k_sweep    K in the loop: embedding, top result and read-out as reason tokens are removed K..0
    results    `to_frame()` (pandas) and `rows_csv()` for every result; each also has `plot()`

Every public function returns plain numpy arrays in small dataclasses, each with `rows()`,
`to_frame()` and `plot()` for notebooks; figures live in `lame_tools.viz` / `lame_tools.viz_probe`, projections in `lame_tools.project`, the `probe` verb in `lame_tools.cli.probe`.
"""

from __future__ import annotations

from lame_tools.probe.ablation import ABLATIONS, AblationResult, ablate
from lame_tools.probe.attention import (
    ReasonAttention,
    reason_attention,
    reason_attention_items,
    region_mass,
)
from lame_tools.probe.attribution import (
    AttentionFlow,
    Attribution,
    DeletionCheck,
    SideAttribution,
    attention_flow,
    attribute,
    deletion_check,
)
from lame_tools.probe.hooks import (
    ActivationCache,
    HookContext,
    PreparedBatch,
    hook_point_names,
    hooks,
    prepare_batch,
    recompute_attention_rows,
    run_prepared,
    run_with_cache,
    run_with_hooks,
)
from lame_tools.probe.k_sweep import KSweep, k_sweep
from lame_tools.probe.linear import (
    ATTRIBUTES,
    LinearProbeResult,
    ProbeStates,
    asked_examples,
    attribute_labels,
    collect_states,
    fit_probes,
    linear_probe,
    probe_examples,
    relational_examples,
)
from lame_tools.probe.readout import Readout, decode_reason_states, readout, readout_items, readout_per_token
from lame_tools.viz import upsample_to_image

__all__ = [
    "ABLATIONS",
    "ATTRIBUTES",
    "AblationResult",
    "ActivationCache",
    "AttentionFlow",
    "Attribution",
    "DeletionCheck",
    "KSweep",
    "SideAttribution",
    "attention_flow",
    "attribute",
    "deletion_check",
    "k_sweep",
    "HookContext",
    "LinearProbeResult",
    "PreparedBatch",
    "ProbeStates",
    "ReasonAttention",
    "Readout",
    "ablate",
    "asked_examples",
    "attribute_labels",
    "collect_states",
    "decode_reason_states",
    "fit_probes",
    "hook_point_names",
    "hooks",
    "linear_probe",
    "prepare_batch",
    "probe_examples",
    "readout",
    "readout_items",
    "readout_per_token",
    "reason_attention",
    "reason_attention_items",
    "recompute_attention_rows",
    "relational_examples",
    "region_mass",
    "run_prepared",
    "run_with_cache",
    "run_with_hooks",
    "upsample_to_image",
]
