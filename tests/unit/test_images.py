"""Upload decoding: formats, orientation, colour modes, caps and typed errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.errors import (
    EmptyImage,
    ImageTooLarge,
    NotAnImage,
    TruncatedImage,
    UnsupportedImageFormat,
)
from core.faces.decode import decode_image

from conftest import bomb_png, photo_bytes

LIMITS = {"max_bytes": 20 * 1024 * 1024, "max_pixels": 50_000_000}


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_real_jpeg_decodes_to_rgb():
    image = decode_image(photo_bytes("Barack_Obama"), **LIMITS)
    assert image.format == "JPEG" and image.mime == "image/jpeg"
    assert image.rgb.dtype == np.uint8 and image.rgb.shape == (image.height, image.width, 3)
    assert len(image.sha256) == 64


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_are_accepted(fmt: str):
    src = Image.open(io.BytesIO(photo_bytes("Barack_Obama"))).convert("RGB").resize((200, 250))
    image = decode_image(encode(src, fmt, lossless=True) if fmt == "WEBP" else encode(src, fmt), **LIMITS)
    assert image.format == fmt
    assert image.rgb.shape == (250, 200, 3)
    np.testing.assert_array_equal(image.rgb, np.asarray(src))


def test_exif_orientation_is_applied():
    src = Image.new("RGB", (300, 100), (200, 10, 10))
    src.paste((10, 10, 200), (0, 0, 50, 100))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image = decode_image(encode(src, "JPEG", exif=exif, quality=95), **LIMITS)
    assert image.rgb.shape[:2] == (300, 100)
    top = image.rgb[:40].reshape(-1, 3).mean(axis=0)
    assert top[2] > 150 and top[0] < 80, "the blue strip moves to the top after rotation"


@pytest.mark.parametrize(
    "mode,fmt",
    [("L", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"), ("I;16", "PNG"), ("1", "PNG")],
)
def test_colour_modes_become_rgb(mode: str, fmt: str):
    rgb = Image.new("RGB", (64, 48), (120, 60, 30))
    if mode == "I;16":
        src = Image.fromarray(np.full((48, 64), 40000, dtype=np.uint16))
    else:
        src = rgb.convert(mode)
    image = decode_image(encode(src, fmt), **LIMITS)
    assert image.rgb.shape == (48, 64, 3) and image.rgb.dtype == np.uint8
    if mode == "I;16":
        assert abs(int(image.rgb[0, 0, 0]) - round(40000 / 257)) <= 1


def test_transparent_pixels_become_white():
    src = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    image = decode_image(encode(src, "PNG"), **LIMITS)
    assert (image.rgb == 255).all()


def test_empty_file():
    with pytest.raises(EmptyImage, match="0 bytes"):
        decode_image(b"", **LIMITS)


def test_not_an_image():
    with pytest.raises(NotAnImage):
        decode_image(b"%PDF-1.4 this is not a photo" * 10, **LIMITS)


def test_truncated_jpeg():
    data = photo_bytes("Barack_Obama")
    with pytest.raises(TruncatedImage, match="truncated"):
        decode_image(data[: len(data) // 2], **LIMITS)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_refused(fmt: str):
    with pytest.raises(UnsupportedImageFormat, match=fmt):
        decode_image(encode(Image.new("RGB", (20, 20)), fmt), **LIMITS)


def test_byte_cap():
    data = photo_bytes("Barack_Obama")
    with pytest.raises(ImageTooLarge, match="bytes"):
        decode_image(data, max_bytes=len(data) - 1, max_pixels=LIMITS["max_pixels"])


@pytest.mark.parametrize(
    "size,max_pixels,message",
    [(20000, LIMITS["max_pixels"], "too many pixels"), (3000, 4_000_000, "3000x3000 = 9000000 pixels")],
)
def test_decompression_bomb_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch, size: int, max_pixels: int, message: str
):
    data = bomb_png(size, size)
    assert len(data) < 1_000_000
    loaded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: loaded.append(self))
    with pytest.raises(ImageTooLarge, match=message):
        decode_image(data, max_bytes=LIMITS["max_bytes"], max_pixels=max_pixels)
    assert loaded == [], "no pixel may be decoded"


def test_a_cover_is_the_face_cropped_square_and_small():
    from core.faces.decode import thumbnail_jpeg

    rgb = np.zeros((400, 800, 3), np.uint8)
    rgb[150:250, 500:600] = 255  # the "face": a white square
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    whole = Image.open(io.BytesIO(thumbnail_jpeg(buf.getvalue(), 128)))
    assert whole.size == (128, 64)  # the photo's shape, at most 128 a side
    face = Image.open(io.BytesIO(thumbnail_jpeg(buf.getvalue(), 128, (500.0, 150.0, 600.0, 250.0))))
    assert face.size == (128, 128)  # a square 1.8x the face box around it
    pixels = np.asarray(face.convert("L"), dtype=np.float32)
    assert pixels[54:74, 54:74].mean() > 200 and pixels[:10, :10].mean() < 40  # the face in the middle
    edge = Image.open(io.BytesIO(thumbnail_jpeg(buf.getvalue(), 128, (0.0, 0.0, 100.0, 100.0))))
    assert max(edge.size) == 128  # cut at the photo's edge, never padded
