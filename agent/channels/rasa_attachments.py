"""Image and audio attachments of a Rasa message, given in its ``metadata``.

A message may carry one image and one audio clip::

    "metadata": {"image": {"url": "https://cdn.example.com/uploads/1.jpg"},
                 "audio": {"base64": "<base64 of a WAV file>", "content_type": "audio/wav"}}

``"image": "https://..."`` is short for ``{"url": ...}``; a ``data:`` URI is accepted as ``base64``.
URLs are fetched (with httpx) only from the configured allow-list (scheme, host and port must
match an entry, and the path must lie under the entry's path), without following redirects,
within a time limit and a size cap; the declared content type must fit the kind. The bytes are
decoded later by ``modalities`` (which checks what they really are). Every problem raises
``InvalidInput``; messages name the host, never the full URL (signed URLs carry secrets).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import httpx

from agent.errors import InvalidInput, PayloadTooLarge

AttachmentKind = Literal["image", "audio"]
KINDS: tuple[AttachmentKind, ...] = ("image", "audio")
CONTENT_TYPES: dict[str, frozenset[str]] = {
    "image": frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"}),
    "audio": frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac",
                        "audio/x-flac", "audio/mpeg", "audio/mp3", "audio/ogg", "application/ogg"}),
}
ANY_BYTES = "application/octet-stream"  # the decoder decides what the bytes are
CHUNK_BYTES = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True, kw_only=True)
class RawAttachment:
    """Attachment bytes as received, not yet decoded."""

    kind: AttachmentKind
    data: bytes
    content_type: str | None  # as declared by the sender or the serving host
    source: Literal["url", "base64"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentLimits:
    allow_list: tuple[str, ...] = ()  # URL prefixes; empty: URL attachments are refused
    max_bytes: int = 10_000_000
    timeout_s: float = 5.0


def attachment_specs(metadata: Mapping[str, Any] | None) -> dict[AttachmentKind, Mapping[str, Any]]:
    """The ``image``/``audio`` entries of a message's metadata, checked for shape."""
    if not metadata:
        return {}
    specs: dict[AttachmentKind, Mapping[str, Any]] = {}
    for kind in KINDS:
        value = metadata.get(kind)
        if value is None:
            continue
        if isinstance(value, str):
            value = {"base64": value} if value.startswith("data:") else {"url": value}
        if not isinstance(value, Mapping):
            raise InvalidInput(
                f"metadata.{kind}: expected an object with 'url' or 'base64' (or a URL string), "
                f"got {type(value).__name__}"
            )
        if ("url" in value) == ("base64" in value):
            raise InvalidInput(f"metadata.{kind}: expected exactly one of 'url' and 'base64', got "
                               f"{'both' if 'url' in value else 'neither'}")
        specs[kind] = value
    return specs


async def load_attachments(
    metadata: Mapping[str, Any] | None,
    limits: AttachmentLimits,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[AttachmentKind, RawAttachment]:
    """Fetch or decode every attachment in ``metadata``; raises ``InvalidInput`` on the first problem."""
    out: dict[AttachmentKind, RawAttachment] = {}
    for kind, spec in attachment_specs(metadata).items():
        content_type = _optional_str(spec, "content_type", kind)
        if "url" in spec:
            url = spec["url"]
            if not isinstance(url, str):
                raise InvalidInput(f"metadata.{kind}.url: expected a string, got {type(url).__name__}")
            out[kind] = await fetch_url(url, kind=kind, limits=limits, transport=transport)
        else:
            out[kind] = decode_base64(spec["base64"], kind=kind, content_type=content_type,
                                      max_bytes=limits.max_bytes)
    return out


def _optional_str(spec: Mapping[str, Any], key: str, kind: str) -> str | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"metadata.{kind}.{key}: expected a string, got {type(value).__name__}")
    return value


def check_content_type(content_type: str | None, kind: AttachmentKind, *, where: str) -> None:
    """A declared type must be one we take for ``kind`` or ``application/octet-stream``."""
    if content_type is None:
        return
    declared = content_type.split(";", 1)[0].strip().lower()
    if declared in CONTENT_TYPES[kind] or declared in ("", ANY_BYTES):
        return
    raise InvalidInput(
        f"{kind} attachment {where}: expected one of {sorted(CONTENT_TYPES[kind])}, "
        f"got content type {declared[:60]!r}"
    )


# --- base64 -----------------------------------------------------------------------------------


def decode_base64(value: Any, *, kind: AttachmentKind, content_type: str | None, max_bytes: int) -> RawAttachment:
    if not isinstance(value, str):
        raise InvalidInput(f"metadata.{kind}.base64: expected a string, got {type(value).__name__}")
    if value.startswith("data:"):
        header, sep, value = value.partition(",")
        if not sep or not header.endswith(";base64"):
            raise InvalidInput(f"metadata.{kind}: expected a 'data:<type>;base64,' URI, got another data URI")
        content_type = content_type or header[len("data:"):-len(";base64")]
    check_content_type(content_type, kind, where="metadata")
    encoded = "".join(value.split())
    if len(encoded) > (max_bytes + 2) // 3 * 4:
        raise PayloadTooLarge(f"{kind} attachment is over {max_bytes:,} bytes (about {len(encoded) * 3 // 4:,} in base64)")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInput(f"metadata.{kind}.base64: expected standard base64, got undecodable text") from e
    if not data:
        raise InvalidInput(f"metadata.{kind}.base64 is empty; expected the file's bytes")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{kind} attachment is {len(data):,} bytes; the limit is {max_bytes:,}")
    return RawAttachment(kind=kind, data=data, content_type=content_type, source="base64")


# --- URLs -------------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port, parts.path or "/"


def check_allowed(url: str, allow_list: tuple[str, ...], *, kind: str) -> str:
    """Return the URL's host if the URL lies under an allow-list entry; else raise InvalidInput."""
    parts = urlsplit(url)
    scheme, host, port, path = _origin(url)
    if scheme not in DEFAULT_PORTS or not host or port < 0:
        raise InvalidInput(f"{kind} attachment URL: expected an http(s) URL with a host, got another kind of URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"{kind} attachment URL must not carry credentials")
    if not allow_list:
        raise InvalidInput(f"{kind} attachment URLs are not accepted here (rasa.attachment_allow_list is empty); "
                           "send the file as base64 instead")
    segments = unquote(path).split("/")
    if any(s in (".", "..") for s in segments):
        raise InvalidInput(f"{kind} attachment URL: expected a plain path, got one with '.' or '..' segments")
    for entry in allow_list:
        e_scheme, e_host, e_port, e_path = _origin(entry)
        if (scheme, host, port) != (e_scheme, e_host, e_port):
            continue
        prefix = e_path if e_path.endswith("/") else e_path + "/"
        if e_path in ("", "/") or path == e_path or path.startswith(prefix):
            return host
    raise InvalidInput(f"{kind} attachment URL on host {host!r} is not on the allow-list")


async def fetch_url(
    url: str,
    *,
    kind: AttachmentKind,
    limits: AttachmentLimits,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RawAttachment:
    """GET an allowed URL: status 200, a fitting content type, at most ``max_bytes``, within the time limit."""
    host = check_allowed(url, limits.allow_list, kind=kind)
    try:
        async with (
            asyncio.timeout(limits.timeout_s),
            httpx.AsyncClient(timeout=limits.timeout_s, follow_redirects=False, transport=transport) as client,
            client.stream("GET", url, headers={"Accept": f"{kind}/*"}) as response,
        ):
            return await _read_response(response, kind=kind, host=host, max_bytes=limits.max_bytes)
    except (TimeoutError, httpx.TimeoutException) as e:
        raise InvalidInput(f"{kind} attachment URL on {host!r} did not answer within {limits.timeout_s:g} s") from e
    except httpx.HTTPError as e:
        raise InvalidInput(f"{kind} attachment URL on {host!r} could not be fetched ({type(e).__name__})") from e


async def _read_response(response: httpx.Response, *, kind: AttachmentKind, host: str, max_bytes: int) -> RawAttachment:
    if response.status_code != 200:
        raise InvalidInput(f"{kind} attachment URL on {host!r} answered HTTP {response.status_code}; expected 200")
    content_type = response.headers.get("content-type")
    check_content_type(content_type, kind, where=f"from {host!r}")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"{kind} attachment from {host!r} is {int(declared):,} bytes; the limit is {max_bytes:,}")
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes(CHUNK_BYTES):
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(f"{kind} attachment from {host!r} is over the limit of {max_bytes:,} bytes")
        chunks.append(chunk)
    if total == 0:
        raise InvalidInput(f"{kind} attachment from {host!r} is empty; expected the file's bytes")
    return RawAttachment(kind=kind, data=b"".join(chunks), content_type=content_type, source="url")
