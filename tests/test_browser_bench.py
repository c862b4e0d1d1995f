"""Browser: the researcher's bench in headless Chromium. The map is drawn when its tab opens; hovering
an image point shows its thumbnail; clicking a point lists its neighbours (in the full embedding
space); the Attention tab's attribution overlays and K-in-the-loop view render. Screenshots under
test-artifacts/screenshots/bench-*.png.
"""

from __future__ import annotations

import pytest
from _app_server import running_app
from test_browser import CHROMIUM_ARGS, TIMEOUT_MS, _chromium, expect, open_tab, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The viewport position of the first corpus point with a thumbnail (an image), from plotly's own axes.
FIRST_IMAGE_POINT_JS = """
() => {
  const gd = document.querySelector('#m-plot .js-plotly-plot');
  gd.scrollIntoView();
  const box = gd.getBoundingClientRect();
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  for (let c = 0; c < gd._fullData.length; c++) {
    const custom = gd._fullData[c].customdata || [];
    for (let i = 0; i < custom.length; i++) {
      if (custom[i][0] >= 0 && custom[i][1]) {
        const point = gd.calcdata[c][i];
        return {x: box.left + xa._offset + xa.l2p(point.x), y: box.top + ya._offset + ya.l2p(point.y), index: custom[i][0]};
      }
    }
  }
  return null;
}
"""


@pytest.fixture(scope="module")
def bench_page(tmp_path_factory):
    executable = _chromium()
    from playwright.sync_api import expect as playwright_expect
    from playwright.sync_api import sync_playwright

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    with running_app(tmp_path_factory.mktemp("bench-app"), gallery_size=24, fit_map=False) as (url, service):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.locator("#search-btn").wait_for()
            yield page, service
            browser.close()


def test_map_opens_drawn_hover_shows_a_thumbnail_click_lists_neighbours(bench_page):
    page, service = bench_page
    open_tab(page, "Embedding map")  # no button press: the tab's select event draws it
    page.locator("#m-plot .js-plotly-plot").wait_for()
    page.locator("#m-status").get_by_text("Map:").wait_for()
    page.wait_for_function("() => { const gd = document.querySelector('#m-plot .js-plotly-plot');"
                           " return gd && gd.dataset.lameBound === '1' && gd.calcdata; }")
    point = page.evaluate(FIRST_IMAGE_POINT_JS)
    assert point is not None
    page.mouse.move(point["x"] - 8, point["y"] - 8)
    page.mouse.move(point["x"], point["y"])
    thumb = page.locator("#m-hover #m-thumb")
    expect(thumb).to_be_visible()
    assert thumb.get_attribute("src").startswith("data:image/png;base64,")
    assert page.evaluate("() => document.querySelector('#m-thumb').naturalWidth") > 0  # the PNG decoded
    assert page.locator("#m-hover").get_attribute("data-point") == str(point["index"])
    shot(page, "bench-map-hover")
    page.mouse.click(point["x"], point["y"])
    expect(page.locator("#m-nn-title")).to_contain_text(f"Nearest to point {point['index']}")
    expected = service.embedding_map("latent").neighbours(point["index"], 8)  # the index's top-k
    table = page.locator("#m-neighbours")
    expect(table.get_by_role("row")).to_have_count(len(expected) + 1)  # header + the k neighbours
    for rank, row in enumerate(expected, start=1):
        expect(table.get_by_role("row").nth(rank)).to_contain_text(f"{row[0]} {row[1]} {row[2]} {row[3]}")
    shot(page, "bench-map-neighbours")


def test_attribution_overlays_and_k_sweep_render(bench_page):
    page, service = bench_page
    open_tab(page, "Attention")
    page.locator("#tab-attention").get_by_text("what is left of the red triangle ?").first.click()
    page.locator("#attribute-btn").click()
    expect(page.locator("#b-facts")).to_contain_text("cos =", timeout=TIMEOUT_MS)
    expect(page.locator("#b-facts")).to_contain_text("through the reason tokens")
    page.locator("#b-attribution .js-plotly-plot").wait_for()
    # both sides drawn: the query's image with its patch heatmap, the token bars of both sides
    assert page.locator("#b-attribution .heatmaplayer image, #b-attribution .hm image").count() >= 1
    assert page.locator("#b-attribution .barlayer .point").count() >= 2
    page.locator("#b-flow .js-plotly-plot").wait_for()
    page.locator("#b-deletion .js-plotly-plot").wait_for()
    page.locator("#bench").scroll_into_view_if_needed()
    shot(page, "bench-attribution")
    page.locator("#ksweep-btn").click()
    page.locator("#b-ksweep .js-plotly-plot").wait_for()
    k = service.models.model_for("latent").num_reason_tokens
    expect(page.locator("#b-ksweep-table").get_by_role("row")).to_have_count(k + 2)  # header + K..0
    expect(page.locator("#b-ksweep-table").get_by_role("row").nth(1)).to_contain_text(f"{k} 1 ")
    expect(page.locator("#b-ksweep .gtitle")).to_contain_text("hidden from [EMBED], positions kept")
    shot(page, "bench-k-sweep")
    page.locator("#b-ksweep-how").get_by_text("drop (positions shift)").click()
    page.locator("#ksweep-btn").click()
    expect(page.locator("#b-ksweep .gtitle")).to_contain_text("dropped, positions shift", timeout=TIMEOUT_MS)
