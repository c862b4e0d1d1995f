"""Integration: the launched app driven through gradio_client, every tab's endpoints, bad uploads.

One app per module (shipped models, a 40-scene corpus) on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import json
import re
import sys
import types

import numpy as np
import pytest
from _app_server import bad_files, load_app, odd_images, running_app
from gradio_client import Client, handle_file
from PIL import Image

pytestmark = pytest.mark.slow

GOOD_QUERY = (None, "a red circle and a blue square", "auto", "auto", "latent", 5)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app"), gallery_size=40) as (url, service):
        yield url, service


@pytest.fixture(scope="module")
def client(server):
    return Client(server[0], verbose=False)


def search_ok(client) -> dict:
    """A good request; returns the results table."""
    gallery, table, summary = client.predict(*GOOD_QUERY, api_name="/search")
    assert len(table["data"]) == 5 and "5 images" in summary
    return table


def test_search_text_to_image_then_download(client):
    table = search_ok(client)
    scores = [row[1] for row in table["data"]]
    assert scores == sorted(scores, reverse=True) and all(row[2] == "image" for row in table["data"])
    csv_path, npz_path = client.predict(api_name="/download_results")
    assert open(csv_path).readline().startswith("rank,score,kind,text")
    data = np.load(npz_path, allow_pickle=False)
    assert data["result_embeddings"].shape == (5, data["query_embedding"].shape[0])


def test_search_image_queries_in_every_mode(client, server):
    service = server[1]
    example = next(e for e in service.example_queries() if e["image"] and e["text"])
    for mode in ("latent", "discriminative", "cot"):
        _, table, summary = client.predict(handle_file(example["image"]), example["text"], "auto", "auto", mode, 3, api_name="/search")
        assert len(table["data"]) == 3 and all(row[2] == "text" for row in table["data"]), summary
        assert f"in **{mode}** mode" in summary


def test_unknown_words_are_named(client):
    with pytest.raises(Exception, match="does not know.*'giraffe'"):
        client.predict(None, "a giraffe left of the red circle", "auto", "auto", "latent", 5, api_name="/search")
    search_ok(client)


@pytest.mark.parametrize("name, message", [
    ("corrupt.png", "could not be opened|corrupt"),
    ("zero.png", "empty"),
    ("text.png", "not an image"),
    ("huge.png", "too large|megapixels"),
])
def test_bad_uploads_get_one_sentence_and_the_app_goes_on(client, tmp_path, name, message):
    path = bad_files(tmp_path)[name]
    with pytest.raises(Exception, match=message) as info:
        client.predict(handle_file(str(path)), "", "auto", "auto", "latent", 3, api_name="/search")
    assert "Traceback" not in str(info.value)
    search_ok(client)


def test_odd_images_are_handled(client, tmp_path):
    for name, path in odd_images(tmp_path).items():
        _, table, summary = client.predict(handle_file(str(path)), "", "auto", "auto", "latent", 3, api_name="/search")
        assert len(table["data"]) == 3, name


def test_empty_and_long_text(client):
    with pytest.raises(Exception, match="Give a query"):
        client.predict(None, "", "auto", "auto", "latent", 3, api_name="/search")
    search_ok(client)
    long_text = ("a red circle left of a blue square " * 3000)[:100_000]
    _, table, summary = client.predict(None, long_text, "auto", "auto", "latent", 3, api_name="/search")
    assert len(table["data"]) == 3 and "note:" in summary and "truncated" in summary
    with pytest.raises(Exception, match="does not know"):
        client.predict(None, "x" * 100_000, "auto", "auto", "latent", 3, api_name="/search")
    search_ok(client)


def test_user_corpus_upload_add_search_reset(client, tmp_path):
    paths = odd_images(tmp_path)
    summary, _, _ = client.predict([handle_file(str(paths["rgba.png"]))], "a purple diamond", api_name="/add_to_corpus")
    assert "1 images and 1 texts" in summary
    with pytest.raises(Exception, match="not an image"):
        client.predict([handle_file(str(bad_files(tmp_path)["text.png"]))], "", api_name="/add_to_corpus")
    _, table, _ = client.predict(None, "a purple diamond", "auto", "texts", "latent", 50, api_name="/search")
    assert any(row[5] == "user" for row in table["data"])
    assert "removed" in client.predict(api_name="/reset_corpus")


def test_known_words_and_model_info(client):
    words = client.predict(api_name="/known_words")
    assert "circle" in words and "giraffe" not in words
    info = client.predict(api_name="/model_info")
    # the three modes' models, and the race's sequential lane's own
    assert {row["mode"] for row in info} == {"latent", "discriminative", "cot", "sequential"}
    sequential = next(row for row in info if row["mode"] == "sequential")
    assert "sequential-shapes" in sequential["checkpoint"] and sequential["reason tokens (K)"] == 16
    # the four shipped models share one depth, so the race compares like with like
    assert {row["language-model layers"] for row in info} == {6}


def test_attention_tab(client):
    _, _, _, facts, (npz_path,) = client.predict(
        None, "what is left of the red circle ?", "auto", "mean", "mean", "[REASON_0]", api_name="/attention"
    )
    assert "[REASON_0]" in facts and "read-out" in facts and "Text-only" in facts
    data = np.load(npz_path, allow_pickle=False)
    assert data["text_attention"].ndim == 4 and list(data["query_tokens"])[-1] == "[EMBED]"
    overlay, strip, grid, facts = client.predict("L0", "H1", "[EMBED]", api_name="/attention_view")
    assert "[EMBED]" in facts and "L0, H1" in facts
    with pytest.raises(Exception, match="L99"):
        client.predict("L99", "H1", "[EMBED]", api_name="/attention_view")


def test_attention_on_an_image(client, server):
    example = next(e for e in server[1].example_queries() if e["image"])
    overlay, _, grid, facts, (npz_path, png_path) = client.predict(
        handle_file(example["image"]), example["text"], "auto", "L1", "mean", "[EMBED]", api_name="/attention"
    )
    assert overlay is not None and "of its attention on the image" in facts
    (png_w, png_h), (w, h) = Image.open(png_path).size, Image.open(example["image"]).size
    assert png_w % w == 0 and png_w // w == png_h // h  # the overlay is the query image, maybe enlarged
    assert np.load(npz_path, allow_pickle=False)["image_attention"].ndim == 5


def test_embedding_map_places_session_queries(client, server):
    search_ok(client)
    figure, status, csv_path = client.predict("latent", "group", api_name="/embedding_map")
    assert "UMAP" in status or "PCA" in status
    drawn = int(re.search(r"(\d+) of your queries", status).group(1))
    rows = open(csv_path).read().splitlines()
    assert drawn >= 1 and rows[0].startswith("x,y,mode,kind") and sum(1 for r in rows if r.endswith(",query")) == drawn
    assert len(rows) - 1 - drawn == len(server[1].gallery)
    figure, status, _ = client.predict("discriminative", "kind", api_name="/embedding_map")
    assert "in discriminative mode" in status and re.search(r"\d+ of your queries", status)


def test_race_streams_measured_events(client):
    job = client.submit(None, "what is left of the red circle ?", "auto", True, api_name="/race")
    updates = list(job)
    assert len(updates) >= 3  # start, lanes, tokens, done: streamed, not one final answer
    chart, cot_text, latent, numbers, hardware, record = job.outputs()[-1]
    assert "latent lane done" in latent and "Measured live" in hardware
    events = json.load(open(record))["events"]
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "done"
    assert {e["lane"] for e in events if e["event"] == "lane_done"} == {"latent", "discriminative", "cot", "sequential"}
    # the sequential lane is the shipped sequential-latent model, searching its own corpus embeddings
    start, done = events[0], events[-1]
    assert start["lanes_info"]["sequential"]["trained_for_mode"] is True
    assert done["answers"]["sequential"]["corpus_mode"] == "sequential"
    assert not any("not trained for sequential steps" in str(shown) for shown in job.outputs()[-1])
    assert "slower" in numbers and "Latent / discriminative" in numbers
    search_ok(client)


def test_probe_tab(client):
    _, table, csv_path = client.predict("zero", 8, api_name="/ablation")
    assert [row[0] for row in table["data"]][0] == "zero [REASON_0]"
    assert open(csv_path).readline().startswith("condition,query,cosine")
    with pytest.raises(Exception, match="minimum"):
        client.predict("n_objects", 10, api_name="/linear_probe")


@pytest.mark.slow
def test_linear_probe(client):
    _, summary, csv_path = client.predict("n_objects", 40, api_name="/linear_probe")
    assert "held-out accuracy" in summary and "K=0 model" in summary
    assert open(csv_path).readline().startswith("attribute,layer,token")


def test_every_endpoint_has_a_docstring_and_gpu_events_share_one_id(server):
    app = load_app("lame_app_check")
    demo = app.build_app(server[1])
    named = [fn for fn in demo.fns.values() if fn.api_name and fn.api_visibility == "public"]
    assert {"search", "attention", "embedding_map", "race", "ablation", "linear_probe", "model_info"} <= {fn.api_name for fn in named}
    for fn in named:
        assert (fn.fn.__doc__ or "").strip(), fn.api_name
    gpu = {fn.api_name: fn.concurrency_id for fn in named if fn.api_name in GPU_ENDPOINTS}
    assert set(gpu) == GPU_ENDPOINTS and set(gpu.values()) == {app.GPU_CONCURRENCY_ID}
    uploads = next(fn for fn in named if fn.api_name == "add_to_corpus")
    assert uploads.concurrency_id != app.GPU_CONCURRENCY_ID  # uploads run no model: they never hold its slot


TABS = ["Retrieve", "Attention", "Embedding map", "Race", "Probe", "About"]
PUBLIC_ENDPOINTS = {
    "search", "download_results", "add_to_corpus", "reset_corpus", "known_words", "attention", "attention_view",
    "embedding_map", "race", "ablation", "linear_probe", "model_info", "attribution", "k_sweep", "map_neighbours",
}
GPU_ENDPOINTS = {"search", "attention", "embedding_map", "race", "ablation", "linear_probe", "attribution", "k_sweep"}


def tabs_and_endpoints(demo) -> tuple[list[str], set[str]]:
    """The built Blocks' tab labels, in order, and the names of its public API endpoints."""
    import gradio as gr

    tabs = [block.label for block in demo.blocks.values() if isinstance(block, gr.Tab)]
    endpoints = {fn.api_name for fn in demo.fns.values() if fn.api_name and fn.api_visibility == "public"}
    return tabs, endpoints


def test_app_builds_with_and_without_spaces(monkeypatch, micro_service):
    plain = load_app("lame_app_plain")
    assert plain.spaces is None
    tabs, endpoints = tabs_and_endpoints(plain.build_app(micro_service))
    assert tabs == TABS and endpoints == PUBLIC_ENDPOINTS

    wrapped: list[str] = []
    fake = types.ModuleType("spaces")

    def gpu(duration: int | None = None):
        def decorate(fn):
            wrapped.append(fn.__name__)
            fn.zerogpu_duration = duration
            return fn

        return decorate

    fake.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", fake)
    zero = load_app("lame_app_zerogpu")
    assert zero.spaces is fake
    demo = zero.build_app(micro_service)
    assert set(wrapped) == GPU_ENDPOINTS  # exactly the handlers that run a model get a GPU
    tabs, endpoints = tabs_and_endpoints(demo)
    assert tabs == TABS and endpoints == PUBLIC_ENDPOINTS
    gpu_fns = [fn.fn for fn in demo.fns.values() if fn.api_name in GPU_ENDPOINTS]
    assert gpu_fns and all(fn.zerogpu_duration == zero.GPU_DURATION_S for fn in gpu_fns)


@pytest.fixture(scope="module")
def micro_service(micro_model, tmp_path_factory):
    from lame_tools.constants import MODES
    from lame_tools.demo.gallery import shapes_gallery
    from lame_tools.demo.models import ModeModels
    from lame_tools.demo.service import DemoService

    workdir = tmp_path_factory.mktemp("micro-app")
    models = ModeModels({m: micro_model for m in MODES}, {m: "micro" for m in MODES}, single=True)
    return DemoService(models, shapes_gallery(workdir / "gallery", n_images=8), workdir)
