"""The app's service layer without a server: corpus, search, query checks, uploads, downloads, loading."""

from __future__ import annotations

import io
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from lame_tools.constants import MODES
from lame_tools.data.shapes import VOCABULARY, gallery_file_name, make_example
from lame_tools.demo.exports import write_csv, write_json, write_npz
from lame_tools.demo.gallery import Gallery, GalleryEntry, search_many, shapes_gallery
from lame_tools.demo.models import ModeModels, load_demo_models, resolve_model_folder
from lame_tools.demo.probes import ABLATION_COLUMNS
from lame_tools.demo.query import MAX_SESSION_QUERIES, RESULT_COLUMNS, TASK_INSTRUCTIONS, parse_mode
from lame_tools.demo.race_board import RaceBoard
from lame_tools.demo.service import DemoService
from lame_tools.errors import InputError, ModelLoadError


@pytest.fixture(scope="module")
def service(micro_model, tmp_path_factory):
    """A service over the random micro model (all modes) and a 12-scene corpus."""
    workdir = tmp_path_factory.mktemp("demo")
    models = ModeModels({m: micro_model for m in MODES}, {m: f"micro in {m} mode" for m in MODES}, single=True)
    return DemoService(models, shapes_gallery(workdir / "gallery", n_images=12), workdir, umap=False)


def test_shapes_gallery_has_scenes_and_target_texts(service):
    gallery = service.gallery
    assert gallery.count("image") == 12
    texts = [e.text for e in gallery.entries if e.kind == "text"]
    assert len(texts) == len(set(texts)) and "a red circle" in texts and "three" in texts
    first = gallery.entries[0]
    assert first.kind == "image" and first.image_path.endswith(".png") and first.text  # caption kept for display
    assert Image.open(first.image_path).size == gallery.image(0).size


def test_search_ranks_by_cosine_and_merges_user_additions(service, micro_model):
    result = service.search(None, "a red circle", "auto", "auto", "latent", k=5)
    assert result.query.target_kind == "image"  # a text-only query searches images
    assert result.query.instruction == TASK_INSTRUCTIONS["find the image for a caption"]
    scores = [h.score for h in result.hits]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    assert all(h.entry.kind == "image" for h in result.hits)
    # the scores are the cosine of the query with each hit's stored vector
    for hit in result.hits:
        assert np.isclose(float(hit.vector @ result.embedding), hit.score, atol=1e-5)

    user, summary = service.add_to_gallery(None, [], "a red circle\na blue square")
    assert user.count("text") == 2 and "2 texts" in summary
    query = micro_model.encode(texts=["a red circle"], instruction=TASK_INSTRUCTIONS["caption the image"])
    hits = search_many([service.gallery, user], query, micro_model, "latent", "text", k=400)
    assert {h.entry.source for h in hits} == {"shapes", "user"}
    assert len(hits) == service.gallery.count("text") + 2


def test_image_queries_search_texts_and_accept_odd_images(service, tmp_path):
    for mode_name in ("RGBA", "L", "I;16"):
        image = Image.new(mode_name, (40, 30))
        path = tmp_path / f"q-{mode_name.replace(';', '')}.png"
        image.save(path)
        result = service.search(str(path), "", "auto", "auto", "discriminative", k=3)
        assert result.query.target_kind == "text" and len(result.hits) == 3
    both = service.search(str(path), "what colour is the circle ?", "auto", "auto", "latent", k=2)
    assert both.query.instruction == TASK_INSTRUCTIONS["answer a question about the image"]


@pytest.mark.parametrize(
    "image, text, message",
    [
        (None, "", "Give a query"),
        (None, "   ", "Give a query"),
        (b"", "", "empty"),
        (b"this is not an image", "", "not an image"),
        (None, "a red dog", "'dog'"),
    ],
)
def test_bad_queries_raise_one_sentence(service, image, text, message):
    with pytest.raises(InputError, match=message) as info:
        service.search(image, text)
    assert "\n" not in str(info.value)


def test_unknown_words_in_a_custom_instruction_are_refused(service):
    with pytest.raises(InputError, match="instruction uses words"):
        service.search(None, "a red circle", task="please embed this")


def test_long_text_is_truncated_with_a_note(service):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = service.search(None, "a red circle and " * 6000, k=1)
    assert any("truncated" in n or "characters" in n for n in result.notes)


def test_truncation_note_survives_another_threads_warnings_state(service, monkeypatch):
    """The app's background threads enter and leave `warnings.catch_warnings` while a search encodes;
    the process-global state they set must not lose the search's note (CI lost it once that way)."""
    model = service.models.model_for("latent")
    encode = model.encode

    def encode_while_warnings_are_ignored(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return encode(*args, **kwargs)

    monkeypatch.setattr(model, "encode", encode_while_warnings_are_ignored)
    result = service.search(None, "a red circle and " * 100, k=1)
    assert [n for n in result.notes if "truncated to the model's limit of 64 tokens" in n]
    assert not [n for n in result.notes if "characters" in n]  # 1,700 characters are not cut


def test_a_long_custom_instruction_is_cut_with_a_note(service):
    long = "find the image of " + "a red circle and " * 300  # 5,118 characters, words the model knows
    result = service.search(None, "a red circle", task=long, k=1)
    cut = [n for n in result.notes if n.startswith("The instruction has")]
    assert len(cut) == 1 and "only the first 4000 are used" in cut[0]
    assert not [n for n in service.search(None, "a red circle", k=1).notes if "characters" in n]


def test_user_uploads_are_checked_and_limited(service, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    with pytest.raises(InputError, match="bad.png"):
        service.add_to_gallery(None, [str(bad)], "")
    with pytest.raises(InputError, match="Upload images or type texts"):
        service.add_to_gallery(None, [], "  \n ")
    good = tmp_path / "good.png"
    Image.new("RGB", (50, 50), (200, 30, 30)).save(good)
    user, _ = service.add_to_gallery(None, [str(good)], "")
    result = service.search(None, "a red square", k=50, user_gallery=user)
    assert any(h.entry.source == "user" for h in result.hits)


def test_downloads_are_readable_without_pickle(service, tmp_path):
    result = service.search(None, "a blue square", k=4)
    rows = (service.export_results_csv(result)).read_text().splitlines()
    assert rows[0].startswith("rank,score,kind,text") and len(rows) == 5
    data = np.load(service.export_results_npz(result), allow_pickle=False)
    assert data["result_embeddings"].shape == (4, result.embedding.shape[0])
    assert np.allclose(data["result_embeddings"] @ data["query_embedding"], data["scores"], atol=1e-5)
    assert str(data["mode"]) == "latent"
    assert write_csv(tmp_path, "x", []).read_text().strip() == ""
    assert write_json(tmp_path, "x", {"a": 1}).read_text().strip().startswith("{")
    with pytest.raises(ValueError):
        write_npz(tmp_path, "x", {"bad": np.array([object()], dtype=object)})


def test_examples_point_at_corpus_images(service):
    examples = service.example_queries()
    assert examples and all(e["task"] in TASK_INSTRUCTIONS for e in examples)
    assert any(e["image"] is None and e["target"] == "images" for e in examples)
    for e in examples:
        service.prepare_query(e["image"], e["text"], e["task"], e["target"])  # every example passes the checks


def test_examples_follow_the_corpus_seed_and_split(micro_model, tmp_path):
    models = ModeModels({m: micro_model for m in MODES}, {m: "micro" for m in MODES}, single=True)
    seeded = DemoService(models, shapes_gallery(tmp_path / "g", n_images=12, seed=3, split="validation"), tmp_path, umap=False)
    examples = seeded.example_queries()
    assert examples
    queries = {make_example(3, "validation", i).query_text for i in range(12)}
    assert all(e["text"] in queries for e in examples)  # seed 3's validation examples, not seed 0's test ones
    names = {gallery_file_name("validation", 3, i) for i in range(12)}
    assert {e["image"].rsplit("/", 1)[-1] for e in examples if e["image"]} <= names
    assert any(e["image"] for e in examples)
    bare = DemoService(models, Gallery([GalleryEntry("text", "a red circle")]), tmp_path, umap=False)
    assert bare.example_queries() == []  # not a Shapes corpus: no examples to offer


def test_search_views_are_what_the_tab_shows(service):
    result = service.search(None, "a red circle", k=3)
    table = result.table()
    assert len(table) == 3 and all(len(row) == len(RESULT_COLUMNS) for row in table)
    assert [row[0] for row in table] == [1, 2, 3] and all(row[2] == "image" for row in table)
    assert [path for path, _ in result.gallery_items()] == [h.entry.image_path for h in result.hits]
    assert result.shows_images and "**3 images**" in result.summary_markdown() and "**latent** mode" in result.summary_markdown()
    texts = service.search(None, "a red circle", target="texts", k=2)
    assert not texts.shows_images and texts.gallery_items() == []
    queries: list = []
    for _ in range(MAX_SESSION_QUERIES + 3):
        queries = service.remember_query(queries, result)
    assert len(queries) == MAX_SESSION_QUERIES and queries[-1]["label"] == "a red circle"
    with pytest.raises(InputError, match="Run a search first"):
        service.export_results(None)


@pytest.mark.parametrize("key", ["slowdown", "speedup"])
def test_race_board_reads_slowdown_and_old_speedup_records(key):
    board = RaceBoard()
    board.update({"event": "token", "elapsed_ms": 8.0, "tokens": 2, "text": "a red", "tokens_per_s": 250.0, key: 4.0})
    assert "4.0x the latent lane" in board.numbers
    board.update({"event": "done", "ms_per_item": {"cot": 10.0, "latent": 2.0}, key: 5.0, "cot_tokens": 3})
    assert "5.0x slower" in board.numbers and board.finished


def test_about_and_facts_name_every_mode(service):
    text = service.about_markdown()
    assert "--allow-hub" in text and "--trust-remote-code" in text
    assert {f["mode"] for f in service.model_facts()} == set(MODES)
    assert service.has_closed_vocabulary() and "circle" in service.known_words()


def test_parse_mode_accepts_names_and_labels():
    assert parse_mode("explicit CoT") == "cot" and parse_mode(None) == "latent"
    with pytest.raises(InputError):
        parse_mode("fast")


def test_model_loading_errors_are_one_sentence(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_demo_models(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="allow"):
        resolve_model_folder("someone/some-model", allow_hub=False)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "lame_config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="incomplete"):
        load_demo_models(tmp_path / "half")


def test_default_models_use_the_shipped_checkpoint_per_mode():
    models = load_demo_models(device="cpu")
    assert set(models.models) == {*MODES, "sequential"} and not models.single
    for mode in MODES:
        assert mode in models.sources[mode]
    # the race's sequential lane runs the shipped model trained for it, not the latent one
    assert "sequential-shapes" in models.sources["sequential"]
    assert models.models["sequential"].config.default_mode == "sequential"
    assert models.models["sequential"] is not models.model_for("latent")


def test_gallery_grows_lazily(micro_model):
    gallery = Gallery()
    image = Image.new("RGB", (32, 32), (0, 0, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    gallery.add(GalleryEntry("image", "upload", "", "upload", "user"), image)
    assert len(gallery.index(micro_model, "latent", "image")) == 1
    gallery.add(GalleryEntry("image", "upload 2", "", "upload", "user"), image)
    assert len(gallery.index(micro_model, "latent", "image")) == 2
    with pytest.raises(InputError):
        gallery.index(micro_model, "latent", "video")


def test_recorded_gpu_races_are_found_and_labelled(service, monkeypatch, tmp_path):
    import json

    import lame_tools

    (tmp_path / "benchmarks").mkdir()
    race = {"benchmark": "race", "hardware": {"gpu": "NVIDIA H100", "device": "cuda:0"}, "dtype": "bfloat16",
            "date": "2026-11-26", "lanes": {"latent": {"median": 2.5}, "cot": {"median": 90.0}}}
    (tmp_path / "benchmarks" / "gpu.json").write_text(json.dumps({"tiny": race, "2b": dict(race, dtype="bf16")}))
    (tmp_path / "benchmarks" / "cpu.json").write_text(json.dumps(dict(race, hardware={"cpu": "Xeon"})))
    (tmp_path / "benchmarks" / "eval.json").write_text(json.dumps({"hardware": {"gpu": "H100"}, "models": {}}))
    (tmp_path / "benchmarks" / "broken.json").write_text("{")
    monkeypatch.setattr(lame_tools, "ASSETS_DIR", tmp_path)
    records = service.recorded_benchmarks()
    assert len(records) == 3 and {r["card"] for r in records} == {"NVIDIA H100", "CPU: Xeon"}
    assert records[0]["date"] == "2026-11-26" and records[0]["ms_per_item"] == {"latent": 2.5, "cot": 90.0}
    from lame_tools.demo.race_board import recorded_markdown

    assert "No recorded GPU" not in recorded_markdown(records)
    assert "No recorded GPU" in recorded_markdown([r for r in records if r["card"].startswith("CPU")])


def test_race_board_follows_the_event_schema(service, micro_model):
    """Drive the board with the real race generator on the micro model (measured events, not made up)."""
    from lame_tools.demo.race_board import RaceBoard, recorded_markdown

    board = RaceBoard()
    for event in service.race(None, "a red circle", with_discriminative=True):
        board.update(event)
    assert board.finished and set(board.done) == {"latent", "discriminative", "cot"} and all(board.done.values())
    assert board.elapsed_ms["cot"] > 0 and "slower" in board.numbers and "Measured live" in board.hardware
    assert board.events[0]["event"] == "start" and board.events[-1]["event"] == "done"
    assert "No recorded GPU benchmark" in recorded_markdown([])


def test_attention_axes_and_choice(service):
    layers, heads, tokens = service.attention_axes()
    assert tokens[-1] == "[EMBED]" and len(tokens) == service.models.default.num_reason_tokens + 1
    _query, attention, readout_text = service.attention(None, "what is left of the red circle ?")
    choice = service.attention_choice(attention, "L0", "mean", tokens[0])
    assert choice.image_grid is None and choice.text_rows.shape[0] == len(tokens)
    assert choice.per_head.shape[:2] == (layers, heads)
    with pytest.raises(InputError):
        service.attention_choice(attention, f"L{layers}", "mean", tokens[0])
    view = service.attention_view(attention, readout_text, "L0", "H0", tokens[0])
    assert "Text-only query" in view.facts and "L0, H0" in view.facts and view.choice.image_grid is None
    assert ("read-out" in view.facts) == (readout_text is not None)
    files = service.export_attention_files(view)
    assert len(files) == 1 and files[0].endswith(".npz")  # no PNG overlay without an image
    layer_choices, head_choices, token_choices = service.attention_pickers()
    assert layer_choices == ["mean", *[f"L{i}" for i in range(layers)]] and len(head_choices) == heads + 1
    assert token_choices == tokens
    with pytest.raises(InputError, match="Compute the attention"):
        service.attention_view(None, None, "mean", "mean", tokens[0])


def test_ablation_view_is_a_table_and_a_csv(service):
    view = service.ablation_view("zero", 4)
    table = view.table()
    assert table and all(len(row) == len(ABLATION_COLUMNS) for row in table) and table[0][0] == "zero [REASON_0]"
    assert view.title.endswith("4 queries") and open(view.csv_path).readline().startswith("condition,query,cosine")
    masked = service.ablation_view("mask", 4).table()  # one token hidden from [EMBED], positions kept
    assert masked[0][0] == "mask [REASON_0]" and len(masked) == len(table)
    assert any(m[1:] != z[1:] for m, z in zip(masked, table))  # not the zero ablation under another name


def test_embedding_map_of_one_mode_and_of_all_modes(service):
    result = service.search(None, "a red circle", k=2)
    view = service.embedding_map("latent", [service.session_query(result)])
    assert view.coords.shape == (len(service.gallery), 2) and view.query_coords.shape == (1, 2)
    assert view.method in ("pca", "umap") and set(view.point_modes) == {"latent"}
    assert view.labels("mode") == ["latent"] * len(service.gallery) and view.labels("kind")[0] == "image"
    assert "1 of your queries" in view.status_markdown and view.title.startswith(f"{len(service.gallery)} corpus items")
    both = service.embedding_map("all", [service.session_query(result)])  # one model runs every mode here
    assert both.coords.shape == (3 * len(service.gallery), 2) and set(both.point_modes) == set(MODES)
    rows = service.export_map_csv(both).read_text().splitlines()
    assert rows[0].startswith("x,y,mode,kind") and len(rows) == 1 + 3 * len(service.gallery) + 1


def test_one_map_of_all_modes_needs_one_model(service):
    trio = ModeModels(dict(service.models.models), dict(service.models.sources), single=False)
    other = DemoService(trio, service.gallery, service.workdir)
    with pytest.raises(InputError, match="one model"):
        other.embedding_map("all")


def test_the_about_summary_names_every_run_of_a_pipeline_model():
    import json

    from lame_tools import ASSETS_DIR
    from lame_tools.demo.about import training_summary

    info = json.loads((ASSETS_DIR / "models" / "lame-shapes" / "training.json").read_text())
    summary = training_summary(info)
    steps = " + ".join(str(p["steps"]) for p in info["phases"])
    assert f"{len(info['phases'])} runs, each continuing the last: {steps} steps" in summary
    assert f"trained for {info['pipeline_wall_s'] / 60:.1f} min" in summary
    single = training_summary({"steps": 1100, "wall_s": 600.0, "command": "python -m lame_tools train"})
    assert "steps: 1100" in single and "trained for 10.0 min" in single and "runs" not in single


def test_the_corpus_is_embedded_in_the_background_for_the_sequential_lane(micro_model, tmp_path, monkeypatch):
    from lame_tools.model import LameModel

    monkeypatch.delenv("LAME_BACKGROUND_MODES", raising=False)
    sequential = LameModel.build_tiny("micro", num_reason_tokens=2, embed_dim=32, seed=1, vocabulary=VOCABULARY)
    models = ModeModels({**{m: micro_model for m in MODES}, "sequential": sequential},
                        {m: "micro" for m in [*MODES, "sequential"]}, single=False)
    service = DemoService(models, shapes_gallery(tmp_path / "gallery", n_images=4), tmp_path / "work", umap=False)
    assert service.sequential_model() is sequential
    service.prepare_in_background(fit_map=False)
    for _ in range(600):  # the background thread embeds every mode, the sequential lane's last
        if (id(sequential), "sequential", "text") in service.gallery._indexes:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the background work never embedded the corpus for the sequential lane")
    for kind in ("image", "text"):
        index = service.gallery.index(sequential, "sequential", kind)
        assert len(index) == service.gallery.count(kind)
    # without a sequential model the lane falls back to the latent model and nothing more is embedded
    alone = DemoService(ModeModels({m: micro_model for m in MODES}, {m: "micro" for m in MODES}, single=True),
                        service.gallery, tmp_path / "work2", umap=False)
    assert alone.sequential_model() is micro_model
