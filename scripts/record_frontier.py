"""Draw the cost/quality frontier from the recorded JSON and save it as a PNG (one command).

Quality: `assets/results/eval_*.json` (`python -m lame_tools eval --balanced`); cost: the newest
`assets/benchmarks/*.json` race report with `lane_sources` (`python -m lame_tools bench race ...`).
The PNG goes through the toolkit's figure export (`lame_tools.viz.export_figure`: kaleido driving the
system Chromium); without Chromium the figure is saved as self-contained HTML instead.

    python scripts/record_frontier.py            # -> assets/results/frontier_cpu.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "results" / "frontier_cpu.png")
    args = parser.parse_args()
    from lame_tools import ASSETS_DIR
    from lame_tools.demo.frontier import frontier_figure, frontier_markdown, frontier_points
    from lame_tools.errors import InputError
    from lame_tools.viz import export_figure, save_figure

    points, label = frontier_points(ASSETS_DIR / "results", ASSETS_DIR / "benchmarks")
    figure = frontier_figure(points, label)
    figure.update_layout(width=900, height=480)
    print(frontier_markdown(points, label))
    try:
        written = export_figure(figure, args.out.with_suffix(""), formats=("png",))
    except InputError as exc:
        fallback = save_figure(figure, args.out.with_suffix(".html"))
        print(f"{exc} Wrote the figure as HTML instead: {fallback}")
        return 0
    print(f"wrote {written[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
