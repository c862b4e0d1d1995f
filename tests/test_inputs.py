from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lame_tools.errors import InputError
from lame_tools.inputs import MAX_SIDE, MAX_TEXT_CHARS, clean_text, load_image


def _png(path, image):
    image.save(path)
    return path


def test_corrupt_zero_byte_and_fake_png_give_one_sentence(tmp_path):
    good = _png(tmp_path / "good.png", Image.new("RGB", (40, 30), "red"))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:60])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    fake = tmp_path / "notes.png"
    fake.write_text("this is a text file")
    for path, phrase in ((corrupt, "corrupt"), (empty, "empty"), (fake, "not an image")):
        with pytest.raises(InputError, match=phrase) as info:
            load_image(path)
        message = str(info.value)
        assert "\n" not in message and message.endswith(".")
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "missing.png")


def test_huge_image_is_refused_before_decoding(tmp_path):
    # a 20000x20000 PNG header: refused from its size alone, never decoded
    big = Image.new("1", (20000, 20000))
    path = tmp_path / "huge.png"
    big.save(path, optimize=True)
    with pytest.raises(InputError, match="refused|too large"):
        load_image(path)


def test_large_image_is_downscaled(tmp_path):
    image = load_image(Image.new("RGB", (5000, 2500), "blue"))
    assert max(image.size) == MAX_SIDE and image.mode == "RGB"


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGBA", (20, 20), (255, 0, 0, 0)),
        Image.new("L", (20, 20), 128),
        Image.fromarray((np.arange(400, dtype=np.uint16).reshape(20, 20) * 100), mode="I;16"),
        Image.new("P", (20, 20)),
        Image.new("CMYK", (20, 20)),
    ],
)
def test_modes_are_converted_to_rgb(tmp_path, image):
    path = tmp_path / "x.png" if image.mode != "CMYK" else tmp_path / "x.jpg"
    image.save(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (20, 20)


def test_transparent_pixels_become_white():
    out = load_image(Image.new("RGBA", (4, 4), (255, 0, 0, 0)))
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_is_rescaled_not_clipped():
    data = np.array([[0, 65535]], dtype=np.uint16)
    out = load_image(Image.fromarray(data, mode="I;16"))
    assert out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((1, 0)) == (255, 255, 255)


def test_text_cleaning():
    with pytest.raises(InputError, match="empty"):
        clean_text("   ")
    assert clean_text("  a   red\ncircle ") == "a red circle"
    with pytest.warns(UserWarning, match="characters"):
        cut = clean_text("x " * 50_000)
    assert len(cut) == MAX_TEXT_CHARS - 1 and cut.endswith(" x")  # cut at a word boundary, no trailing space
    with pytest.warns(UserWarning, match="characters"):
        cut = clean_text("abcdefg " * 1000)
    assert cut.split() == ["abcdefg"] * len(cut.split()) and len(cut) <= MAX_TEXT_CHARS  # no half word

