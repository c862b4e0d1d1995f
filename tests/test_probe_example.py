"""scripts/probe_example.py: attention on objects for a model whose `[EMBED]` never sees the image."""

from __future__ import annotations

import math
from pathlib import Path

from _app_server import import_file

from lame_tools.data.shapes import VOCABULARY, balanced_examples
from lame_tools.model import LameModel

ROOT = Path(__file__).resolve().parent.parent
script = import_file(ROOT / "scripts" / "probe_example.py", "probe_example_script")


def test_a_token_that_never_looks_at_the_image_is_left_out_not_nan():
    build = dict(num_reason_tokens=3, embed_dim=16, seed=0, vocabulary=VOCABULARY, with_decoder=False)
    examples = [e for _, e in balanced_examples(0, "test", 3, ("relation_two_step",))]
    full = script.attention_on_objects(LameModel.build_tiny("micro", **build), examples)
    restricted = script.attention_on_objects(LameModel.build_tiny("micro", embed_reads="reasons", **build), examples)
    # with embed_reads=reasons [EMBED] gives the image nothing: no ratios, image share 0
    embed = restricted["by_token_last_layer"]["[EMBED]"]
    assert embed["image"] == 0.0 and embed["anchor"] is None and embed["answer"] is None
    assert full["by_token_last_layer"]["[EMBED]"]["anchor"] is not None
    for report in (full, restricted):
        cells = [v for rows in report["by_layer_head"].values() for row in rows for v in row]
        assert cells and all(math.isfinite(v) and v >= 0 for v in cells)
        assert all(r["anchor"] is not None for t, r in report["by_token_last_layer"].items() if t != "[EMBED]")
