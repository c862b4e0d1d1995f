"""The researcher's bench in the app: why a query is close to an item, and K in the loop.

`AttributionView` and `KSweepView` hold what the Attention tab's bench section shows (texts
ready-made); `ProbeActions.attribution_view` / `k_sweep_view` compute them, and
`ProbeActions.export_bench_figures` writes each figure as HTML, PNG and SVG with the data as CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

KSWEEP_COLUMNS = ("K", "cosine to K-token embedding", "top result", "score", "read-out")
TOKEN_COLUMNS = ("side", "token", "attribution")


@dataclass
class AttributionView:
    """One attribution (`lame_tools.probe.Attribution`) with its deletion check, as the tab shows it."""

    query_label: str
    item_label: str
    result: Any
    deletion: Any | None  # `lame_tools.probe.DeletionCheck`, or None for a text-only query

    @property
    def title(self) -> str:
        return f"why {self.query_label!r} is close to {self.item_label!r}: cos {self.result.score:.3f}"

    @property
    def facts(self) -> str:
        """The cosine, the method's completeness, the share through the reason tokens and the deletion check."""
        r = self.result
        steps = f", {r.query.steps} and {r.item.steps} steps" if r.query.steps else ""
        facts = (f"**cos = {r.score:.3f}** ({r.method.replace('_', ' ')}{steps}). The query's scores sum to "
                 f"{r.query.total:+.3f} and the item's to {r.item.total:+.3f} (the cosine minus its value with that "
                 f"side deleted: {r.score - r.query_baseline_score:+.3f} and {r.score - r.item_baseline_score:+.3f}).")
        if r.flow is not None:
            facts += (f"\n\nAttention flow into `[EMBED]`: **{r.flow.reason_share:.0%} through the reason tokens**, "
                      f"{1 - r.flow.reason_share:.0%} directly.")
        if self.deletion is not None:
            d = self.deletion
            verdict = "more" if d.faithful else "**not** more"
            facts += (f"\n\nDeleting the {d.n_deleted} top-attributed patches lowers the cosine by {d.top_drop:.3f}, "
                      f"{verdict} than {len(d.random_scores)} random draws of as many patches ({d.random_drop:.3f} "
                      "on average).")
        return facts

    def token_table(self, n: int = 12) -> list[list[Any]]:
        """The text tokens with the largest |attribution| on either side, largest first."""
        rows = [(side, t, float(s)) for side, part in (("query", self.result.query), ("item", self.result.item))
                for t, s in zip(part.text_tokens, part.text_scores)]
        rows.sort(key=lambda r: -abs(r[2]))
        return [[side, token, round(score, 4)] for side, token, score in rows[:n]]

    def figures(self) -> dict[str, Any]:
        """Name -> (figure, the data behind it) for export."""
        out = {"attribution": (self.result.plot(title=self.title), self.result.rows())}
        if self.result.flow is not None:
            out["flow"] = (self.result.flow.plot(), self.result.flow.rows())
        if self.deletion is not None:
            out["deletion"] = (self.deletion.plot(), self.deletion.rows())
        return out


@dataclass
class KSweepView:
    """K in the loop (`lame_tools.probe.KSweep`) for one query, searched in the corpus."""

    query_label: str
    sweep: Any

    @property
    def title(self) -> str:
        removed = "hidden from [EMBED], positions kept" if self.sweep.how == "mask" else "dropped, positions shift"
        return f"K in the loop ({removed}): {self.query_label}"

    def table(self) -> list[list[Any]]:
        s = self.sweep
        return [[k, round(float(c), 4), label, round(float(score), 4), r or "-"]
                for k, c, label, score, r in zip(s.ks, s.cosine_to_full, s.top_labels, s.top_scores[:, 0], s.readouts)]

    def figures(self) -> dict[str, Any]:
        return {"k-sweep": (self.sweep.plot(title=self.title), self.sweep.rows())}


def changed_at(sweep: Any) -> int | None:
    """The largest k whose top result differs from the full-K one (None if it never changes)."""
    ids = np.asarray(sweep.top_ids)[:, 0]
    changed = [k for k, i in zip(sweep.ks, ids) if i != ids[0]]
    return changed[0] if changed else None
