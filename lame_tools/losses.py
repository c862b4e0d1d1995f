"""Training losses of LaME and its baselines.

- `info_nce`: symmetric InfoNCE with in-batch negatives, optional hard negatives, duplicate targets
  masked as false negatives, correct under data parallelism (`gather_with_grad`).
- `decoder_loss`: the latent decoder's teacher-forced reconstruction of the target text from the K
  reason states alone (the information bottleneck), averaged per sequence.
- `suffix_lm_loss`: the backbone's own next-token loss on the last tokens of each row (the stage-0
  "instruct VLM" pretraining and the explicit-CoT rationale supervision).
- `state_distill_loss`: the distance of a pass's `[EMBED]` states, layer by layer, from a teacher's
  (the self-distillation of the rationale into one pass, `TrainConfig.self_distill`).

Every loss here is a mean over examples of a per-example quantity, so the mean over processes of
equal-sized shards equals the loss of one process on the whole batch: gradients averaged across
processes are those of one process on the global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lame_tools.constants import IGNORE_INDEX

__all__ = [
    "IGNORE_INDEX",
    "MAX_LOGIT_SCALE",
    "decoder_loss",
    "gather_no_grad",
    "gather_with_grad",
    "info_nce",
    "sequence_mean_ce",
    "suffix_lm_loss",
    "text_keys",
]

MAX_LOGIT_SCALE = 100.0


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` [n, ...] from every process in rank order, gradients intact.

    The backward of `torch.distributed.nn.all_gather` sums the gradients every process sends to each
    shard, so a loss computed on the gathered batch gives each process the gradient of its own rows.
    With one process (or no process group) it returns the tensor itself.
    """
    if not _dist_ready() or torch.distributed.get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor that needs no gradient (labels, keys) from every process in rank order."""
    if not _dist_ready() or torch.distributed.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def info_nce(
    query: torch.Tensor,
    target: torch.Tensor,
    logit_scale: torch.Tensor | float,
    target_keys: torch.Tensor | None = None,
    hard_negatives: torch.Tensor | None = None,
    hard_negative_keys: torch.Tensor | None = None,
    hard_negative_valid: torch.Tensor | None = None,
    gather: bool = True,
) -> torch.Tensor:
    """Symmetric InfoNCE: query i's positive is target i; all other targets of the batch are negatives.

    Args:
        query: [n, d] unit-norm query embeddings (this process's shard).
        target: [n, d] unit-norm target embeddings.
        logit_scale: log of the inverse temperature (a learnable scalar), or a float log-scale; the
            scale is clamped to at most 100 (temperature 0.01).
        target_keys: [n] int64 id of each target's content. Two rows with equal keys have the same
            target (e.g. the answer "red"), so target j is not a negative of query i: it is masked out.
        hard_negatives: [n, d] one extra (hard) negative target per query; used in the query->target
            direction for every query of the batch.
        hard_negative_keys: [n] keys of the hard negatives (masked where equal to a query's positive).
        hard_negative_valid: [n] bool, False where a row has no hard negative.
        gather: gather the batch from all processes (with gradients) before scoring.

    Returns:
        scalar: (CE over query->target rows + CE over target->query rows) / 2, each a mean over the
        global batch.
    """
    n_local = query.shape[0]
    scale_log = logit_scale if isinstance(logit_scale, torch.Tensor) else torch.tensor(float(logit_scale))
    scale = scale_log.exp().clamp(max=MAX_LOGIT_SCALE)
    if gather:
        all_query, all_target = gather_with_grad(query), gather_with_grad(target)
    else:
        all_query, all_target = query, target
    n = all_query.shape[0]
    device = query.device
    if target_keys is None:
        keys = torch.arange(n, device=device)
    else:
        keys = gather_no_grad(target_keys.to(device)) if gather else target_keys.to(device)
    eye = torch.eye(n, dtype=torch.bool, device=device)
    duplicate = (keys[:, None] == keys[None, :]) & ~eye  # [n, n] false negatives

    logits_qt = scale * all_query.float() @ all_target.float().T  # [n_query, n_target]
    logits_qt = logits_qt.masked_fill(duplicate, float("-inf"))
    logits_tq = logits_qt.T  # same scores, duplicates symmetric
    columns_qt = logits_qt
    if hard_negatives is not None:
        hn = gather_with_grad(hard_negatives) if gather else hard_negatives
        hn_keys = hard_negative_keys if hard_negative_keys is not None else torch.full((n_local,), -1, device=device)
        hn_valid = (
            hard_negative_valid
            if hard_negative_valid is not None
            else torch.ones(n_local, dtype=torch.bool, device=device)
        )
        if gather:
            hn_keys = gather_no_grad(hn_keys.to(device))
            hn_valid = gather_no_grad(hn_valid.to(device))
        hn_logits = scale * all_query.float() @ hn.float().T  # [n_query, n_hard]
        masked = (keys[:, None] == hn_keys[None, :].to(device)) | ~hn_valid.to(device)[None, :]
        columns_qt = torch.cat([logits_qt, hn_logits.masked_fill(masked, float("-inf"))], dim=1)
    labels = torch.arange(n, device=device)
    return 0.5 * (F.cross_entropy(columns_qt, labels) + F.cross_entropy(logits_tq, labels))


def text_keys(texts: list[str]) -> torch.Tensor:
    """A deterministic int64 id per distinct text (stable across processes, unlike `hash`)."""
    import hashlib

    return torch.tensor(
        [int.from_bytes(hashlib.blake2b(t.encode(), digest_size=7).digest(), "little") for t in texts],
        dtype=torch.long,
    )


def sequence_mean_ce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token cross-entropy averaged within each sequence, then over sequences.

    Args:
        logits: [batch, seq, vocab], position p predicts token p + 1.
        labels: [batch, seq] token ids, IGNORE_INDEX where nothing is predicted (not shifted).
        weights: optional [batch, seq] weight of each label (aligned with `labels`); the mean within
            a sequence is then the weighted mean.

    Returns:
        scalar; rows with no label contribute zero (and still count in the mean over the batch).
    """
    shifted_logits = logits[:, :-1].float()
    shifted_labels = labels[:, 1:]
    token_ce = F.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.shape[-1]),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(shifted_labels.shape)
    valid = (shifted_labels != IGNORE_INDEX).float()
    if weights is not None:
        valid = valid * weights[:, 1:].to(valid.dtype)
    per_row = (token_ce * valid).sum(1) / valid.sum(1).clamp(min=1.0)
    return per_row.mean()


def decoder_loss(decoder, reason_states: torch.Tensor, target_ids: torch.Tensor, target_mask: torch.Tensor,
                 weighted_ids: torch.Tensor | None = None, weight: float = 1.0) -> torch.Tensor:
    """Reconstruction loss of the latent decoder: reproduce the target text from the reason states only.

    Args:
        decoder: a `LatentDecoder` (teacher-forced; sees the K projected reason states as its prefix;
            its `sequence` gives the labels).
        reason_states: [batch, K, hidden] from the encoder (gradients flow back into it).
        target_ids: [batch, T] right-padded token ids of the text to reconstruct.
        target_mask: [batch, T] 1 on real tokens.
        weighted_ids / weight: token ids whose labels weigh `weight` in each sequence's mean (the
            others 1; `TrainConfig.decoder_relation_weight`); None = a plain mean.

    Returns:
        scalar: per-sequence mean token cross-entropy (target tokens and eos), averaged over the batch.
    """
    out = decoder(reason_states, target_ids, target_mask)
    _, _, labels = decoder.sequence(target_ids, target_mask, reason_states.shape[1])  # the decoder's own layout
    weights = None
    if weighted_ids is not None and weight != 1.0:
        weights = 1.0 + (weight - 1.0) * torch.isin(labels, weighted_ids.to(labels.device)).float()
    return sequence_mean_ce(out.logits, labels, weights)


def suffix_lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, predict_lengths: torch.Tensor) -> torch.Tensor:
    """The backbone's next-token loss on the last `predict_lengths[i]` tokens of each left-padded row.

    Used for stage 0 (prompt -> caption / answer / rationale, then eos) and for the explicit-CoT
    supervision (prompt [THINK] -> rationale [EMBED]).

    Args:
        logits: [batch, seq, vocab] of the backbone's LM head.
        input_ids: [batch, seq] left-padded; each row ends with the tokens to predict.
        predict_lengths: [batch] how many final tokens of each row are predicted.

    Returns:
        scalar per-sequence mean cross-entropy, averaged over rows.
    """
    seq = input_ids.shape[1]
    positions = torch.arange(seq, device=input_ids.device)[None]
    predicted = positions >= (seq - predict_lengths.to(input_ids.device))[:, None]
    labels = input_ids.masked_fill(~predicted, IGNORE_INDEX)
    return sequence_mean_ce(logits, labels)


def state_distill_loss(student: torch.Tensor, teacher: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The mean absolute difference of each row's student and teacher states, each layer's scaled by
    the teacher row's own standard deviation there, averaged over layers and rows; no gradient
    reaches the teacher (the distance CODI, arXiv 2502.21074, uses between a chain-of-thought pass
    and a latent one, scaled per row so that shards of a batch average to the whole).

    Args:
        student: [batch, layers, hidden] states of the pass that learns.
        teacher: [batch, layers, hidden] states of the pass it is pulled toward (detached here).

    Returns:
        scalar loss.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student states {tuple(student.shape)} and teacher states {tuple(teacher.shape)} differ")
    teacher = teacher.detach().float()
    scale = teacher.std(dim=-1, keepdim=True) + eps
    return ((student.float() - teacher).abs() / scale).mean()
