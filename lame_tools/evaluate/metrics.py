"""Retrieval metrics per query (BEIR / pytrec_eval definitions), then averaged over judged queries.

- `hit_at_k`: 1 if a relevant item is in the top k, else 0 (MMEB's Hit@1 for k = 1).
- `recall_at_k`: relevant items in the top k / all relevant items of the query.
- `ndcg_at_k`: DCG@k / IDCG@k with LINEAR gain (gain = the qrel grade) and discount 1 / log2(rank + 1),
  IDCG from the query's own qrels sorted by grade (trec_eval's `ndcg_cut`, which BEIR reports).

Missing qrels: a query with no item of grade > 0 gets `None` and is left out of the mean (grades
<= 0 count as not relevant). Duplicates: an id that appears twice in a ranking counts once, at its
first (best) position. The rankings themselves come from `lame_tools.ranking.top_k_pessimistic`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from lame_tools.errors import InputError


def _dedupe(ranking: Sequence[Hashable]) -> list[Hashable]:
    return list(dict.fromkeys(ranking))


def _relevant(qrels: Mapping[Hashable, float]) -> dict[Hashable, float]:
    return {doc: gain for doc, gain in qrels.items() if gain > 0}


def hit_at_k(ranking: Sequence[Hashable], qrels: Mapping[Hashable, float], k: int) -> float | None:
    """1.0 if one of the first k (distinct) ids is relevant, else 0.0; None when nothing is relevant."""
    relevant = _relevant(qrels)
    if not relevant:
        return None
    return float(any(doc in relevant for doc in _dedupe(ranking)[:k]))


def recall_at_k(ranking: Sequence[Hashable], qrels: Mapping[Hashable, float], k: int) -> float | None:
    """Share of the relevant ids found in the first k (distinct) ids; None when nothing is relevant."""
    relevant = _relevant(qrels)
    if not relevant:
        return None
    return sum(1 for doc in _dedupe(ranking)[:k] if doc in relevant) / len(relevant)


def ndcg_at_k(ranking: Sequence[Hashable], qrels: Mapping[Hashable, float], k: int) -> float | None:
    """nDCG@k with linear gain (the qrel grade) and log2 discount; None when nothing is relevant."""
    relevant = _relevant(qrels)
    if not relevant:
        return None
    dcg = sum(relevant.get(doc, 0.0) / math.log2(rank + 2) for rank, doc in enumerate(_dedupe(ranking)[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg


METRICS = {"hit": hit_at_k, "recall": recall_at_k, "ndcg": ndcg_at_k}


def parse_metric(name: str) -> tuple[str, int]:
    """'ndcg@10' -> ('ndcg', 10)."""
    kind, _, k = name.partition("@")
    if kind not in METRICS or not k.isdigit() or int(k) < 1:
        raise InputError(f"Unknown metric {name!r}; expected hit@k, recall@k or ndcg@k.")
    return kind, int(k)


def metric(name: str, ranking: Sequence[Hashable], qrels: Mapping[Hashable, float]) -> float | None:
    """Compute a metric by name ('hit@1', 'ndcg@5', ...)."""
    kind, k = parse_metric(name)
    return METRICS[kind](ranking, qrels, k)


def mean_or_none(values: Sequence[float | None]) -> tuple[float | None, int]:
    """Mean of the non-None values and how many there were."""
    kept = [v for v in values if v is not None]
    return (float(np.mean(kept)) if kept else None), len(kept)
