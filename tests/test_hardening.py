"""The nine defects of the hostile-input probe (issue 14), each pinned by a test, plus text normalisation.

1 EXIF orientation, 2 punctuation runs, 3 long corpus text, 4 file names said once, 5 what a session
may keep (and a global cap), 6 a shape mismatch said as such, 7 no log line lost to a kill after a
checkpoint, 8 malformed API calls get one sentence (launched app), 9 uploads are cleaned up.
"""

from __future__ import annotations

import gc
import io
import json
import os
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from lame_tools.constants import MODES
from lame_tools.demo import service as service_module
from lame_tools.demo.gallery import shapes_gallery
from lame_tools.demo.models import ModeModels
from lame_tools.demo.service import DemoService
from lame_tools.demo.uploads import MAX_IMAGES_PER_ADD, USER_IMAGE_SIDE
from lame_tools.errors import InputError, ModelLoadError
from lame_tools.inputs import MAX_TEXT_CHARS, clean_text, load_image


@pytest.fixture()
def service(micro_model, tmp_path):
    """A service over the random micro model (all modes) and an 8-scene corpus, its own work folder."""
    models = ModeModels({m: micro_model for m in MODES}, {m: f"micro in {m} mode" for m in MODES}, single=True)
    return DemoService(models, shapes_gallery(tmp_path / "gallery", n_images=8), tmp_path / "work", umap=False)


def _png(path: Path, image: Image.Image) -> str:
    image.save(path)
    return str(path)


# ---- 1: EXIF orientation ---------------------------------------------------------------------------


def _rotated_jpeg(path: Path) -> Path:
    """A 120x60 JPEG (red left half) whose EXIF says "rotate 90 degrees clockwise to show" (Orientation 6)."""
    image = Image.new("RGB", (120, 60), "blue")
    image.paste((255, 0, 0), (0, 0, 60, 60))
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    return path


def test_exif_orientation_is_applied_for_paths_bytes_and_pil(tmp_path):
    path = _rotated_jpeg(tmp_path / "phone.jpg")
    for source in (path, path.read_bytes(), Image.open(path)):
        image = load_image(source)
        assert image.size == (60, 120)  # as a viewer shows it
        # orientation 6: the stored left (red) half ends up on top
        top, bottom = np.asarray(image)[10, 30], np.asarray(image)[110, 30]
        assert top[0] > 200 and top[2] < 60 and bottom[2] > 200


def test_exif_orientation_reaches_the_users_corpus(service, tmp_path):
    path = _rotated_jpeg(tmp_path / "phone.jpg")
    user, _ = service.add_to_gallery(None, [str(path)], "")
    image_id = user.ids("image")[0]
    assert user.image(image_id).size == (60, 120)
    assert Image.open(user.entries[image_id].image_path).size == (60, 120)


# ---- 2: punctuation runs ---------------------------------------------------------------------------


def test_runs_of_punctuation_are_unknown_words(service, micro_model):
    processor = micro_model.processor
    assert processor.unknown_words("...") == ["..."]
    assert processor.unknown_words("a red circle?.") == ["?."]
    assert processor.unknown_words("what colour is the circle ?") == []
    for text in ("...", "a red circle?."):
        with pytest.raises(InputError, match="does not know"):
            service.search(None, text)


# ---- 3: long text in the user's corpus -------------------------------------------------------------


def test_long_text_is_cut_at_a_word_and_the_warning_kept(service):
    with pytest.warns(UserWarning, match="only the first"):
        cleaned = clean_text("red circle " * 50000)
    assert MAX_TEXT_CHARS - 7 <= len(cleaned) <= MAX_TEXT_CHARS and set(cleaned.split()) == {"red", "circle"}
    user, summary = service.add_to_gallery(None, [], "red circle " * 50000)  # no "'cir'" refusal
    assert user.count("text") == 1 and user.entries[-1].text == cleaned
    assert "only the first" in summary
    result = service.search(None, "red circle " * 50000)
    assert result.query.text == cleaned and any("only the first" in n for n in result.notes)
    with pytest.warns(UserWarning):
        assert clean_text("x" * (MAX_TEXT_CHARS + 10)) == "x" * MAX_TEXT_CHARS  # one long word is cut where it must be


# ---- 4: a file named once ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zero", "text", "corrupt", "bomb"])
def test_add_to_corpus_errors_name_the_file_once(service, tmp_path, kind):
    sys.path.insert(0, str(Path(__file__).parent))
    from _app_server import huge_png

    good = io.BytesIO()
    Image.new("RGB", (40, 40), "red").save(good, format="PNG")
    data = {"zero": b"", "text": b"not an image\n", "corrupt": good.getvalue()[:70], "bomb": huge_png(20000, 20000)}[kind]
    path = tmp_path / f"{kind}_file.png"
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        service.add_to_gallery(None, [str(path)], "")
    message = str(info.value)
    assert message.count(path.name) == 1, message
    assert "file 'image" not in message and "\n" not in message


# ---- 5: what a session keeps; a global cap ------------------------------------------------------------


def test_a_session_keeps_bounded_images_not_decoded_uploads(service, tmp_path):
    big = _png(tmp_path / "big.png", Image.new("L", (3000, 2400), 128))
    user, _ = service.add_to_gallery(None, [big], "")
    image_id = user.ids("image")[0]
    width, height = user.image(image_id).size
    assert width == USER_IMAGE_SIDE < 2048 and abs(height - USER_IMAGE_SIDE * 4 / 5) <= 1
    assert Image.open(user.entries[image_id].image_path).size == (width, height)
    # the search over it still works, and the per-session count stays bounded
    assert service.search(None, "a red circle", target="images", user_gallery=user).hits
    small = _png(tmp_path / "small.png", Image.new("RGB", (20, 20), "red"))
    with pytest.raises(InputError, match=f"at most {MAX_IMAGES_PER_ADD} images at a time"):
        service.add_to_gallery(user, [small] * (MAX_IMAGES_PER_ADD + 1), "")  # one call holds the model slot briefly
    while user.count("image") + MAX_IMAGES_PER_ADD <= service_module.MAX_USER_IMAGES:
        service.add_to_gallery(user, [small] * MAX_IMAGES_PER_ADD, "")
    with pytest.raises(InputError, match=f"at most {service_module.MAX_USER_IMAGES} images"):
        service.add_to_gallery(user, [small] * MAX_IMAGES_PER_ADD, "")


def test_stored_user_images_have_a_global_cap(service, tmp_path):
    service.user_uploads.max_images = 3
    small = _png(tmp_path / "small.png", Image.new("RGB", (50, 40), "green"))
    first, _ = service.add_to_gallery(None, [small, small], "")
    with pytest.raises(InputError) as info:
        service.add_to_gallery(None, [small, small], "")  # a second session
    message = str(info.value)
    assert "all sessions" in message and message.count(".") == 1 and message.endswith(".")
    service.add_to_gallery(None, [small], "")  # one more fits
    service.reset_gallery(first)  # "Remove my additions" frees its share
    second, _ = service.add_to_gallery(None, [small, small], "")
    assert second.count("image") == 2
    del second  # a session that ends (its state dropped) frees its share too
    gc.collect()
    service.add_to_gallery(None, [small, small], "")


# ---- 6: another model's weights ---------------------------------------------------------------------


def test_a_shape_mismatch_names_the_tensor_and_both_shapes(micro_model, tmp_path):
    folder = tmp_path / "m"
    micro_model.save_pretrained(folder)
    weights = load_file(str(folder / "model.safetensors"))
    name = next(k for k in weights if "latent_embeddings" in k) if any("latent_embeddings" in k for k in weights) else next(iter(weights))
    expected = list(weights[name].shape)
    weights[name] = torch.zeros([expected[0] + 5, *expected[1:]])
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(ModelLoadError) as info:
        type(micro_model).from_pretrained(folder, device="cpu")
    message = str(info.value)
    assert name in message and str([expected[0] + 5, *expected[1:]]) in message and str(expected) in message
    assert "corrupt" not in message and "\n" not in message


# ---- 7: a kill between a checkpoint and its log line --------------------------------------------------


class _Killed(BaseException):
    """Stands in for SIGKILL: nothing after the raise runs (no `finally` in the loop writes the log)."""


def test_no_log_line_is_lost_to_a_kill_right_after_a_checkpoint(tmp_path):
    from lame_tools.train import loop
    from lame_tools.train.config import get_train_preset

    config = get_train_preset("micro-lame")
    real_save = loop.save_checkpoint

    def save_then_die(directory, step, *args, **kwargs):
        path = real_save(directory, step, *args, **kwargs)
        if step == 4:
            raise _Killed
        return path

    with mock.patch.object(loop, "save_checkpoint", save_then_die), pytest.raises(_Killed):
        loop.train(config, tmp_path, show_progress=False)
    loop.train(config, tmp_path, resume=True, show_progress=False)
    reference = tmp_path / "reference"
    loop.train(config, reference, show_progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    expected = [json.loads(line)["step"] for line in (reference / "log.jsonl").read_text().splitlines()]
    assert steps == expected and 4 in steps


# ---- 9: files are cleaned up ------------------------------------------------------------------------------


def test_remove_my_additions_deletes_the_uploaded_files(service, tmp_path):
    small = _png(tmp_path / "small.png", Image.new("RGB", (50, 40), "green"))
    user, _ = service.add_to_gallery(None, [small, small], "a red circle")
    stored = [Path(e.image_path) for e in user.entries if e.kind == "image"]
    assert len(stored) == 2 and all(p.is_file() for p in stored)
    assert all(service.workdir in p.parents for p in stored)
    gallery, summary = service.reset_gallery(user)
    assert gallery is None and "removed" in summary
    assert not any(p.exists() for p in stored)
    assert Path(small).is_file()  # the user's own file is not ours to delete


def test_a_dropped_session_deletes_its_uploaded_files(service, tmp_path):
    small = _png(tmp_path / "small.png", Image.new("RGB", (50, 40), "green"))
    user, _ = service.add_to_gallery(None, [small], "")
    stored = Path(user.entries[0].image_path)
    assert stored.is_file()
    del user
    gc.collect()
    assert not stored.exists()


# ---- text normalisation -------------------------------------------------------------------------------------


def test_full_width_letters_and_zero_width_characters_are_normalised(service):
    assert clean_text("ａ　ｒｅｄ ｃｉｒｃｌｅ") == "a red circle"
    assert clean_text("a re\u200dd cir\u200bcle\ufeff") == "a red circle"
    plain = service.search(None, "a red circle")
    for text in ("ａ ｒｅｄ ｃｉｒｃｌｅ", "a\u200b red\u2060 circle"):
        result = service.search(None, text)
        assert result.query.text == "a red circle"
        assert np.allclose(result.embedding, plain.embedding)
    user, _ = service.add_to_gallery(None, [], "ａ ｂｌｕｅ ｓｑｕａｒｅ")
    assert user.entries[-1].text == "a blue square"


# ---- 8: malformed API calls on the launched app --------------------------------------------------------------


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parent))
    from _app_server import running_app

    with running_app(tmp_path_factory.mktemp("hardening-app"), gallery_size=12, fit_map=False) as server:
        yield server


@pytest.fixture(scope="module")
def app_client(app_server):
    from gradio_client import Client

    return Client(app_server[0], verbose=False)


def _refusal(client, **kwargs) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        client.predict(**kwargs)
    return str(info.value)


def test_malformed_api_calls_get_one_sentence(app_client, caplog):
    search = dict(text="a red circle", task="auto", target="auto", mode="latent", api_name="/search")
    message = _refusal(app_client, image="just a string", k=8, **search)
    assert "image" in message and message.strip() not in ("", "Error") and "\n" not in message.strip()
    message = _refusal(app_client, image=None, k="seven", **search)
    assert "k" in message and "number" in message
    message = _refusal(app_client, files=["not a file"], texts="", api_name="/add_to_corpus")
    assert "file" in message and message.strip() != "Error"
    # a number sent as a string is read as the number
    result = app_client.predict(image=None, k="3", **search)
    assert len(result[1]["data"]) == 3
    # the next good request is served
    assert app_client.predict(image=None, k=2, **search)[1]["data"]


def test_refusals_print_no_traceback(app_server, capfd):
    from gradio_client import Client

    app_client = Client(app_server[0], verbose=False)  # a fresh session: no search to download yet
    search = dict(text="a red circle", task="auto", target="auto", mode="latent", api_name="/search")
    capfd.readouterr()
    for kwargs in (
        dict(image="just a string", k=8, **search),
        dict(image=None, k="seven", **search),
        dict(text="zzqx banana", image=None, k=8, task="auto", target="auto", mode="latent", api_name="/search"),
        dict(layer=0, head=0, token="[EMBED]", api_name="/attention_view"),
        dict(api_name="/download_results"),
    ):
        _refusal(app_client, **kwargs)
    time.sleep(0.5)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, (out + err)[-3000:]


def test_the_upload_cache_is_cleaned(tmp_path):
    """Gradio's upload cache is pruned (`delete_cache`): an upload older than the age is removed."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _app_server import load_app

    app = load_app("lame_app_cache_test")
    assert app.UPLOAD_CACHE_CLEANUP is not None and app.UPLOAD_CACHE_CLEANUP[1] <= 24 * 3600
    from gradio_client import Client, handle_file

    from lame_tools.demo.models import load_demo_models

    app.UPLOAD_CACHE_CLEANUP = (1, 1)
    with mock.patch.dict(os.environ, {"LAME_CACHE_DIR": str(tmp_path / "cache"), "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}):
        models = load_demo_models(None, device="cpu")
        gallery = shapes_gallery(tmp_path / "gallery", n_images=6)
        service = DemoService(models, gallery, tmp_path / "work", umap=False)
        demo = app.serve(service, server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
        try:
            client = Client(demo.local_url, verbose=False)
            image = _png(tmp_path / "q.png", Image.new("RGB", (64, 64), "red"))
            client.predict(handle_file(image), "", "auto", "auto", "latent", 3, api_name="/search")
            uploads = [p for p in (tmp_path / "gradio").rglob("*") if p.is_file() and p.name == "q.png"]
            assert uploads, "the upload did not reach Gradio's cache"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(p.exists() for p in uploads):
                time.sleep(0.5)
            assert not any(p.exists() for p in uploads)
        finally:
            demo.close()
