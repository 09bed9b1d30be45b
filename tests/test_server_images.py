"""Image turns over HTTP (multipart): checked uploads, the stored blob, atomic rejection.
The image analyser is a fake here; the real encoder and OCR are tested in tests/models and in
the browser tests."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from agent.config import AgentConfig
from agent.messages import ImageAnalysis, ImageInput
from agent.runtime import Agent
from agent.server import create_app
from dialogue.domain import load_domain
from dialogue.service import DialogueService, make_store
from tests.fakes import FakeNlu


class FakeAnalyzer:
    def analyze(self, image: ImageInput) -> ImageAnalysis:
        return ImageAnalysis(sha256=image.sha256, kind="receipt", kind_confidence=0.9,
                             fields=(("total", "12.50"), ("date", "2026-11-20")))


@pytest.fixture
def client() -> Iterator[TestClient]:
    config = AgentConfig.from_env({"AGENT_VISION_MAX_BYTES": "3000000"})
    domain = load_domain(config.domain.path)
    agent = Agent(config=config, dialogue=DialogueService(make_store(config.store), domain),
                  nlu_loader=FakeNlu, image_analyzer_factory=FakeAnalyzer)
    with TestClient(create_app(agent, wait_for_model=True)) as c:
        yield c


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_turn_reports_what_was_seen_and_stores_the_image_by_hash(client: TestClient) -> None:
    r = client.post("/v1/conversations/img1/turns", data={"text": "why was I charged twice?", "user_id": "u1"},
                    files={"image": ("receipt.png", png(), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"]["kind"] == "receipt" and body["image"]["fields"]["total"] == "12.50"
    sha = body["image"]["sha256"]
    stored = client.get(f"/v1/images/{sha}")
    assert stored.status_code == 200 and hashlib.sha256(stored.content).hexdigest() == sha
    turns = client.get("/v1/conversations/img1").json()["turns"]
    assert any(t.get("image_sha256") == sha for t in turns)
    assert "iVBOR" not in str(turns)  # never inline in the conversation


def test_image_alone_is_a_turn(client: TestClient) -> None:
    r = client.post("/v1/conversations/img2/turns", files={"image": ("r.png", png(), "image/png")})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "files, data, status, needle",
    [
        ({"image": ("x.png", b"", "image/png")}, {"text": "hi"}, 422, ""),
        ({"image": ("x.png", b"<html><script>alert(1)</script></html>", "image/png")}, {"text": "hi"}, 422, ""),
        ({"image": ("x.pdf", b"%PDF-1.4 fake", "application/pdf")}, {"text": "hi"}, 422, ""),
        ({"image": ("x.png", png()[:40], "image/png")}, {"text": "hi"}, 422, ""),
        ({"photo": ("x.png", png(), "image/png")}, {"text": "hi"}, 422, "named 'image'"),
        ({"user_id": (None, "u1")}, {}, 422, "needs a 'text' field, an 'image' file, or both"),
    ],
)
def test_bad_uploads_are_refused_and_change_nothing(client: TestClient, files, data, status, needle) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/conversations/img3/turns", json={"text": "hello"})
    before = client.get("/v1/conversations/img3").json()
    r = client.post("/v1/conversations/img3/turns", data=data, files=files or None)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]
    assert "alert(1)" not in r.text
    assert client.get("/v1/conversations/img3").json() == before


def test_two_images_in_one_turn_are_refused(client: TestClient) -> None:
    r = client.post("/v1/conversations/img4/turns", data={"text": "two"},
                    files=[("image", ("a.png", png(), "image/png")), ("image", ("b.png", png(), "image/png"))])
    assert r.status_code in (400, 422) and "at most 1 image" in r.json()["error"] or "Too many files" in r.json()["error"]
    assert client.get("/v1/conversations/img4").status_code == 404


def test_oversized_upload_and_malformed_multipart(client: TestClient) -> None:
    big = client.post("/v1/conversations/img5/turns", data={"text": "big"},
                      files={"image": ("big.png", b"\x89PNG" + b"0" * 4_000_000, "image/png")})
    assert big.status_code == 413
    huge = client.post("/v1/conversations/img5/turns", content=b"x" * 30_000_000,
                       headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert huge.status_code == 413
    broken = client.post("/v1/conversations/img5/turns", content=b"--zzz\r\nContent-Disposition: form-data\r\n\r\nno end",
                         headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert broken.status_code in (400, 422)
    no_boundary = client.post("/v1/conversations/img5/turns", content=b"abc",
                              headers={"content-type": "multipart/form-data"})
    assert no_boundary.status_code == 400
    assert client.get("/v1/conversations/img5").status_code == 404


class SlowAnalyzer(FakeAnalyzer):
    """Stands in for a first start, where the image-kind head is trained before the first picture."""

    gate = None  # a threading.Event the test opens

    def __init__(self) -> None:
        assert SlowAnalyzer.gate is not None
        SlowAnalyzer.gate.wait(30)


def test_image_understanding_still_starting_is_503_and_records_nothing_then_works() -> None:
    import threading

    SlowAnalyzer.gate = threading.Event()
    config = AgentConfig.from_env({"AGENT_VISION_STARTUP_WAIT_S": "0.3"})
    agent = Agent(config=config, dialogue=DialogueService(make_store(config.store), load_domain(config.domain.path)),
                  nlu_loader=FakeNlu, image_analyzer_factory=SlowAnalyzer)
    agent.prepare_parts = ("image_analyzer",)  # as `agent serve` does: starts building once the text model is up
    with TestClient(create_app(agent, wait_for_model=True)) as c:
        assert c.get("/readyz").json()["images"] == "preparing"
        assert c.get("/readyz").status_code == 200  # text turns are served meanwhile
        r = c.post("/v1/conversations/slow1/turns", data={"text": "what is this?"},
                   files={"image": ("r.png", png(), "image/png")})
        assert r.status_code == 503 and "image understanding is still starting" in r.json()["error"]
        assert c.get("/v1/conversations/slow1").status_code == 404  # the refused turn left nothing
        assert c.post("/v1/conversations/slow1/turns", json={"text": "hello"}).status_code == 200
        SlowAnalyzer.gate.set()
        r = c.post("/v1/conversations/slow1/turns", data={"text": "what is this?"},
                   files={"image": ("r.png", png(), "image/png")})
        assert r.status_code == 200 and r.json()["image"]["kind"] == "receipt"
        assert c.get("/readyz").json()["images"] == "ok"


def test_a_failed_image_build_is_retried_on_the_next_picture() -> None:
    attempts = []

    def flaky() -> FakeAnalyzer:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk full while training the head")
        return FakeAnalyzer()

    config = AgentConfig()
    agent = Agent(config=config, dialogue=DialogueService(make_store(config.store), load_domain(config.domain.path)),
                  nlu_loader=FakeNlu, image_analyzer_factory=flaky)
    with TestClient(create_app(agent, wait_for_model=True)) as c:
        first = c.post("/v1/conversations/flaky1/turns", files={"image": ("r.png", png(), "image/png")})
        assert first.status_code == 503 and "failed to start (OSError)" in first.json()["error"]
        second = c.post("/v1/conversations/flaky1/turns", files={"image": ("r.png", png(), "image/png")})
        assert second.status_code == 200, second.text
        assert len(attempts) == 2


class BrokenFusion:
    """A fusion model that fails on every turn (a bug, a corrupted file, out of memory)."""

    calls = 0

    def understand(self, **_: object) -> None:
        BrokenFusion.calls += 1
        raise RuntimeError("shape mismatch in the fusion model")


def test_a_failing_fusion_model_falls_back_to_the_text_path() -> None:
    from agent import metrics

    config = AgentConfig()
    agent = Agent(config=config, dialogue=DialogueService(make_store(config.store), load_domain(config.domain.path)),
                  nlu_loader=FakeNlu, image_analyzer_factory=FakeAnalyzer, fusion_loader=BrokenFusion)
    before = metrics.FALLBACKS.labels(error="RuntimeError")._value.get()
    with TestClient(create_app(agent, wait_for_model=True)) as c:
        r = c.post("/v1/conversations/fusion1/turns", data={"text": "I lost my card"},
                   files={"image": ("r.png", png(), "image/png")})
        assert r.status_code == 200, r.text
        assert r.json()["nlu"]["path"] != "fusion" and r.json()["nlu"]["intent"]
        assert BrokenFusion.calls == 1
        assert metrics.FALLBACKS.labels(error="RuntimeError")._value.get() == before + 1
        assert "agent_fusion_fallbacks_total" in c.get("/metrics").text
