"""The app's service layer: everything `app.py` calls that is neither layout nor model code.

- `models`: which model runs which mode (the shipped trio, one folder, or a hub id on request);
- `gallery`: the searchable corpus (Shapes scenes and texts, plus a user's uploads) over
  `lame_tools.index.EmbeddingIndex`, embedded once per mode;
- `service`: `DemoService`, one method per app action, joined from the per-tab parts:
  `query` (word checks, example queries, search and its result views), `maps` (the embedding map,
  background UMAP fit), `probes` (reason-token attention and read-out, ablation, linear probes),
  `about` (model facts, the About text); user mistakes raise `LameError` subclasses with one
  sentence, which the app turns into `gr.Error`;
- `race_board`: what the Race tab shows of live race events, and the recorded race benchmarks;
- `figures`: the tabs' plotly figures, drawn from the views with `lame_tools.viz`;
- `exports`: CSV / NPZ / JSON writers for the download buttons.

Only `gradio_parts` imports gradio; the rest is tested without a server (tests/test_demo.py).
"""

from __future__ import annotations
