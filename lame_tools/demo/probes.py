"""What the reason tokens do: their attention (with the decoder's read-out), ablation, linear probes.

`ProbeActions` is the part of `DemoService` behind the Attention and Probe tabs; it needs the
service's `models`, `gallery` and `downloads`, and caches linear probes in `probe_cache`. The
views (`AttentionView`, `AblationView`, `ProbeView`) hold what the tabs show, texts ready-made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lame_tools.constants import EMBED_TOKEN, reason_tokens
from lame_tools.data.shapes import make_example
from lame_tools.demo.bench import AttributionView, KSweepView
from lame_tools.demo.exports import unique_path, write_npz, write_text
from lame_tools.demo.query import AUTO, Query, QueryActions
from lame_tools.errors import InputError
from lame_tools.probe.ablation import ABLATIONS

MEAN = "mean"
# the probe library's ablations, "zero" first: the Probes tab's default
ABLATION_HOWS = ("zero", *(how for how in ABLATIONS if how != "zero"))
ABLATION_COLUMNS = ("condition", "mean cosine", "mean rank change", "Hit@1 before", "Hit@1 after")


@dataclass
class AttentionChoice:
    """What one (layer, head, token) choice draws.

    Attributes:
        token_index: the probed token's row.
        image_grid: [grid_h, grid_w] attention on the image patches, or None (no image).
        text_rows: [Q, T] attention of every probed token on the text keys.
        per_head: [layer, head, grid_h, grid_w] (or [layer, head, T] without an image) for the token.
        image_mass: the token's total attention on the image.
    """

    token_index: int
    image_grid: np.ndarray | None
    text_rows: np.ndarray
    per_head: np.ndarray
    image_mass: float


@dataclass
class AttentionView:
    """One (layer, head, token) choice of a computed attention, with the titles and facts the tab shows."""

    attention: Any  # a `lame_tools.probe.ReasonAttention`
    readout_text: str | None
    layer: str
    head: str
    token: str
    choice: AttentionChoice

    @property
    def where(self) -> str:
        layer = "mean of layers" if self.layer == MEAN else self.layer
        head = "mean of heads" if self.head == MEAN else self.head
        return f"{layer}, {head}"

    @property
    def overlay_title(self) -> str:
        return f"{self.token} on the image ({self.where})"

    @property
    def strip_title(self) -> str:
        return f"attention on the text ({self.where})"

    @property
    def grid_title(self) -> str:
        return f"{self.token}: every layer and head"

    @property
    def facts(self) -> str:
        """How much of the token's attention is on the image, and the decoder's read-out (Markdown)."""
        if self.choice.image_grid is not None:
            facts = f"**{self.token}** puts {self.choice.image_mass:.0%} of its attention on the image ({self.where})."
        else:
            facts = f"Text-only query: **{self.token}**'s attention on the text tokens is shown ({self.where})."
        if self.readout_text is not None:
            n_reason = len(self.attention.query_tokens) - 1
            facts += f"\n\n**Latent decoder read-out** of the {n_reason} reason states: *{self.readout_text or '(empty)'}*"
        return facts


@dataclass
class AblationView:
    """An ablation's result (`lame_tools.probe.ablation.AblationResult`) as the Probe tab shows it."""

    how: str
    result: Any
    csv_path: str = ""

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.result.summary()

    @property
    def title(self) -> str:
        return f"{self.how} each reason token, {self.result.cosine.shape[1]} queries"

    def table(self) -> list[list[Any]]:
        """One row per condition, the columns of `ABLATION_COLUMNS` (rounded for display)."""
        return [
            [r["condition"], round(r["mean_cosine"], 4), round(r["mean_rank_change"], 3), round(r["hit1_before"], 3),
             round(r["hit1_after"], 3)]
            for r in self.rows
        ]


@dataclass
class ProbeView:
    """Linear probes of one attribute: the latent model's, and the K=0 model's when it is another checkpoint."""

    attribute: str
    results: list[Any]  # `lame_tools.probe.linear.ProbeResult`, the latent model's first
    csv_path: str = ""

    @property
    def main(self) -> Any:
        return self.results[0]

    @property
    def baseline(self) -> np.ndarray | None:
        """[layers] held-out accuracy of the baseline model's [EMBED] (its last probed token), or None."""
        return self.results[1].accuracy[:, -1] if len(self.results) > 1 else None

    @property
    def title(self) -> str:
        return f"{self.attribute}: held-out accuracy ({self.main.n_train} train / {self.main.n_test} test)"

    @property
    def summary(self) -> str:
        layer, token, acc = self.main.best()
        summary = (f"Best: **{token} at layer {layer}: {acc:.2f}** held-out accuracy; shuffled-label control "
                   f"{float(self.main.control.max()):.2f}; majority class {self.main.majority:.2f}.")
        if self.baseline is not None:
            summary += f" K=0 model's [EMBED], best layer: {float(self.baseline.max()):.2f}."
        return summary

    def csv_text(self) -> str:
        return "".join(r.to_csv() for r in self.results)


def pick_index(choice: str, prefix: str, size: int) -> int:
    """"L2" -> 2 (checked against `size`)."""
    message = f"Pick 'mean' or {prefix}0..{prefix}{size - 1}, not {choice!r}."
    try:
        value = int(str(choice).removeprefix(prefix))
    except ValueError:
        raise InputError(message) from None
    if not 0 <= value < size:
        raise InputError(message)
    return value


def has_image_attention(attention: Any) -> bool:
    """True for a computed attention of a query with an image (the tab shows the overlay)."""
    return attention is not None and attention.image_attention is not None


class ProbeActions(QueryActions):
    """Reason-token attention and read-out, ablation and linear probes (part of `DemoService`)."""

    probe_cache: dict[tuple[str, int], list[Any]]

    # ---- attention and read-out -----------------------------------------------------------------

    def attention(self, image: Any, text: str | None, task: str | None = AUTO) -> tuple[Query, Any, str | None]:
        """Reason-token attention of one query in latent mode (`lame_tools.probe.reason_attention`),
        every layer and head, plus the latent decoder's read-out of its reason states (None without
        a decoder or reason tokens)."""
        from lame_tools.probe import reason_attention
        from lame_tools.probe.readout import readout

        query = self.prepare_query(image, text, task, AUTO)
        model = self.models.model_for("latent")
        attention = reason_attention(model, query.image, query.text, query.instruction, mode="latent")
        text_out = None
        if model.decoder is not None and model.num_reason_tokens > 0:
            text_out = readout(model, query.image, query.text, query.instruction).texts[0]
        return query, attention, text_out

    def attention_axes(self) -> tuple[int, int, list[str]]:
        """(layers, heads, probed token names) of the latent model, for the Attention tab's pickers."""
        model = self.models.model_for("latent")
        text_config = model.backbone.config.text_config
        tokens = [*reason_tokens(model.num_reason_tokens), EMBED_TOKEN]
        return int(text_config.num_hidden_layers), int(text_config.num_attention_heads), tokens

    def attention_pickers(self) -> tuple[list[str], list[str], list[str]]:
        """The choices of the layer, head and token pickers: "mean" or L<i>, "mean" or H<j>, token names."""
        n_layers, n_heads, tokens = self.attention_axes()
        return [MEAN, *[f"L{i}" for i in range(n_layers)]], [MEAN, *[f"H{i}" for i in range(n_heads)]], tokens

    @staticmethod
    def attention_choice(attention: Any, layer: str, head: str, token: str) -> AttentionChoice:
        """Select what to draw from a `ReasonAttention`: one layer (or the mean over layers), one head
        (or the mean over heads) and one probed token.

        Args:
            layer: "mean" or "L<i>"; head: "mean" or "H<j>"; token: one of `attention.query_tokens`.
        """
        if token not in attention.query_tokens:
            raise InputError(f"Pick one of {', '.join(attention.query_tokens)}, not {token!r}.")
        q = attention.query_tokens.index(token)

        def pick(array: np.ndarray) -> np.ndarray:  # [layer, head, ...] -> [...]
            array = array.mean(0) if layer == MEAN else array[pick_index(layer, "L", array.shape[0])]
            return array.mean(0) if head == MEAN else array[pick_index(head, "H", array.shape[0])]

        image_grid = pick(attention.image_attention[:, :, q]) if attention.image_attention is not None else None
        text_rows = pick(attention.text_attention)  # [Q, T]
        per_head = attention.image_attention[:, :, q] if attention.image_attention is not None else attention.text_attention[:, :, q]
        return AttentionChoice(q, image_grid, text_rows, per_head, float(pick(attention.image_mass)[q]))

    def attention_view(self, attention: Any, readout_text: str | None, layer: str, head: str, token: str) -> AttentionView:
        """What to draw for one (layer, head, token) choice of a computed attention (no model call)."""
        if attention is None:
            raise InputError("Compute the attention of a query first.")
        choice = self.attention_choice(attention, layer, head, token)
        return AttentionView(attention, readout_text, layer, head, token, choice)

    def export_attention_png(self, attention: Any, choice: AttentionChoice) -> Path | None:
        """The chosen attention map laid over the query image, as a PNG (None for a text-only query)."""
        from lame_tools.viz import overlay_png

        if choice.image_grid is None or attention.image is None:
            return None
        return overlay_png(attention.image, choice.image_grid, unique_path(self.downloads, "lame-attention", ".png"))

    def export_attention_npz(self, attention: Any, readout_text: str | None) -> Path:
        """Every layer's and head's attention of the probed tokens (see `ReasonAttention`) as NPZ."""
        arrays = attention.to_npz_dict()
        arrays["readout"] = np.array(readout_text or "")
        return write_npz(self.downloads, "lame-attention", arrays)

    def export_attention_files(self, view: AttentionView) -> list[str]:
        """The NPZ of every layer, head and token, and the PNG of the overlay shown (with an image)."""
        files = [str(self.export_attention_npz(view.attention, view.readout_text))]
        png = self.export_attention_png(view.attention, view.choice)
        return files + ([str(png)] if png is not None else [])

    def export_text(self, stem: str, text: str, suffix: str = ".csv") -> Path:
        """Ready-made text (a probe's own CSV) as a download in the app's folder."""
        return write_text(self.downloads, stem, suffix, text)

    # ---- the bench: attribution and K in the loop ----------------------------------------------

    def top_item(self, query: Query) -> tuple[Any, str]:
        """The query's best corpus entry in latent mode as a target item: (Item, its label)."""
        from lame_tools.data.shapes import TARGET_INSTRUCTION
        from lame_tools.inputs import Item

        kind = "image" if query.image is None else "text"
        index = self.gallery.index(self.models.model_for("latent"), "latent", kind)
        _, ids = index.search(self.encode_query(query, "latent"), 1)
        entry_id = int(ids[0, 0])
        entry = self.gallery.entries[entry_id]
        if kind == "image":
            return Item(self.gallery.image(entry_id), None, TARGET_INSTRUCTION), f"[image] {entry.text}"
        return Item(None, entry.text, TARGET_INSTRUCTION), entry.text

    def attribution_view(self, image: Any, text: str | None, task: str | None = AUTO, item_text: str | None = None,
                         item_image: Any = None, method: str = "integrated_gradients") -> AttributionView:
        """Attribute cos(query, item) in latent mode (`lame_tools.probe.attribute`) and run the deletion
        check; the item is the given text and/or image, else the query's top result in the corpus."""
        from lame_tools.data.shapes import TARGET_INSTRUCTION
        from lame_tools.inputs import Item, clean_text, load_image
        from lame_tools.probe.attribution import attribute, deletion_check

        query = self.prepare_query(image, text, task, AUTO)
        model = self.models.model_for("latent")
        item_text = clean_text(item_text, name="item text", allow_empty=True) or None
        item_picture = load_image(item_image, name="item image") if item_image is not None else None
        if item_text is None and item_picture is None:
            item, item_label = self.top_item(query)
        else:
            self.check_words(item_text, "item")
            item = Item(item_picture, item_text, TARGET_INSTRUCTION)
            item_label = " + ".join((["[image]"] if item_picture is not None else []) + ([item_text] if item_text else []))
        q_item = Item(query.image, query.text, query.instruction)
        result = attribute(model, q_item, item, method=method)
        deletion = deletion_check(model, q_item, item, result) if query.image is not None else None
        return AttributionView(query.label, item_label, result, deletion)

    def k_sweep_view(self, image: Any, text: str | None, task: str | None = AUTO, how: str = "mask") -> KSweepView:
        """K in the loop for one query (`lame_tools.probe.k_sweep`) over the corpus's latent-mode index
        (texts for a query with an image, images for a text-only one); `how`: "mask" hides the other
        reason tokens from `[EMBED]` (positions kept), "drop" removes them (positions shift)."""
        from lame_tools.inputs import Item
        from lame_tools.probe.k_sweep import k_sweep

        query = self.prepare_query(image, text, task, AUTO)
        model = self.models.model_for("latent")
        kind = "image" if query.image is None else "text"
        index = self.gallery.index(model, "latent", kind)
        labels = [self.gallery.entries[int(i)].text for i in index.ids]
        sweep = k_sweep(model, Item(query.image, query.text, query.instruction), index, labels, how=how)
        return KSweepView(query.label, sweep)

    def export_bench_figures(self, view: AttributionView | KSweepView | None, formats: tuple[str, ...] = ("html", "png", "svg")
                             ) -> list[str]:
        """Every figure of a bench view as HTML / PNG / SVG (PNG and SVG through the system Chromium),
        with the data behind each as CSV."""
        from lame_tools.viz import export_figures, save_data

        if view is None:
            raise InputError("Attribute a similarity or run K in the loop first.")
        figures, files = {}, []
        for name, (fig, rows) in view.figures().items():
            stem = unique_path(self.downloads, f"lame-{name}", "")
            figures[stem] = fig
            files.append(str(save_data(stem.with_name(stem.name + ".csv"), rows)))
        return [str(p) for p in export_figures(figures, formats)] + files

    # ---- ablation and linear probes -------------------------------------------------------------

    def ablation(self, how: str = "zero", n: int = 24) -> Any:
        """`lame_tools.probe.ablation.ablate` on `n` Shapes test queries with text candidates, each reason token."""
        from lame_tools.probe.ablation import ablate

        if not 4 <= int(n) <= 200:
            raise InputError("Use between 4 and 200 queries for the ablation.")
        source = self.gallery.shapes
        split, seed = (source.split, source.seed) if source is not None else ("test", 0)
        examples = [e for e in (make_example(seed, split, i) for i in range(int(n) * 2)) if e.candidates][: int(n)]
        return ablate(self.models.model_for("latent"), examples, tokens="each", how=how)

    def ablation_view(self, how: str = "zero", n: int = 24) -> AblationView:
        """`ablation`, as the Probe tab shows it, with its CSV written for download."""
        result = self.ablation(how, n)
        return AblationView(how, result, str(self.export_text(f"lame-ablation-{how}", result.to_csv())))

    def linear_probe(self, attribute: str, n: int = 200) -> list[Any]:
        """`lame_tools.probe.linear.linear_probe` on the latent model, and on the K=0 model when it is a
        different checkpoint (the baseline); cached per (attribute, n)."""
        from lame_tools.probe.linear import ATTRIBUTES, linear_probe

        if attribute not in ATTRIBUTES:
            raise InputError(f"Probe one of {', '.join(ATTRIBUTES)}, not {attribute!r}.")
        if not 40 <= int(n) <= 1000:
            raise InputError("Use between 40 and 1000 examples for a linear probe.")
        key = (attribute, int(n))
        if key not in self.probe_cache:
            from threadpoolctl import threadpool_limits

            # Many tiny scikit-learn fits: BLAS thread pools only add contention (measured 5x slower
            # with the default threads on this 2-core machine under load).
            with threadpool_limits(1):
                results = [linear_probe(self.models.model_for("latent"), attribute, n=int(n), mode="latent")]
                baseline = self.models.model_for("discriminative")
                if baseline is not self.models.model_for("latent"):
                    results.append(linear_probe(baseline, attribute, n=int(n), mode="discriminative"))
            self.probe_cache[key] = results
        return self.probe_cache[key]

    def linear_probe_view(self, attribute: str, n: int = 200) -> ProbeView:
        """`linear_probe`, as the Probe tab shows it, with its CSV written for download."""
        view = ProbeView(attribute, self.linear_probe(attribute, n))
        view.csv_path = str(self.export_text(f"lame-probe-{attribute}", view.csv_text()))
        return view
