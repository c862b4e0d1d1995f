"""Draw the cost/quality frontier from the recorded JSON and save it as a PNG (one command).

Quality: `assets/results/eval_*.json` (`python -m lame_tools eval --balanced`); cost: the newest
`assets/benchmarks/*.json` race report with `lane_sources` (`python -m lame_tools bench race ...`).
The plotly figure is rendered by headless Chromium through Playwright (kaleido is not installed here),
from a page that holds plotly.js inline (no network); without Chromium or Playwright it is saved as
that self-contained HTML instead.

    python scripts/record_frontier.py            # -> assets/results/frontier_cpu.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def screenshot(html: Path, png: Path, width: int = 900, height: int = 480) -> bool:
    """Render `html` in headless Chromium and save the plot as `png`; False when Chromium or Playwright is missing."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return False
    if not Path(chromium).exists():
        return False
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(html.as_uri())
        page.locator(".js-plotly-plot").wait_for()
        page.locator(".js-plotly-plot").screenshot(path=str(png))
        browser.close()
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "results" / "frontier_cpu.png")
    args = parser.parse_args()
    from lame_tools import ASSETS_DIR
    from lame_tools.demo.frontier import frontier_figure, frontier_markdown, frontier_points

    points, label = frontier_points(ASSETS_DIR / "results", ASSETS_DIR / "benchmarks")
    figure = frontier_figure(points, label)
    figure.update_layout(width=900, height=480)
    print(frontier_markdown(points, label))
    with tempfile.TemporaryDirectory() as folder:
        html = Path(folder) / "frontier.html"
        figure.write_html(html, include_plotlyjs=True, full_html=True)
        if screenshot(html, args.out):
            print(f"wrote {args.out}")
            return 0
        fallback = args.out.with_suffix(".html")
        shutil.copy(html, fallback)
        print(f"no Chromium/Playwright: wrote the figure as HTML, {fallback}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
