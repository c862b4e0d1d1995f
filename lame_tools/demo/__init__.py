"""The app's service layer: everything `app.py` calls that is neither layout nor model code.

- `models`: which model runs which mode (the shipped trio, one folder, or a hub id on request);
- `gallery`: the searchable corpus (Shapes scenes and texts, plus a user's uploads) over
  `lame_tools.index.EmbeddingIndex`, embedded once per mode;
- `service`: `DemoService`, one method per app action; user mistakes raise `LameError` subclasses
  with one sentence, which the app turns into `gr.Error`;
- `exports`: CSV / NPZ / JSON writers for the download buttons.

Only `gradio_parts` imports gradio; the rest is tested without a server (tests/test_demo.py).
"""

from __future__ import annotations
