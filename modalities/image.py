"""Uploaded images: sniff, check limits, decode safely, orient, strip metadata, convert to RGB.

Accepted: JPEG, PNG, WebP and GIF (the first frame of an animation). Everything else (SVG, PDF,
HTML, BMP, TIFF, HEIC, text, truncated or empty files) is refused with ``InvalidInput`` saying
what is accepted and what came. The declared pixel size is read from the file header and checked
against ``max_pixels`` before any pixel is decoded, so a decompression bomb costs a few bytes of
parsing. Messages never contain the uploaded bytes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from agent.errors import InvalidInput
from agent.messages import ImageInput

log = logging.getLogger(__name__)

ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF")
ACCEPTED_CONTENT_TYPES: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/pjpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
}
ACCEPTED_TEXT = "a JPEG, PNG, WebP or GIF image"
DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_MAX_PIXELS = 40_000_000
BACKGROUND_RGB = (255, 255, 255)  # transparent pixels are composited onto white


def sniff_image_type(data: bytes) -> str | None:
    """The accepted format the magic bytes announce ("JPEG" | "PNG" | "WEBP" | "GIF"), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def describe_upload(data: bytes) -> str:
    """A short, content-free description of what non-accepted bytes look like, for messages."""
    if not data:
        return "an empty upload (0 bytes)"
    head = data[:1024]
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    known = (
        (head.startswith(b"%PDF"), "a PDF document"),
        (b"<svg" in text, "an SVG drawing"),
        (
            text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<div", b"<meta")),
            "an HTML document",
        ),
        (text.startswith(b"<?xml"), "an XML document"),
        (head.startswith(b"BM"), "a BMP image"),
        (head[:4] in (b"II*\x00", b"MM\x00*"), "a TIFF image"),
        (
            head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"heif"),
            "a HEIC/AVIF image",
        ),
        (head[4:8] == b"ftyp", "an MP4/QuickTime video"),
        (head.startswith(b"PK\x03\x04"), "a ZIP archive (or an Office document)"),
        (head.startswith(b"\x00\x00\x01\x00"), "an ICO icon"),
        (head.startswith(b"8BPS"), "a Photoshop document"),
        (head.startswith((b"\x7fELF", b"MZ")), "an executable"),
    )
    for matched, what in known:
        if matched:
            return what
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "unrecognised binary data"
    return "plain text"


def header_size_px(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) declared in the file header, read without decoding; None if unreadable."""
    try:
        if fmt == "PNG":
            if data[12:16] != b"IHDR":
                return None
            return struct.unpack(">II", data[16:24])
        if fmt == "GIF":
            return struct.unpack("<HH", data[6:10])
        if fmt == "WEBP":
            return _webp_size_px(data)
        if fmt == "JPEG":
            return _jpeg_size_px(data)
    except struct.error:
        return None
    return None


def _webp_size_px(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size_px(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG markers to the first start-of-frame segment."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers carry no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if marker == 0xD9 or length < 2:
            return None
        pos += 2 + length
    return None


def _check_content_type(content_type: str | None, sniffed: str | None) -> None:
    if content_type is None:
        return
    declared = content_type.split(";", 1)[0].strip().lower()
    if declared in ACCEPTED_CONTENT_TYPES or declared in ("", "application/octet-stream"):
        return  # the bytes decide between accepted formats; browsers often mislabel them
    raise InvalidInput(
        f"image upload: expected {ACCEPTED_TEXT} (image/jpeg, image/png, image/webp, image/gif), "
        f"got content type {declared[:60]!r}"
    )


def _check_size(data: bytes, fmt: str, max_pixels: int) -> tuple[int, int]:
    size = header_size_px(data, fmt)
    if size is None:
        raise InvalidInput(
            f"image upload: the {fmt} header is damaged or truncated; expected {ACCEPTED_TEXT}"
        )
    width, height = size
    if width <= 0 or height <= 0:
        raise InvalidInput(
            f"image upload: the {fmt} header declares {width}x{height} pixels; expected a non-empty image"
        )
    if width * height > max_pixels:
        raise InvalidInput(
            f"image upload declares {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}"
        )
    return width, height


def _set_pil_limit(max_pixels: int) -> None:
    """Keep PIL's own bomb guard at least as permissive as ours, so ours is the one that speaks."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _decode_first_frame(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    _set_pil_limit(max_pixels)
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt])
        if image.size[0] * image.size[1] > max_pixels:  # a frame bigger than the header said
            raise InvalidInput(
                f"image upload is {image.size[0]}x{image.size[1]} pixels; the limit is {max_pixels:,}"
            )
        image.seek(0)
        image.load()
    except InvalidInput:
        raise
    except Image.DecompressionBombError as e:
        raise InvalidInput(f"image upload is too large to decode; the limit is {max_pixels:,} pixels") from e
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        struct.error,
        IndexError,
        TypeError,
        MemoryError,
    ) as e:
        raise InvalidInput(
            f"image upload: the {fmt} data is damaged or truncated and could not be decoded; "
            f"expected {ACCEPTED_TEXT}"
        ) from e
    return image


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except (SyntaxError, ValueError, OSError, KeyError, TypeError, struct.error, ZeroDivisionError):
        log.debug("image upload: unreadable EXIF orientation ignored")
        return image


def _clean_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels only: alpha composited onto white, no EXIF, ICC, XMP, text chunks or comments."""
    if image.mode in ("P", "PA", "LA", "La", "RGBa") or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, BACKGROUND_RGB)
        background.paste(image, mask=image.getchannel("A"))
        image = background
    elif image.mode.startswith("I"):  # 16-bit greyscale PNG: keep the top 8 bits
        image = Image.fromarray((np.asarray(image).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8))
    rgb = image.convert("RGB")
    return Image.frombytes("RGB", rgb.size, rgb.tobytes())  # a fresh image carries no metadata


def load_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    content_type: str | None = None,
) -> ImageInput:
    """Check and decode an upload into an upright, metadata-free RGB ``ImageInput``.

    ``max_bytes`` bounds the upload, ``max_pixels`` the declared width x height (checked from the
    header, before decoding). ``content_type``, when given, must be an image type we accept or
    ``application/octet-stream``; the magic bytes decide the format. Raises ``InvalidInput``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInput(f"image upload: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise InvalidInput(f"image upload is {len(data):,} bytes; the limit is {max_bytes:,}")
    fmt = sniff_image_type(data)
    _check_content_type(content_type, fmt)
    if fmt is None:
        raise InvalidInput(f"image upload: expected {ACCEPTED_TEXT}, got {describe_upload(data)}")
    _check_size(data, fmt, max_pixels)
    image = _decode_first_frame(data, fmt, max_pixels)
    rgb = _clean_rgb(_upright(image))
    return ImageInput(
        rgb=rgb,
        sha256=hashlib.sha256(data).hexdigest(),
        source_format=fmt,
        width_px=rgb.size[0],
        height_px=rgb.size[1],
        n_bytes=len(data),
    )


def image_from_pil(image: Image.Image, *, source_format: str = "PNG") -> ImageInput:
    """An ``ImageInput`` from an in-memory picture (tests, benchmarks, rendered training images).

    The picture is encoded as ``source_format`` and checked by ``load_image``, so it goes through
    exactly the path an upload takes.
    """
    buffer = io.BytesIO()
    image.save(buffer, format=source_format)
    data = buffer.getvalue()
    return load_image(data, max_bytes=len(data), max_pixels=max(image.size[0] * image.size[1], 1))
