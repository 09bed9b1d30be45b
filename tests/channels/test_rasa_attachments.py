"""Attachment URLs and base64 in Rasa message metadata, fetched from a real local HTTP server."""

from __future__ import annotations

import base64
import http.server
import io
import threading
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from agent.channels.rasa_attachments import (
    AttachmentLimits,
    attachment_specs,
    check_allowed,
    decode_base64,
    fetch_url,
    load_attachments,
)
from agent.errors import InvalidInput, PayloadTooLarge


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = png_bytes()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        routes = {
            "/files/card.png": lambda: self._send(200, PNG, "image/png"),
            "/files/page.html": lambda: self._send(200, b"<html></html>", "text/html; charset=utf-8"),
            "/files/big.png": lambda: self._send(200, b"\x89PNG" + b"0" * 200_000, "image/png"),
            "/files/big-unannounced.png": lambda: self._send(200, b"\x89PNG" + b"0" * 200_000, "image/png", length=False),
            "/files/empty.png": lambda: self._send(200, b"", "image/png"),
            "/files/missing.png": lambda: self._send(404, b"no", "text/plain"),
        }
        if self.path == "/files/slow.png":
            time.sleep(1.5)
            self._send(200, PNG, "image/png")
        elif self.path == "/files/redirect.png":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path in routes:
            routes[self.path]()
        else:
            self._send(404, b"", "text/plain")


@pytest.fixture(scope="module")
def files_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/files/"
    server.shutdown()
    server.server_close()


def limits(files_url: str, **kw: object) -> AttachmentLimits:
    return AttachmentLimits(allow_list=(files_url,), **{"max_bytes": 100_000, "timeout_s": 1.0, **kw})  # type: ignore[arg-type]


async def test_an_allowed_url_is_fetched(files_url: str) -> None:
    raw = await fetch_url(files_url + "card.png", kind="image", limits=limits(files_url))
    assert raw.data == PNG and raw.content_type == "image/png" and raw.source == "url"


@pytest.mark.parametrize("name, error, expected", [
    ("page.html", InvalidInput, "content type 'text/html'"),
    ("big.png", PayloadTooLarge, "the limit is 100,000"),
    ("big-unannounced.png", PayloadTooLarge, "over the limit of 100,000"),
    ("empty.png", InvalidInput, "is empty"),
    ("missing.png", InvalidInput, "answered HTTP 404"),
    ("redirect.png", InvalidInput, "answered HTTP 302"),
    ("slow.png", InvalidInput, "did not answer within 1 s"),
])
async def test_bad_urls_are_refused_with_a_clear_message(files_url: str, name: str, error: type, expected: str) -> None:
    with pytest.raises(error) as info:
        await fetch_url(files_url + name, kind="image", limits=limits(files_url))
    assert expected in str(info.value)
    assert files_url not in str(info.value)  # the host is named, never the full URL


@pytest.mark.parametrize("url, ok", [
    ("https://cdn.example.com/uploads/a.png", True),
    ("https://CDN.example.com:443/uploads/a/b.png", True),
    ("https://cdn.example.com/uploads", True),
    ("https://cdn.example.com/uploads-evil/a.png", False),
    ("https://cdn.example.com/other/a.png", False),
    ("http://cdn.example.com/uploads/a.png", False),
    ("https://cdn.example.com:8443/uploads/a.png", False),
    ("https://cdn.example.com.evil.net/uploads/a.png", False),
    ("https://cdn.example.com@evil.net/uploads/a.png", False),
    ("https://user:pw@cdn.example.com/uploads/a.png", False),
    ("https://cdn.example.com/uploads/%2e%2e/secret", False),
    ("file:///etc/passwd", False),
])
def test_allow_list_matching(url: str, ok: bool) -> None:
    allow = ("https://cdn.example.com/uploads",)
    if ok:
        assert check_allowed(url, allow, kind="image") == "cdn.example.com"
    else:
        with pytest.raises(InvalidInput):
            check_allowed(url, allow, kind="image")


def test_an_empty_allow_list_refuses_every_url() -> None:
    with pytest.raises(InvalidInput, match="allow_list is empty"):
        check_allowed("https://cdn.example.com/a.png", (), kind="image")


def test_base64_forms_and_limits() -> None:
    encoded = base64.b64encode(PNG).decode()
    assert decode_base64(encoded, kind="image", content_type=None, max_bytes=10_000).data == PNG
    wrapped = "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
    assert decode_base64(wrapped, kind="image", content_type="image/png", max_bytes=10_000).data == PNG
    uri = decode_base64("data:image/png;base64," + encoded, kind="image", content_type=None, max_bytes=10_000)
    assert uri.content_type == "image/png" and uri.data == PNG
    with pytest.raises(PayloadTooLarge):
        decode_base64(encoded, kind="image", content_type=None, max_bytes=len(PNG) - 1)
    with pytest.raises(InvalidInput, match="audio attachment metadata: expected one of"):
        decode_base64("data:image/png;base64," + encoded, kind="audio", content_type=None, max_bytes=10_000)
    with pytest.raises(InvalidInput, match="data:<type>;base64"):
        decode_base64("data:text/plain,hello", kind="image", content_type=None, max_bytes=10_000)
    with pytest.raises(InvalidInput, match="is empty"):
        decode_base64("", kind="image", content_type=None, max_bytes=10_000)


def test_metadata_shapes() -> None:
    assert attachment_specs(None) == {} and attachment_specs({"user_id": "x"}) == {}
    assert attachment_specs({"image": "https://a/b.png"}) == {"image": {"url": "https://a/b.png"}}
    with pytest.raises(InvalidInput, match="exactly one of 'url' and 'base64', got neither"):
        attachment_specs({"audio": {"content_type": "audio/wav"}})


async def test_load_attachments_takes_an_image_url_and_base64_audio(files_url: str) -> None:
    wav = b"RIFF....WAVEfmt "  # not checked here: modalities.audio decodes it later
    got = await load_attachments(
        {"image": {"url": files_url + "card.png"}, "audio": {"base64": base64.b64encode(wav).decode(),
                                                            "content_type": "audio/wav"}},
        limits(files_url),
    )
    assert got["image"].data == PNG and got["audio"].data == wav and got["audio"].content_type == "audio/wav"
