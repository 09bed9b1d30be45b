"""Uploaded images: accepted formats come out upright RGB without metadata; everything else is
refused with InvalidInput saying what is accepted, before any pixel of a bomb is decoded."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from agent.errors import InvalidInput
from modalities import image as image_module
from modalities.image import describe_upload, header_size_px, image_from_pil, load_image, sniff_image_type

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 40_000_000}


def encode(picture: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def halves(size: tuple[int, int] = (40, 20)) -> Image.Image:
    """Left half red, right half blue."""
    picture = Image.new("RGB", size, (0, 0, 255))
    picture.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    return picture


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_accepted_formats_decode_to_rgb_with_hash_of_the_upload(fmt: str) -> None:
    data = encode(halves(), fmt)
    result = load_image(data, **LIMITS)
    assert result.source_format == fmt
    assert result.rgb.mode == "RGB"
    assert (result.width_px, result.height_px) == (40, 20) == result.rgb.size
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.n_bytes == len(data)
    red = result.rgb.getpixel((5, 10))
    assert red[0] > 200 and red[2] < 60


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_header_size_is_read_without_decoding(fmt: str) -> None:
    assert header_size_px(encode(halves((123, 45)), fmt), fmt) == (123, 45)


def test_sniff_recognises_magic_bytes_only() -> None:
    assert sniff_image_type(encode(halves(), "PNG")) == "PNG"
    assert sniff_image_type(encode(halves(), "JPEG")) == "JPEG"
    assert sniff_image_type(b"<html><body>hello</body></html>") is None
    assert sniff_image_type(b"") is None


def test_a_30_mb_upload_is_refused_by_size() -> None:
    data = b"\xff\xd8\xff" + b"\x00" * (30 * 1024 * 1024)
    with pytest.raises(InvalidInput, match=r"31,457,283 bytes; the limit is 10,000,000"):
        load_image(data, **LIMITS)


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"", "an empty upload"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', "an SVG drawing"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "an SVG drawing"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF", "a PDF document"),
        (b"<!DOCTYPE html><html><body>card number 4111 1111 1111 1111</body></html>", "an HTML document"),
        (b"BM" + b"\x00" * 60, "a BMP image"),
        (b"II*\x00" + b"\x00" * 60, "a TIFF image"),
        (b"just some words a customer typed", "plain text"),
        (bytes(range(256)), "unrecognised binary data"),
    ],
)
def test_non_images_are_refused_saying_what_is_accepted_and_what_came(data: bytes, what: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_image(data, **LIMITS)
    message = str(caught.value)
    assert "JPEG, PNG, WebP or GIF" in message and what in message
    assert "4111" not in message and "customer" not in message  # never echoes the upload


def test_html_named_png_is_judged_by_its_bytes() -> None:
    with pytest.raises(InvalidInput, match="HTML"):
        load_image(b"<html><head><title>x</title></head></html>", content_type="image/png", **LIMITS)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_truncated_files_are_refused(fmt: str) -> None:
    noisy = Image.effect_noise((200, 200), 60).convert("RGB")
    data = encode(noisy, fmt)
    with pytest.raises(InvalidInput, match="damaged or truncated"):
        load_image(data[: len(data) // 2], **LIMITS)


def test_a_header_cut_short_is_refused() -> None:
    with pytest.raises(InvalidInput, match="damaged or truncated"):
        load_image(b"\x89PNG\r\n\x1a\n\x00\x00", **LIMITS)


def test_a_bomb_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[object] = []
    monkeypatch.setattr(image_module.Image, "open", lambda *a, **k: opened.append(a))
    with pytest.raises(InvalidInput, match=r"50000x50000 = 2,500,000,000 pixels; the limit is 40,000,000"):
        load_image(bomb_png(50_000, 50_000), **LIMITS)
    assert opened == []  # PIL never saw it


def test_a_gif_bomb_and_a_too_large_frame_are_refused() -> None:
    gif = bytearray(encode(halves(), "GIF"))
    gif[6:10] = struct.pack("<HH", 65_000, 65_000)
    with pytest.raises(InvalidInput, match="pixels; the limit"):
        load_image(bytes(gif), **LIMITS)
    with pytest.raises(InvalidInput, match="pixels; the limit is 100"):
        load_image(encode(halves(), "PNG"), max_bytes=10_000, max_pixels=100)


def test_a_gif_with_frames_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(io.BytesIO(buffer.getvalue())) as check:
        assert check.n_frames == 3
    result = load_image(buffer.getvalue(), **LIMITS)
    assert result.rgb.getpixel((8, 8)) == (255, 0, 0)


def test_exif_rotated_jpeg_comes_out_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    data = encode(halves((40, 20)), "JPEG", exif=exif, quality=95)
    result = load_image(data, **LIMITS)
    assert result.rgb.size == (20, 40)  # portrait once turned
    top, bottom = result.rgb.getpixel((10, 5)), result.rgb.getpixel((10, 35))
    assert top[0] > 200 and bottom[2] > 200  # the left (red) half is now on top


def test_metadata_is_stripped() -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0131] = "Editor 1.0"  # Software
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    jpeg = encode(halves(), "JPEG", exif=exif, icc_profile=icc, comment=b"secret note")
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret note")
    png = encode(halves(), "PNG", pnginfo=info)
    for data in (jpeg, png):
        result = load_image(data, **LIMITS)
        assert result.rgb.info == {}
        assert len(result.rgb.getexif()) == 0
        out = io.BytesIO()
        result.rgb.save(out, format="PNG")
        assert b"secret" not in out.getvalue() and b"CameraMaker" not in out.getvalue()


def test_transparency_is_composited_onto_white() -> None:
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    result = load_image(encode(clear, "PNG"), **LIMITS)
    assert result.rgb.getpixel((5, 5)) == (255, 255, 255)


def test_greyscale_16_bit_png_is_accepted() -> None:
    deep = Image.new("I;16", (8, 8), 65535)
    result = load_image(encode(deep, "PNG"), **LIMITS)
    assert result.rgb.getpixel((1, 1)) == (255, 255, 255)


def test_declared_content_type_must_be_an_image_type() -> None:
    png = encode(halves(), "PNG")
    assert load_image(png, content_type="image/jpeg", **LIMITS).source_format == "PNG"
    assert load_image(png, content_type="application/octet-stream", **LIMITS).source_format == "PNG"
    with pytest.raises(InvalidInput, match="got content type 'application/pdf'"):
        load_image(png, content_type="application/pdf", **LIMITS)


def test_wrong_python_type_is_refused() -> None:
    with pytest.raises(InvalidInput, match="expected bytes, got str"):
        load_image("not bytes", **LIMITS)  # type: ignore[arg-type]


def test_describe_upload_names_common_types() -> None:
    assert describe_upload(b"PK\x03\x04rest").startswith("a ZIP archive")
    assert describe_upload(b"\x00\x00\x00\x18ftypheic") == "a HEIC/AVIF image"


def test_image_from_pil_goes_through_the_upload_path() -> None:
    result = image_from_pil(halves())
    assert result.source_format == "PNG" and result.rgb.size == (40, 20)
